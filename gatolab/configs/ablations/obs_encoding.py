"""Observation encoding at an equal wall-clock budget: Gato's per-element tokens vs one token per field (issue 18).

`obs_encoding_steps` is the same comparison at an equal number of optimiser steps.
"""

from gatolab.experiments.spec import Arm, ExperimentSpec

ARMS = (Arm("tokens", {"tokenizer.obs_encoding": "tokens"}), Arm("field", {"tokenizer.obs_encoding": "field"}))
QUESTION = ("Gato turns every observation element into a token (§2.1): a 256-token BabyAI row holds one timestep. "
            "Embedding each observation field as one vector (JAT's choice) fits ~20 timesteps in the same row. ")


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "obs_encoding", config="demo", arms=ARMS,
        overrides={"tokenizer.obs_encoding": "tokens", "budget_minutes": 10},
        question=QUESTION + "At an equal wall-clock budget per cell, which encoding scores higher?")
