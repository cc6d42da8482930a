"""How the agent is prompted at deployment: start / end / none, on the same checkpoints (no retraining)."""

from gatolab.experiments.spec import Arm, ExperimentSpec


def get_spec() -> ExperimentSpec:
    return ExperimentSpec(
        "prompt_at_eval", config="demo",
        arms=(Arm("start", {"agent.prompt": "start"}), Arm("end", {"agent.prompt": "end"}), Arm("none", {"agent.prompt": "none"})),
        question="Does the demonstration prompt help at deployment, and which part of it (Gato §2.4: the first tokens of a "
                 "successful demonstration; §2.3 trains with prompts from episode ends too)? Evaluation-only arms: one "
                 "training run per seed serves all three.")
