"""The DM Control expert recipe: SAC on a task's state twin (`gatolab experts train --env cartpole-swingup`).

A pixel task ("cartpole-swingup-pixels") trains its state twin ("cartpole-swingup"): pixel
episodes are recorded with the state expert acting on the privileged state. The expert
is then measured on `sac.FINAL_EVAL_EPISODES` episodes (seeds 0-9, those
`Domain.generate` uses by default), as is a uniform random policy on the same seeds;
both means go into expert.json ("evaluation").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.domains.base import check_task, episode_returns
from gatolab.domains.dmc import DMCDomain
from gatolab.domains.dmc.env import TASKS, state_task
from gatolab.experts import sac
from gatolab.experts.store import save_expert

DEFAULT_STEPS = 120_000  # cartpole-swingup reached 847 in 119k steps (15 min on this project's 2-core CPU)


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 time_limit_s: float | None = None, log: Callable[[str], Any] | None = print,
                 config: sac.SACConfig | None = None, log_every: int = 10_000) -> Path:
    """Trains a SAC expert for a DM Control task, evaluates it against random, saves it.

    Returns the expert's folder (`<root>/<state task>/`).
    """
    check_task(task, TASKS, "dmc")
    state = state_task(task)
    if state != task and log:
        log(f"[sac] {task!r} uses the expert of its state twin {state!r}: training that")
    steps = int(steps or DEFAULT_STEPS)
    config = config or sac.SACConfig()
    domain = DMCDomain()
    spec = domain.spec(state)
    t0 = time.time()
    params, curve = sac.train_sac(lambda s: domain.make(state, seed=s), spec, steps, seed, config, log_every=log_every,
                                  log=log, max_seconds=time_limit_s)
    train_s = time.time() - t0
    obs_dim, act_dim = spec.observation["state"].shape[0], spec.action["action"].shape[0]
    full_config = {**config.to_json(), "obs_dim": obs_dim, "act_dim": act_dim, "seed": seed, "total_steps": steps,
                   "steps_done": curve[-1]["step"], "train_seconds": round(train_s, 1),
                   "log_std_min": sac.LOG_STD_MIN, "log_std_max": sac.LOG_STD_MAX}
    policy = sac.SACPolicy(params, full_config)
    env = domain.make(state)
    seeds = list(range(sac.FINAL_EVAL_EPISODES))
    expert_returns = episode_returns(env, policy, seeds)
    random_returns = episode_returns(env, domain.random_policy(state, seed=seed), seeds)
    env.close()
    evaluation = {"expert_return_mean": float(np.mean(expert_returns)), "random_return_mean": float(np.mean(random_returns)),
                  "episodes": sac.FINAL_EVAL_EPISODES, "seeds": seeds, "expert_returns": [round(r, 2) for r in expert_returns],
                  "random_returns": [round(r, 2) for r in random_returns]}
    if log:
        log(f"[sac {state}] expert return {evaluation['expert_return_mean']:.1f} vs random "
            f"{evaluation['random_return_mean']:.1f} over {sac.FINAL_EVAL_EPISODES} episodes ({train_s:.0f}s training)")
    return save_expert(state, {"actor": params["actor"]}, domain="dmc", algo="sac", config=full_config, curve=curve,
                       evaluation=evaluation, root=root, packages=DMCDomain.packages)
