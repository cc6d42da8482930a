"""Running an experiment: data once, each training run once, each (arm, seed) cell evaluated, one table.

    gl.experiments.run("prompt_at_eval", out="runs/abl")              # or: gatolab ablate prompt_at_eval --out runs/abl
    gl.experiments.run(spec, out="runs/abl", parallel=2)              # cells as local processes
    gl.experiments.run(spec, out="runs/abl", launcher="slurm")        # cells as Slurm jobs (submitit)

Layout of `out`:

    spec.json                        the spec as run (a re-run checks it is the same)
    data/<dataset key>/<dataset>/    datasets, each shared by every cell that names it the same way
    cells/<arm>/seed<s>/train/       a training run (cells that differ only in evaluation share one;
                                     an arm with `init_from` starts from that arm's run of its seed)
    cells/<arm>/seed<s>/eval/        the cell's evaluation: results.json, language.json
    cells/<arm>/seed<s>/trained.json its training run returned (runs that start from it may begin)
    cells/<arm>/seed<s>/cell.json    written last: the cell is done (its config, train folder, timings)
    cells/<arm>/seed<s>/tb/          TensorBoard events: training curves and final scores
    jax_cache/                       JAX's persistent compilation cache, shared by the units
    results.csv, results.parquet     the long table: arm, seed, task, domain, episode, return,
                                     normalised_score, success (one row per rollout)
    summary.json, summary.md         per-arm statistics with intervals, differences from the baseline

Three phases, each a list of units that are plain commands (`gatolab ablate SPEC --out DIR
--phase train --arm A --seed S`), so any launcher can run them: data (one unit per dataset),
train (one per training run, in waves: a fine-tuning run after the run it starts from),
eval (one per evaluated cell); then the table. A train-only arm (`Arm(evaluate=False)`, a
pretraining run) writes its `cell.json` when its training ends; a retrieval arm
(`eval.policy="retrieval"`) trains nothing. Re-running resumes:
datasets and checkpoints resume themselves (atomic shards, orbax steps), a cell with a
`cell.json` is skipped, an interrupted evaluation is redone from scratch, and the table is
rebuilt from the finished cells (written atomically), so a SIGKILL at any moment loses
nothing and duplicates no row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tensorboardX import SummaryWriter

from gatolab import configs, io_utils, launch
from gatolab.configs import overrides as config_overrides
from gatolab.configs.base import DataConfig, RunConfig
from gatolab.data.generation import prepare
from gatolab.evaluate.run import evaluate_run
from gatolab.experiments import stats
from gatolab.experiments.spec import Cell, ExperimentSpec, cells, load, train_waves
from gatolab.train.loop import read_metrics
from gatolab.train.run import train

CELL_FILE = "cell.json"
TRAINED_FILE = "trained.json"  # in the owner cell's folder: its training run returned
TABLE_COLUMNS = ("arm", "seed", "task", "domain", "episode", "return", "normalised_score", "success")
LAUNCHERS = launch.LAUNCHERS


# ---------------------------------------------------------------------------------------
# Where things go
# ---------------------------------------------------------------------------------------
def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.arm / f"seed{cell.seed}"


def dataset_units(config: RunConfig) -> dict[str, DataConfig]:
    """dataset key -> a data section holding that one dataset of `config` (its folder's identity)."""
    out = {}
    for name, ds in config.data.datasets.items():
        one = dataclasses.replace(config.data, datasets={name: ds}, paths=())
        out[one.identity()] = one
    return out


def dataset_keys(all_cells: Sequence[Cell]) -> set[str]:
    """The dataset folders an experiment's cells use (one per distinct dataset)."""
    return {k for c in all_cells for k in dataset_units(c.config)}


def cell_data(out: Path, cell: Cell) -> list[str]:
    """The cell's dataset folders, `data/<dataset key>/<name>` (generated, or found resuming), then `data.paths`.
    A dataset that two configs name the same way is one folder, whatever else their data sections hold."""
    dirs = []
    for key, one in dataset_units(cell.config).items():
        dirs += prepare(one, out / "data" / key, progress=False)
    return dirs + [str(p) for p in cell.config.data.paths]


def train_owner(all_cells: Sequence[Cell], cell: Cell) -> Cell:
    """The cell whose folder holds the training run `cell` uses (the first with its training key)."""
    if not cell.trains:
        raise ValueError(f"cell {cell.name} trains no network (eval.policy={cell.config.eval.policy!r})")
    return next(c for c in all_cells if c.train_key == cell.train_key)


def train_dir(out: Path, all_cells: Sequence[Cell], cell: Cell) -> Path | None:
    """Where the run `cell` evaluates lives (None: the cell needs none)."""
    return cell_dir(out, train_owner(all_cells, cell)) / "train" if cell.trains else None


def is_done(out: Path, cell: Cell) -> bool:
    return (cell_dir(out, cell) / CELL_FILE).exists()


# ---------------------------------------------------------------------------------------
# The units
# ---------------------------------------------------------------------------------------
def data_unit(spec: ExperimentSpec, out: str, data_key: str) -> list[str]:
    """Generates (or finds) one dataset: the one with key `data_key` in some cell's config."""
    for c in cells(spec):
        units = dataset_units(c.config)
        if data_key in units:
            return prepare(units[data_key], Path(out) / "data" / data_key, progress=False)
    raise ValueError(f"experiment {spec.name!r}: no cell names a dataset with key {data_key!r}")


def compile_cache(out: Path) -> None:
    """Points JAX's persistent compilation cache at `<out>/jax_cache` (unless one is set already):
    an experiment's runs share shapes, so every unit after the first of a kind loads its compiled
    train step and decoder instead of compiling them (measured on the tiny preset: 43.6 s -> 29.2 s
    for a 3-step run). Ineffective, and harmless, in a process that has compiled before."""
    if not jax.config.jax_compilation_cache_dir and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(out / "jax_cache"))


