"""Gato Figure 8 at workbench scale: three sizes in Table 5's shape ratios, the same tokens, checkpoints
along training evaluated on the same rollouts (`gatolab.experiments.scaling`)."""

from gatolab.experiments import scaling
from gatolab.experiments.spec import ExperimentSpec


def get_spec() -> ExperimentSpec:
    return scaling.spec()
