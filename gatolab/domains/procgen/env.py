"""The Procgen adapter (gym3's `ProcgenGym3Env`): one level per seed, the 64x64 frame, 15 actions."""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.domains.base import Observation, TaskEnv, check_task
from gatolab.domains.common import check_action, check_observation, require
from gatolab.specs import EnvSpec, FieldSpec

PROCGEN_GAMES = ["bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot", "heist",
                 "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot"]
NUM_ACTIONS = 15
IMAGE_SIZE = 64
# Each game's own episode timeout (measured with a no-op policy): gym3 reports it as the end
# of the episode; gatolab's cap (`TaskEnv.max_steps`) is the same number, so it never cuts first.
MAX_STEPS: dict[str, int] = {game: 1000 for game in PROCGEN_GAMES} | {"bossfight": 4000, "leaper": 500, "maze": 500}
DISTRIBUTION_MODE = "easy"  # [open] see the package docstring


def require_procgen():
    return require("procgen", "procgen", "procgen-mirror")


def procgen_spec(task: str) -> EnvSpec:
    check_task(task, PROCGEN_GAMES, "procgen")
    return EnvSpec(task, {"image": FieldSpec.image(IMAGE_SIZE, IMAGE_SIZE, 3)}, {"action": FieldSpec.discrete(NUM_ACTIONS)})


class ProcgenEnv(TaskEnv):
    """One Procgen game as a gatolab `TaskEnv`; reset(seed) plays level `seed`."""

    def __init__(self, task: str, spec: EnvSpec, render: bool = False, distribution_mode: str = DISTRIBUTION_MODE):
        require_procgen()
        self.task, self.spec = task, spec
        self.max_steps = MAX_STEPS[task]
        self.distribution_mode, self._render = distribution_mode, render
        self.episode_id, self.steps = -1, 0
        self._env = None
        self._frame: np.ndarray | None = None
        self._big: np.ndarray | None = None
        self._done = True
        self._next_seed = 0

    def _observe(self) -> Observation:
        _, obs, _ = self._env.observe()
        self._frame = np.ascontiguousarray(obs["rgb"][0], np.uint8)
        if self._render:
            self._big = np.ascontiguousarray(self._env.get_info()[0]["rgb"], np.uint8)
        return check_observation(self.spec, {"image": self._frame.copy()})

    def reset(self, seed: int | None = None) -> Observation:
        from procgen import ProcgenGym3Env  # an optional simulator (require_procgen checked it)

        seed = self._next_seed if seed is None else int(seed)
        if not 0 <= seed < 2**31:
            raise ValueError(f"{self.task}: a Procgen level seed must lie in [0, 2^31), got {seed}")
        self._next_seed = seed + 1
        self.close()
        kw = {"render_mode": "rgb_array"} if self._render else {}
        self._env = ProcgenGym3Env(num=1, env_name=self.task, distribution_mode=self.distribution_mode,
                                   start_level=seed, num_levels=1, rand_seed=seed, **kw)
        self.level_seed = seed
        self.episode_id += 1
        self.steps = 0
        self._done = False
        return self._observe()

    def step(self, action: dict[str, Any]) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._env is None:
            raise ValueError(f"{self.task}: step() before reset()")
        a = int(check_action(self.spec, action)["action"])
        if self._done:
            raise RuntimeError(f"{self.task}: the episode has ended; call reset()")
        self._env.act(np.asarray([a], np.int32))
        reward, obs, first = self._env.observe()
        info = self._env.get_info()[0]
        self.steps += 1
        terminated = bool(first[0])  # gym3: the next observation already starts a new episode
        truncated = not terminated and self.steps >= self.max_steps
        self._done = terminated or truncated
        out = {"level_seed": self.level_seed}
        if terminated:
            out["success"] = bool(info.get("prev_level_complete", 0))
            # Keep the last frame of this episode, not the first of the next (auto-reset) one.
            return check_observation(self.spec, {"image": self._frame.copy()}), float(reward[0]), True, False, out
        self._frame = np.ascontiguousarray(obs["rgb"][0], np.uint8)
        if self._render:
            self._big = np.ascontiguousarray(info["rgb"], np.uint8)
        return check_observation(self.spec, {"image": self._frame.copy()}), float(reward[0]), False, truncated, out

    def render(self) -> np.ndarray | None:
        """The 512x512 frame when made with render=True, else the 64x64 observation frame."""
        return self._big if self._render and self._big is not None else self._frame

    def close(self) -> None:
        if self._env is not None:
            close = getattr(self._env, "close", None)
            if close is not None:
                close()
            self._env = None
