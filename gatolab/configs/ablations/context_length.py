"""Context length for the demo mixture: 256 vs 512 vs 1024 tokens per row (a 256-token BabyAI row holds one timestep)."""

from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "context_length", config="demo",
        arms=(Arm("L256", {"seq_len": 256}), Arm("L512", {"seq_len": 512}), Arm("L1024", {"seq_len": 1024})),
        # The network's context holds the longest rows in every arm, so the arms differ in the rows only.
        overrides={"model.context_len": 1024, "seq_len": 256},
        question="At a fixed CPU budget, are longer rows (more timesteps of context per target, fewer steps) better "
                 "(Gato §2.3 trains on 1024-token sequences)?")
