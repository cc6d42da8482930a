"""Training curves (plotly): live in JupyterLab while a run trains, static for reports."""

from __future__ import annotations

import os
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gatolab.train.loop import read_metrics


def _series(lines: list[dict[str, Any]], prefix: str) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {}
    for m in lines:
        for k, v in m.items():
            if k.startswith(prefix) and k.count("/") == prefix.count("/"):
                name = k[len(prefix):]
                count = m.get(k.replace("loss/", "targets/"), 1.0)
                if count:  # a modality/domain with no targets in that window has no loss
                    out.setdefault(name, ([], []))
                    out[name][0].append(m["step"])
                    out[name][1].append(v)
    return out


def loss_figure(lines: list[dict[str, Any]], title: str = "training") -> go.Figure:
    """Loss overall, per modality of the target (and per domain when logged), lr, tokens/s."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=["loss (overall, per modality, per domain)", "learning rate",
                                                        "tokens / s"], column_widths=[0.5, 0.25, 0.25])
    steps = [m["step"] for m in lines]
    fig.add_trace(go.Scatter(x=steps, y=[m["loss"] for m in lines], name="loss", line=dict(width=3, color="black")), 1, 1)
    for name, (x, y) in _series(lines, "loss/").items():
        fig.add_trace(go.Scatter(x=x, y=y, name=f"{name}", mode="lines"), 1, 1)
    for name, (x, y) in _series(lines, "loss/domain/").items():
        fig.add_trace(go.Scatter(x=x, y=y, name=f"domain {name}", mode="lines", line=dict(dash="dot")), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=[m.get("lr") for m in lines], name="lr", showlegend=False), 1, 2)
    fig.add_trace(go.Scatter(x=steps, y=[m.get("tokens_per_s") for m in lines], name="tokens/s", showlegend=False), 1, 3)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_xaxes(title="step")
    fig.update_layout(height=380, title=title)
    return fig


def run_figure(run_dir: str | os.PathLike) -> go.Figure:
    return loss_figure(read_metrics(run_dir), title=f"run {run_dir}")


class LivePlot:
    """A plotly FigureWidget of the loss curves that redraws as `update(metrics_line)` is
    called (pass it as the loop's `on_metrics`). Without ipywidgets, `widget` is None and
    `figure()` draws the same curves once."""

    def __init__(self, title: str = "training loss (live)"):
        self.lines: list[dict[str, Any]] = []
        self.title = title
        try:
            self.widget = go.FigureWidget(layout=dict(title=title, height=360, xaxis_title="step", yaxis_title="loss"))
        except Exception:  # ipywidgets missing
            self.widget = None

    def _curves(self) -> dict[str, tuple[list[int], list[float]]]:
        curves = {"loss": ([m["step"] for m in self.lines], [m["loss"] for m in self.lines])}
        curves.update({f"{k}": v for k, v in _series(self.lines, "loss/").items()})
        curves.update({f"domain {k}": v for k, v in _series(self.lines, "loss/domain/").items()})
        return curves

    def update(self, line: dict[str, Any]) -> None:
        self.lines.append(line)
        if self.widget is None:
            return
        traces = {t.name: t for t in self.widget.data}
        with self.widget.batch_update():
            for name, (x, y) in self._curves().items():
                if name in traces:
                    traces[name].x, traces[name].y = x, y
                else:
                    self.widget.add_scatter(x=x, y=y, name=name, mode="lines",
                                            line=dict(width=3, color="black") if name == "loss" else None)

    def figure(self) -> go.Figure:
        return loss_figure(self.lines, self.title)