def train_unit(spec: ExperimentSpec, out: str, arm: str, seed: int) -> dict[str, Any]:
    """Trains (or resumes) the run of cell (arm, seed), in its owner's folder; a fine-tuning run
    starts from the finished run of its `init_from` arm (same seed)."""
    all_cells, out_p = cells(spec), Path(out)
    compile_cache(out_p)
    owner = train_owner(all_cells, _find(all_cells, arm, seed))
    config = owner.config
    if owner.init_from is not None:
        source = _find(all_cells, owner.init_from, owner.seed)
        source_dir = train_dir(out_p, all_cells, source)
        if not _trained(out_p, all_cells, source):
            raise ValueError(f"cell {owner.name} starts from arm {owner.init_from!r} (seed {owner.seed}), whose training "
                             f"has not finished ({source_dir}); train that arm first (--phase train --arm {owner.init_from})")
        config = configs.apply(config, {"train.init_from": str(source_dir)})
    tdir = train_dir(out_p, all_cells, owner)
    res = train(config, out=tdir, data=cell_data(out_p, owner), progress=False)
    summary = {"step": res["step"], "planned_steps": res["planned_steps"], "seconds": res["seconds"]}
    io_utils.atomic_write_json(cell_dir(out_p, owner) / TRAINED_FILE, summary)  # runs starting from it may go
    for c in all_cells:  # train-only cells of this run are done when it is
        if c.train_key == owner.train_key and not c.evaluate and not is_done(out_p, c):
            record = {"arm": c.arm, "seed": c.seed, "evaluated": False, "train_dir": str(tdir.relative_to(out_p)),
                      "trained_steps": _trained_steps(tdir), "training": training_totals(tdir),
                      "config": config.to_json(), "rows": []}
            _write_events(cell_dir(out_p, c) / "tb", tdir, record)
            io_utils.atomic_write_json(cell_dir(out_p, c) / CELL_FILE, record)
    return summary


def _trained(out: Path, all_cells: Sequence[Cell], cell: Cell) -> bool:
    """Whether the run `cell` uses has finished training: its owner's `trained.json` (written when
    `train` returns), or a finished cell of that run."""
    owner = train_owner(all_cells, cell)
    return (cell_dir(out, owner) / TRAINED_FILE).exists() or any(
        is_done(out, c) for c in all_cells if c.train_key == cell.train_key)


