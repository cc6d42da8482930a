"""Procgen Benchmark (Cobbe et al., 2020): 16 procedurally generated games, 64x64 RGB frames, 15 actions.

Gato trains on all 16 Procgen games (GATO_SPEC §8, Table 1: 1.6M episodes, 5.34% of the
mixture). gatolab runs them through gym3's `ProcgenGym3Env` (package `procgen-mirror`,
installed without its numpy<2 pin: its C++ core is reached through cffi and works with
numpy 2; see the Makefile's PROCGEN_PKGS).

Fields (GATO_SPEC §1):
  observation "image": IMAGE (64, 64, 3) uint8, Procgen's own frame: exactly 4x4 = 16 patches
      of 16x16, so a timestep is 16 image tokens + '|' + 1 action token.
  action "action": DISCRETE, 15 values: Procgen's fixed action set for every game
      (the 9 stick directions and 6 button keys D, A, W, S, Q, E).

Levels and seeds: `reset(seed)` plays level `seed` (start_level=seed, num_levels=1, and
rand_seed=seed for the in-level randomness), so an episode is reproducible from its seed
given the actions. [open] distribution_mode "easy" by default: Cobbe et al. (2020, §2)
introduce it for experiments at 1/8 of the hard mode's compute (25M vs 200M steps); Gato
does not say which mode its data used. Episodes end when the game does (death, level
complete, or the game's own timeout: 1000 steps, bossfight 4000, leaper and maze 500;
`MAX_STEPS`, measured). info["success"] on the last step is Procgen's `prev_level_complete`.

Experts: PPO with the Nature CNN on the 64x64 frame itself (Cobbe et al.'s settings scaled
to a CPU: see `ppo_config`), trained on levels [0, 200) (`TRAIN_LEVELS`) with
`gatolab experts train --env <game>`; evaluation through the gatolab adapter uses levels
10000+ (never trained on) and, in the saved evaluation, levels 0+ (trained on).

Committed: experts/starpilot, chosen by measurement (2.5-minute probes of coinrun,
starpilot, bigfish and fruitbot: only starpilot's training return rose clearly, 1.4 -> 3.0;
coinrun moved within its noise, bigfish and fruitbot not at all), then trained for 14 minutes:
962,560 steps at ~1,150 steps/s on this project's 2-core CPU, training return 1.6 -> 3.6,
expert 3.1 vs random 1.9 on held-out levels and 4.4 vs 1.1 on training levels (20 episodes
each, through the gatolab adapter). A weak expert: Cobbe et al.'s agents score ~30 after 25M
steps. The other 15 games have no committed expert: `domain.expert` raises
FileNotFoundError naming `gatolab experts train --env <game>`. Full strength (25M steps,
Cobbe et al.'s easy-mode budget) takes ~6 hours per game here; on one GPU with 16 cores,
roughly an hour or less (estimate, not measured here).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.envs.base import Observation, Policy, TaskEnv, register
from gatolab.envs.common import (TrainedExpertDomain, check_action, check_observation, check_task, evaluate_policies,
                                 generate_expert_episodes, random_policy_for, require)
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec

PROCGEN_GAMES = ["bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot", "heist",
                 "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot"]
NUM_ACTIONS = 15
IMAGE_SIZE = 64
# Each game's own episode timeout (measured with a no-op policy): gym3 reports it as the end
# of the episode; gatolab's cap (`TaskEnv.max_steps`) is the same number, so it never cuts first.
MAX_STEPS: dict[str, int] = {game: 1000 for game in PROCGEN_GAMES} | {"bossfight": 4000, "leaper": 500, "maze": 500}
DISTRIBUTION_MODE = "easy"  # [open] see the module docstring
TRAIN_LEVELS = 200  # experts train on levels [0, 200) (Cobbe et al.'s generalisation protocol, easy mode)
HELD_OUT_SEED = 10_000  # evaluation levels 10000+ are never trained on
TRAIN_STEPS = 25_000_000  # Cobbe et al. (2020), easy mode


def _procgen():
    return require("procgen", "procgen", "procgen-mirror")


def procgen_spec(task: str) -> EnvSpec:
    check_task(task, PROCGEN_GAMES, "procgen")
    return EnvSpec(task, {"image": FieldSpec.image(IMAGE_SIZE, IMAGE_SIZE, 3)}, {"action": FieldSpec.discrete(NUM_ACTIONS)})


class ProcgenEnv(TaskEnv):
    """One Procgen game as a gatolab `TaskEnv`; reset(seed) plays level `seed`."""

    def __init__(self, task: str, spec: EnvSpec, render: bool = False, distribution_mode: str = DISTRIBUTION_MODE):
        _procgen()
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
        from procgen import ProcgenGym3Env

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


class _RunningStd:
    """Running variance of the discounted return, to scale rewards (as VecNormalize, Cobbe et al. 2020)."""

    def __init__(self, num_envs: int, gamma: float):
        self.gamma, self.ret = gamma, np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + reward
        x = self.ret
        b_mean, b_var, b_n = float(x.mean()), float(x.var()), x.size
        delta, tot = b_mean - self.mean, self.count + b_n
        self.mean += delta * b_n / tot
        self.var = (self.var * self.count + b_var * b_n + delta**2 * self.count * b_n / tot) / tot
        self.count = tot
        self.ret[done] = 0.0
        return np.clip(reward / np.sqrt(self.var + 1e-8), -10, 10).astype(np.float32)


class ProcgenVecEnv:
    """`HostVecEnv` (gatolab/experts/ppo.py) over `ProcgenGym3Env(num=N)` on levels
    [start_level, start_level + num_levels). Rewards are scaled by the running std of the
    discounted return for learning; raw returns go to `finished_returns`."""

    num_actions = NUM_ACTIONS
    obs_shape = (IMAGE_SIZE, IMAGE_SIZE, 3)

    def __init__(self, task: str, num_envs: int, *, num_levels: int = TRAIN_LEVELS, start_level: int = 0, seed: int = 0,
                 gamma: float = 0.99, distribution_mode: str = DISTRIBUTION_MODE, num_threads: int = 2):
        _procgen()
        from procgen import ProcgenGym3Env

        check_task(task, PROCGEN_GAMES, "procgen")
        self.num_envs = num_envs
        self.env = ProcgenGym3Env(num=num_envs, env_name=task, distribution_mode=distribution_mode, num_levels=num_levels,
                                  start_level=start_level, rand_seed=seed, num_threads=num_threads)
        self._scale = _RunningStd(num_envs, gamma)
        self._returns = np.zeros(num_envs)

    def reset(self) -> np.ndarray:
        _, obs, _ = self.env.observe()
        self._returns[:] = 0
        return obs["rgb"]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        self.env.act(np.asarray(actions, np.int32))
        reward, obs, first = self.env.observe()
        done = np.asarray(first, bool)
        self._returns += reward
        finished = self._returns[done].tolist()
        self._returns[done] = 0
        return obs["rgb"], self._scale(np.asarray(reward, np.float64), done), done.astype(np.float32), finished

    def close(self) -> None:
        close = getattr(self.env, "close", None)
        if close is not None:
            close()


def ppo_config(total_steps: int = TRAIN_STEPS, **overrides: Any):
    """Cobbe et al. (2020)'s PPO (lr 5e-4, 3 epochs, clip 0.2, entropy 0.01, lambda 0.95) with
    32 envs x 64 steps and gamma 0.99 to fit a CPU budget (theirs: 64 x 256, gamma 0.999,
    IMPALA CNN; ours: the Nature CNN on the 64x64 frame)."""
    from gatolab.experts.ppo import PPOConfig

    base = dict(network="cnn", num_envs=32, num_steps=64, total_steps=int(total_steps), lr=5e-4, gamma=0.99,
                gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, update_epochs=3, num_minibatches=4,
                obs_scale=1 / 255)
    return PPOConfig(**{**base, **overrides})


def expert_features(env: TaskEnv, obs: Observation) -> np.ndarray:
    """The expert reads the gatolab observation itself: the 64x64 RGB frame."""
    return obs["image"]


def load_procgen_expert(task: str, root: str | Path | None = None, seed: int = 0, greedy: bool = False) -> Policy:
    """The trained PPO expert for `task` (FileNotFoundError naming the train command if missing)."""
    from gatolab.experts.ppo import PPOConfig, PPOPolicy
    from gatolab.experts.store import load_expert

    check_task(task, PROCGEN_GAMES, "procgen")
    params, meta = load_expert(task, root)
    return PPOPolicy(params, PPOConfig.from_dict(meta["config"]), NUM_ACTIONS, expert_features, greedy=greedy, seed=seed)


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 eval_episodes: int = 20, time_limit_s: float | None = None,
                 log: Callable[[str], None] | None = print, **config_overrides: Any) -> Path:
    """Trains PPO on levels [0, TRAIN_LEVELS) of `task`, evaluates it through the gatolab adapter
    against the random policy on held-out levels (10000+) and on training levels (0+), saves it."""
    from gatolab.experts.ppo import PPOPolicy, train_host_env
    from gatolab.experts.store import save_expert, to_numpy

    check_task(task, PROCGEN_GAMES, "procgen")
    config = ppo_config(int(steps or TRAIN_STEPS), **config_overrides)
    venv = ProcgenVecEnv(task, config.num_envs, seed=seed, gamma=config.gamma)
    try:
        params, curve = train_host_env(venv, config, seed=seed, log=log, time_limit_s=time_limit_s)
    finally:
        venv.close()
    params = to_numpy(params)
    domain = ProcgenDomain()
    t0 = time.perf_counter()
    evaluation: dict[str, Any] = {}
    for name, first_seed in (("", HELD_OUT_SEED), ("train_levels_", 0)):
        policies = {"expert": PPOPolicy(params, config, NUM_ACTIONS, expert_features, seed=seed),
                    "random": domain.random_policy(task, seed)}
        ev = evaluate_policies(domain, task, policies, episodes=eval_episodes, seed=first_seed)
        evaluation.update({f"{name}{k}": v for k, v in ev.items()})
    evaluation["levels"] = (f"expert_/random_*: held-out levels {HELD_OUT_SEED}+; "
                            f"train_levels_*: levels 0+ (trained on [0, {TRAIN_LEVELS}))")
    evaluation["seconds"] = round(time.perf_counter() - t0, 1)
    if log:
        log(f"{task}: held-out levels: expert {evaluation['expert_return_mean']:.2f} vs random "
            f"{evaluation['random_return_mean']:.2f}; training levels: expert "
            f"{evaluation['train_levels_expert_return_mean']:.2f} "
            f"vs random {evaluation['train_levels_random_return_mean']:.2f} ({eval_episodes} episodes each)")
    return save_expert(task, params, domain="procgen", algo="ppo", config=config.to_dict(), curve=curve,
                       evaluation=evaluation, root=root)


class ProcgenDomain(TrainedExpertDomain):
    """The 16 Procgen games, easy mode, one level per seed (see the module docstring)."""

    name = "procgen"
    kind = "control"

    def tasks(self) -> list[str]:
        return list(PROCGEN_GAMES)

    def spec(self, task: str) -> EnvSpec:
        return procgen_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return ProcgenEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        return load_procgen_expert(task)

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        return random_policy_for(self.spec(task), seed)

    def defines_success(self, task: str) -> bool:
        return True  # Procgen's level_complete flag

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        check_task(task, self.tasks(), self.name)
        return generate_expert_episodes(self, task, num_episodes, seed, expert_name="PPO", defines_success=True)


register("procgen", ProcgenDomain)
