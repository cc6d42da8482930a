"""The demo's mixture weights vs Table 1's proportions for the same datasets (GATO_SPEC §8)."""

from gatolab.configs.demo import WEIGHTS
from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "mixture_weights", config="demo",
        arms=(Arm("demo", {"mixture.weights": dict(WEIGHTS)}), Arm("table1", {"mixture.weights": None})),
        question="Do the demo's control-heavy weights beat Table 1's proportions (GATO_SPEC §8) at the demo's budget?")
