"""An experiment's figures (notebooks 07-09): scores per arm with intervals, differences from the
baseline, performance profiles, training curves overlaid, Figure 10's and Figure 8's curves.

    summary = json.load(open("runs/abl/summary.json"))["summary"]
    gl.viz.experiments.domain_scores(summary)
    gl.viz.experiments.differences(summary)
    gl.viz.experiments.profiles(summary)
    gl.viz.experiments.training_curves("runs/abl", spec)
    gl.viz.experiments.finetuning_curve(gl.experiments.finetuning.curve(spec, out))   # notebook 08
    gl.viz.experiments.scaling_curve(gl.experiments.scaling.curve(spec, out))         # notebook 09
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative

from gatolab.experiments import runner
from gatolab.experiments.spec import ExperimentSpec, cells
from gatolab.train.loop import read_metrics


def _colour(i: int) -> str:
    return qualitative.D3[i % len(qualitative.D3)]


def _bar(name: str, xs: list[str], vals: list[dict[str, Any]], colour: str) -> go.Bar:
    return go.Bar(name=name, x=xs, y=[v["value"] for v in vals], marker_color=colour,
                  error_y=dict(type="data", symmetric=False, array=[v["ci"][1] - v["value"] for v in vals],
                               arrayminus=[v["value"] - v["ci"][0] for v in vals]))


def domain_scores(summary: Mapping[str, Any]) -> go.Figure:
    """Per domain (and Gato's aggregate, the mean, the IQM), each arm's normalised score with its 95% interval."""
    keys = ["gato", "mean", "iqm", *[f"domain/{d}" for d in summary["domains"]]]
    labels = ["Gato aggregate", "mean", "IQM", *summary["domains"]]
    fig = go.Figure([_bar(arm, labels, [v[k] for k in keys], _colour(i)) for i, (arm, v) in enumerate(summary["arms"].items())])
    fig.update_layout(barmode="group", title=f"Normalised score per arm (95% stratified-bootstrap CI, {len(summary['seeds'])} seeds)",
                      yaxis_title="(agent - random) / (expert - random)", height=420)
    return fig


def differences(summary: Mapping[str, Any]) -> go.Figure:
    """Each arm minus the baseline, with its interval; the zero line is 'not distinguishable'."""
    keys = ["gato", "mean", "iqm", *[f"domain/{d}" for d in summary["domains"]]]
    labels = ["Gato aggregate", "mean", "IQM", *summary["domains"]]
    diffs = summary["difference_from_baseline"]
    fig = go.Figure([_bar(f"{arm} - {summary['baseline']}", labels, [d[k] for k in keys], _colour(i + 1))
                     for i, (arm, d) in enumerate(diffs.items())])
    fig.add_hline(y=0.0, line_dash="dot", line_color="black")
    fig.update_layout(barmode="group", title=f"Difference from the baseline ({summary['baseline']}); an interval across 0: "
                      "not distinguishable at this budget", yaxis_title="score difference", height=420)
    return fig


def profiles(summary: Mapping[str, Any]) -> go.Figure:
    """Performance profiles: the fraction of (seed, task) scores at or above each threshold (Figure 5 as a curve)."""
    p = summary["profiles"]
    taus = [100 * t for t in p["taus"]]
    fig = go.Figure()
    for i, arm in enumerate(summary["arms"]):
        c = _colour(i)
        lo, hi = p[arm]["ci"]
        fig.add_trace(go.Scatter(x=taus + taus[::-1], y=list(hi) + list(lo)[::-1], fill="toself", fillcolor=c, opacity=0.2,
                                 line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=taus, y=p[arm]["value"], name=arm, line=dict(color=c)))
    fig.update_layout(title="Performance profiles (95% CI)", xaxis_title="score threshold (% of expert)",
                      yaxis_title="fraction of runs at or above", height=380)
    return fig


def training_curves(out: str | os.PathLike, spec: ExperimentSpec, metric: str = "loss") -> go.Figure:
    """Every training run's `metric` against steps, coloured by arm (cells sharing a run drawn once)."""
    out = Path(out)
    arms = [a.name for a in spec.arms]
    fig = go.Figure()
    drawn = set()
    all_cells = cells(spec)
    for cell in all_cells:
        tdir = runner.train_dir(out, all_cells, cell)
        if tdir in drawn:
            continue
        drawn.add(tdir)
        lines = read_metrics(tdir)
        fig.add_trace(go.Scatter(x=[m["step"] for m in lines], y=[m.get(metric) for m in lines], mode="lines",
                                 name=cell.name, line=dict(color=_colour(arms.index(cell.arm)))))
    fig.update_layout(title=f"Training {metric} per run (colour: arm)", xaxis_title="step", yaxis_title=metric, height=380)
    return fig


def _line(name: str, xs: list[float], vals: list[Mapping[str, Any]], colour: str, dash: str | None = None) -> go.Scatter:
    return go.Scatter(name=name, x=xs, y=[v["value"] for v in vals], mode="lines+markers", line=dict(color=colour, dash=dash),
                      error_y=dict(type="data", symmetric=False, array=[v["ci"][1] - v["value"] for v in vals],
                                   arrayminus=[v["value"] - v["ci"][0] for v in vals]))


def finetuning_curve(curve: Mapping[str, Any]) -> go.Figure:
    """Gato Figure 10: the held-out task's success rate (Meta-World) or normalised score (DM Control)
    against fine-tuning episodes, one line per pretraining variant and reference (95% intervals over
    seeds); for scores, expert (1) and random (0) as lines; for success rates, the data card's expert rate."""
    success = curve.get("metric") == "success"
    fig = go.Figure()
    for i, (variant, pts) in enumerate(curve["lines"].items()):
        dash = "dot" if variant in ("scratch", "retrieval") else None
        vals = [p["success"] for p in pts] if success else pts
        fig.add_trace(_line(variant, [p["episodes"] for p in pts], vals, _colour(i), dash))
    if success:  # the card measures the expert's success rate; the random policy's success is not recorded
        if curve.get("expert_success_rate") is not None:
            fig.add_hline(y=curve["expert_success_rate"], line_dash="dash", line_color="green",
                          annotation_text="expert (data card)")
    else:
        fig.add_hline(y=1.0, line_dash="dash", line_color="green", annotation_text="expert")
        fig.add_hline(y=0.0, line_dash="dash", line_color="grey", annotation_text="random")
    fig.update_layout(title=f"Fine-tuning on held-out {curve['task']} (Gato §5.2, Figure 10)", height=420,
                      xaxis=dict(title="fine-tuning episodes", type="log"),
                      yaxis_title="success rate" if success else "normalised score (agent - random) / (expert - random)")
    return fig


def scaling_curve(curve: Mapping[str, Any]) -> go.Figure:
    """Gato Figure 8: Gato's aggregate normalised score against tokens processed, one line per size
    (95% intervals over seeds)."""
    fig = go.Figure()
    for i, (size, pts) in enumerate(curve["points"].items()):
        n = curve["parameters"][size]["total"]
        fig.add_trace(_line(f"{size} ({n / 1e6:.2f}M)", [p["tokens"] for p in pts], [p["score"] for p in pts], _colour(i)))
    fig.update_layout(title="Scaling (Gato Figure 8): score vs tokens processed, per model size", height=420,
                      xaxis_title="tokens processed", yaxis_title="normalised score (mean over domains of per-domain means)")
    return fig
