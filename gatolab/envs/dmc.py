"""DeepMind Control Suite (dm_control, MuJoCo) from state and from pixels, with SAC experts.

Gato's Table 1 (GATO_SPEC §8) has "DM Control Suite" (30 tasks, from state, 4.62%) and
"DM Control Suite Pixels" (28 tasks, 7.07%). The paper does not list the tasks; gatolab
offers the suite's own benchmarking set (`dm_control.suite.BENCHMARKING`, 28 tasks) in
both variants. [open] Which 30 state / 28 pixel tasks Gato used.

Task names are "<domain>-<task>" for the state variant ("cartpole-swingup",
"ball_in_cup-catch") and "<domain>-<task>-pixels" for its pixel twin.

| variant | field | modality | what |
|---|---|---|---|
| state | "state" | CONTINUOUS (n,), unbounded -> mu-law (Gato §2.1) | the dm_control observation dict flattened |
| pixels | "pixels" | IMAGE (64, 64, 3) uint8 | camera 0, rendered by MuJoCo after every reset/step |
| both | action "action" | CONTINUOUS (m,), [-1, 1] -> no mu-law | the suite's action_spec (all 28 tasks: [-1, 1]) |

State: the observation dict's entries are flattened (row-major) and concatenated in
sorted key order (`flatten_observation`): e.g. cartpole's {"position" (3,), "velocity"
(2,)}, walker's {"height" (), "orientations" (14,), "velocity" (9,)} -> 24 values.
Sorted, not dm_control's insertion order, because Gato orders nested structures
lexicographically by key (GATO_SPEC §1). Values are stored as float32.

Pixels: [open] (GATO_SPEC §1, §8: the paper gives neither resolution nor camera) 64x64
RGB from camera 0, the usual pixel-RL setting (PlaNet, Dreamer, DrQ use 64x64 or 84x84
from camera 0). 64 divides into Gato's 16x16 patches (4x4 = 16 patches per frame,
whereas 84x84 would need padding or cropping) and keeps a 1000-step episode at 16k
image tokens. The pixel variant shows only the image, no proprioception.

Episodes: the suite's 1000 control steps (every task here; `truncated` at the limit,
none terminates). No success is defined: data and evaluation use the return (as for
Pendulum in classic.py). Episodes are deterministic by seed: `reset(seed)` gives the
task a fresh `numpy.random.RandomState(seed)` (what `suite.load(..., task_kwargs=
{"random": seed})` does) instead of rebuilding the environment at every reset (70 ms,
plus ~0.25 s for a new rendering context).

Experts: a SAC agent trained from state per task (gatolab/experts/sac.py, stored with
gatolab/experts/store.py under experts/<state task>/). A pixel task's expert is its
state twin's expert acting on the privileged state (`DMCTaskEnv.state_observation()`)
while the episode records pixels, the usual way to collect pixel demonstrations.

Rendering (videos only): `render()` returns a (240, 320, 3) frame from the same camera.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from gatolab.envs.base import Policy, TaskEnv, register
from gatolab.envs.common import (TrainedExpertDomain, check_action, check_observation, check_task, generate_expert_episodes,
                                 random_policy_for, require)
from gatolab.episode import Episode
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
    from gatolab.envs.metaworld import choose_mujoco_gl  # picks EGL/OSMesa before mujoco is imported

    choose_mujoco_gl()
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


class DMCDomain(TrainedExpertDomain):
    """DM Control Suite tasks from state and pixels with trained SAC experts (module docstring).

    Args:
      experts_root: where trained experts live (default: gatolab.experts.store.experts_root()).
      render_size: (height, width) of `render()` frames.
    """

    name = "dmc"
    kind = "control"

    def __init__(self, experts_root: str | None = None, render_size: tuple[int, int] = RENDER_SIZE):
        self.experts_root = experts_root
        self.render_size = tuple(render_size)

    def tasks(self) -> list[str]:
        return list(TASKS)

    def spec(self, task: str) -> EnvSpec:
        return dmc_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> DMCTaskEnv:
        return DMCTaskEnv(task, self.spec(task), seed=seed, render_size=self.render_size)

    def expert(self, task: str) -> Policy:
        """The SAC expert of `task`'s state twin, loaded from the experts store.

        Raises:
          FileNotFoundError: no trained expert (the message says how to train one).
          ValueError: a corrupt expert or one that does not fit the task.
        """
        check_task(task, self.tasks(), self.name)
        from gatolab.experts.sac import load_sac_policy

        return load_sac_policy(state_task(task), root=self.experts_root, spec=dmc_spec(state_task(task)))

    def trained_tasks(self) -> list[str]:
        """The tasks (state and pixel) whose state expert is in the experts store: those `generate` can run."""
        from gatolab.experts.store import has_expert

        return [t for t in self.tasks() if has_expert(state_task(t), self.experts_root)]

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def expert_task(self, task: str) -> str:
        return state_task(task)  # a pixel task's expert is its state twin's

    def defines_success(self, task: str) -> bool:
        """Always False: the suite defines returns only."""
        check_task(task, self.tasks(), self.name)
        return False

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Expert episodes, seeds seed + i; metadata names the expert, no "success" entry."""
        check_task(task, self.tasks(), self.name)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name=f"SAC({state_task(task)})",
                                        defines_success=False)


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | None = None,
                 time_limit_s: float | None = None, log: Callable[[str], Any] | None = print):
    """`gatolab experts train` for DM Control: SAC on the task's state twin (gatolab/experts/sac.py);
    default budget 120k environment steps (cartpole-swingup reached 847 in 119k steps, 15 min here)."""
    from gatolab.experts.sac import train_expert as train_sac_expert

    return train_sac_expert(task, steps=steps or 120_000, seed=seed, root=root, log=log,
                            max_minutes=None if time_limit_s is None else time_limit_s / 60)


register("dmc", DMCDomain)
