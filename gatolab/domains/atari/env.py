"""The Atari `TaskEnv`: Gato's RGB frame and 18 actions over one `DQNEmulator`."""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.domains.atari.emulator import ATARI_GAMES, IMAGE_SIZE, MAX_EPISODE_STEPS, NOOP_MAX, NUM_ACTIONS, DQNEmulator
from gatolab.domains.base import Observation, TaskEnv, check_task
from gatolab.domains.common import check_action, check_observation
from gatolab.specs import EnvSpec, FieldSpec


def atari_spec(task: str) -> EnvSpec:
    check_task(task, list(ATARI_GAMES), "atari")
    return EnvSpec(task, {"image": FieldSpec.image(IMAGE_SIZE, IMAGE_SIZE, 3)}, {"action": FieldSpec.discrete(NUM_ACTIONS)})


class AtariEnv(TaskEnv):
    """One ALE game as a gatolab `TaskEnv` (seeded: reset(seed) fixes the episode given the actions)."""

    def __init__(self, task: str, spec: EnvSpec, noop_max: int = NOOP_MAX):
        self.task, self.spec = task, spec
        self.max_steps = MAX_EPISODE_STEPS
        self.emulator = DQNEmulator(ATARI_GAMES[task], noop_max=noop_max)
        self.episode_id, self.steps = -1, 0
        self._started = self._ended = False

    def _observe(self) -> Observation:
        return check_observation(self.spec, {"image": self.emulator.image.copy()})

    def reset(self, seed: int | None = None) -> Observation:
        self.emulator.reset(seed)
        self.episode_id += 1
        self.steps = 0
        self._started, self._ended = True, False
        return self._observe()

    def step(self, action: dict[str, Any]) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise ValueError(f"{self.task}: step() before reset()")
        a = int(check_action(self.spec, action)["action"])
        if self._ended:
            raise RuntimeError(f"{self.task}: the episode has ended; call reset()")
        reward, terminated, truncated = self.emulator.step(a)
        self.steps += 1
        self._ended = terminated or truncated
        return self._observe(), float(reward), terminated, truncated, {"lives": int(self.emulator.ale.lives())}

    def expert_observation(self) -> np.ndarray:
        """The expert's privileged view of the same emulator: (84, 84, 4) grayscale stack."""
        return self.emulator.expert_observation()

    def render(self) -> np.ndarray | None:
        return None if not self._started else np.ascontiguousarray(self.emulator.ale.getScreenRGB(), np.uint8)


