"""Meta-World (metaworld 3.1, MuJoCo) with the library's scripted policies as experts.

Gato trained on 45 Meta-World tasks (GATO_SPEC §8, Table 1). gatolab offers every
MT50 task that has a scripted policy in `metaworld.policies.ENV_POLICY_MAP` (all 50 in
metaworld 3.1); `benchmarks/measure_experts.py` measured how often each scripted
expert succeeds here and `EXPERT_SUCCESS` records it for the data card: 49 of 50 at
>= 90% (stick-pull-v3: 75%), so all 50 are offered.

| field | modality | what |
|---|---|---|
| "state" | CONTINUOUS (39,), unbounded -> mu-law (Gato §2.1) | hand xyz, gripper, 2 objects' poses, previous frame, goal |
| action "action" | CONTINUOUS (4,), [-1, 1] -> no mu-law | end-effector Δxyz, gripper effort |

Construction: one environment class per task, goal observable (the scripted policies
read the goal from the observation), a fresh object/goal position drawn from the
environment's own seeded RNG at every reset. That is metaworld's MT1 setting minus its
precomputed set of 50 goals (`metaworld.MT1` builds and resets the task 50 times
first, ~1 s per task; MT50 construction takes ~100 s). [open] MT1's 50 fixed goals vs
fresh goals per seed: fresh goals give more varied data; `reset(seed)` is still
deterministic.

Episodes run the full 500 steps (metaworld's `max_path_length`, the MT50 protocol;
Table 1's ~36k tokens per Meta-World episode also implies full-length episodes).
`MetaWorldDomain(terminate_on_success=True)` ends them at the first success instead,
which makes data ~3-10x cheaper (a switch for small-compute runs).

Rendering (videos only): MuJoCo offscreen at `render_size`, from `camera` ("corner"
by default). Meta-World's corner cameras are defined with their up axis pointing
down (xyz_base.xml: corner `xyaxes="-1 1 0 -0.2 -0.2 -1"`), so frames come out upside
down; the consistent fix for a camera whose up vector is negated is a 180° rotation
(a vertical flip alone would mirror the scene), which `render()` applies.

Files: `env.py` (task list, fields, the `TaskEnv`), `expert.py` (the scripted policies).
"""

from __future__ import annotations

from gatolab.domains.base import Domain, Policy, TaskEnv, check_task
from gatolab.domains.metaworld.env import MetaWorldTaskEnv, metaworld_spec, metaworld_tasks
from gatolab.domains.metaworld.expert import MetaWorldExpert
from gatolab.domains.registry import DomainEntry
from gatolab.specs import EnvSpec


class MetaWorldDomain(Domain):
    """Meta-World MT50 tasks with scripted experts (see the module docstring).

    Args:
      terminate_on_success: end episodes at the first success instead of at 500 steps.
      camera: MuJoCo camera for `render()` frames.
      render_size: (height, width) of rendered frames.
    """

    name = "metaworld"
    kind = "control"
    packages = ("metaworld", "mujoco")

    def __init__(self, terminate_on_success: bool = False, camera: str = "corner", render_size: tuple[int, int] = (128, 128)):
        self.terminate_on_success = terminate_on_success
        self.camera = camera
        self.render_size = tuple(render_size)
        self._tasks: list[str] | None = None

    def tasks(self) -> list[str]:
        if self._tasks is None:
            self._tasks = metaworld_tasks()
        return list(self._tasks)

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        return metaworld_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        return MetaWorldTaskEnv(task, self.spec(task), render=render, camera=self.camera, render_size=self.render_size,
                                terminate_on_success=self.terminate_on_success)

    def expert(self, task: str) -> Policy:
        check_task(task, self.tasks(), self.name)
        return MetaWorldExpert(task)


ENTRY = DomainEntry(
    name="metaworld",
    factory=MetaWorldDomain,
    weights={"metaworld": 8.96},  # Table 1: Meta-World
    notes={
        "what": "Meta-World (MuJoCo) robot-arm manipulation tasks: 39-d state, 4-d continuous action (Gato Table 1: 45 tasks).",
        "expert": "Meta-World's scripted policies (metaworld.policies).",
        "licence": "Meta-World: MIT; MuJoCo: Apache-2.0. The generated data: Apache-2.0 (gatolab).",
        "use": "Continuous-control pretraining and evaluation comparable in kind to Gato's Meta-World data.",
        "limits": "Scripted experts fail on some tasks (see their success rates below); fresh goals per seed, not MT1's fixed 50.",
    },
    # MT50 task names end in the environment version ("reach-v3"; the paper's were "-v2").
    owns=lambda task: task.endswith(("-v3", "-v2")) and "/" not in task,
)
