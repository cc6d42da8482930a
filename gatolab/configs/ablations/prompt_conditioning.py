"""Prompt conditioning in training: 25% of control rows prompted (Gato §2.3) vs none."""

from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "prompt_conditioning", config="demo",
        arms=(Arm("p0.25", {"mixture.prompt_probability": 0.25}), Arm("p0", {"mixture.prompt_probability": 0.0})),
        overrides={"mixture.prompt_probability": 0.25},
        question="Does training with prompt conditioning (Gato §2.3: 25% of sequences prefixed by another episode of the "
                 "task) change what the prompted agent scores?")
