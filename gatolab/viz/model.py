"""Figures for the architecture notebook (Gato §2.2, appendix C): stage shapes, patch
positions, attention patterns, presets vs the paper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gatolab import tokenizers as tk
from gatolab.sequence import TokenSequence
from gatolab.specs import Modality
from gatolab.viz.tokens import MODALITY_COLORS


def stage_table(rows: Sequence[Mapping[str, Any]], title: str = "The data after each stage") -> go.Figure:
    """A table of `gl.model.inspect.stage_shapes` rows: stage, shape, dtype, mean, std, note."""
    cols = ["stage", "shape", "dtype", "mean", "std", "note"]
    cells = [[r["stage"] for r in rows], [" x ".join(map(str, r["shape"])) for r in rows], [r["dtype"] for r in rows],
             [f"{r['mean']:+.3g}" for r in rows], [f"{r['std']:.3g}" for r in rows], [r["note"] for r in rows]]
    fig = go.Figure(go.Table(header=dict(values=cols, align="left", fill_color="#EEEEEE"),
                             cells=dict(values=cells, align="left"), columnwidth=[2.2, 1.6, 0.9, 0.8, 0.8, 3.2]))
    fig.update_layout(height=80 + 28 * len(rows), margin=dict(t=40, b=10, l=10, r=10), title=title)
    return fig


def patch_positions_figure(image: np.ndarray, positions: Mapping[str, np.ndarray], patch_size: int = 16,
                           bins: int = 128, patch_norms: np.ndarray | None = None) -> go.Figure:
    """The image with its patch grid, each patch's row/column bins, and the training draws.

    Left: the (padded) image; each patch is labelled with its evaluation-time (row, col)
    position indices and, on hover, its quantised intervals [lo, hi). Right: for each
    patch row/column, the interval it owns out of the 128 bins (bars), the evaluation
    index (diamond) and the training-time draws (dots; uniform inside the interval).
    """
    patches, rows, cols = tk.patchify(image, patch_size)
    nr = int(round(1.0 / float(rows[0, 1] - rows[0, 0])))
    nc = int(round(1.0 / float(cols[0, 1] - cols[0, 0])))
    canvas = tk.unpatchify(patches, nr, nc)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1,
                        subplot_titles=["patches labelled (row bin, col bin) at evaluation",
                                        f"row / column intervals over {bins} bins; dots: training draws"])
    fig.add_trace(go.Image(z=(np.clip(canvas, 0, 1) * 255).astype(np.uint8), hoverinfo="skip"), row=1, col=1)
    for p in range(len(patches)):
        r, c = divmod(p, nc)
        y0, x0 = r * patch_size, c * patch_size
        fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x0 + patch_size - 0.5, y1=y0 + patch_size - 0.5,
                      line=dict(color="white", width=1), row=1, col=1)
        txt = f"{positions['row_eval'][p]},{positions['col_eval'][p]}"
        fig.add_annotation(x=x0 + patch_size / 2, y=y0 + patch_size / 2, text=txt, showarrow=False,
                           font=dict(color="white", size=9), row=1, col=1)
    hover_x = [x * patch_size + patch_size / 2 for p in range(len(patches)) for x in [p % nc]]
    hover_y = [(p // nc) * patch_size + patch_size / 2 for p in range(len(patches))]
    extra = "" if patch_norms is None else "<br>|ResNet vector| %{customdata[2]:.3f}"
    custom = [[f"[{positions['row_lo'][p]}, {positions['row_hi'][p]})", f"[{positions['col_lo'][p]}, {positions['col_hi'][p]})",
               0.0 if patch_norms is None else float(patch_norms[p])] for p in range(len(patches))]
    fig.add_trace(go.Scatter(x=hover_x, y=hover_y, mode="markers", marker=dict(size=18, opacity=0), customdata=custom,
                             hovertemplate="row bins %{customdata[0]}<br>col bins %{customdata[1]}" + extra + "<extra></extra>"),
                  row=1, col=1)
    for axis, n, color, offset in (("row", nr, "#4C78A8", 0), ("col", nc, "#F58518", nr + 1)):
        first = [i * nc if axis == "row" else i for i in range(n)]  # one patch per row / column
        for k, p in enumerate(first):
            y = offset + k
            lo, hi = int(positions[f"{axis}_lo"][p]), int(positions[f"{axis}_hi"][p])
            fig.add_trace(go.Scatter(x=[lo, hi - 1], y=[y, y], mode="lines", line=dict(color=color, width=10),
                                     name=f"{axis} {k}: [{lo}, {hi})", hoverinfo="name", showlegend=False), row=1, col=2)
            if f"{axis}_train" in positions:
                d = positions[f"{axis}_train"][:, p]
                jitter = np.random.default_rng(k).uniform(-0.25, 0.25, len(d))
                fig.add_trace(go.Scatter(x=d, y=y + jitter, mode="markers", marker=dict(size=3, color="black", opacity=0.4),
                                         hoverinfo="x", showlegend=False), row=1, col=2)
            fig.add_trace(go.Scatter(x=[positions[f"{axis}_eval"][p]], y=[y], mode="markers",
                                     marker=dict(symbol="diamond", size=11, color="#E45756", line=dict(color="white", width=1)),
                                     hovertemplate=f"{axis} {k}: evaluation index %{{x}}<extra></extra>", showlegend=False),
                          row=1, col=2)
    ticks = [f"row {k}" for k in range(nr)] + [""] + [f"col {k}" for k in range(nc)]
    fig.update_yaxes(tickvals=list(range(len(ticks))), ticktext=ticks, autorange="reversed", row=1, col=2)
    fig.update_xaxes(range=[-1, bins], title="position bin", row=1, col=2)
    fig.update_layout(height=460, title="Patch position encodings: quantised intervals (Gato appendix C.3)")
    return fig


def attention_figure(weights: np.ndarray, seq: TokenSequence, labels: Sequence[str] | None = None,
                     title: str = "Causal attention of one head") -> go.Figure:
    """A (T, S) attention map with the token strip along both axes.

    Args:
      weights: (T, T) attention probabilities of one head (rows: queries, columns: keys).
      seq: the tokens, for the modality colour strips and hover labels.
      labels: optional per-token text for hover.
    """
    w = np.asarray(weights, np.float64)
    n = min(len(seq), w.shape[0])
    w = w[:n, :n]
    mods = seq.modality[:n]
    names = [Modality(int(m)).name.lower() for m in mods]
    labels = list(labels) if labels is not None else names
    hover = [[f"query {i} ({labels[i]})<br>key {j} ({labels[j]})<br>weight {w[i, j]:.3g}" for j in range(n)] for i in range(n)]
    fig = make_subplots(rows=2, cols=2, column_widths=[0.04, 0.96], row_heights=[0.96, 0.04], horizontal_spacing=0.005,
                        vertical_spacing=0.005, shared_xaxes=True, shared_yaxes=True)
    fig.add_trace(go.Heatmap(z=np.where(w > 0, w, np.nan), colorscale="Viridis", hoverinfo="text", text=hover,
                             colorbar=dict(title="weight")), row=1, col=2)
    codes = sorted(set(int(m) for m in mods))
    cscale = []
    for k, m in enumerate(codes):
        lo, hi = k / len(codes), (k + 1) / len(codes)
        cscale += [[lo, MODALITY_COLORS[Modality(m)]], [hi, MODALITY_COLORS[Modality(m)]]]
    idx = np.array([codes.index(int(m)) for m in mods], np.float64)
    strip_kw = dict(colorscale=cscale, zmin=-0.5, zmax=len(codes) - 0.5, showscale=False, hoverinfo="text")
    fig.add_trace(go.Heatmap(z=idx[:, None], text=[[f"{i}: {labels[i]}"] for i in range(n)], **strip_kw), row=1, col=1)
    fig.add_trace(go.Heatmap(z=idx[None, :], x=np.arange(n), text=[[f"{j}: {labels[j]}" for j in range(n)]], **strip_kw), row=2, col=2)
    for m in codes:  # legend
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(color=MODALITY_COLORS[Modality(m)], symbol="square"),
                                 name=Modality(m).name.lower()), row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=2, col=2)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(title="key token", row=2, col=2)
    fig.update_layout(height=620, width=720, title=title, yaxis2=dict(title="query token"),
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return fig


def preset_table(rows: Sequence[Mapping[str, Any]], convention: str) -> go.Figure:
    """Presets (Table 5) with our parameter counts next to the paper's."""
    header = ["preset", "layers", "width", "heads x size", "FF", "blocks", "token table", "ResNet", "total (decimal)",
              "paper", "total (binary)", "gap (decimal)", "gap (binary)"]
    cells = [[r["preset"] for r in rows], [r["layers"] for r in rows], [r["width"] for r in rows],
             [f"{r['heads']} x {r['head_size']}" for r in rows], [r["ff"] for r in rows],
             [f"{r['blocks'] / 1e6:,.1f}M" for r in rows], [f"{r['embedding'] / 1e6:,.1f}M" for r in rows],
             [f"{r['patch_resnet'] / 1e6:,.2f}M" for r in rows], [f"{r['total'] / 1e6:,.1f}M" for r in rows],
             [r["paper_label"] for r in rows], [f"{r['total_binary']:.4g}{r['unit_binary']}" for r in rows],
             [f"{r['gap_decimal']:+.1%}" for r in rows], [f"{r['gap_binary']:+.1%}" for r in rows]]
    fig = go.Figure(go.Table(header=dict(values=header, fill_color="#EEEEEE"), cells=dict(values=cells)))
    fig.update_layout(height=220, margin=dict(t=70, b=10, l=10, r=10),
                      title=dict(text=f"Gato Table 5 presets; counting: {convention}", font=dict(size=12)))
    return fig


def stage_std_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Standard deviation of the activations along the stages (a quick health check)."""
    sel = [r for r in rows if r["stage"] not in ("tokens (ids)",)]
    fig = go.Figure(go.Bar(x=[r["stage"] for r in sel], y=[r["std"] for r in sel],
                           hovertext=[f"shape {r['shape']}<br>mean {r['mean']:+.3g}" for r in sel]))
    fig.update_layout(height=320, title="Activation scale after each stage (std)", yaxis=dict(type="log", title="std"))
    return fig
