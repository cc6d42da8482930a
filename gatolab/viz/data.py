"""Figures for the data notebook: the Table-1-style summary, returns, videos, a batch of token strips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gatolab.batch import Batch
from gatolab.data.cards import summary_rows
from gatolab.specs import Modality
from gatolab.viz.tokens import MODALITY_COLORS


def summary_table(cards: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Gato Table 1's columns (tasks, episodes, tokens, sample weight) for our measured datasets."""
    rows = summary_rows(cards)
    pct = lambda v: "—" if v is None else f"{v:.2%}"  # noqa: E731
    cols = {
        "dataset": [r["dataset"] for r in rows],
        "tasks": [r["tasks"] for r in rows],
        "episodes": [r["episodes"] for r in rows],
        "timesteps": [r["timesteps"] for r in rows],
        "tokens": [f"{r['tokens']:,}" for r in rows],
        "weight (all defaults)": [pct(r["weight_all_defaults"]) for r in rows],
        "weight (these)": [pct(r["weight_these_cards"]) for r in rows],
    }
    fig = go.Figure(go.Table(header=dict(values=list(cols), fill_color="#4C78A8", font=dict(color="white")),
                             cells=dict(values=list(cols.values()))))
    fig.update_layout(title="Datasets (measured; compare Gato Table 1, GATO_SPEC §8)", height=120 + 30 * len(rows),
                      margin=dict(t=50, b=10))
    return fig


def return_distributions(cards: Sequence[Mapping[str, Any]], max_tasks: int = 12) -> go.Figure:
    """Per control task: the expert's episode returns (from the data) next to the random policy's (measured)."""
    tasks = [(c["dataset"], t, row) for c in cards for t, row in c["tasks"].items() if row.get("random_returns")]
    tasks = tasks[:max_tasks]
    if not tasks:
        raise ValueError("return_distributions: no card has random-policy returns (control datasets only)")
    cols = min(4, len(tasks))
    nrows = (len(tasks) + cols - 1) // cols
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[f"{d}: {t}"[:40] for d, t, _ in tasks],
                        vertical_spacing=0.12 if nrows > 1 else 0.2)
    for k, (_, _, row) in enumerate(tasks):
        r, c = k // cols + 1, k % cols + 1
        for name, vals, color in (("expert", row["expert_returns"], "#54A24B"), ("random", row["random_returns"], "#E45756")):
            fig.add_trace(go.Box(y=vals, name=name, marker_color=color, boxpoints="all", jitter=0.4, pointpos=0,
                                 showlegend=k == 0, legendgroup=name), row=r, col=c)
    fig.update_layout(height=260 * nrows + 60, title="Episode returns: expert data vs uniform random policy (the 100% and 0% of normalised scores)")
    return fig


