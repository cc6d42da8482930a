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

Files: `env.py` (the `TaskEnv`), `expert.py` (loading the PPO actors), `recipe.py`
(training them on a vector env).
"""

from __future__ import annotations

from gatolab.domains.base import Policy, TaskEnv, check_task
from gatolab.domains.common import TrainedExpertDomain
from gatolab.domains.procgen.env import PROCGEN_GAMES, ProcgenEnv, procgen_spec
from gatolab.domains.registry import DomainEntry
from gatolab.specs import EnvSpec


class ProcgenDomain(TrainedExpertDomain):
    """The 16 Procgen games, easy mode, one level per seed (see the module docstring)."""

    name = "procgen"
    kind = "control"
    packages = ("procgen-mirror", "gym3")

    def tasks(self) -> list[str]:
        return list(PROCGEN_GAMES)

    def spec(self, task: str) -> EnvSpec:
        return procgen_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return ProcgenEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        from gatolab.domains.procgen.expert import load_expert  # PPO acts through JAX: load it only to act

        check_task(task, self.tasks(), self.name)
        return load_expert(task, self.experts_root)

    def defines_success(self, task: str) -> bool:
        return True  # Procgen's level_complete flag


ENTRY = DomainEntry(
    name="procgen",
    factory=ProcgenDomain,
    weights={"procgen": 5.34},  # Table 1: Procgen Benchmark
    notes={
        "what": "Procgen Benchmark (Cobbe et al., 2020), 16 procedurally generated games, easy mode, through gym3 "
                "(procgen-mirror): the 64x64 RGB frame (exactly 16 patch tokens) and the 15-action set; episode seed = "
                "level (start_level=seed, num_levels=1), so episodes are reproducible (Gato Table 1: 16 games, 1.6M "
                "episodes, weight 5.34%).",
        "expert": "PPO trained by gatolab (gatolab/experts/ppo.py; Nature CNN on the frame, 32 envs x 64 steps) on levels "
                  "[0, 200); evaluated on held-out levels 10000+ and on training levels. Committed: starpilot only (14-minute "
                  "CPU run, 963K steps). MISSING: the other 15 games have no trained expert, so no data "
                  "(train one with `gatolab experts train --env <game>`: ~6 h per game at full strength on this CPU).",
        "licence": "Procgen: MIT (OpenAI, 2019); its game art comes from third-party asset packs under their own licences (see "
                   "the procgen repository). The experts and generated data: Apache-2.0 (gatolab).",
        "use": "Generalisation across procedurally generated levels of pixel-based discrete control.",
        "limits": "Easy mode only; weak CPU-trained expert (starpilot ~3 vs ~30 for Cobbe et al.'s 25M-step agents); "
                  "success is Procgen's level_complete flag.",
    },
    owns=lambda task: task in PROCGEN_GAMES,
    train_expert="gatolab.domains.procgen.recipe:train_expert",
)
