"""Evaluation (GATO_SPEC §6): control tasks in their real environments, text and image-text by likelihood.

    results = gl.evaluate.evaluate("runs/demo/train", tasks=["CartPole-v1", "BabyAI-GoToRedBall-v0"],
                                   episodes=50, out="runs/demo/eval")
    results.aggregate["overall"], gl.evaluate.figure5_data(results.rows)
    gl.evaluate.evaluate_language(model, tokenizer, "vision_language", "shapes_captions")
    # or: gatolab eval --checkpoint runs/demo/train --tasks CartPole-v1 --episodes 50 --out runs/demo/eval

Modules: `control` (rollouts, normalised scores, aggregation, Figure 5, results files),
`language` (held-out likelihood, completions), `run` (a trained run as its config says),
`cli` (`gatolab eval`).
"""

from gatolab.evaluate.control import (DEFAULT_RETURNS, THRESHOLDS, EvalResults, aggregate, control_task, evaluate,
                                      evaluate_task, figure5_data, load_references, load_results, normalised_score,
                                      write_results)
from gatolab.evaluate.language import complete_text, evaluate_language
from gatolab.evaluate.run import evaluate_run

__all__ = [
    "DEFAULT_RETURNS", "THRESHOLDS", "EvalResults", "aggregate", "complete_text", "control_task", "evaluate",
    "evaluate_language", "evaluate_run", "evaluate_task", "figure5_data", "load_references", "load_results", "normalised_score",
    "write_results",
]
