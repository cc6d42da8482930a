"""The Meta-World adapter (metaworld 3.1, MuJoCo): task list, fields, the `TaskEnv`."""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.domains.base import TaskEnv
from gatolab.domains.common import check_action, check_observation, choose_mujoco_gl, require
from gatolab.specs import EnvSpec, FieldSpec

OBS_DIM = 39
ACTION_DIM = 4
MAX_PATH_LENGTH = 500
_UPSIDE_DOWN_CAMERAS = ("corner", "corner2", "corner3", "corner4")

def load_metaworld():
    """(metaworld, metaworld.policies, metaworld.env_dict), with a headless GL backend chosen first."""
    choose_mujoco_gl()
    mw = require("metaworld", "metaworld")
    policies = require("metaworld.policies", "metaworld", "metaworld")
    env_dict = require("metaworld.env_dict", "metaworld", "metaworld")
    return mw, policies, env_dict


def metaworld_tasks() -> list[str]:
    """MT50 task names that have a scripted policy (all 50 in metaworld 3.1)."""
    _, policies, env_dict = load_metaworld()
    return sorted(t for t in env_dict.ALL_V3_ENVIRONMENTS if t in policies.ENV_POLICY_MAP)


def metaworld_spec(task: str) -> EnvSpec:
    return EnvSpec(
        task,
        observation={"state": FieldSpec.continuous((OBS_DIM,))},
        action={"action": FieldSpec.continuous((ACTION_DIM,), -1.0, 1.0)},
    )


class MetaWorldTaskEnv(TaskEnv):
    """One Meta-World task; goal observable; fresh seeded object/goal positions per reset."""

    def __init__(self, task: str, spec: EnvSpec, render: bool = False, camera: str = "corner",
                 render_size: tuple[int, int] = (128, 128), terminate_on_success: bool = False):
        _, _, env_dict = load_metaworld()
        cls = env_dict.ALL_V3_ENVIRONMENTS[task]
        height, width = render_size
        env = cls(render_mode="rgb_array" if render else None, camera_name=camera if render else None, width=width, height=height)
        # What metaworld's goal-observable variants and `set_task` do, without MT1's 50
        # precomputed goals: show the goal in the observation (recomputing the cached
        # observation space, whose goal bounds are zero when the goal is hidden, since
        # step() clips observations to it), and sample a fresh goal at each reset from
        # the env's seeded RNG.
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        self.env = env
        self.spec = spec
        self.task = task
        self.max_steps = MAX_PATH_LENGTH
        self.camera = camera
        self.terminate_on_success = terminate_on_success
        self.episode_id = -1
        self._rendering = render

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is not None:
            self.env.seed(int(seed))
        raw, _ = self.env.reset()
        self.episode_id += 1
        self.last_raw_obs = raw
        return check_observation(self.spec, {"state": np.asarray(raw, np.float32)})

    def step(self, action: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        a = check_action(self.spec, action)["action"]
        raw, reward, terminated, truncated, info = self.env.step(a)
        self.last_raw_obs = raw
        info = dict(info)
        info["success"] = bool(info.get("success", 0.0))
        terminated = bool(terminated) or (self.terminate_on_success and info["success"])
        obs = check_observation(self.spec, {"state": np.asarray(raw, np.float32)})
        return obs, float(reward), terminated, bool(truncated), info

    def render(self) -> np.ndarray | None:
        if not self._rendering:
            return None
        frame = np.asarray(self.env.render(), np.uint8)
        if self.camera in _UPSIDE_DOWN_CAMERAS:
            frame = frame[::-1, ::-1]  # rotate 180° (see the module docstring)
        return np.ascontiguousarray(frame)

    def close(self) -> None:
        self.env.close()


