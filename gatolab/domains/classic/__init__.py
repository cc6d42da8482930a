"""Classic control (gymnasium): CartPole, Acrobot, MountainCar, Pendulum.

Not in Gato's Table 1 (GATO_SPEC §8); gatolab adds them as the cheapest real control
tasks for CPU-sized experiments and CI. Each task has a few-line analytic expert:

| task | expert | success |
|---|---|---|
| CartPole-v1 | linear state feedback (push towards where the pole is falling) | survives to the 500-step limit |
| Acrobot-v1 | torque = sign(joint-2 velocity) (pumps energy into the swing) | tip reaches the line (terminated) |
| MountainCar-v0 | push in the direction of motion (pumps energy) | reaches the flag (terminated) |
| MountainCarContinuous-v0 | the same, with force ±1 | reaches the flag (terminated) |
| Pendulum-v1 | energy-shaping swing-up, then PD control near the top | none defined (return only) |

Fields: observation "state" (CONTINUOUS, the gymnasium vector; mu-law applies because
the declared bounds exceed [-1, 1], Gato §2.1), action "action" (DISCRETE for
discrete-action tasks, CONTINUOUS with the gymnasium bounds otherwise).

[open] (GATO_SPEC §1) Pendulum's torque lives in [-2, 2]; we keep the environment's
own units, so the tokenizer mu-law encodes it (the paper: mu-law "if not already in
[-1, 1]") rather than rescaling it into [-1, 1] in the adapter.
"""

from __future__ import annotations

from gatolab.domains.base import Domain, Policy, TaskEnv, check_task
from gatolab.domains.classic.env import CLASSIC_TASKS, ClassicTaskEnv, classic_spec
from gatolab.domains.classic.experts import expert_for
from gatolab.domains.registry import DomainEntry
from gatolab.specs import EnvSpec


class ClassicDomain(Domain):
    """Gymnasium classic control with analytic experts (see the module docstring)."""

    name = "classic"
    kind = "control"
    packages = ("gymnasium",)

    def __init__(self):
        self._specs: dict[str, EnvSpec] = {}

    def tasks(self) -> list[str]:
        return list(CLASSIC_TASKS)

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        if task not in self._specs:
            self._specs[task] = classic_spec(task)
        return self._specs[task]

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return ClassicTaskEnv(task, self.spec(task), render=render)

    def expert(self, task: str) -> Policy:
        check_task(task, self.tasks(), self.name)
        return expert_for(task)

    def defines_success(self, task: str) -> bool:
        """False for tasks with no success criterion (Pendulum): judge those by return."""
        check_task(task, self.tasks(), self.name)
        return CLASSIC_TASKS[task][1] is not None


ENTRY = DomainEntry(
    name="classic",
    factory=ClassicDomain,
    # [open] not in Table 1: DM Control Suite (state)'s weight, the nearest analogue (kept now that `dmc`
    # exists too: classic is the cheapest real control data, and the demo is built on it).
    weights={"classic": 4.62},
    notes={
        "what": "Gymnasium classic control (CartPole, Acrobot, MountainCar, MountainCarContinuous, Pendulum): "
                "low-dimensional state vectors, discrete or continuous actions. Not in Gato's Table 1; gatolab's "
                "cheapest real control data.",
        "expert": "Analytic controllers (gatolab/domains/classic/experts.py): state feedback, energy pumping, "
                  "energy-shaping swing-up.",
        "licence": "Gymnasium: MIT licence. The generated data: Apache-2.0 (gatolab).",
        "use": "Smoke tests and CPU-scale experiments of the full pipeline; a control-from-state sanity check.",
        "limits": "Five toy tasks with near-deterministic experts: little behavioural diversity; not comparable to Gato's DM Control data.",
    },
    owns=lambda task: task in CLASSIC_TASKS,
)
