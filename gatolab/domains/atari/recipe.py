"""The Atari expert recipe: PPO on ale-py's C++ vector env (CleanRL's settings, the Nature CNN).

    gatolab experts train --env ALE/Breakout-v5 --minutes 15   # the committed, bounded run
    gatolab experts train --env ALE/Pong-v5                    # full strength: 10M steps
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.domains.atari import AtariDomain
from gatolab.domains.atari.emulator import ATARI_GAMES, IMAGE_SIZE, NUM_ACTIONS, PREPROCESSING, require_ale
from gatolab.domains.atari.expert import expert_features
from gatolab.domains.base import check_task, evaluate_policies
from gatolab.experts.ppo import PPOConfig, PPOPolicy, train_host_env
from gatolab.experts.store import save_expert, to_numpy

# Default training budget for `gatolab experts train` (environment steps; PPO's usual Atari budget).
TRAIN_STEPS = 10_000_000


def make_vector_env(task: str, num_envs: int, *, num_threads: int = 0, **overrides: Any):
    """ale-py's `AtariVectorEnv` with `PREPROCESSING` (overrides for tests), same-step autoreset."""
    require_ale()
    from ale_py.vector_env import AtariVectorEnv  # an optional simulator: loaded only to train

    check_task(task, list(ATARI_GAMES), "atari")
    return AtariVectorEnv(ATARI_GAMES[task], num_envs, num_threads=num_threads, autoreset_mode="SameStep",
                          **{**PREPROCESSING, **overrides})


class AtariVecEnv:
    """`HostVecEnv` (gatolab/experts/ppo.py) over `make_vector_env`.

    obs (N, 84, 84, 4) uint8; rewards clipped to their sign for learning (DQN), raw game
    scores reported in `finished_returns`; `done` also marks a lost life (the game goes on),
    so values are not bootstrapped across lives (CleanRL's EpisodicLifeEnv effect without
    cutting episodes short).
    """

    num_actions = NUM_ACTIONS
    obs_shape = (IMAGE_SIZE, IMAGE_SIZE, 4)

    def __init__(self, task: str, num_envs: int, seed: int = 0, num_threads: int = 0):
        self.num_envs, self.seed = num_envs, seed
        self.venv = make_vector_env(task, num_envs, num_threads=num_threads)
        self._returns = np.zeros(num_envs)
        self._lives = np.zeros(num_envs, np.int64)

    def reset(self) -> np.ndarray:
        obs, info = self.venv.reset(seed=self.seed)
        self._returns[:] = 0
        self._lives = np.asarray(info["lives"]).copy()
        return obs.transpose(0, 2, 3, 1)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
        obs, reward, terminated, truncated, info = self.venv.step(np.asarray(actions, np.int32))
        ended = np.logical_or(terminated, truncated)
        lives = np.asarray(info["lives"])
        life_lost = (lives < self._lives) & ~ended
        self._returns += reward
        finished = self._returns[ended].tolist()
        self._returns[ended] = 0
        self._lives = lives.copy()
        done = (ended | life_lost).astype(np.float32)
        return obs.transpose(0, 2, 3, 1), np.sign(reward).astype(np.float32), done, finished

    def close(self) -> None:
        self.venv.close()


def ppo_config(total_steps: int = TRAIN_STEPS, **overrides: Any) -> PPOConfig:
    """CleanRL's PPO Atari settings (Huang et al., 2022): 8 envs x 128 steps, 4 epochs x 4
    minibatches, lr 2.5e-4 annealed, clip 0.1, entropy 0.01, Nature CNN on frames / 255."""
    base = dict(network="cnn", num_envs=8, num_steps=128, total_steps=int(total_steps), lr=2.5e-4, clip_eps=0.1,
                ent_coef=0.01, vf_coef=0.5, update_epochs=4, num_minibatches=4, obs_scale=1 / 255)
    return PPOConfig(**{**base, **overrides})


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 eval_episodes: int = 10, time_limit_s: float | None = None, num_threads: int = 0,
                 log: Callable[[str], None] | None = print, **config_overrides: Any) -> Path:
    """Trains PPO on `task` in ale-py's vector env, evaluates it through the gatolab adapter
    against the random policy on the same seeds, and saves it (gatolab.experts.store)."""
    check_task(task, list(ATARI_GAMES), "atari")
    config = ppo_config(int(steps or TRAIN_STEPS), **config_overrides)
    venv = AtariVecEnv(task, config.num_envs, seed=seed, num_threads=num_threads)
    try:
        params, curve = train_host_env(venv, config, seed=seed, log=log, time_limit_s=time_limit_s)
    finally:
        venv.close()
    params = to_numpy(params)
    domain = AtariDomain()
    expert = PPOPolicy(params, config, NUM_ACTIONS, expert_features, seed=seed)
    t0 = time.perf_counter()
    evaluation = evaluate_policies(domain, task, {"expert": expert, "random": domain.random_policy(task, seed)},
                                   episodes=eval_episodes, seed=10_000)
    evaluation["seconds"] = round(time.perf_counter() - t0, 1)
    if log:
        log(f"{task}: expert {evaluation['expert_return_mean']:.2f} vs random {evaluation['random_return_mean']:.2f} "
            f"over {eval_episodes} episodes (through the gatolab adapter)")
    return save_expert(task, params, domain="atari", algo="ppo", config=config.to_dict(), curve=curve,
                       evaluation=evaluation, root=root, packages=AtariDomain.packages)
