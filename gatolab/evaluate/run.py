"""A trained run evaluated the way its config says (GATO_SPEC §6): control tasks in their real
environments, text and image-text by held-out likelihood.

    gl.evaluate.evaluate_run("demo", "runs/x", out="runs/x/eval")

Control tasks are `eval.tasks`, or every task of the run's control datasets; the language
tasks are those of its text and vision-language datasets. Rollout i of every task resets
with `eval.seed + i`, so two runs of the same tasks are compared on the same episodes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gatolab import configs, io_utils
from gatolab.agent import GatoAgent
from gatolab.baselines import Retrieval
from gatolab.configs.base import RunConfig
from gatolab.evaluate.control import EvalResults, evaluate
from gatolab.evaluate.language import evaluate_language

LANGUAGE_FILE = "language.json"


def dataset_tasks(data: Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """(control tasks, [(domain, task)] of text and image-text) of dataset folders, from their manifests."""
    control, language = [], []
    for d in data:
        manifest = json.loads((Path(d) / "manifest.json").read_text())
        if manifest.get("kind", "control") == "control":
            control += [t for t in manifest["tasks"] if t not in control]
        else:
            language += [(manifest["domain"], t) for t in manifest["tasks"]]
    return control, language


def evaluate_run(config: RunConfig | str, checkpoint: str | os.PathLike | None, *, out: str | os.PathLike | None = None,
                 data: Sequence[str | os.PathLike] | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluates the checkpoint of a run with its config's `eval` section.

    Args:
      config: the run's config (a `RunConfig`, a name, or its run folder).
      checkpoint: the run folder (or a checkpoint inside it); `eval.step` picks a step of it.
        None with `eval.policy="retrieval"` (no network).
      out: where results.{json,csv} and language.json go (None: not written).
      data: the run's dataset folders (default: those its checkpoint trained on); demonstrations
        for the prompts come from them.

    Returns:
      {"control": EvalResults, "language": [per text / image-text task: nll, perplexity, ...]}.
    """
    config = configs.load(config)
    ev = config.eval
    if ev.policy == "retrieval":  # a reference arm: no network, the run's own training episodes
        if not data:
            raise ValueError("evaluate_run: eval.policy='retrieval' needs the run's dataset folders (data=...), "
                             "the episodes it retrieves from")
        agent: GatoAgent | Retrieval = Retrieval(data, config.mixture_config())
        datasets = [str(d) for d in data]
    else:
        if checkpoint is None:
            raise ValueError("evaluate_run: eval.policy='gato' needs a checkpoint (a run folder)")
        agent = GatoAgent.from_checkpoint(checkpoint, ev.agent, data, step=ev.step)
        datasets = [str(ds.path) for ds in agent.prompts.datasets]
    control, language_tasks = dataset_tasks(datasets)
    tasks = list(ev.tasks) if ev.tasks is not None else control
    results: EvalResults | None = None
    if tasks:
        results = evaluate(agent, tasks, episodes=ev.episodes, max_steps=ev.max_steps, seed=ev.seed, out=out,
                           progress=progress)
    language = ([] if isinstance(agent, Retrieval) else  # text has no retrieval reference
                [evaluate_language(agent.model, agent.tokenizer, domain, task, episodes=ev.language_episodes)
                 for domain, task in language_tasks])
    if out is not None:
        io_utils.atomic_write_json(Path(out) / LANGUAGE_FILE, language)
    return {"control": results, "language": language}
