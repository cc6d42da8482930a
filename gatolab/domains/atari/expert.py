"""The Atari experts: gatolab-trained PPO actors (Nature CNN) on the env's privileged DQN view."""

from __future__ import annotations

import numpy as np

from gatolab.domains.atari.emulator import NUM_ACTIONS
from gatolab.domains.base import Observation, Policy, TaskEnv
from gatolab.experts import ppo


def expert_features(env: TaskEnv, obs: Observation) -> np.ndarray:
    """The expert's input: the env's privileged DQN view (not the gatolab observation)."""
    if not hasattr(env, "expert_observation"):
        raise ValueError(f"the Atari expert needs an AtariEnv (with expert_observation()), got {type(env).__name__}")
    return env.expert_observation()


def load_expert(task: str, root: str | None = None, seed: int = 0, greedy: bool = False) -> Policy:
    """The trained PPO expert for `task` (FileNotFoundError naming the train command if missing)."""
    return ppo.load_policy(task, NUM_ACTIONS, expert_features, root=root, seed=seed, greedy=greedy)
