"""The data of Gato's §5.2 and Figure 8 experiments (`gatolab.experiments.finetuning`, `.scaling`):
which tasks are held out, what each pretraining variant trains on, and the scaling mixture.
Experiment configs choose domains; these tables are theirs (not a named run config)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from gatolab.configs.base import DatasetConfig


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """A held-out task and the data its pretraining variants use (none of it holds the task)."""

    domain: str
    task: str
    same_domain: DatasetConfig  # the held-out task's domain, minus the task
    other: Mapping[str, DatasetConfig]  # the rest of "all data" (control domains of other kinds)
    metric: str  # what Figure 10 plots for it: "success" or "normalised_score"


LANGUAGE = {"text": DatasetConfig("text", episodes=200), "vision_language": DatasetConfig("vision_language", episodes=200)}

PROTOCOLS: dict[str, HeldOut] = {
    # Gato §5.2's assembly-v2 (v3 here): pretraining never sees assembly; the same-domain data
    # are Meta-World manipulation tasks around it (disassemble is its reverse).
    "assembly": HeldOut(
        "metaworld", "assembly-v3",
        DatasetConfig("metaworld", ("disassemble-v3", "pick-place-v3", "reach-v3", "button-press-topdown-v3"), episodes=20),
        {"dmc": DatasetConfig("dmc", ("cartpole-balance", "cartpole-balance_sparse", "ball_in_cup-catch", "reacher-easy"),
                              episodes=10),
         "classic": DatasetConfig("classic", episodes=30)},
        "success"),
    # DM Control cartpole-swingup: pretraining on the other DM Control tasks with experts.
    "cartpole-swingup": HeldOut(
        "dmc", "cartpole-swingup",
        DatasetConfig("dmc", ("cartpole-balance", "cartpole-balance_sparse", "ball_in_cup-catch", "reacher-easy"),
                      episodes=20),
        {"metaworld": DatasetConfig("metaworld", ("disassemble-v3", "pick-place-v3", "reach-v3"), episodes=10),
         "classic": DatasetConfig("classic", episodes=30)},
        "normalised_score"),
}


# The mixture every size trains on: BabyAI and classic control (the demo's best-learnt
# domains at CPU scale) and a little text; evaluated on its control tasks.
SCALING_DATASETS = {
    "babyai": DatasetConfig("babyai", ("BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToRedBall-v0"), episodes=150),
    "classic": DatasetConfig("classic", ("CartPole-v1", "Acrobot-v1", "MountainCar-v0"), episodes=40),
    "text": DatasetConfig("text", episodes=100),
}
SCALING_WEIGHTS = {"babyai": 45.0, "classic": 45.0, "text": 10.0}
