"""The MinAtar experts: gatolab-trained PPO actors reading the unpacked grid."""

from __future__ import annotations

import numpy as np

from gatolab.domains.base import Observation, Policy, TaskEnv
from gatolab.domains.minatar.env import MINATAR_TASKS, unpack_grid
from gatolab.experts import ppo

class MinAtarFeatures:
    """The expert's input from the gatolab observation: the packed grid unpacked to (10, 10, C)."""

    def __init__(self, num_channels: int):
        self.num_channels = num_channels

    def __call__(self, env: TaskEnv, obs: Observation) -> np.ndarray:
        return unpack_grid(obs["grid"], self.num_channels)



def load_expert(task: str, root: str | None = None, seed: int = 0, greedy: bool = False) -> Policy:
    """The trained PPO expert for `task` (FileNotFoundError naming the train command if missing)."""
    channels, actions, _ = MINATAR_TASKS[task]
    return ppo.load_policy(task, actions, MinAtarFeatures(channels), root=root, seed=seed, greedy=greedy)
