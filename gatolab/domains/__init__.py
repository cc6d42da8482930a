"""Domains: real environments with expert policies, and the datasets they make.

One folder per domain (`gatolab/domains/<name>/`): its environment adapter, its expert
(scripted or loaded), its RL training recipe if it has one, and its `ENTRY` in the
registry (Table-1 weight, data-card notes, how it recognises its task ids).

    import gatolab as gl
    gl.domains.names()                                   # every domain, without loading any
    domain = gl.domains.get("babyai")                    # a fresh Domain
    gl.domains.owner("BabyAI-GoToRedBall-v0")            # -> "babyai"
    gl.domains.entry("babyai").weights                   # {"babyai": 9.06}: Gato Table 1
    result = gl.domains.rollout(domain.make("BabyAI-GoToRedBall-v0"), domain.expert("BabyAI-GoToRedBall-v0"))

Modules: `base` (the interface and the one rollout loop), `common` (building blocks for
adapters), `registry` (which domains exist and what they say about themselves).
"""

from gatolab.domains.base import (Domain, EpisodicPolicy, ExpertError, Policy, RandomPolicy, RolloutResult, Step, TaskEnv,
                                  episode_returns, evaluate_policies, rollout)
from gatolab.domains.registry import (DomainEntry, control_names, default_weights, entries, entry, get, names, notes,
                                      owner, register, registered, split_task, trainable_names, unregister)

__all__ = [
    "Domain", "DomainEntry", "EpisodicPolicy", "ExpertError", "Policy", "RandomPolicy", "RolloutResult", "Step", "TaskEnv",
    "control_names", "default_weights", "entries", "entry", "episode_returns", "evaluate_policies", "get", "names",
    "notes", "owner", "register", "registered", "rollout", "split_task", "trainable_names", "unregister",
]
