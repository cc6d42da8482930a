"""The MinAtar expert recipe: PPO in gymnax, all-JAX (`gatolab experts train --env Breakout-MinAtar`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gatolab.domains.base import check_task, evaluate_policies
from gatolab.domains.minatar import MinAtarDomain
from gatolab.domains.minatar.env import MINATAR_TASKS, jitted_env
from gatolab.domains.minatar.expert import MinAtarFeatures
from gatolab.experts.ppo import PPOConfig, PPOPolicy, train_jax_env
from gatolab.experts.store import save_expert, to_numpy

# Training budget per game (environment steps; PPOConfig defaults = PureJaxRL's MinAtar settings otherwise).
TRAIN_STEPS: dict[str, int] = {
    "Breakout-MinAtar": 5_000_000,
    "Asterix-MinAtar": 10_000_000,
    "Freeway-MinAtar": 5_000_000,
    "SpaceInvaders-MinAtar": 10_000_000,
    "Seaquest-MinAtar": 10_000_000,
}


def train_expert(task: str, *, steps: int | None = None, seed: int = 0, root: str | Path | None = None,
                 eval_episodes: int = 20, time_limit_s: float | None = None,
                 log: Callable[[str], None] | None = print) -> Path:
    """Trains PPO on `task` in gymnax, evaluates it through the gatolab adapter against the
    random policy on the same seeds, and saves it (gatolab.experts.store)."""
    check_task(task, list(MINATAR_TASKS), "minatar")
    env, params = jitted_env(task)[:2]
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
                       evaluation=evaluation, root=root, packages=MinAtarDomain.packages)
