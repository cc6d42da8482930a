"""Honest statistics over an experiment's results (rliable; Agarwal et al., 2021).

Scores are normalised per task, (agent - random) / (expert - random) (GATO_SPEC §6), averaged
over a cell's rollouts; an arm's scores form a (seeds x tasks) matrix. Per arm this reports
the mean, the interquartile mean (IQM: the mean of the middle 50% of seed-task scores) and
Gato's aggregate (the mean over domains of each domain's mean over its tasks), each with a
95% stratified-bootstrap interval (seeds resampled within each task), per-domain means with
intervals, performance profiles (the fraction of tasks at or above each score: Gato's
Figure 5 as a curve, with intervals), and each arm's difference from the baseline with its
interval. A difference whose interval holds zero is reported in words: the arms are not
distinguishable at this budget. With one seed the bootstrap over seeds has no spread, so no
difference is called either way (`distinguishable: None`).

The bootstrap resamples the two arms of a difference independently (rliable's default): the
arms share rollout seeds and training seeds but not their training, so this is the
conservative reading.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rliable import library as rly
from rliable import metrics

CONFIDENCE = 0.95
TAUS = np.linspace(0.0, 1.5, 31)  # performance-profile thresholds: 0% to 150% of expert


def score_matrices(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, np.ndarray], list[str], list[int], dict[str, str]]:
    """(arm -> (seeds, tasks) mean normalised score, tasks, seeds, task -> domain) from per-episode rows.

    Raises:
      ValueError: an arm misses a (seed, task) another arm has (the comparison would not be paired).
    """
    tasks = sorted({r["task"] for r in rows})
    seeds = sorted({int(r["seed"]) for r in rows})
    domain_of = {r["task"]: r["domain"] for r in rows}
    sums: dict[tuple[str, int, str], list[float]] = {}
    for r in rows:
        sums.setdefault((r["arm"], int(r["seed"]), r["task"]), []).append(float(r["normalised_score"]))
    out = {}
    for arm in sorted({r["arm"] for r in rows}):
        m = np.full((len(seeds), len(tasks)), np.nan)
        for i, s in enumerate(seeds):
            for j, t in enumerate(tasks):
                if (arm, s, t) in sums:
                    m[i, j] = np.mean(sums[(arm, s, t)])
        if np.isnan(m).any():
            i, j = np.argwhere(np.isnan(m))[0]
            raise ValueError(f"arm {arm!r} has no results for seed {seeds[i]}, task {tasks[j]!r}: arms must cover the "
                             f"same seeds and tasks")
        out[arm] = m
    return out, tasks, seeds, domain_of


def _aggregates(tasks: list[str], domain_of: Mapping[str, str]):
    """(names, func): the per-matrix aggregates the summary reports, as one vector-valued function."""
    domains = sorted(set(domain_of.values()))
    cols = {d: [j for j, t in enumerate(tasks) if domain_of[t] == d] for d in domains}

    def func(m: np.ndarray) -> np.ndarray:
        per_domain = [float(np.mean(m[:, cols[d]])) for d in domains]
        return np.array([metrics.aggregate_mean(m), metrics.aggregate_iqm(m), float(np.mean(per_domain)), *per_domain])

    return ["mean", "iqm", "gato", *[f"domain/{d}" for d in domains]], func


def summarize(rows: Sequence[Mapping[str, Any]], baseline: str, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every statistic of the module docstring, as JSON-able numbers and sentences."""
    mats, tasks, seeds, domain_of = score_matrices(rows)
    if baseline not in mats:
        raise ValueError(f"baseline arm {baseline!r} has no results (arms: {sorted(mats)})")
    names, func = _aggregates(tasks, domain_of)
    with warnings.catch_warnings():  # arch (under rliable) deprecates the RandomState rliable passes it; same numbers
        warnings.simplefilter("ignore", FutureWarning)
        return _summarize(mats, tasks, seeds, domain_of, names, func, baseline, reps, seed)


