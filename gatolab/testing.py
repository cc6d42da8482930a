"""Small shared fixtures for tests and notebook smoke runs (like gemma's `gm.testing`).

Everything here is deterministic given its seed and cheap (< 1 s after the first call,
which trains a 512-piece SentencePiece model on 100 kB of the default corpus). The
synthetic episodes and batches live in the package (`gatolab.data.synthetic`, which
`gatolab train --mixture synthetic` uses); they are re-exported here for tests.

The toy "reach" domain: a point on a line at x0 ~ U(-1, 1) must reach 0. Observation
"state" = (x, steps left / 10) CONTINUOUS; action "move" DISCRETE {0: left, 1: stay,
2: right} moves by 0.1. Reward 1 on reaching |x| < 0.05 (then the episode ends), else
-0.01 per step. The expert moves towards 0; the random policy picks uniformly. Nothing
here is a Gato dataset: it exists so storage, resume and mixture tests run in
milliseconds without a simulator, and it subclasses the real `Domain` interface so the
code under test is the code real domains use. It is not a builtin domain: tests register
`TOY_ENTRY` themselves (tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.data.synthetic import (SMALL_TEXT_VOCAB, SyntheticBatches, demo_image, multimodal_spec,
                                    small_text_tokenizer, synthetic_episode)
from gatolab.domains.base import Domain, Policy, TaskEnv
from gatolab.domains.registry import DomainEntry
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.specs import EnvSpec, FieldSpec
from gatolab.text import TextTokenizer

__all__ = ["TINY_TEXT_VOCAB", "TOY_ENTRY", "SyntheticBatches", "ToyDomain", "demo_image", "multimodal_spec",
           "synthetic_episode", "tiny_text_tokenizer", "tiny_tokenizer"]

TINY_TEXT_VOCAB = SMALL_TEXT_VOCAB


def tiny_text_tokenizer() -> TextTokenizer:
    """A 512-piece SentencePiece model over the first 100 kB of the default corpus (cached)."""
    return small_text_tokenizer()


def tiny_tokenizer(**config) -> GatoTokenizer:
    """The Gato tokenizer with the full id layout (text range 32,000) and the tiny text model."""
    return GatoTokenizer(TokenizerConfig(**config), text=tiny_text_tokenizer())


# ----------------------------------------------------------------------------------
# The toy domain
# ----------------------------------------------------------------------------------
TOY_TASKS = ("reach-short", "reach-long")
_MAX_STEPS = {"reach-short": 12, "reach-long": 40}


class ReachEnv(TaskEnv):
    def __init__(self, task: str, spec: EnvSpec):
        self.task, self.spec, self.max_steps = task, spec, _MAX_STEPS[task]
        self.x, self.t = 0.0, 0

    def _obs(self) -> dict[str, np.ndarray]:
        return {"state": np.array([self.x, (self.max_steps - self.t) / 10.0], np.float32)}

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        rng = np.random.default_rng(seed)
        self.x = float(rng.uniform(-1, 1))
        self.x = self.x if abs(self.x) >= 0.1 else 0.5  # never start at the goal
        self.t = 0
        return self._obs()

    def step(self, action):
        a = int(np.asarray(action["move"]))
        if a not in (0, 1, 2):
            raise ValueError(f"{self.task}: action field 'move' must lie in [0, 3), got {a}")
        self.x = float(np.clip(self.x + 0.1 * (a - 1), -1.5, 1.5))
        self.t += 1
        done = abs(self.x) < 0.05
        return self._obs(), (1.0 if done else -0.01), done, self.t >= self.max_steps and not done, {"success": done}

    def render(self) -> np.ndarray:
        img = np.full((16, 64, 3), 255, np.uint8)
        col = int(np.clip((self.x + 1.5) / 3.0 * 63, 0, 63))
        img[:, 31:33] = (0, 160, 0)
        img[4:12, max(col - 2, 0) : col + 2] = (200, 30, 30)
        return img


class ReachExpert:
    """Moves towards 0."""

    def __call__(self, env: TaskEnv, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"move": np.int64(0 if obs["state"][0] > 0 else 2)}


class ReachRandom:
    """Uniform over the three moves."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, env: TaskEnv, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"move": np.int64(self.rng.integers(0, 3))}


class ToyDomain(Domain):
    """Two "reach" tasks. `fail_on=(task, seed)` makes `generate` raise when it reaches
    that episode (simulates a crash mid-run, for resume tests)."""

    name = "toy"
    kind = "control"

    def __init__(self, fail_on: tuple[str, int] | None = None):
        self.fail_on = fail_on

    def tasks(self) -> list[str]:
        return list(TOY_TASKS)

    def spec(self, task: str) -> EnvSpec:
        self.check_task(task)
        return EnvSpec(task, {"state": FieldSpec.continuous((2,), -1.5, 4.0)}, {"move": FieldSpec.discrete(3)})

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return ReachEnv(task, self.spec(task))

    def expert(self, task: str) -> Policy:
        return ReachExpert()

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return ReachRandom(seed)

    def generate(self, task: str, num_episodes: int, seed: int = 0):
        for i, ep in enumerate(super().generate(task, num_episodes, seed)):
            if self.fail_on is not None and (task, seed + i) == tuple(self.fail_on):
                raise RuntimeError(f"toy domain: simulated crash at {self.fail_on}")
            yield ep


TOY_ENTRY = DomainEntry(
    name="toy",
    factory=ToyDomain,
    notes={
        "what": "gatolab's toy 'reach' domain (gatolab/testing.py), for tests only.",
        "expert": "Move towards the goal.",
        "licence": "Apache-2.0 (gatolab).",
        "use": "Tests and smoke runs of the data stage.",
        "limits": "Not a benchmark.",
    },
    owns=lambda task: task in TOY_TASKS,
)
