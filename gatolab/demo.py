"""The main job: data -> a tiny Gato trained on CPU for a bounded time -> evaluation -> report.

    python -m gatolab.demo --out runs/demo --train-minutes 20 [KEY=VALUE ...]

It runs the `demo` config (gatolab/configs/demo.py: what it trains on, with which network and
weights, for how long); any config key can be overridden. Stages (each prints how long it
took; `OUT/demo.json` records everything):
  1. data      expert episodes of a small multi-domain mixture: BabyAI, Meta-World, classic
               control, text, vision-language (`gl.data.generation.prepare`).
  2. train     a `tiny`-class Gato on the mixture (§2.3 filtering and prompts) for
               `--train-minutes` (`gl.train.train`): a short probe run measures the step
               time, the run gets as many steps as fit (so the cosine schedule ends on
               time), and `max_seconds` bounds it anyway.
  3. evaluate  every control task of the mixture, `--episodes` rollouts each, prompted with
               a stored expert demonstration: normalised scores per task and domain,
               Figure 5 (GATO_SPEC §6); text and vision-language by held-out likelihood.
  4. report    notebooks/06_report executed into OUT/06_report.ipynb and its HTML export
               (plots and videos embedded: readable offline).
Re-running resumes: finished datasets and training are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gatolab import configs, io_utils, notebooks
from gatolab.configs.base import RunConfig
from gatolab.data.generation import prepare
from gatolab.evaluate.run import evaluate_run
from gatolab.train.run import train

def _stage(name: str, timings: dict[str, float]):
    class _T:
        def __enter__(self):
            print(f"\n=== {name} ===", flush=True)
            self.t = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.t, 1)
            print(f"=== {name}: {timings[name]:.0f} s ===", flush=True)

    return _T()


def run(out: str | os.PathLike = "runs/demo", train_minutes: float | None = None, episodes: int | None = None,
        workers: int | None = None, smoke: bool = False, overrides: Sequence[str] | Mapping[str, Any] = (),
        temperature: float | None = None, report: bool = True, tasks: Mapping[str, Sequence[str] | None] | None = None,
        paper_vocab: bool = False, table1_weights: bool = False) -> dict[str, Any]:
    """Runs the four stages of the `demo` config (`demo_smoke` with `smoke`) into `out`; returns (and
    writes to OUT/demo.json) what happened.

    Args:
      out: output folder (data/, train/ (with its probe/), eval/, demo.json, 06_report.{ipynb,html}).
      train_minutes: the training budget (`budget_minutes`; the probe and compilation come on top).
      episodes: evaluation rollouts per control task (`eval.episodes`; the paper: 50).
      workers: processes for data generation (`data.workers`).
      smoke: the `demo_smoke` config (tests): tiny data, the 512-piece text model, 60-step episodes.
      overrides: any "key=value" config changes (e.g. "model.num_layers=2").
      temperature: action sampling temperature (`agent.temperature`; the paper samples: 1.0).
      report: execute notebooks/06_report.
      tasks: dataset -> tasks (None: all of its domain's) to keep of the config's datasets.
      paper_vocab: the paper's 33,027-id layout with a 32,000-piece text model.
      table1_weights: the registry's Table-1 weights instead of the demo's.
    """
    if train_minutes is not None and not train_minutes > 0:
        raise ValueError(f"train_minutes must be > 0, got {train_minutes}")
    if episodes is not None and episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    config = configs.get("demo_smoke" if smoke else "demo", overrides)
    flags = {"budget_minutes": train_minutes, "eval.episodes": episodes, "data.workers": workers,
             "agent.temperature": temperature}
    config = configs.apply(config, {k: v for k, v in flags.items() if v is not None})
    if paper_vocab:
        config = configs.apply(config, {"text.vocab_size": 32_000, "text.compact_ids": False})
    if table1_weights:
        config = configs.apply(config, {"mixture.weights": None})
    if tasks is not None:
        config = _keep_datasets(config, tasks)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    with _stage("1/4 data", timings):
        dirs = prepare(config.data, out / "data")

    with _stage("2/4 train", timings):
        res = train(config, out=out / "train", data=dirs)

    with _stage("3/4 evaluate", timings):
        ev = evaluate_run(config, out / "train", out=out / "eval", data=dirs)
        results, language = ev["control"], ev["language"]

    summary = {"out": str(out), "config": config.name, "timings_s": timings,
               "train": {"steps": res["step"], "planned_steps": res["planned_steps"], "stopped_by_time": res["stopped_by_time"],
                         "seconds_per_step": res["seconds_per_step"], "last": res["last"]},
               "aggregate": results.aggregate if results is not None else {},
               "language": language, "tasks": [r["task"] for r in results.rows] if results is not None else [],
               "episodes": config.eval.episodes, "temperature": config.eval.agent.temperature, "smoke": smoke}
    io_utils.atomic_write_json(out / "demo.json", summary)
    if report:
        with _stage("4/4 report", timings):
            rep = notebooks.run("06_report", out, {"RUN_DIR": str(out), "SMOKE": smoke})
            summary["report"] = {"notebook": rep["notebook"], "html": rep.get("html")}
        summary["timings_s"] = timings
        io_utils.atomic_write_json(out / "demo.json", summary)
    return summary


def _keep_datasets(config: RunConfig, tasks: Mapping[str, Sequence[str] | None]) -> RunConfig:
    """The config restricted to the datasets named in `tasks` (and their tasks), weights with them."""
    known = config.data.datasets
    unknown = sorted(set(tasks) - set(known))
    if unknown:
        raise ValueError(f"demo tasks: unknown domain {unknown[0]!r} (expected some of {sorted(known)})")
    datasets = {name: dataclasses.replace(known[name], tasks=tuple(t) if t is not None else known[name].tasks)
                for name, t in tasks.items()}
    weights = config.mixture.weights
    mixture = config.mixture if weights is None else dataclasses.replace(
        config.mixture, weights={d: w for d, w in weights.items() if d in datasets})
    return dataclasses.replace(config, data=dataclasses.replace(config.data, datasets=datasets), mixture=mixture)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gatolab.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--train-minutes", type=float, default=None, help="training budget (default: the config's, 20)")
    ap.add_argument("--episodes", type=int, default=None, help="evaluation rollouts per control task (paper: 50)")
    ap.add_argument("--workers", type=int, default=None, help="processes for data generation")
    ap.add_argument("--temperature", type=float, default=None, help="action sampling temperature (<= 0: greedy)")
    ap.add_argument("--smoke", action="store_true", help="the demo_smoke config: tiny data, tiny text model, short episodes")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--paper-vocab", action="store_true", help="the paper's 33,027-id layout (32,000 text pieces)")
    ap.add_argument("--table1-weights", action="store_true", help="Table 1's mixture proportions, not the demo's")
    ap.add_argument("overrides", nargs="*", help="config overrides KEY=VALUE, e.g. model.num_layers=4 optim.peak_lr=3e-4")
    args = ap.parse_args(argv)

    s = run(args.out, args.train_minutes, args.episodes, args.workers, args.smoke, args.overrides, args.temperature,
            report=not args.no_report, paper_vocab=args.paper_vocab, table1_weights=args.table1_weights)
    print("\n=== gatolab demo: done ===")
    for d, v in s["aggregate"]["per_domain"].items():
        sr = "" if v["success_rate"] is None else f", success {100 * v['success_rate']:.0f}%"
        print(f"  {d:10s} {100 * v['normalised_score']:6.1f}% of expert over {v['tasks']} tasks{sr}")
    for lang in s["language"]:
        print(f"  {lang['domain']}/{lang['task']}: held-out perplexity {lang['perplexity']:.1f}, "
              f"next-token accuracy {100 * lang['next_token_accuracy']:.1f}%")
    print(f"  stage times (s): {s['timings_s']}")
    print(f"  results: {s['out']}/eval/results.csv · summary: {s['out']}/demo.json")
    if "report" in s:
        print(f"  report: {s['report']['html']}  (open in a browser; plots and videos work offline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