def expert_curves(metas: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Training curves of RL experts (`gatolab.experts.store.load_expert(task)[1]` each): the return
    of the episodes finished between log points, against environment steps, with the adapter-measured
    expert (dashed) and random (dotted) returns for reference."""
    if not metas:
        raise ValueError("expert_curves: no expert metadata given (train one with `gatolab experts train --env TASK`)")
    cols = min(3, len(metas))
    nrows = (len(metas) + cols - 1) // cols
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[f"{m['task']} ({m['algo']})" for m in metas],
                        vertical_spacing=0.15 if nrows > 1 else 0.2)
    for k, m in enumerate(metas):
        r, c = k // cols + 1, k % cols + 1
        steps = [p["step"] for p in m["curve"]]
        fig.add_trace(go.Scatter(x=steps, y=[p["return"] for p in m["curve"]], mode="lines", name="training",
                                 line=dict(color="#4C78A8"), showlegend=k == 0, legendgroup="training"), row=r, col=c)
        ev = m.get("evaluation", {})
        for key, name, dash, color in (("expert_return_mean", "expert (adapter)", "dash", "#54A24B"),
                                       ("random_return_mean", "random (adapter)", "dot", "#E45756")):
            if key in ev and steps:
                fig.add_trace(go.Scatter(x=[steps[0], steps[-1]], y=[ev[key]] * 2, mode="lines", name=name,
                                         line=dict(dash=dash, color=color), showlegend=k == 0, legendgroup=name), row=r, col=c)
    fig.update_layout(height=260 * nrows + 80, title="RL experts: training return vs environment steps")
    return fig


def batch_figure(batch: Batch, mix=None, max_rows: int = 8, max_tokens: int | None = None) -> go.Figure:
    """A training batch (`Mixture.iterator`'s) as token strips: one row per sequence, coloured by modality.

    The prompt is outlined (grey box), loss targets carry a red dot, padding is light
    grey. Hover a cell for its modality, id, timestep and flags.
    """
    tokens, info = batch.tokens, batch.info
    ids, mod, loss, prompt = tokens.ids, tokens.modality, tokens.loss_mask, info.prompt_mask
    b = min(max_rows, ids.shape[0])
    L = ids.shape[1] if max_tokens is None else min(max_tokens, ids.shape[1])
    order = [m for m in Modality]
    colorscale = []
    n = len(order)
    for i, m in enumerate(order):
        colorscale += [[i / n, MODALITY_COLORS[m]], [(i + 1) / n, MODALITY_COLORS[m]]]
    labels = []
    for r in range(b):
        name = ""
        if mix is not None:  # the row number keeps the category labels unique
            name = f"{mix.dataset_names[int(info.dataset_id[r])]}: {mix.task_names[int(info.task_id[r])]}"[:36]
        name = f"{r}. {name}"
        kind = int(info.prompt_kind[r])
        labels.append(f"{name} [{['no prompt', 'prompt: end', 'prompt: uniform'][kind]}]")
    z = mod[:b, :L].astype(float)
    text = np.vectorize(lambda m: Modality(int(m)).name.lower())(mod[:b, :L])
    fig = go.Figure(go.Heatmap(
        z=z, zmin=-0.5, zmax=n - 0.5, colorscale=colorscale, showscale=False, y=labels,
        customdata=np.stack([ids[:b, :L], info.timestep[:b, :L], loss[:b, :L].astype(int), prompt[:b, :L].astype(int)], -1),
        text=text,
        hovertemplate="%{y}<br>token %{x}: %{text} id=%{customdata[0]} t=%{customdata[1]}<br>"
                      "loss target=%{customdata[2]} prompt=%{customdata[3]}<extra></extra>",
    ))
    rr, cc = np.nonzero(loss[:b, :L])
    fig.add_trace(go.Scatter(x=cc, y=[labels[i] for i in rr], mode="markers", marker=dict(color="#E45756", size=3),
                             name="loss target", hoverinfo="skip"))
    for r in range(b):
        k = int(prompt[r].sum())
        if k:
            fig.add_shape(type="rect", x0=-0.5, x1=min(k, L) - 0.5, y0=r - 0.48, y1=r + 0.48,
                          line=dict(color="black", width=2), fillcolor="rgba(0,0,0,0)")
    for m in order:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(color=MODALITY_COLORS[m], size=10, symbol="square"),
                                 name=m.name.lower()))
    fig.update_layout(height=120 + 40 * b, title="One training batch: modality per token; black box = prompt (Gato §2.3); red dot = loss target",
                      xaxis=dict(title="token position"), yaxis=dict(autorange="reversed"),
                      legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"), margin=dict(l=260, t=90))
    return fig


def mixture_check_figure(emp: Mapping[str, Any]) -> go.Figure:
    """Configured probability vs observed frequency per dataset, and the prompt fractions."""
    names = list(emp["dataset_probability"])
    fig = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3],
                        subplot_titles=[f"datasets over {emp['num_draws']} rows", "prompts"])
    fig.add_trace(go.Bar(x=names, y=[emp["dataset_probability"][n] for n in names], name="configured"), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=[emp["dataset_fraction"][n] for n in names], name="observed"), row=1, col=1)
    fig.add_trace(go.Bar(x=["prompted (of control rows)", "from the end (of prompted)"], y=[emp["prompt_fraction"], emp["prompt_end_fraction"]],
                         name="observed prompts", marker_color="#54A24B"), row=1, col=2)
    fig.update_layout(height=360, barmode="group", title="Mixture: weights and prompt fractions as sampled")
    return fig
