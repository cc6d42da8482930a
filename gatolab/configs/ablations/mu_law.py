"""Mu-law only where a field leaves [-1, 1] (per field, "auto") vs for every continuous value (GATO_SPEC §1)."""

from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "mu_law", config="demo",
        arms=(Arm("auto", {"tokenizer.mu_law": "per_field"}), Arm("always", {"tokenizer.mu_law": "always"})),
        overrides={"tokenizer.mu_law": "per_field"},
        question="Gato mu-law encodes continuous values 'if not already in [-1, 1]' (§2.1): does applying it to every "
                 "value, bounded actions included, change control?")
