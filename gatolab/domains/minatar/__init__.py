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

Files: `env.py` (grid packing, the `TaskEnv`, frames), `expert.py` (loading the PPO
actors), `recipe.py` (training them).
"""

from __future__ import annotations

from gatolab.domains.base import Policy, TaskEnv, check_task
from gatolab.domains.common import TrainedExpertDomain
from gatolab.domains.minatar.env import MINATAR_TASKS, MinAtarEnv, minatar_spec
from gatolab.domains.registry import DomainEntry
from gatolab.specs import EnvSpec


class MinAtarDomain(TrainedExpertDomain):
    """gymnax MinAtar games with PPO experts (see the module docstring)."""

    name = "minatar"
    kind = "control"
    packages = ("gymnax", "jax")

    def tasks(self) -> list[str]:
        return list(MINATAR_TASKS)

    def spec(self, task: str) -> EnvSpec:
        return minatar_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return MinAtarEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        from gatolab.domains.minatar.expert import load_expert  # PPO acts through JAX: load it only to act

        check_task(task, self.tasks(), self.name)
        return load_expert(task, self.experts_root)

    def defines_success(self, task: str) -> bool:
        return False  # return only: the games have scores, not goals


ENTRY = DomainEntry(
    name="minatar",
    factory=MinAtarDomain,
    # [open] MinAtar is not in Table 1: it stands in for ALE Atari Extended (10.0%), the Atari games gatolab
    # cannot train full-strength experts for on a CPU; ALE itself ("atari") keeps ALE Atari's 9.5%.
    weights={"minatar": 10.0},
    notes={
        "what": "MinAtar (Young & Tian, 2019) through gymnax: Breakout, Asterix, Freeway, SpaceInvaders and Seaquest on a "
                "10x10 board with one binary channel per object kind, stored as one integer per cell (the channel bits "
                "packed, < 2^C <= 1024, 100 tokens a timestep); gymnax's minimal action set per game. Not in Gato's "
                "Table 1: gatolab's CPU-sized stand-in for its Atari data.",
        "expert": "PPO trained by gatolab (gatolab/experts/ppo.py, all-JAX PureJaxRL-style, 64 envs x 128 steps, MLP 2x64) "
                  "per game with `gatolab experts train`; actions sampled from the policy. Training curves and evaluation "
                  "in experts/<task>/expert.json.",
        "licence": "gymnax's JAX reimplementation used here: Apache-2.0 (the original MinAtar: GPL-3.0). The experts and generated data: Apache-2.0 (gatolab).",
        "use": "Atari-like discrete control at CPU scale: pretraining, evaluation against the PPO expert and random play.",
        "limits": "Ten-by-ten abstractions of the games, not ALE frames; one PPO seed per game (experts are strong but not "
                  "optimal: see the expert returns); episodes are capped at 1000 steps (Freeway 2500).",
    },
    owns=lambda task: task.endswith("-MinAtar"),
    train_expert="gatolab.domains.minatar.recipe:train_expert",
)
