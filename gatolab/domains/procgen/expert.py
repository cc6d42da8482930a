"""The Procgen experts: gatolab-trained PPO actors (Nature CNN) reading the 64x64 frame itself."""

from __future__ import annotations

import numpy as np

from gatolab.domains.base import Observation, Policy, TaskEnv
from gatolab.domains.procgen.env import NUM_ACTIONS
from gatolab.experts import ppo


def expert_features(env: TaskEnv, obs: Observation) -> np.ndarray:
    """The expert reads the gatolab observation itself: the 64x64 RGB frame."""
    return obs["image"]


def load_expert(task: str, root: str | None = None, seed: int = 0, greedy: bool = False) -> Policy:
    """The trained PPO expert for `task` (FileNotFoundError naming the train command if missing)."""
    return ppo.load_policy(task, NUM_ACTIONS, expert_features, root=root, seed=seed, greedy=greedy)
