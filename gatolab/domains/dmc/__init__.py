"""DeepMind Control Suite (dm_control, MuJoCo) from state and from pixels, with SAC experts.

Gato's Table 1 (GATO_SPEC §8) has "DM Control Suite" (30 tasks, from state, 4.62%) and
"DM Control Suite Pixels" (28 tasks, 7.07%). The paper does not list the tasks; gatolab
offers the suite's own benchmarking set (`dm_control.suite.BENCHMARKING`, 28 tasks) in
both variants. [open] Which 30 state / 28 pixel tasks Gato used.

Task names are "<domain>-<task>" for the state variant ("cartpole-swingup",
"ball_in_cup-catch") and "<domain>-<task>-pixels" for its pixel twin.

| variant | field | modality | what |
|---|---|---|---|
| state | "state" | CONTINUOUS (n,), unbounded -> mu-law (Gato §2.1) | the dm_control observation dict flattened |
| pixels | "pixels" | IMAGE (64, 64, 3) uint8 | camera 0, rendered by MuJoCo after every reset/step |
| both | action "action" | CONTINUOUS (m,), [-1, 1] -> no mu-law | the suite's action_spec (all 28 tasks: [-1, 1]) |

State: the observation dict's entries are flattened (row-major) and concatenated in
sorted key order (`flatten_observation`): e.g. cartpole's {"position" (3,), "velocity"
(2,)}, walker's {"height" (), "orientations" (14,), "velocity" (9,)} -> 24 values.
Sorted, not dm_control's insertion order, because Gato orders nested structures
lexicographically by key (GATO_SPEC §1). Values are stored as float32.

Pixels: [open] (GATO_SPEC §1, §8: the paper gives neither resolution nor camera) 64x64
RGB from camera 0, the usual pixel-RL setting (PlaNet, Dreamer, DrQ use 64x64 or 84x84
from camera 0). 64 divides into Gato's 16x16 patches (4x4 = 16 patches per frame,
whereas 84x84 would need padding or cropping) and keeps a 1000-step episode at 16k
image tokens. The pixel variant shows only the image, no proprioception.

Episodes: the suite's 1000 control steps (every task here; `truncated` at the limit,
none terminates). No success is defined: data and evaluation use the return (as for
Pendulum in classic.py). Episodes are deterministic by seed: `reset(seed)` gives the
task a fresh `numpy.random.RandomState(seed)` (what `suite.load(..., task_kwargs=
{"random": seed})` does) instead of rebuilding the environment at every reset (70 ms,
plus ~0.25 s for a new rendering context).

Experts: a SAC agent trained from state per task (gatolab/experts/sac.py, stored with
gatolab/experts/store.py under experts/<state task>/). A pixel task's expert is its
state twin's expert acting on the privileged state (`DMCTaskEnv.state_observation()`)
while the episode records pixels, the usual way to collect pixel demonstrations.

Rendering (videos only): `render()` returns a (240, 320, 3) frame from the same camera.

Files: `env.py` (the suite tasks as `TaskEnv`s, state and pixels), `recipe.py` (SAC
experts; the algorithm is gatolab/experts/sac.py).
"""

from __future__ import annotations

from gatolab.domains.base import Policy, check_task
from gatolab.domains.common import TrainedExpertDomain
from gatolab.domains.dmc.env import DMC_TASKS, RENDER_SIZE, TASKS, DMCTaskEnv, dmc_spec, state_task
from gatolab.domains.registry import DomainEntry
from gatolab.experts.sac import load_sac_policy
from gatolab.specs import EnvSpec


class DMCDomain(TrainedExpertDomain):
    """DM Control Suite tasks from state and pixels with trained SAC experts (module docstring).

    Args:
      experts_root: where trained experts live (default: gatolab.experts.store.experts_root()).
      render_size: (height, width) of `render()` frames.
    """

    name = "dmc"
    kind = "control"
    packages = ("dm-control", "mujoco")

    def __init__(self, experts_root: str | None = None, render_size: tuple[int, int] = RENDER_SIZE):
        self.experts_root = experts_root
        self.render_size = tuple(render_size)

    def tasks(self) -> list[str]:
        return list(TASKS)

    def spec(self, task: str) -> EnvSpec:
        return dmc_spec(task)

    def make(self, task: str, seed: int = 0, render: bool = False) -> DMCTaskEnv:
        return DMCTaskEnv(task, self.spec(task), seed=seed, render_size=self.render_size)

    def expert(self, task: str) -> Policy:
        """The SAC expert of `task`'s state twin, loaded from the experts store.

        Raises:
          FileNotFoundError: no trained expert (the message says how to train one).
          ValueError: a corrupt expert or one that does not fit the task.
        """
        check_task(task, self.tasks(), self.name)
        return load_sac_policy(state_task(task), root=self.experts_root, spec=dmc_spec(state_task(task)))

    def expert_task(self, task: str) -> str:
        return state_task(task)  # a pixel task's expert is its state twin's

    def defines_success(self, task: str) -> bool:
        """Always False: the suite defines returns only."""
        check_task(task, self.tasks(), self.name)
        return False


ENTRY = DomainEntry(
    name="dmc",
    factory=DMCDomain,
    # Table 1: DM Control Suite (state tasks) 4.62%, DM Control Suite Pixels 7.07% (the "-pixels" tasks,
    # generated as their own dataset: `gatolab data generate --domain dmc --tasks ...-pixels --name dmc_pixels`).
    weights={"dmc": 4.62, "dmc_pixels": 7.07},
    notes={
        "what": "DeepMind Control Suite (dm_control, MuJoCo): the suite's 28 benchmarking tasks from state (the observation "
                "dict flattened in sorted key order, CONTINUOUS, mu-law) or from pixels (`-pixels` tasks: 64x64 RGB from "
                "camera 0); continuous actions in [-1, 1]; 1000-step episodes, returns only, no success "
                "(Gato Table 1: DM Control Suite 30 tasks, 4.62%; DM Control Suite Pixels 28 tasks, 7.07%).",
        "expert": "SAC trained by gatolab from state (gatolab/experts/sac.py: twin Q, learnt temperature, MLP 2x256, "
                  "best-evaluated snapshot) with `gatolab experts train`; deterministic mean action. A pixel task's expert "
                  "is its state twin's, acting on the privileged state. Curves and evaluation in experts/<task>/expert.json.",
        "licence": "dm_control: Apache-2.0; MuJoCo: Apache-2.0. The experts and generated data: Apache-2.0 (gatolab).",
        "use": "Continuous control from proprioception and from pixels; Gato's DM Control domains at small scale, and "
               "cartpole.swingup, the paper's held-out fine-tuning task.",
        "limits": "Only tasks with a trained expert can be generated (DMCDomain.trained_tasks(); so far cartpole-swingup, "
                  "cartpole-balance, cartpole-balance_sparse, ball_in_cup-catch and reacher-easy, whose expert is bimodal: "
                  "it reaches the target in about half the episodes; pendulum-swingup did not learn in a 9-minute budget "
                  "nor in 50k steps, point_mass-easy not in 50k steps); one SAC seed per task, trained for minutes on CPU; "
                  "deterministic experts give little behavioural diversity; pixel episodes take ~17 s each to render on "
                  "this CPU; Gato's exact task list is not public.",
    },
    owns=lambda task: state_task(task) in DMC_TASKS,
    train_expert="gatolab.domains.dmc.recipe:train_expert",
)
