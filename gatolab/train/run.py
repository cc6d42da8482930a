"""`gatolab train` and its Python twin `gl.train.train(config)`: a run from its config, end to end.

    gatolab train --config demo --out runs/x model.num_layers=6 optim.peak_lr=3e-4
    gl.train.train("demo", out="runs/x", overrides=["model.num_layers=6"])
    gl.train.train(gl.configs.load("runs/x"), out="runs/y")      # repeat a run from its folder alone

One call: the config's datasets are generated or found (`gl.data.generation.prepare`,
resumable), the tokenizer and text model built, the mixture and the network made, and the
loop run; re-running the same call resumes from the latest checkpoint. The run folder
records the resolved config (`run_config.json`, with the step count actually planned) next
to `metrics.jsonl`, `config.json` and `checkpoints/`.

With `budget_minutes` the step count comes from the clock: a short probe run
(`probe_steps`, in `<out>/probe`) measures the step time without compilation, and the run
gets as many steps as fit in 95% of the budget, so its cosine schedule ends on time;
`train.max_seconds` (the budget) stops it anyway. A resumed budget run keeps the steps it
planned.

Multi-host: start the same command on every host with `--coordinator HOST:PORT
--num-processes N --process-id I` (or `--distributed` where JAX finds the hosts itself);
`jax.distributed.initialize` runs before anything touches a device, and each host reads its
own rows of every global batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gatolab import configs, io_utils
from gatolab.configs.base import RunConfig
from gatolab.data.generation import prepare
from gatolab.data.mixture import Mixture
from gatolab.data.synthetic import SyntheticBatches
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.text import default_text_tokenizer
from gatolab.train.checkpoint import tokenizer_meta
from gatolab.train.loop import Trainer, TrainConfig, read_metrics


def tokenizer_for(config: RunConfig) -> GatoTokenizer:
    """The Gato tokenizer a config trains with: its id layout and its SentencePiece text model."""
    text = default_text_tokenizer(config.text.vocab_size, max_chars=config.text.corpus_chars)
    return GatoTokenizer(config.tokenizer_config(), text=text)


def build_source(config: RunConfig, train_config: TrainConfig, data: Sequence[str | os.PathLike],
                 tokenizer: GatoTokenizer | None, workers: int = 0):
    """The batch source of a run: the mixture over `data`, or synthetic episodes (smoke runs
    of the loop; they bring their own small text model)."""
    process_index, process_count = jax.process_index(), jax.process_count()
    if train_config.batch_size % process_count:
        raise ValueError(f"batch_size {train_config.batch_size} is not divisible by the {process_count} processes")
    local = train_config.batch_size // process_count
    if config.data.source == "synthetic":
        return SyntheticBatches(train_config.batch_size, train_config.sequence_length, train_config.max_patches,
                                seed=train_config.seed, shard_index=process_index, shard_count=process_count)
    if not data:
        raise ValueError("no datasets to train on: the config's data section names none and no --data was given")
    mix = Mixture(config.mixture_config(), list(data), tokenizer)
    it = mix.iterator(local, workers=workers, process_index=process_index, process_count=process_count)
    it.domain_names = [ds.name for ds in mix.datasets]
    return it


def train(config: RunConfig | str = "tiny", *, out: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] = (),
          data: Sequence[str | os.PathLike] | None = None, workers: int = 0, progress: bool = True,
          on_metrics=None) -> dict[str, Any]:
    """Trains the run `config` describes into `out`; resumes if `out` holds checkpoints.

    Args:
      config: a `RunConfig`, a config name (`gl.configs.names()`), a run folder or a
        run_config.json.
      out: the run folder.
      overrides: "key=value" changes (`gl.configs.overrides`).
      data: dataset folders to train on instead of generating the config's datasets.
      workers: grain worker processes for the mixture.
      progress: tqdm bars.
      on_metrics: called with every metrics line (live plots).

    Returns:
      The loop's result (step, last metrics, checkpoint folder, ...) plus the resolved
      `config`, the `data` folders, `planned_steps` and (budget runs) the probe's
      `seconds_per_step`.
    """
    config = configs.load(config, overrides)
    if config.data.source == "synthetic" and config.text.compact_ids:
        raise ValueError("text.compact_ids applies to datasets; the synthetic source brings its own tokenizer")
    out = Path(out)
    if config.data.source == "datasets" and data is None:
        data = prepare(config.data, config.data.root or out / "data", progress=progress)
    data = [str(d) for d in (data or [])]
    tokenizer = tokenizer_for(config) if config.data.source == "datasets" else None
    steps, per_step = _planned_steps(config, out, data, workers, progress)
    train_config = config.train_config(steps)
    if config.budget_minutes is not None:
        train_config = dataclasses.replace(
            train_config, max_seconds=train_config.max_seconds or 60.0 * config.budget_minutes,
            ckpt_every=max(train_config.ckpt_every, steps // 4))
    recorded = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    source = build_source(config, train_config, data, tokenizer, workers)
    tokenizer = tokenizer or source.tokenizer
    meta = {**tokenizer_meta(tokenizer), "mixture": {"kind": config.data.source, "data": data},
            "run_config": recorded.to_json()}
    trainer = Trainer(train_config, out, source, extra_meta=meta, domain_names=getattr(source, "domain_names", None))
    if jax.process_index() == 0:
        io_utils.atomic_write_json(out / configs.RUN_CONFIG_FILE, recorded.to_json())
    result = trainer.run(progress=progress, on_metrics=on_metrics)
    return {**result, "config": recorded, "data": data, "planned_steps": steps, "seconds_per_step": per_step}


def _planned_steps(config: RunConfig, out: Path, data: list[str], workers: int, progress: bool) -> tuple[int, float | None]:
    """(steps, probe seconds per step): `train.steps`, or for a budget run what fits in it."""
    if config.budget_minutes is None:
        return config.train.steps, None
    recorded = out / configs.RUN_CONFIG_FILE
    if recorded.exists():  # a resumed budget run keeps the steps it planned (else it would not resume exactly)
        before = RunConfig.from_json(json.loads(recorded.read_text()))
        same = dataclasses.replace(before, train=dataclasses.replace(before.train, steps=config.train.steps))
        if same.to_json() != config.to_json():
            raise ValueError(f"run folder {out} holds a run of another config ({recorded}); use another --out")
        return before.train.steps, None
    probe = dataclasses.replace(config, budget_minutes=None, train=dataclasses.replace(
        config.train, steps=config.probe_steps, log_every=2, ckpt_every=config.probe_steps, max_seconds=None))
    res = train(probe, out=out / "probe", data=data, workers=workers, progress=False)
    per_step = steady_step_seconds(out / "probe") or res["seconds"] / config.probe_steps
    steps = max(5, int(0.95 * 60.0 * config.budget_minutes / per_step))
    if progress:
        print(f"probe: {per_step:.3f} s/step -> {steps} steps in {config.budget_minutes:g} min", flush=True)
    return steps, per_step


def steady_step_seconds(run_dir: str | os.PathLike) -> float | None:
    """Seconds per step of a run without compilation: the median interval between its metric lines
    over the windows that compiled no new (target, patch) bucket (each first bucket costs seconds of
    XLA compilation that a long run pays once)."""
    lines = read_metrics(run_dir)
    per = [((b["time"] - a["time"]) / max(1, b["step"] - a["step"]), b.get("compiled", 0)) for a, b in zip(lines, lines[1:])]
    clean = [sec for sec, compiled in per if compiled == 0]
    if clean:
        return float(np.median(clean))
    return min((sec for sec, _ in per), default=None)


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train a run from its config (resumes from --out)")
    p.add_argument("--config", default="tiny", help="a config name (gatolab/configs/), a run folder or a run_config.json")
    p.add_argument("--out", required=True)
    p.add_argument("--data", nargs="*", default=None, help="dataset folders to train on (default: the config's, generated)")
    p.add_argument("--preset", default=None, help="model preset (tiny, gato_79m, gato_364m, gato_1_18b): preset=...")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps: steps=...")
    p.add_argument("--train-preset", default=None, choices=["tiny", "paper"],
                   help="the training recipe of TrainConfig.preset_config (paper: GATO_SPEC §4's batch 512 x 1024, 1M steps)")
    p.add_argument("--init-from", default=None, metavar="RUN_OR_CHECKPOINT",
                   help="fine-tune: start from this run's parameters (a fresh optimiser and schedule): init_from=...")
    p.add_argument("--freeze", nargs="+", default=None, metavar="PREFIX",
                   help="parameter path prefixes kept at their values, e.g. embed: freeze=(...)")
    p.add_argument("--episodes", type=int, default=None, metavar="K",
                   help="train on each task's first K episodes that pass the filter (fine-tuning sets): "
                        "mixture.episodes_per_task=K")
    p.add_argument("--mesh", default=None, help="data,fsdp,tensor sizes, e.g. 8,1,1 or 2,4,1")
    p.add_argument("--workers", type=int, default=0, help="grain worker processes")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host with auto-detection (Cloud TPU pods, SLURM): jax.distributed.initialize()")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (multi-host, explicit)")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE (gatolab config keys lists them), e.g. model.num_layers=6")
    p.set_defaults(func=_cli_train)


def cli_config(args) -> RunConfig:
    """The config a `gatolab train`-style command line describes (shared with `gatolab config show`)."""
    config = configs.load(args.config)
    if getattr(args, "train_preset", None):
        config = config.with_training_recipe(args.train_preset)
    flags = {"preset": getattr(args, "preset", None), "steps": getattr(args, "steps", None),
             "init_from": getattr(args, "init_from", None), "mixture.episodes_per_task": getattr(args, "episodes", None)}
    if getattr(args, "freeze", None):
        flags["freeze"] = tuple(args.freeze)
    if getattr(args, "mesh", None):
        flags["mesh_shape"] = tuple(int(x) for x in args.mesh.split(","))
    config = configs.apply(config, {k: v for k, v in flags.items() if v is not None})
    return configs.apply(config, list(args.overrides))


def _cli_train(args) -> int:
    if args.coordinator:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    elif args.distributed:
        jax.distributed.initialize()
    res = train(cli_config(args), out=args.out, data=args.data, workers=args.workers, progress=not args.no_progress)
    if jax.process_index() == 0:
        last = res["last"]
        print(f"trained to step {res['step']} (resumed: {res['resumed']}); loss {last.get('loss', float('nan')):.4f}; "
              f"checkpoints in {res['checkpoint']}")
    return 0
