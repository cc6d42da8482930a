"""The action tokens' local position: one shared learned vector vs nothing (GATO_SPEC §2 [open])."""

from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "action_position", config="demo",
        arms=(Arm("shared", {"model.action_position": "shared"}), Arm("none", {"model.action_position": "none"})),
        overrides={"model.action_position": "shared"},
        question="Does a learned position for action tokens help (GATO_SPEC §2 [open]: the paper gives local positions to "
                 "observation tokens only)?")
