"""The main job: data -> a tiny Gato trained on CPU for a bounded time -> evaluation -> report.

    python -m gatolab.demo --out runs/demo --train-minutes 20

Stages (each prints how long it took; `OUT/demo.json` records everything):
  1. data      expert episodes of a small multi-domain mixture (gatolab/configs/demo.py): BabyAI,
               Meta-World, classic control, text, vision-language (`gl.data.generate`).
  2. train     a `tiny`-class Gato on the mixture (Table-1 weights, §2.3 filtering and
               prompts) for `--train-minutes`: a short probe run measures the step time,
               the run gets as many steps as fit (so the cosine schedule ends on time), and
               `max_seconds` bounds it anyway.
  3. evaluate  every control task of the mixture, `--episodes` rollouts each, prompted with
               a stored expert demonstration: normalised scores per task and domain,
               Figure 5 (GATO_SPEC §6); text and vision-language by held-out likelihood.
  4. report    notebooks/06_report executed into OUT/06_report.ipynb and its HTML export
               (plots and videos embedded: readable offline).
Re-running resumes: finished datasets and training are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gatolab import agent as ga
from gatolab import data, evaluate, io_utils, notebooks, train
from gatolab.configs import demo as demo_config
from gatolab.domains import registry
from gatolab.train import read_metrics
from gatolab.train.run import parse_overrides

def _stage(name: str, timings: dict[str, float]):
    class _T:
        def __enter__(self):
            print(f"\n=== {name} ===", flush=True)
            self.t = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.t, 1)
            print(f"=== {name}: {timings[name]:.0f} s ===", flush=True)

    return _T()


def run(out: str | os.PathLike = "runs/demo", train_minutes: float = 20.0, episodes: int = 20, workers: int = 2,
        smoke: bool = False, model_overrides: dict[str, Any] | None = None, temperature: float = 1.0,
        report: bool = True, tasks: dict[str, list[str] | None] | None = None, paper_vocab: bool = False,
        weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Runs the four stages into `out`; returns (and writes to OUT/demo.json) what happened.

    Args:
      out: output folder (data/, probe/, train/, eval/, demo.json, 06_report.{ipynb,html}).
      train_minutes: the training budget (the probe and compilation come on top).
      episodes: evaluation rollouts per control task (50 in the paper; 20 by default here).
      workers: processes for data generation.
      smoke: tiny data, the 512-piece text model, 60-step episodes (tests).
      model_overrides: `ModelConfig` fields over `demo_config.MODEL` (e.g. {"num_layers": 2}).
      temperature: action sampling temperature (the paper samples: 1.0).
      report: execute notebooks/06_report.
      tasks: domain -> tasks (None: all of the domain's) instead of `demo_config.TASKS`.
      paper_vocab: the paper's 33,027-id layout with a 32,000-piece text model instead of
        the compact `demo_config.TEXT_VOCAB` one.
      weights: mixture weights per domain instead of `demo_config.WEIGHTS` ("table1": the
        default mixture's `DEFAULT_WEIGHTS`).
    """
    tasks = dict(demo_config.TASKS if tasks is None else tasks)
    unknown = sorted(set(tasks) - set(demo_config.TASKS))
    if unknown:
        raise ValueError(f"demo tasks: unknown domain {unknown[0]!r} (expected some of {sorted(demo_config.TASKS)})")
    if train_minutes <= 0:
        raise ValueError(f"train_minutes must be > 0, got {train_minutes}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    counts = demo_config.SMOKE_EPISODES if smoke else demo_config.EPISODES
    text_vocab = 512 if smoke else (32_000 if paper_vocab else demo_config.TEXT_VOCAB)
    text_chars = 100_000 if smoke else None  # smoke: the tests' tiny text model
    overrides = {f"model.{k}": v for k, v in {**demo_config.MODEL, **(model_overrides or {})}.items()}
    if weights != "table1":
        weights = dict(demo_config.WEIGHTS if weights is None else weights)
        overrides["mixture.weights"] = {d: w for d, w in weights.items() if d in tasks}

    with _stage("1/4 data", timings):
        dirs = []
        for domain, domain_tasks in tasks.items():
            data.generate(domain, out / "data", tasks=domain_tasks, episodes=counts[domain], workers=workers, shard_size=100)
            dirs.append(str(out / "data" / domain))

    with _stage("2/4 train", timings):
        budget = train_minutes * 60
        n_probe = 6 if smoke else 40
        probe = train.train("tiny", out=out / "probe", steps=n_probe, data=dirs, text_vocab=text_vocab, text_chars=text_chars,
                            compact_vocab=not paper_vocab,
                            overrides={**overrides, "log_every": 2}, progress=False)
        per_step = _steady_step_seconds(out / "probe") or probe["seconds"] / n_probe
        steps = max(5 if smoke else 20, int(0.95 * budget / per_step))
        print(f"probe: {per_step:.3f} s/step -> {steps} steps in {train_minutes:g} min", flush=True)
        res = train.train("tiny", out=out / "train", steps=steps, data=dirs, text_vocab=text_vocab, text_chars=text_chars,
                          compact_vocab=not paper_vocab,
                          overrides={**overrides, "max_seconds": budget, "ckpt_every": max(50, steps // 4), "log_every": 10})

    control = [t for d in tasks if registry.entry(d).kind == "control" for t in (tasks[d] or data_tasks(out / "data" / d))]
    with _stage("3/4 evaluate", timings):
        cfg = ga.AgentConfig(prompt="start", temperature=temperature)
        agent = ga.GatoAgent.from_checkpoint(out / "train", cfg, data=dirs)
        results = evaluate.evaluate(agent, control, episodes=episodes, out=out / "eval",
                                    max_steps=60 if smoke else None)
        language = [evaluate.evaluate_language(agent.model, agent.tokenizer, d, task, episodes=2 if smoke else 16)
                    for d in tasks if registry.entry(d).kind != "control"
                    for task in (tasks[d] or data_tasks(out / "data" / d))]
        io_utils.atomic_write_json(out / "eval" / "language.json", language)

    summary = {"out": str(out), "timings_s": timings, "train": {"steps": res["step"], "planned_steps": steps,
               "stopped_by_time": res["stopped_by_time"],
               "seconds_per_step": per_step, "last": res["last"]}, "aggregate": results.aggregate,
               "language": language, "tasks": control, "episodes": episodes, "temperature": temperature, "smoke": smoke}
    io_utils.atomic_write_json(out / "demo.json", summary)
    if report:
        with _stage("4/4 report", timings):
            rep = notebooks.run("06_report", out, {"RUN_DIR": str(out), "SMOKE": smoke})
            summary["report"] = {"notebook": rep["notebook"], "html": rep.get("html")}
        summary["timings_s"] = timings
        io_utils.atomic_write_json(out / "demo.json", summary)
    return summary


def data_tasks(path: str | os.PathLike) -> list[str]:
    return list(json.loads((Path(path) / "manifest.json").read_text())["tasks"])


def _steady_step_seconds(run_dir: Path) -> float | None:
    """Seconds per step of the probe without compilation: the median interval between its
    metric lines over the windows that compiled no new (target, patch) bucket (each first
    bucket costs seconds of XLA compilation that the long run pays once). `max_seconds`
    still bounds the real run if this is optimistic; it then stops before its cosine
    schedule ends, and says so."""
    lines = read_metrics(run_dir)
    per = [((b["time"] - a["time"]) / max(1, b["step"] - a["step"]), b.get("compiled", 0)) for a, b in zip(lines, lines[1:])]
    clean = [sec for sec, compiled in per if compiled == 0]
    if clean:
        return float(np.median(clean))
    return min((sec for sec, _ in per), default=None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gatolab.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--train-minutes", type=float, default=20.0)
    ap.add_argument("--episodes", type=int, default=20, help="evaluation rollouts per control task (paper: 50)")
    ap.add_argument("--workers", type=int, default=2, help="processes for data generation")
    ap.add_argument("--temperature", type=float, default=1.0, help="action sampling temperature (<= 0: greedy)")
    ap.add_argument("--smoke", action="store_true", help="tiny data, tiny text model, short episodes (tests)")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--paper-vocab", action="store_true", help="the paper's 33,027-id layout (32,000 text pieces)")
    ap.add_argument("--table1-weights", action="store_true", help="Table 1's mixture proportions, not demo_config.WEIGHTS")
    ap.add_argument("model", nargs="*", help="model overrides KEY=VALUE, e.g. num_layers=4 embed_dim=128")
    args = ap.parse_args(argv)

    s = run(args.out, args.train_minutes, args.episodes, args.workers, args.smoke, parse_overrides(args.model),
            args.temperature, report=not args.no_report, paper_vocab=args.paper_vocab,
            weights="table1" if args.table1_weights else None)
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
