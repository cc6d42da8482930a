"""Domains: real environments with expert policies, and datasets (see `base.py`)."""

from gatolab.envs.base import Domain, RolloutResult, TaskEnv, domain_names, get_domain, register, rollout

__all__ = ["Domain", "RolloutResult", "TaskEnv", "domain_names", "get_domain", "register", "rollout"]