def eval_unit(spec: ExperimentSpec, out: str, arm: str, seed: int) -> dict[str, Any]:
    """Evaluates cell (arm, seed) and writes its rows and `cell.json` (skipped when done)."""
    all_cells, out_p = cells(spec), Path(out)
    compile_cache(out_p)
    cell = _find(all_cells, arm, seed)
    folder = cell_dir(out_p, cell)
    if is_done(out_p, cell):
        return json.loads((folder / CELL_FILE).read_text())
    if not cell.evaluate:
        raise ValueError(f"cell {cell.name} is train-only (evaluate=False): it has no evaluation")
    tdir = train_dir(out_p, all_cells, cell)
    dirs = cell_data(out_p, cell)
    t0 = time.perf_counter()
    ev = evaluate_run(cell.config, tdir, out=folder / "eval", data=dirs, progress=False)
    rows = cell_rows(cell, ev["control"].rows if ev["control"] is not None else [])
    record = {"arm": cell.arm, "seed": cell.seed, "train_dir": str(tdir.relative_to(out_p)) if tdir else None,
              "data": dirs, "eval_seconds": round(time.perf_counter() - t0, 1),
              "trained_steps": _trained_steps(tdir) if tdir else None, "training": training_totals(tdir) if tdir else {},
              "evaluated_step": ev["control"].config["checkpoint"]["step"] if tdir and ev["control"] is not None else None,
              "aggregate": ev["control"].aggregate if ev["control"] is not None else {}, "language": ev["language"],
              "config": cell.config.to_json(), "rows": rows}
    _write_events(folder / "tb", tdir, record)
    io_utils.atomic_write_json(folder / CELL_FILE, record)  # last: the cell is done
    return record


def _find(all_cells: Sequence[Cell], arm: str, seed: int) -> Cell:
    for c in all_cells:
        if c.arm == arm and c.seed == int(seed):
            return c
    raise ValueError(f"no cell arm={arm!r} seed={seed} (cells: {[c.name for c in all_cells]})")


def _trained_steps(tdir: Path) -> int | None:
    lines = read_metrics(tdir)
    return int(lines[-1]["step"]) if lines else None


def training_totals(tdir: str | os.PathLike) -> dict[str, float]:
    """What a run's training processed, from its metrics lines: steps, seconds of logged steps
    (compilation included), tokens and timesteps seen, and their rates. Lines written before
    the loop logged tokens and timesteps (older runs) give only the steps."""
    lines = [m for m in read_metrics(tdir) if "loss" in m]
    out: dict[str, float] = {"steps": float(lines[-1]["step"]) if lines else 0.0}
    if lines and all("window_seconds" in m for m in lines):
        seconds = sum(m["window_seconds"] for m in lines)
        tokens, timesteps = sum(m["tokens"] for m in lines), sum(m["timesteps"] for m in lines)
        out.update(seconds=seconds, tokens=float(tokens), timesteps=float(timesteps),
                   tokens_per_s=tokens / max(seconds, 1e-9), timesteps_per_s=timesteps / max(seconds, 1e-9))
    return out


