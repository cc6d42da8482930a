"""MinAtar (Young & Tian, 2019) via gymnax: five Atari-like games on a 10x10 grid, PPO experts.

Gato trains on ALE Atari (GATO_SPEC §8, Table 1: 51 + 28 games, 19.5% of the mixture);
MinAtar keeps the games' dynamics on a 10x10 board with one binary channel per object
kind, small enough that gatolab's own PPO (gatolab/experts/ppo.py, all-JAX with gymnax)
trains an expert per game in a minute or two on a CPU.

| task | channels C | actions | episode cap |
|---|---|---|---|
| Breakout-MinAtar | 4 | 3 | 1000 |
| Asterix-MinAtar | 4 | 5 | 1000 |
| Freeway-MinAtar | 7 | 3 | 2500 |
| SpaceInvaders-MinAtar | 6 | 4 | 1000 |
| Seaquest-MinAtar | 10 | 6 | 1000 |

Fields: observation "grid" (DISCRETE, shape (10, 10)): each cell's C channel bits packed
into one integer, bit c = channel c, so num_values = 2^C <= 1024 and the grid is exact.
[open] (GATO_SPEC §1: discrete values are flattened row-major to [0, 1024)) Packing the
bits gives 100 tokens per timestep where one token per (cell, channel) would give 100·C
(400–1000, one or two timesteps per 1024-token window). Action "action" (DISCRETE,
gymnax's minimal action set per game). The expert reads the same observation, unpacked
into the C channels it was trained on. `render()` draws the grid in colour for videos.

Experts: `gatolab experts train --env Breakout-MinAtar` (PPO, PPOConfig defaults =
PureJaxRL's MinAtar settings) saves `experts/<task>/`; the committed ones are measured in
data_cards/minatar.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.envs.base import Observation, Policy, TaskEnv, register
from gatolab.envs.common import (TrainedExpertDomain, check_action, check_observation, check_task, evaluate_policies,
                                 generate_expert_episodes, random_policy_for, require)
from gatolab.episode import Episode
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

# Training budget per game for `gatolab experts train` (environment steps; PPOConfig defaults otherwise).
TRAIN_STEPS: dict[str, int] = {
    "Breakout-MinAtar": 5_000_000,
    "Asterix-MinAtar": 10_000_000,
    "Freeway-MinAtar": 5_000_000,
    "SpaceInvaders-MinAtar": 10_000_000,
    "Seaquest-MinAtar": 10_000_000,
}

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
def _jitted(task: str):
    """(env, params, reset, step) for a task, jitted once per process."""
    import jax

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
        import jax

        self._jax = jax
        self.task, self.spec = task, spec
        self.num_channels, self.num_actions, self.max_steps = MINATAR_TASKS[task]
        self._env, self._params, self._reset, self._step = _jitted(task)
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


class MinAtarFeatures:
    """The expert's input from the gatolab observation: the packed grid unpacked to (10, 10, C)."""

    def __init__(self, num_channels: int):
        self.num_channels = num_channels

    def __call__(self, env: TaskEnv, obs: Observation) -> np.ndarray:
        return unpack_grid(obs["grid"], self.num_channels)


def load_minatar_expert(task: str, root: str | Path | None = None, seed: int = 0, greedy: bool = False) -> Policy:
    """The trained PPO expert for `task` (FileNotFoundError naming the train command if missing)."""
    from gatolab.experts.ppo import PPOConfig, PPOPolicy
    from gatolab.experts.store import load_expert

    check_task(task, list(MINATAR_TASKS), "minatar")
    params, meta = load_expert(task, root)
    channels, actions, _ = MINATAR_TASKS[task]
    return PPOPolicy(params, PPOConfig.from_dict(meta["config"]), actions, MinAtarFeatures(channels), greedy=greedy, seed=seed)


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 eval_episodes: int = 20, time_limit_s: float | None = None,
                 log: Callable[[str], None] | None = print) -> Path:
    """Trains PPO on `task` in gymnax, evaluates it through the gatolab adapter against the
    random policy on the same seeds, and saves it (gatolab.experts.store)."""
    from gatolab.experts.ppo import PPOConfig, PPOPolicy, train_jax_env
    from gatolab.experts.store import save_expert, to_numpy

    check_task(task, list(MINATAR_TASKS), "minatar")
    env, params = _jitted(task)[:2]
    config = PPOConfig(total_steps=int(steps or TRAIN_STEPS[task]))
    net_params, curve = train_jax_env(env, params, config, seed=seed, updates_per_call=20, log=log, time_limit_s=time_limit_s)
    channels, actions, _ = MINATAR_TASKS[task]
    domain = MinAtarDomain()
    expert = PPOPolicy(net_params, config, actions, MinAtarFeatures(channels), seed=seed)
    evaluation = evaluate_policies(domain, task, {"expert": expert, "random": domain.random_policy(task, seed)},
                                   episodes=eval_episodes, seed=10_000)
    if log:
        log(f"{task}: expert {evaluation['expert_return_mean']:.2f} vs random {evaluation['random_return_mean']:.2f} "
            f"over {eval_episodes} episodes")
    return save_expert(task, to_numpy(net_params), domain="minatar", algo="ppo", config=config.to_dict(), curve=curve,
                       evaluation=evaluation, root=root)


class MinAtarDomain(TrainedExpertDomain):
    """gymnax MinAtar games with PPO experts (see the module docstring)."""

    name = "minatar"
    kind = "control"

    def tasks(self) -> list[str]:
        return list(MINATAR_TASKS)

    def spec(self, task: str) -> EnvSpec:
        return minatar_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return MinAtarEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        return load_minatar_expert(task)

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def defines_success(self, task: str) -> bool:
        return False  # return only: the games have scores, not goals

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        check_task(task, self.tasks(), self.name)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name="PPO", defines_success=False)


register("minatar", MinAtarDomain)
