"""Observation encoding at an equal number of optimiser steps (the `obs_encoding` ablation without the budget)."""

from gatolab.configs.ablations.obs_encoding import ARMS, QUESTION
from gatolab.experiments.spec import ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "obs_encoding_steps", config="demo", arms=ARMS,
        overrides={"tokenizer.obs_encoding": "tokens", "budget_minutes": None, "steps": 600},
        question=QUESTION + "At an equal number of optimiser steps (the same batches of 256-token rows), which "
                 "encoding scores higher, and what does each step cost?")
