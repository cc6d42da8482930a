"""BabyAI (minigrid 3.2) with minigrid's `BabyAIBot` as the expert.

Gato trained on 46 BabyAI levels (GATO_SPEC §8, Table 1). Each gatolab timestep:

| field | modality | what |
|---|---|---|
| "mission" | TEXT | the instruction, e.g. "pick up the red ball" (repeats every step) |
| "grid" | DISCRETE, 11 values, (7, 7, 3) | the agent's egocentric symbolic view: (object, colour, state) per cell |
| "direction" | DISCRETE, 4 values, () | the agent's heading |
| "pixels" (switch) | IMAGE (112, 112, 3) | the same 7×7 view rendered at 16 px per cell, so one Gato patch = one cell |
| action "action" | DISCRETE, 7 values | left, right, forward, pickup, drop, toggle, done |

Decisions ([open], GATO_SPEC §2.3/§4):
- Mission loss. Gato §2.3 makes "text tokens" targets; read literally that includes
  the mission, which the environment (not the agent) writes and which repeats every
  timestep, so most of a BabyAI sequence's text loss would be spent re-predicting
  an instruction already in context. gatolab treats it as an observation: by default
  `FieldSpec.text(loss=False)`. `BabyAIDomain(mission_loss=True)` restores the literal
  reading (an ablation switch).
- Image observation. Off by default (symbolic grid + direction, as the BabyAI
  benchmark's agents use); `BabyAIDomain(pixels=True)` adds the rendered view. Full
  top-down frames for videos come from `render()` either way.

The bot's `replan()` can loop forever (seen on UnlockToUnlock), so every call runs
under a budget of Python function calls (deterministic, unlike a wall-clock timeout,
and it works in any thread); over budget it raises `BotTimeout`. `generate` skips such
seeds, and seeds where the bot raises (recorded in the next episode's metadata).
Levels the bot cannot solve, or hangs on, are left out; `EXCLUDED_LEVELS` says which and why (quoted by the data card), and
`benchmarks/measure_experts.py` measured the rest.

Files: `env.py` (levels, fields, the `TaskEnv`), `expert.py` (the bot under its budget).
"""

from __future__ import annotations

from collections.abc import Iterator

from gatolab.domains.babyai.env import BabyAITaskEnv, all_registered_levels, babyai_levels, babyai_spec
from gatolab.domains.babyai.expert import BabyAIExpert, BotError
from gatolab.domains.base import Domain, Policy, TaskEnv, check_task, rollout
from gatolab.domains.registry import DomainEntry
from gatolab.episode import Episode
from gatolab.specs import EnvSpec


class BabyAIDomain(Domain):
    """BabyAI levels with the BabyAIBot expert (see the module docstring).

    Args:
      pixels: add the rendered 7×7 agent view as an IMAGE field "pixels".
      mission_loss: make the mission text a loss target (Gato §2.3 read literally).
      include_excluded: offer every registered level, `EXCLUDED_LEVELS` too (to measure them).
    """

    name = "babyai"
    kind = "control"
    packages = ("gymnasium", "minigrid")

    def __init__(self, pixels: bool = False, mission_loss: bool = False, include_excluded: bool = False):
        self.pixels = pixels
        self.mission_loss = mission_loss
        self.include_excluded = include_excluded
        self._tasks: list[str] | None = None

    def tasks(self) -> list[str]:
        if self._tasks is None:
            self._tasks = all_registered_levels() if self.include_excluded else babyai_levels()
        return list(self._tasks)

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        return babyai_spec(task, self.pixels, self.mission_loss)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return BabyAITaskEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        check_task(task, self.tasks(), self.name)
        return BabyAIExpert()

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """`num_episodes` expert episodes from seeds seed, seed+1, ...

        A seed on which the bot fails (`BotError`: over its replan budget, or raising)
        yields no episode; the next seed is tried instead and the skipped seeds are
        listed in the following episode's metadata["skipped_seeds"].
        """
        env = self.make(task, seed=seed)
        policy = self.expert(task)
        skipped: list[int] = []
        s = seed
        try:
            made = 0
            while made < num_episodes:
                if len(skipped) > max(10, num_episodes):
                    raise RuntimeError(f"{task}: BabyAIBot failed on {len(skipped)} seeds ({skipped[:10]}...)")
                try:
                    episode = rollout(env, policy, seed=s, metadata={"expert": "BabyAIBot", "skipped_seeds": list(skipped)}).episode
                except BotError:
                    skipped.append(s)
                else:
                    skipped = []
                    made += 1
                    yield episode
                s += 1
        finally:
            env.close()


ENTRY = DomainEntry(
    name="babyai",
    factory=BabyAIDomain,
    weights={"babyai": 9.06},  # Table 1: BabyAI
    notes={
        "what": "BabyAI levels from minigrid: a 7x7 egocentric symbolic grid, heading and a text mission; 7 discrete actions "
                "(Gato Table 1: 46 levels).",
        "expert": "minigrid's BabyAIBot (a planner with privileged state), under a deterministic replanning budget.",
        "licence": "minigrid: Apache-2.0. The generated data: Apache-2.0 (gatolab).",
        "use": "Pretraining/evaluating instruction-following gridworld control; Gato's BabyAI domain at small scale.",
        "limits": "Levels the bot cannot solve are excluded (see the domain's EXCLUDED_LEVELS); the bot's paths are "
                  "near-optimal, not human-like; far fewer episodes than Gato's 4.61M.",
    },
    owns=lambda task: task.startswith("BabyAI-"),
)
