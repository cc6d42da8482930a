"""The MinAtar adapter (gymnax): the packed 10x10 grid, the seeded `TaskEnv`, frames for videos."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from gatolab.domains.base import Observation, TaskEnv, check_task
from gatolab.domains.common import check_action, check_observation, require
from gatolab.specs import EnvSpec, FieldSpec

# task -> (channels, actions, max steps) — gymnax 1.0.1's values (checked in tests/test_envs_minatar.py).
MINATAR_TASKS: dict[str, tuple[int, int, int]] = {
    "Breakout-MinAtar": (4, 3, 1000),
    "Asterix-MinAtar": (4, 5, 1000),
    "Freeway-MinAtar": (7, 3, 2500),
    "SpaceInvaders-MinAtar": (6, 4, 1000),
    "Seaquest-MinAtar": (10, 6, 1000),
}
GRID = 10
CELL = 16  # rendered pixels per cell

_PALETTE = np.array([  # one colour per channel (later channels drawn over earlier ones)
    (230, 60, 60), (60, 200, 90), (70, 120, 240), (240, 200, 60), (200, 90, 220),
    (60, 210, 220), (250, 140, 50), (180, 180, 180), (120, 240, 120), (255, 255, 255)], np.uint8)


def _gymnax():
    return require("gymnax", "minatar")


def pack_grid(channels: np.ndarray) -> np.ndarray:
    """(10, 10, C) binary channels -> (10, 10) int64 with bit c set where channel c is on."""
    c = np.asarray(channels)
    if c.ndim != 3 or c.shape[:2] != (GRID, GRID):
        raise ValueError(f"MinAtar channels must have shape (10, 10, C), got {c.shape}")
    bits = (c > 0.5).astype(np.int64)
    return (bits << np.arange(c.shape[-1], dtype=np.int64)).sum(-1)


def unpack_grid(grid: np.ndarray, num_channels: int) -> np.ndarray:
    """Inverse of `pack_grid`: (..., 10, 10) ints -> (..., 10, 10, C) float32 in {0, 1}."""
    g = np.asarray(grid, np.int64)
    if np.any(g < 0) or np.any(g >= 1 << num_channels):
        raise ValueError(f"MinAtar grid values must lie in [0, {1 << num_channels}), got min {g.min()} max {g.max()}")
    return ((g[..., None] >> np.arange(num_channels)) & 1).astype(np.float32)


def render_channels(channels: np.ndarray, cell: int = CELL) -> np.ndarray:
    """(10, 10, C) channels -> (10·cell, 10·cell, 3) uint8, one colour per channel on dark grey."""
    c = np.asarray(channels) > 0.5
    img = np.full((GRID, GRID, 3), 24, np.uint8)
    for k in range(c.shape[-1]):
        img[c[..., k]] = _PALETTE[k % len(_PALETTE)]
    return np.repeat(np.repeat(img, cell, 0), cell, 1)


def minatar_spec(task: str) -> EnvSpec:
    check_task(task, list(MINATAR_TASKS), "minatar")
    channels, actions, _ = MINATAR_TASKS[task]
    return EnvSpec(task, {"grid": FieldSpec.discrete(1 << channels, (GRID, GRID))}, {"action": FieldSpec.discrete(actions)})


@functools.lru_cache(maxsize=None)
def jitted_env(task: str):
    """(env, params, reset, step) for a task, jitted once per process."""
    import jax  # JAX loads when a MinAtar env is made, not when domains are listed

    gymnax = _gymnax()
    env, params = gymnax.make(task)

    def reset(key, params):  # -> (next key, obs, state): one dispatch per call
        key, k = jax.random.split(key)
        return (key, *env.reset(k, params))

    def step(key, state, action, params):  # -> (next key, obs, state, reward, terminated, truncated, info)
        key, k = jax.random.split(key)
        return (key, *env.step(k, state, action, params))

    return env, params, jax.jit(reset), jax.jit(step)


class MinAtarEnv(TaskEnv):
    """One gymnax MinAtar game as a gatolab `TaskEnv` (seeded: reset(seed) fixes the episode)."""

    def __init__(self, task: str, spec: EnvSpec, render: bool = False):
        import jax  # JAX loads when a MinAtar env is made, not when domains are listed

        self._jax = jax
        self.task, self.spec = task, spec
        self.num_channels, self.num_actions, self.max_steps = MINATAR_TASKS[task]
        self._env, self._params, self._reset, self._step = jitted_env(task)
        self.episode_id, self.steps = -1, 0
        self._key = jax.random.PRNGKey(0)
        self._state = None
        self._channels: np.ndarray | None = None

    def _observe(self, raw: Any) -> Observation:
        self._channels = np.asarray(raw, np.float32)
        return check_observation(self.spec, {"grid": pack_grid(self._channels)})

    def reset(self, seed: int | None = None) -> Observation:
        self._key, raw, self._state = self._reset(self._jax.random.PRNGKey(0 if seed is None else int(seed)), self._params)
        self.episode_id += 1
        self.steps = 0
        return self._observe(raw)

    def step(self, action: dict[str, Any]) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise ValueError(f"{self.task}: step() before reset()")
        a = int(check_action(self.spec, action)["action"])
        self._key, raw, self._state, reward, terminated, truncated, info = self._step(self._key, self._state, a, self._params)
        self.steps += 1
        terminated, truncated = bool(terminated), bool(truncated) or self.steps >= self.max_steps
        if terminated or truncated:
            raw = info["final_observation"]  # gymnax auto-resets; keep the observation the episode ended on
        return self._observe(raw), float(reward), terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        return None if self._channels is None else render_channels(self._channels)


