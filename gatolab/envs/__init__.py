"""Domains: real environments with expert policies, and datasets (see `base.py`)."""

from gatolab.envs.base import Domain, RolloutResult, TaskEnv, domain_names, get_domain, register, rollout

# Each domain module registers itself; none imports its simulator until a task is used.
from gatolab.envs import atari, babyai, classic, dmc, metaworld, minatar, procgen, sokoban, text, vision_language  # noqa: E402,F401  (each registers its domain)

__all__ = ["Domain", "RolloutResult", "TaskEnv", "domain_names", "get_domain", "register", "rollout"]
