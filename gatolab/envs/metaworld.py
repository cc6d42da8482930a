"""Meta-World (metaworld 3.1, MuJoCo) with the library's scripted policies as experts.

Gato trained on 45 Meta-World tasks (GATO_SPEC §8, Table 1). gatolab offers every
MT50 task that has a scripted policy in `metaworld.policies.ENV_POLICY_MAP` (all 50 in
metaworld 3.1); `benchmarks/measure_experts.py` measured how often each scripted
expert succeeds here and `EXPERT_SUCCESS` records it for the data card: 49 of 50 at
>= 90% (stick-pull-v3: 75%), so all 50 are offered.

| field | modality | what |
|---|---|---|
| "state" | CONTINUOUS (39,), unbounded -> mu-law (Gato §2.1) | hand xyz, gripper, 2 objects' poses, previous frame, goal |
| action "action" | CONTINUOUS (4,), [-1, 1] -> no mu-law | end-effector Δxyz, gripper effort |

Construction: one environment class per task, goal observable (the scripted policies
read the goal from the observation), a fresh object/goal position drawn from the
environment's own seeded RNG at every reset. That is metaworld's MT1 setting minus its
precomputed set of 50 goals (`metaworld.MT1` builds and resets the task 50 times
first, ~1 s per task; MT50 construction takes ~100 s). [open] MT1's 50 fixed goals vs
fresh goals per seed: fresh goals give more varied data; `reset(seed)` is still
deterministic.

Episodes run the full 500 steps (metaworld's `max_path_length`, the MT50 protocol;
Table 1's ~36k tokens per Meta-World episode also implies full-length episodes).
`MetaWorldDomain(terminate_on_success=True)` ends them at the first success instead,
which makes data ~3-10x cheaper (a switch for small-compute runs).

Rendering (videos only): MuJoCo offscreen at `render_size`, from `camera` ("corner"
by default). Meta-World's corner cameras are defined with their up axis pointing
down (xyz_base.xml: corner `xyaxes="-1 1 0 -0.2 -0.2 -1"`), so frames come out upside
down; the consistent fix for a camera whose up vector is negated is a 180° rotation
(a vertical flip alone would mirror the scene), which `render()` applies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from gatolab.envs.base import Domain, Policy, TaskEnv, register
from gatolab.envs.common import (check_action, check_observation, check_task, generate_expert_episodes, random_policy_for,
                                 require)
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec

OBS_DIM = 39
ACTION_DIM = 4
MAX_PATH_LENGTH = 500
_UPSIDE_DOWN_CAMERAS = ("corner", "corner2", "corner3", "corner4")

# Scripted-expert success rate per task (success at any step of a 500-step episode),
# measured by `benchmarks/measure_experts.py --domains metaworld` over 20 seeded
# episodes per task (metaworld 3.1.1, mujoco 3.3.0). 49/50 tasks >= 90%; the random
# policy is at 0% on 44 tasks (drawer-close 45%, handle-press 50% are the outliers).
EXPERT_SUCCESS: dict[str, float] = {
    "assembly-v3": 1.00, "basketball-v3": 1.00, "bin-picking-v3": 1.00, "box-close-v3": 0.90,
    "button-press-topdown-v3": 1.00, "button-press-topdown-wall-v3": 1.00, "button-press-v3": 1.00,
    "button-press-wall-v3": 1.00, "coffee-button-v3": 1.00, "coffee-pull-v3": 1.00, "coffee-push-v3": 1.00,
    "dial-turn-v3": 1.00, "disassemble-v3": 0.95, "door-close-v3": 1.00, "door-lock-v3": 1.00, "door-open-v3": 0.95,
    "door-unlock-v3": 1.00, "drawer-close-v3": 1.00, "drawer-open-v3": 1.00, "faucet-close-v3": 1.00,
    "faucet-open-v3": 1.00, "hammer-v3": 1.00, "hand-insert-v3": 1.00, "handle-press-side-v3": 1.00,
    "handle-press-v3": 1.00, "handle-pull-side-v3": 1.00, "handle-pull-v3": 1.00, "lever-pull-v3": 1.00,
    "peg-insert-side-v3": 0.95, "peg-unplug-side-v3": 0.95, "pick-out-of-hole-v3": 1.00, "pick-place-v3": 1.00,
    "pick-place-wall-v3": 1.00, "plate-slide-back-side-v3": 1.00, "plate-slide-back-v3": 1.00,
    "plate-slide-side-v3": 1.00, "plate-slide-v3": 1.00, "push-back-v3": 0.95, "push-v3": 1.00, "push-wall-v3": 1.00,
    "reach-v3": 1.00, "reach-wall-v3": 1.00, "shelf-place-v3": 1.00, "soccer-v3": 0.90, "stick-pull-v3": 0.75,
    "stick-push-v3": 1.00, "sweep-into-v3": 0.95, "sweep-v3": 1.00, "window-close-v3": 1.00, "window-open-v3": 1.00,
}


_GL_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"


def choose_mujoco_gl() -> str:
    """Picks a working headless OpenGL backend for MuJoCo unless MUJOCO_GL is already set.

    Must run before `mujoco` is first imported: it reads MUJOCO_GL at import, and a
    backend whose library is missing breaks `import mujoco` itself, not only
    rendering. So each candidate is tried in a subprocess (~0.3 s) that makes a GL
    context: EGL first (GPU or Mesa's software EGL; 90 ms per 128x128 frame on a
    2-core CPU machine), then OSMesa (116 ms). The choice goes into os.environ, so
    worker processes inherit it without probing again. If neither works, MUJOCO_GL
    stays unset: simulation works, rendering raises MuJoCo's own error.
    """
    if "MUJOCO_GL" not in os.environ:
        for backend in ("egl", "osmesa"):
            env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
            try:
                ok = subprocess.run([sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, timeout=60).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            if ok:
                os.environ["MUJOCO_GL"] = backend
                break
    if os.environ.get("MUJOCO_GL") in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ.get("MUJOCO_GL", "")


def _metaworld():
    choose_mujoco_gl()
    mw = require("metaworld", "metaworld")
    policies = require("metaworld.policies", "metaworld", "metaworld")
    env_dict = require("metaworld.env_dict", "metaworld", "metaworld")
    return mw, policies, env_dict


def metaworld_tasks() -> list[str]:
    """MT50 task names that have a scripted policy (all 50 in metaworld 3.1)."""
    _, policies, env_dict = _metaworld()
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
        _, _, env_dict = _metaworld()
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


class MetaWorldExpert:
    """metaworld's scripted policy for one task, on the raw float64 observation.

    It reads the unrounded observation (`env.last_raw_obs`) so that the gatolab
    float32 copy does not perturb it; its action is clipped to [-1, 1], which is what
    the environment applies anyway (`set_xyz_action` clips), so the logged action is
    the executed one.
    """

    def __init__(self, task: str):
        _, policies, _ = _metaworld()
        self.task = task
        self.policy = policies.ENV_POLICY_MAP[task]()
        # The scripted policies warn on every large proportional gain; the clip below is the answer.
        warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high")

    def __call__(self, env: TaskEnv, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raw = getattr(env, "last_raw_obs", None)
        raw = np.asarray(obs["state"], np.float64) if raw is None else raw
        return {"action": np.clip(self.policy.get_action(raw), -1.0, 1.0).astype(np.float32)}


class MetaWorldDomain(Domain):
    """Meta-World MT50 tasks with scripted experts (see the module docstring).

    Args:
      terminate_on_success: end episodes at the first success instead of at 500 steps.
      camera: MuJoCo camera for `render()` frames.
      render_size: (height, width) of rendered frames.
    """

    name = "metaworld"
    kind = "control"

    def __init__(self, terminate_on_success: bool = False, camera: str = "corner", render_size: tuple[int, int] = (128, 128)):
        self.terminate_on_success = terminate_on_success
        self.camera = camera
        self.render_size = tuple(render_size)
        self._tasks: list[str] | None = None

    def tasks(self) -> list[str]:
        if self._tasks is None:
            self._tasks = metaworld_tasks()
        return list(self._tasks)

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        return metaworld_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return MetaWorldTaskEnv(task, self.spec(task), render=render, camera=self.camera, render_size=self.render_size,
                                terminate_on_success=self.terminate_on_success)

    def expert(self, task: str) -> Policy:
        check_task(task, self.tasks(), self.name)
        return MetaWorldExpert(task)

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Expert episodes, seeds seed + i; metadata names the scripted policy."""
        expert = self.expert(task)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name=type(expert.policy).__name__)


register("metaworld", MetaWorldDomain)
