"""The Procgen expert recipe: PPO on levels [0, 200) through gym3's vector env (`gatolab experts train --env starpilot`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.domains.base import check_task, evaluate_policies
from gatolab.domains.procgen import ProcgenDomain
from gatolab.domains.procgen.env import DISTRIBUTION_MODE, IMAGE_SIZE, NUM_ACTIONS, PROCGEN_GAMES, require_procgen
from gatolab.domains.procgen.expert import expert_features
from gatolab.experts.ppo import PPOConfig, PPOPolicy, train_host_env
from gatolab.experts.store import save_expert, to_numpy

TRAIN_LEVELS = 200  # experts train on levels [0, 200) (Cobbe et al.'s generalisation protocol, easy mode)
HELD_OUT_SEED = 10_000  # evaluation levels 10000+ are never trained on
TRAIN_STEPS = 25_000_000  # Cobbe et al. (2020), easy mode



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
        require_procgen()
        from procgen import ProcgenGym3Env  # an optional simulator: loaded only to train

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


def ppo_config(total_steps: int = TRAIN_STEPS, **overrides: Any) -> PPOConfig:
    """Cobbe et al. (2020)'s PPO (lr 5e-4, 3 epochs, clip 0.2, entropy 0.01, lambda 0.95) with
    32 envs x 64 steps and gamma 0.99 to fit a CPU budget (theirs: 64 x 256, gamma 0.999,
    IMPALA CNN; ours: the Nature CNN on the 64x64 frame)."""
    base = dict(network="cnn", num_envs=32, num_steps=64, total_steps=int(total_steps), lr=5e-4, gamma=0.99,
                gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, update_epochs=3, num_minibatches=4,
                obs_scale=1 / 255)
    return PPOConfig(**{**base, **overrides})


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 eval_episodes: int = 20, time_limit_s: float | None = None,
                 log: Callable[[str], None] | None = print, **config_overrides: Any) -> Path:
    """Trains PPO on levels [0, TRAIN_LEVELS) of `task`, evaluates it through the gatolab adapter
    against the random policy on held-out levels (10000+) and on training levels (0+), saves it."""
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
                       evaluation=evaluation, root=root, packages=ProcgenDomain.packages)
