"""Discrete values sharing the first text ids (the paper) vs their own ids (GATO_SPEC §1 [open])."""

from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "id_layout", config="demo",
        arms=(Arm("shared", {"tokenizer.vocab.discrete_policy": "shared"}),
              Arm("disjoint", {"tokenizer.vocab.discrete_policy": "disjoint"})),
        overrides={"tokenizer.vocab.discrete_policy": "shared"},
        question="Does the overlap of discrete-value ids with the first text subwords hurt (GATO_SPEC §1 [open]; NEKO "
                 "issue 16 asks exactly this)?")