def cell_rows(cell: Cell, results_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One long-table row per rollout of every task the cell evaluated without error."""
    out = []
    for r in results_rows:
        if r.get("error") is not None:
            raise RuntimeError(f"cell {cell.name}: task {r['task']} failed in evaluation: {r['error']}")
        gap = r["expert_return"] - r["random_return"]
        successes = r.get("successes") or [None] * len(r["returns"])
        for i, (ret, ok) in enumerate(zip(r["returns"], successes)):
            out.append({"arm": cell.arm, "seed": cell.seed, "task": r["task"], "domain": r["domain"], "episode": i,
                        "return": float(ret), "normalised_score": float((ret - r["random_return"]) / gap),
                        "success": ok})
    return out


def _write_events(folder: Path, tdir: Path | None, record: Mapping[str, Any]) -> None:
    """TensorBoard events of a cell, rewritten whole (atomically): its training curves, then its scores."""
    with io_utils.atomic_directory(folder, replace=True) as tmp:
        writer = SummaryWriter(logdir=str(tmp))
        for line in read_metrics(tdir) if tdir is not None else []:
            for k, v in line.items():
                if k not in ("step", "time") and isinstance(v, (int, float)) and np.isfinite(v):
                    writer.add_scalar(f"train/{k}", v, int(line["step"]))
        step = record.get("evaluated_step") or record.get("trained_steps") or 0
        agg = record.get("aggregate") or {}
        for d, v in agg.get("per_domain", {}).items():
            writer.add_scalar(f"eval/normalised_score/{d}", v["normalised_score"], step)
        if agg.get("overall") is not None:
            writer.add_scalar("eval/normalised_score/overall", agg["overall"], step)
        writer.close()


# ---------------------------------------------------------------------------------------
# The table and the summary
# ---------------------------------------------------------------------------------------
def _training_by_arm(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per arm, the mean over its finished cells' records of `training_totals` (what each arm's training processed)."""
    by_arm: dict[str, list[dict[str, float]]] = {}
    for r in records:
        if r.get("training"):
            by_arm.setdefault(r["arm"], []).append(r["training"])
    out = {}
    for arm, ts in by_arm.items():
        keys = set.intersection(*(set(t) for t in ts))
        out[arm] = {k: float(np.mean([t[k] for t in ts])) for k in sorted(keys)} | {"cells": float(len(ts))}
    return out


def _training_markdown(training: Mapping[str, Mapping[str, float]]) -> str:
    if not any("tokens" in t for t in training.values()):
        return ""
    lines = ["", "## Training per arm (mean over seeds)", "",
             "| arm | steps | seconds | tokens | timesteps | tokens/s | timesteps/s |", "|---|---|---|---|---|---|---|"]
    for arm, t in training.items():
        if "tokens" in t:
            lines.append(f"| {arm} | {t['steps']:.0f} | {t['seconds']:.0f} | {t['tokens']:,.0f} | {t['timesteps']:,.0f} | "
                         f"{t['tokens_per_s']:,.0f} | {t['timesteps_per_s']:,.1f} |")
    return "\n".join(lines) + "\n"


def _finished_records(spec: ExperimentSpec, out_p: Path) -> list[dict[str, Any]]:
    """The `cell.json` of every finished cell, in cell order."""
    return [json.loads((cell_dir(out_p, c) / CELL_FILE).read_text()) for c in cells(spec) if is_done(out_p, c)]


def collect(spec: ExperimentSpec, out: str | os.PathLike) -> list[dict[str, Any]]:
    """The long table from every finished cell (a pure function of the cell folders)."""
    return [row for record in _finished_records(spec, Path(out)) for row in record["rows"]]


def write_table(spec: ExperimentSpec, out: str | os.PathLike, reps: int = 2000) -> dict[str, Any] | None:
    """results.csv / results.parquet / summary.json / summary.md from the finished cells (atomically)."""
    out_p = Path(out)
    records = _finished_records(spec, out_p)  # each cell.json read once
    rows = [row for record in records for row in record["rows"]]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS)
    w.writeheader()
    w.writerows(rows)
    io_utils.atomic_write_text(out_p / "results.csv", buf.getvalue())
    _write_parquet(out_p / "results.parquet", rows)
    all_cells = cells(spec)
    done = [c for c in all_cells if is_done(out_p, c)]
    summary = None
    arms_done = {c.arm for c in done if c.evaluate and all(is_done(out_p, d) for d in all_cells if d.arm == c.arm)}
    if spec.baseline_arm in arms_done:
        complete = [r for r in rows if r["arm"] in arms_done]
        summary = stats.summarize(complete, spec.baseline_arm, reps=reps)
    training = _training_by_arm(records)
    record = {"spec": spec.to_json(), "cells": len(all_cells), "done": len(done), "rows": len(rows),
              "complete_arms": sorted(arms_done), "summary": summary, "training": training}
    io_utils.atomic_write_json(out_p / "summary.json", record)
    head = f"# {spec.name}\n\n{spec.question}\n\n{len(done)}/{len(all_cells)} cells done; seeds {list(spec.seeds)}.\n\n"
    body = stats.markdown(summary) if summary else "No complete arm yet.\n"
    io_utils.atomic_write_text(out_p / "summary.md", head + body + _training_markdown(training))
    return summary


def _write_parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    import pyarrow as pa  # the envs extra (optional): the CSV carries the same table
    import pyarrow.parquet as pq

    table = pa.table({c: [r[c] for r in rows] for c in TABLE_COLUMNS}) if rows else pa.table({c: [] for c in TABLE_COLUMNS})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    io_utils.atomic_write_bytes(path, sink.getvalue().to_pybytes())


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------
def _launch(launcher: str, parallel: int, out: Path, fn: Callable, arg_lists: list[tuple],
            slurm: Mapping[str, Any] | None = None) -> list[Any]:
    """Runs fn(*args) for every args through `gatolab.launch` and waits for all of them."""
    if not arg_lists:
        return []
    with launch.executor(launcher, out / "submitit", parallel, slurm) as ex:
        jobs = [ex.submit(fn, *a) for a in arg_lists]
        return [j.result() for j in jobs]