def _summarize(mats, tasks, seeds, domain_of, names, func, baseline: str, reps: int, seed: int) -> dict[str, Any]:
    point, interval = rly.get_interval_estimates(mats, func, reps=reps, confidence_interval_size=CONFIDENCE,
                                                 random_state=np.random.RandomState(seed))
    arms = {a: {n: {"value": float(point[a][k]), "ci": [float(interval[a][0, k]), float(interval[a][1, k])]}
                for k, n in enumerate(names)} for a in mats}
    others = [a for a in mats if a != baseline]
    diffs: dict[str, Any] = {}
    if others:
        pairs = {a: (mats[a], mats[baseline]) for a in others}
        dpoint, dint = rly.get_interval_estimates(pairs, lambda x, y: func(x) - func(y), reps=reps,
                                                  confidence_interval_size=CONFIDENCE,
                                                  random_state=np.random.RandomState(seed + 1))
        for a in others:
            diffs[a] = {}
            for k, n in enumerate(names):
                lo, hi = float(dint[a][0, k]), float(dint[a][1, k])
                # One seed: resampling seeds gives no spread, so the "interval" is a point; no verdict.
                verdict = None if len(seeds) < 2 else not (lo <= 0.0 <= hi)
                diffs[a][n] = {"value": float(dpoint[a][k]), "ci": [lo, hi], "distinguishable": verdict}
    profiles, profile_ci = rly.create_performance_profile(mats, TAUS, reps=reps, confidence_interval_size=CONFIDENCE)
    summary = {
        "baseline": baseline, "seeds": seeds, "tasks": tasks, "domains": sorted(set(domain_of.values())),
        "task_domain": dict(domain_of), "confidence": CONFIDENCE, "bootstrap_reps": reps, "arms": arms,
        "difference_from_baseline": diffs,
        "profiles": {"taus": TAUS.tolist(), **{a: {"value": profiles[a].tolist(), "ci": profile_ci[a].tolist()} for a in mats}},
        "scores": {a: m.tolist() for a, m in mats.items()},
    }
    summary["sentences"] = sentences(summary)
    return summary


def sentences(summary: Mapping[str, Any], metric: str = "gato") -> list[str]:
    """One line per non-baseline arm: its difference from the baseline in words."""
    base = summary["baseline"]
    n = f"{len(summary['seeds'])} seeds x {len(summary['tasks'])} tasks"
    out = []
    for arm, d in summary["difference_from_baseline"].items():
        x = d[metric]
        lo, hi = x["ci"]
        head = f"{arm} vs {base}: {metric} score difference {x['value']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({int(100 * summary['confidence'])}% CI, {n})"
        if x["distinguishable"] is None:
            out.append(f"{head}: one seed gives no interval over seeds; run at least 2 seeds to compare {arm} and {base}.")
        elif not x["distinguishable"]:
            out.append(f"{head}: the interval includes zero; {arm} and {base} are not distinguishable at this budget.")
        else:
            out.append(f"{head}: {arm} scores {'higher' if x['value'] > 0 else 'lower'} than {base}.")
    return out


def markdown(summary: Mapping[str, Any]) -> str:
    """The summary as a Markdown table per metric, then the sentences."""
    names = ["gato", "mean", "iqm", *[f"domain/{d}" for d in summary["domains"]]]
    fmt = lambda v, sign="": f"{v['value']:{sign}.3f} [{v['ci'][0]:{sign}.3f}, {v['ci'][1]:{sign}.3f}]"  # noqa: E731
    lines = ["| arm | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for arm, v in summary["arms"].items():
        lines.append(f"| {arm}{' (baseline)' if arm == summary['baseline'] else ''} | " + " | ".join(fmt(v[n]) for n in names) + " |")
    if summary["difference_from_baseline"]:
        lines += ["", "| difference from " + summary["baseline"] + " | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for arm, d in summary["difference_from_baseline"].items():
            lines.append(f"| {arm} | " + " | ".join(fmt(d[n], "+") for n in names) + " |")
    return "\n".join(lines + [""] + [f"- {s}" for s in summary["sentences"]]) + "\n"
