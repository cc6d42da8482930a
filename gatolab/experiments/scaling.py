"""Model-size scaling (Gato Figure 8) as one experiment: three sizes, the same tokens, checkpoints along training.

    spec = gl.experiments.scaling.spec(steps=200, checkpoints=4, seeds=(0, 1))  # notebook 09's defaults
    gl.experiments.run(spec, out="runs/scaling")              # or: gatolab ablate scaling --out runs/scaling
    curve = gl.experiments.scaling.curve(spec, "runs/scaling")

One training run per (size, seed); arm `<size>_s<step>` evaluates that run's checkpoint at
`step` (`eval.step`: evaluation-only arms share their size's run), every arm on the same
tasks and rollout seeds. Figure 8's y axis: per-task normalised score, averaged within each
domain, then across domains (GATO_SPEC §6); its x axis: tokens processed by `step`, read from
the run's metrics (every size sees the same batches: same steps, batch and sequence length).

[open] The sizes, in the ratio of Gato's Table 5 shapes (79M: 8 layers x 768; 364M: 12 x 1536;
1.18B: 24 x 2048) scaled down to a 2-core CPU: layers 8:12:24 = 2:3:6, widths 768:1536:2048 =
3:6:8 -> 48, 96, 128, with 16-dimensional heads (3, 6, 8 of them) and feed-forward 4x width.
Their transformer blocks hold ~55k, ~0.33M and ~1.2M parameters (ratio 1 : 6 : 21; the paper's
totals, embeddings included, are 1 : 4.6 : 15). `sizes="paper"` uses the paper presets
themselves (for a GPU/TPU kernel).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.configs.protocols import SCALING_DATASETS, SCALING_WEIGHTS
from gatolab.experiments import stats
from gatolab.experiments.runner import CELL_FILE, cell_dir, collect, is_done
from gatolab.experiments.spec import Arm, ExperimentSpec, cells
from gatolab.model.config import block_param_count
from gatolab.model.count import abstract_model, count_params
from gatolab.train.loop import read_metrics

WORKBENCH_SIZES: dict[str, dict[str, int]] = {
    "s79m": {"num_layers": 2, "embed_dim": 48, "ff_dim": 192, "num_heads": 3, "head_dim": 16},
    "s364m": {"num_layers": 3, "embed_dim": 96, "ff_dim": 384, "num_heads": 6, "head_dim": 16},
    "s1_18b": {"num_layers": 6, "embed_dim": 128, "ff_dim": 512, "num_heads": 8, "head_dim": 16},
}
PAPER_SIZES = {"gato_79m": "gato_79m", "gato_364m": "gato_364m", "gato_1_18b": "gato_1_18b"}

BASE = {"text.vocab_size": 512, "text.corpus_chars": 100_000, "text.compact_ids": True, "data.workers": 2,
        "data.shard_size": 50, "data.datasets": SCALING_DATASETS, "mixture.weights": dict(SCALING_WEIGHTS),
        "eval.agent.prompt": "start", "eval.agent.temperature": 1.0, "model.resnet_channels": 8, "model.resnet_groups": 4,
        "log_every": 10}


def checkpoint_steps(steps: int, checkpoints: int) -> list[int]:
    """`checkpoints` evenly spaced steps ending at `steps`."""
    if steps < 1 or checkpoints < 1 or checkpoints > steps:
        raise ValueError(f"scaling: need 1 <= checkpoints <= steps, got checkpoints={checkpoints}, steps={steps}")
    return sorted({int(round(steps * (i + 1) / checkpoints)) for i in range(checkpoints)})


def spec(*, sizes: str | Mapping[str, Mapping[str, int]] = "workbench", steps: int = 200, checkpoints: int = 4,
         seeds: Sequence[int] = (0, 1), eval_episodes: int = 10, overrides: Mapping[str, Any] | None = None) -> ExperimentSpec:
    """Figure 8's experiment (module docstring).

    Args:
      sizes: "workbench" (the scaled-down shapes), "paper" (Table 5's presets), or
        {name: ModelConfig overrides}.
      steps: optimiser steps of every size (the same tokens: batch and length are shared).
      checkpoints: evaluated steps per run, evenly spaced, the last at `steps`.
      seeds: one run per size and seed.
      eval_episodes: rollouts per task per checkpoint.
      overrides: for every cell (e.g. {"batch_size": 16}).
    """
    if sizes == "workbench":
        shapes: dict[str, dict[str, Any]] = {k: {f"model.{f}": v for f, v in s.items()} for k, s in WORKBENCH_SIZES.items()}
    elif sizes == "paper":
        shapes = {k: {"preset": v} for k, v in PAPER_SIZES.items()}
    elif isinstance(sizes, Mapping) and sizes:
        shapes = {k: {f"model.{f}": v for f, v in s.items()} for k, s in sizes.items()}
    else:
        raise ValueError(f"scaling: sizes must be 'workbench', 'paper' or a mapping name -> model overrides, got {sizes!r}")
    at = checkpoint_steps(steps, checkpoints)
    every = at[0] if len(at) == 1 else int(np.gcd.reduce(at))
    arms = tuple(Arm(f"{name}_s{s}", {**shape, "eval.step": s}, tags={"size": name, "step": s})
                 for name, shape in shapes.items() for s in at)
    train = {"steps": steps, "ckpt_every": every, "keep": len(at) + 1, "optim.warmup_steps": max(1, min(20, steps // 10))}
    last = f"{next(iter(shapes))}_s{at[-1]}"
    return ExperimentSpec(
        "scaling", arms, config="tiny", overrides={**BASE, **train, "eval.episodes": eval_episodes, **dict(overrides or {})},
        seeds=tuple(int(s) for s in seeds), baseline=last,
        question="Gato Figure 8: at equal tokens, does a bigger network score higher (normalised score per task, "
                 f"averaged per domain then across domains), for {len(shapes)} sizes in Table 5's shape ratios?")


def tokens_at(train_dir: str | os.PathLike, step: int) -> float:
    """Tokens the run had processed by `step`, from its metrics lines (each line sums its window)."""
    lines = [m for m in read_metrics(train_dir) if "loss" in m and "tokens" in m and m["step"] <= step]
    return float(sum(m["tokens"] for m in lines))


def curve(spec: ExperimentSpec, out: str | os.PathLike, reps: int = 2000) -> dict[str, Any]:
    """Figure 8's data: per size, per checkpoint, tokens processed and the normalised score (Gato's
    aggregate, and per domain) with 95% stratified-bootstrap intervals over seeds; plus each
    size's parameter count. Only checkpoints every seed of which is evaluated appear."""
    all_cells = cells(spec)
    rows = collect(spec, out)
    tags = {a.name: a.tags for a in spec.arms}
    complete = {a for a in tags if all(is_done(Path(out), c) for c in all_cells if c.arm == a)}
    rows = [r for r in rows if r["arm"] in complete]
    points: dict[str, list[dict[str, Any]]] = {}
    if rows:
        base = spec.baseline_arm if spec.baseline_arm in complete else sorted(complete)[0]
        s = stats.summarize(rows, base, reps=reps)
        for a in sorted(complete, key=lambda a: (list(tags).index(a))):
            size, step = tags[a]["size"], tags[a]["step"]
            records = [json.loads((cell_dir(Path(out), c) / CELL_FILE).read_text()) for c in all_cells if c.arm == a]
            tokens = [tokens_at(Path(out) / r["train_dir"], step) for r in records]
            points.setdefault(size, []).append({
                "step": step, "tokens": float(np.mean(tokens)), "score": s["arms"][a]["gato"],
                "per_domain": {k.split("/", 1)[1]: v for k, v in s["arms"][a].items() if k.startswith("domain/")},
                "evaluated_steps": sorted({r["evaluated_step"] for r in records})})
    params = {}
    for size in dict.fromkeys(t["size"] for t in tags.values()):
        owner = next(c for c in all_cells if tags[c.arm]["size"] == size)
        params[size] = _parameter_count(owner.config)
    return {"sizes": list(params), "parameters": params, "points": points, "folder": str(Path(out))}


def _parameter_count(config) -> dict[str, int]:
    """A config's network: all parameters and those of the transformer blocks (nothing allocated)."""
    mc = config.model_config()
    return {"total": count_params(abstract_model(mc)), "blocks": block_param_count(mc)}