def run(spec: ExperimentSpec | str, out: str | os.PathLike, *, overrides: Mapping[str, Any] | Sequence[str] = (),
        seeds: Sequence[int] | None = None, parallel: int = 1, launcher: str = "processes",
        phase: str | None = None, arm: str | None = None, seed: int | None = None,
        slurm: Mapping[str, Any] | None = None, reps: int = 2000, log: Callable[[str], Any] | None = print) -> dict[str, Any]:
    """Runs (or resumes) an experiment into `out`; returns summary.json's content.

    Args:
      spec: an `ExperimentSpec`, a ready ablation's name, or an experiment folder.
      out: the experiment folder.
      overrides: config overrides for every cell (e.g. {"budget_minutes": 5}), on top of the spec's.
      seeds: other seeds than the spec's.
      parallel: units run at once (`launcher="processes"`).
      launcher: "inline" (this process), "processes" (local, `parallel` at a time),
        "submitit-local" or "slurm" (submitit jobs; `slurm` holds their parameters, e.g.
        {"slurm_partition": "gpu", "gpus_per_node": 1}).
      phase, arm, seed: run only one phase ("data", "train", "eval", "table") or one cell's
        unit: the plain command a cluster array job runs.
    """
    spec = load(spec)
    extra = config_overrides.parse(overrides)
    if extra or seeds is not None:
        spec = spec.with_overrides(extra, seeds)
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if phase not in (None, "data", "train", "eval", "table"):
        raise ValueError(f"phase must be data, train, eval or table, got {phase!r}")
    all_cells = cells(spec)  # every bad spec fails here, before anything runs
    out_p = Path(out).resolve()
    _record_spec(spec, out_p)
    chosen = [c for c in all_cells if (arm is None or c.arm == arm) and (seed is None or c.seed == int(seed))]
    if not chosen:
        raise ValueError(f"no cell matches arm={arm!r} seed={seed!r} (arms {[a.name for a in spec.arms]}, seeds {list(spec.seeds)})")
    say = log or (lambda *_: None)
    t0 = time.perf_counter()
    if phase in (None, "data"):
        keys = sorted(dataset_keys(chosen))
        say(f"[{spec.name}] data: {len(keys)} dataset folder(s)")
        _launch(launcher, parallel, out_p, data_unit, [(spec, str(out_p), k) for k in keys], slurm)
    if phase in (None, "train"):
        runs = {c.train_key for c in all_cells if c.trains}
        pending = {c.train_key for c in chosen if c.trains and not is_done(out_p, c)}
        waves = [[c for c in wave if c.train_key in pending and c is train_owner(all_cells, c)]
                 for wave in train_waves(all_cells)]
        say(f"[{spec.name}] train: {sum(map(len, waves))} run(s) ({len(all_cells)} cells share {len(runs)})")
        for wave in waves:  # a fine-tuning run after the run it starts from
            _launch(launcher, parallel, out_p, train_unit, [(spec, str(out_p), o.arm, o.seed) for o in wave], slurm)
    if phase in (None, "eval"):
        todo = [c for c in chosen if c.evaluate and not is_done(out_p, c)]
        say(f"[{spec.name}] eval: {len(todo)} cell(s) to evaluate ({len(chosen) - len(todo)} done)")
        _launch(launcher, parallel, out_p, eval_unit, [(spec, str(out_p), c.arm, c.seed) for c in todo], slurm)
    summary = write_table(spec, out_p, reps=reps) if phase in (None, "table", "eval") else None
    if summary:
        for line in summary["sentences"]:
            say(f"[{spec.name}] {line}")
    say(f"[{spec.name}] {time.perf_counter() - t0:.0f} s; results in {out_p}")
    return json.loads((out_p / "summary.json").read_text()) if (out_p / "summary.json").exists() else {}


def _record_spec(spec: ExperimentSpec, out: Path) -> None:
    """Writes spec.json, or checks that the folder's spec is this one (cells of two specs never mix)."""
    path = out / "spec.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before != spec.to_json():
            raise ValueError(f"{out} holds another experiment ({path}: {before['name']!r}, arms "
                             f"{[a['name'] for a in before['arms']]}); use another --out, or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write_json(path, spec.to_json())


def remove_cell(out: str | os.PathLike, spec: ExperimentSpec, arm: str, seed: int) -> None:
    """Forgets a cell's evaluation (its training stays) so the next run re-evaluates it."""
    folder = cell_dir(Path(out), _find(cells(spec), arm, seed))
    for name in (CELL_FILE, "eval", "tb"):
        p = folder / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
