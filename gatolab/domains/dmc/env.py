"""The DM Control adapter: suite tasks from state (flattened, sorted keys) and from 64x64 pixels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gatolab.domains.base import TaskEnv, check_task
from gatolab.domains.common import check_action, check_observation, choose_mujoco_gl, require
from gatolab.specs import EnvSpec, FieldSpec

PIXELS_SUFFIX = "-pixels"
PIXEL_SIZE = (64, 64)  # (H, W) of the "pixels" observation, see the module docstring
CAMERA_ID = 0
RENDER_SIZE = (240, 320)  # (H, W) of render() frames
MAX_STEPS = 1000  # the suite's default episode length (time limit / control timestep) for every task here

# "<domain>-<task>" -> (state size, action size) for dm_control.suite.BENCHMARKING, read off
# dm_control 1.0.28's specs (tests/test_envs_dmc.py checks them against dm_control), so that
# `spec()` needs no simulator.
DMC_TASKS: dict[str, tuple[int, int]] = {
    "acrobot-swingup": (6, 1), "acrobot-swingup_sparse": (6, 1), "ball_in_cup-catch": (8, 2),
    "cartpole-balance": (5, 1), "cartpole-balance_sparse": (5, 1), "cartpole-swingup": (5, 1),
    "cartpole-swingup_sparse": (5, 1), "cheetah-run": (17, 6), "finger-spin": (9, 2), "finger-turn_easy": (12, 2),
    "finger-turn_hard": (12, 2), "fish-upright": (21, 5), "fish-swim": (24, 5), "hopper-stand": (15, 4),
    "hopper-hop": (15, 4), "humanoid-stand": (67, 21), "humanoid-walk": (67, 21), "humanoid-run": (67, 21),
    "manipulator-bring_ball": (44, 5), "pendulum-swingup": (3, 1), "point_mass-easy": (4, 2), "reacher-easy": (6, 2),
    "reacher-hard": (6, 2), "swimmer-swimmer6": (25, 5), "swimmer-swimmer15": (61, 14), "walker-stand": (24, 6),
    "walker-walk": (24, 6), "walker-run": (24, 6),
}
TASKS: list[str] = [*DMC_TASKS, *(t + PIXELS_SUFFIX for t in DMC_TASKS)]


def _suite():
    choose_mujoco_gl()  # picks EGL/OSMesa before mujoco is imported
    return require("dm_control.suite", "dmc", "dm-control")


def is_pixels(task: str) -> bool:
    return task.endswith(PIXELS_SUFFIX)


def state_task(task: str) -> str:
    """The state task behind `task`: "cartpole-swingup-pixels" -> "cartpole-swingup"."""
    return task[: -len(PIXELS_SUFFIX)] if is_pixels(task) else task


def suite_names(task: str) -> tuple[str, str]:
    """("cartpole", "swingup") for "cartpole-swingup" or "cartpole-swingup-pixels"."""
    domain, _, name = state_task(task).partition("-")
    return domain, name


def flatten_observation(obs: Mapping[str, Any]) -> np.ndarray:
    """dm_control's observation dict -> one float32 vector, entries in sorted key order."""
    return np.concatenate([np.asarray(obs[k], np.float64).ravel() for k in sorted(obs)]).astype(np.float32)


def dmc_spec(task: str) -> EnvSpec:
    check_task(task, TASKS, "dmc")
    obs_dim, act_dim = DMC_TASKS[state_task(task)]
    if is_pixels(task):
        observation = {"pixels": FieldSpec.image(*PIXEL_SIZE, 3)}
    else:
        observation = {"state": FieldSpec.continuous((obs_dim,))}
    return EnvSpec(task, observation, {"action": FieldSpec.continuous((act_dim,), -1.0, 1.0)})


class DMCTaskEnv(TaskEnv):
    """One suite task; `reset(seed)` reseeds the task's RNG (see the module docstring)."""

    def __init__(self, task: str, spec: EnvSpec, seed: int = 0, render_size: tuple[int, int] = RENDER_SIZE):
        suite = _suite()
        domain, name = suite_names(task)
        self.env = suite.load(domain, name, task_kwargs={"random": int(seed)})
        self.spec = spec
        self.task = task
        self.max_steps = MAX_STEPS
        self.pixels = is_pixels(task)
        self.render_size = tuple(render_size)
        self.episode_id = -1
        self._state: np.ndarray | None = None
        self._done = False

    def _observe(self, time_step: Any) -> dict[str, np.ndarray]:
        self._state = flatten_observation(time_step.observation)
        if self.pixels:
            obs = {"pixels": np.ascontiguousarray(self.env.physics.render(*PIXEL_SIZE, camera_id=CAMERA_ID), np.uint8)}
        else:
            obs = {"state": self._state.copy()}
        return check_observation(self.spec, obs)

    def state_observation(self) -> np.ndarray:
        """The flattened state of the current step (what the state variant observes); for experts."""
        if self._state is None:
            raise ValueError(f"{self.task}: call reset() before state_observation()")
        return self._state.copy()

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is not None:
            # What suite.load(task_kwargs={"random": seed}) does, without rebuilding the env.
            self.env.task._random = np.random.RandomState(int(seed))
        self.episode_id += 1
        self._done = False
        return self._observe(self.env.reset())

    def step(self, action: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise ValueError(f"{self.task}: call reset() before step()")
        if self._done:  # dm_control would silently start a new episode here
            raise ValueError(f"{self.task}: the episode has ended (truncated at {self.max_steps} steps or terminated); call reset() before step()")
        a = check_action(self.spec, action)["action"]
        ts = self.env.step(a.astype(np.float64))
        last = ts.last()
        terminated = bool(last and ts.discount == 0.0)
        self._done = bool(last)
        return self._observe(ts), float(ts.reward), terminated, bool(last and not terminated), {}

    def render(self) -> np.ndarray:
        return np.ascontiguousarray(self.env.physics.render(*self.render_size, camera_id=CAMERA_ID), np.uint8)

    def close(self) -> None:
        self.env.close()
