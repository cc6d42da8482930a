"""The classic-control adapter: gymnasium's vectors and actions as gatolab fields.

Fields: observation "state" (CONTINUOUS, the gymnasium vector; mu-law applies because
the declared bounds exceed [-1, 1], Gato §2.1), action "action" (DISCRETE for
discrete-action tasks, CONTINUOUS with the gymnasium bounds otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.domains.base import check_task
from gatolab.domains.common import GymTaskEnv, bounds_of, quiet_sdl, require
from gatolab.specs import EnvSpec, FieldSpec

# task -> (kind of action, success rule). Success rules: "survive" (no termination
# before the time limit), "terminate" (the environment's goal termination), None.
CLASSIC_TASKS: dict[str, tuple[str, str | None]] = {
    "CartPole-v1": ("discrete", "survive"),
    "Acrobot-v1": ("discrete", "terminate"),
    "MountainCar-v0": ("discrete", "terminate"),
    "MountainCarContinuous-v0": ("continuous", "terminate"),
    "Pendulum-v1": ("continuous", None),
}


def _gym():
    return require("gymnasium", "classic")


def classic_spec(task: str) -> EnvSpec:
    """The EnvSpec of a classic-control task, read off the gymnasium spaces."""
    check_task(task, list(CLASSIC_TASKS), "classic")
    gym = _gym()
    env = gym.make(task)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        low, high = bounds_of(obs_space)
        observation = {"state": FieldSpec.continuous(obs_space.shape, low, high)}
        if CLASSIC_TASKS[task][0] == "discrete":
            action = {"action": FieldSpec.discrete(int(act_space.n))}
        else:
            a_low, a_high = bounds_of(act_space)
            action = {"action": FieldSpec.continuous(act_space.shape, a_low, a_high)}
    finally:
        env.close()
    return EnvSpec(task, observation, action)


class ClassicTaskEnv(GymTaskEnv):
    def __init__(self, task: str, spec: EnvSpec, render: bool = False):
        gym = _gym()
        if render:
            quiet_sdl()  # before gymnasium's render() calls pygame.init()
        env = gym.make(task, render_mode="rgb_array" if render else None)
        super().__init__(env, spec, task, env.spec.max_episode_steps)
        self._success_rule = CLASSIC_TASKS[task][1]
        self._discrete = CLASSIC_TASKS[task][0] == "discrete"

    def observe(self, raw_obs: Any) -> dict[str, np.ndarray]:
        return {"state": np.asarray(raw_obs, np.float32)}

    def to_env_action(self, action: dict[str, np.ndarray]) -> Any:
        a = action["action"]
        return int(a) if self._discrete else a.astype(np.float32)

    def success(self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool | None:
        if self._success_rule == "terminate":
            return terminated
        if self._success_rule == "survive":
            return truncated and not terminated
        return None
