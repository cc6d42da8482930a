"""Figures for the tokenization notebook (Gato §2.1): mu-law bins, patches, token strips."""

from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gatolab import tokenizers as tk
from gatolab.sequence import TokenSequence
from gatolab.specs import Modality
from gatolab.text import TextTokenizer

MODALITY_COLORS = {
    Modality.TEXT: "#4C78A8",
    Modality.IMAGE: "#F58518",
    Modality.DISCRETE: "#54A24B",
    Modality.CONTINUOUS: "#B279A2",
    Modality.SEPARATOR: "#333333",
    Modality.PAD: "#DDDDDD",
}


def mu_law_figure(ranges: tuple[float, ...] = (1.0, 10.0, 256.0), num_bins: int = 1024) -> go.Figure:
    """The mu-law curve, and where the 1024 uniform bins fall in value space.

    Top: F(x) for x in [-R, R] for each R in `ranges`. Bottom: bin width in x (the
    value resolution) against x — fine near 0, coarse near ±M.
    """
    fig = make_subplots(rows=2, cols=len(ranges), vertical_spacing=0.14,
                        subplot_titles=[f"F(x), x in [-{r:g}, {r:g}]" for r in ranges] + [f"bin width, |x| <= {r:g}" for r in ranges])
    edges_y = np.linspace(-1.0, 1.0, num_bins + 1)
    edges_x = tk.mu_law_decode(edges_y)
    centers_x = 0.5 * (edges_x[1:] + edges_x[:-1])
    widths_x = np.diff(edges_x)
    for i, r in enumerate(ranges, start=1):
        x = np.linspace(-r, r, 801)
        fig.add_trace(go.Scatter(x=x, y=tk.mu_law_encode(x), mode="lines", name="mu-law F(x)", showlegend=i == 1,
                                 line=dict(color="#4C78A8")), row=1, col=i)
        inside = np.abs(edges_x) <= r
        fig.add_trace(go.Scatter(x=edges_x[inside], y=edges_y[inside], mode="markers", name="bin edges", showlegend=i == 1,
                                 marker=dict(size=3, color="#E45756"),
                                 hovertemplate="edge x=%{x:.4g}<br>F(x)=%{y:.4f}<extra></extra>"), row=1, col=i)
        keep = np.abs(centers_x) <= r
        fig.add_trace(go.Scatter(x=centers_x[keep], y=widths_x[keep], mode="lines+markers", marker=dict(size=3),
                                 name="bin width", showlegend=i == 1, line=dict(color="#54A24B"),
                                 hovertemplate="x=%{x:.4g}<br>bin width=%{y:.3g}<extra></extra>"), row=2, col=i)
        fig.update_yaxes(type="log", row=2, col=i)
        fig.add_annotation(text=f"{int(inside.sum()) - 1} bins", xref=f"x{i} domain" if i > 1 else "x domain",
                           yref=f"y{i} domain" if i > 1 else "y domain", x=0.02, y=0.98, showarrow=False, row=1, col=i)
    fig.update_layout(height=560, title="Continuous values: mu-law (mu=100, M=256) then 1024 uniform bins (Gato §2.1, App. B)")
    return fig


def patch_figure(image: np.ndarray, patch_size: int = 16, policy: tk.ImagePolicy = "pad") -> go.Figure:
    """The image, its patch grid in raster order, and each patch's normalised values and intervals."""
    patches, rows, cols = tk.patchify(image, patch_size, policy)
    nr = int(round(1.0 / float(rows[0, 1] - rows[0, 0])))
    nc = int(round(1.0 / float(cols[0, 1] - cols[0, 0])))
    canvas = tk.unpatchify(patches, nr, nc)  # the (padded) image as the model sees it
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.08,
                        subplot_titles=[f"{nr}x{nc} patches of {patch_size}x{patch_size}, raster order",
                                        "normalised pixel values (÷4) per patch"])
    fig.add_trace(go.Image(z=(canvas * 255).astype(np.uint8), hoverinfo="skip"), row=1, col=1)
    for p in range(len(patches)):
        r, c = divmod(p, nc)
        y0, x0 = r * patch_size, c * patch_size
        fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x0 + patch_size - 0.5, y1=y0 + patch_size - 0.5,
                      line=dict(color="white", width=1), row=1, col=1)
        fig.add_annotation(x=x0 + patch_size / 2, y=y0 + patch_size / 2, text=str(p), showarrow=False,
                           font=dict(color="white", size=10), row=1, col=1)
    hover = [f"patch {p}<br>rows [{rows[p, 0]:.3f}, {rows[p, 1]:.3f})<br>cols [{cols[p, 0]:.3f}, {cols[p, 1]:.3f})<br>"
             f"mean {patches[p].mean():+.3f} min {patches[p].min():+.3f} max {patches[p].max():+.3f}" for p in range(len(patches))]
    fig.add_trace(go.Scatter(x=np.arange(len(patches)), y=patches.reshape(len(patches), -1).mean(1), mode="markers",
                             error_y=dict(type="data", symmetric=False,
                                          array=patches.reshape(len(patches), -1).max(1) - patches.reshape(len(patches), -1).mean(1),
                                          arrayminus=patches.reshape(len(patches), -1).mean(1) - patches.reshape(len(patches), -1).min(1)),
                             hovertext=hover, hoverinfo="text", name="patch mean (min..max)"), row=1, col=2)
    fig.update_yaxes(range=[-0.27, 0.27], title="value in [-1,1]/4", row=1, col=2)
    fig.update_xaxes(title="patch index", row=1, col=2)
    fig.update_layout(height=420, showlegend=False, title="Images: non-overlapping 16x16 patches (Gato §2.1)")
    return fig


def token_strip_figure(seq: TokenSequence, text: TextTokenizer | None = None, max_tokens: int = 600,
                       title: str | None = None) -> go.Figure:
    """One coloured cell per token; hover for modality, id, value, field and loss target."""
    rows = seq.token_table(text)[:max_tokens]
    fig = go.Figure()
    for m in Modality:
        sel = [r for r in rows if r["modality"] == m.name]
        if not sel:
            continue
        fig.add_trace(go.Bar(
            x=[r["index"] for r in sel], y=[1.0] * len(sel), width=0.9, name=m.name.lower(),
            marker=dict(color=MODALITY_COLORS[m], line=dict(color=["#E45756" if r["target"] else "white" for r in sel],
                                                            width=[2.5 if r["target"] else 0.5 for r in sel])),
            customdata=[[r["id"], r["label"], r["field"], r["timestep"], r["local_position"], r["is_action"], r["target"]] for r in sel],
            hovertemplate=("token %{x}<br>" + m.name + " id=%{customdata[0]}<br>value=%{customdata[1]}<br>field=%{customdata[2]}"
                           "<br>timestep=%{customdata[3]} local pos=%{customdata[4]}<br>action=%{customdata[5]} "
                           "loss target=%{customdata[6]}<extra></extra>"),
        ))
    starts, _ = seq.timestep_bounds()
    for s in starts[1:]:
        if s < max_tokens:
            fig.add_vline(x=s - 0.5, line=dict(color="black", dash="dot", width=1))
    fig.update_layout(barmode="overlay", height=260, bargap=0, yaxis=dict(visible=False, range=[0, 1.05]),
                      xaxis=dict(title="token index (red outline = loss target; dotted = timestep boundary)",
                                 range=[-0.5, len(rows) - 0.5]),
                      margin=dict(t=90, b=50), title=dict(text=title or f"{len(seq)} tokens, {seq.num_timesteps} timesteps", y=0.97),
                      legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom"))
    return fig


def roundtrip_error_figure(values: np.ndarray, decoded: np.ndarray, use_mu_law: bool, num_bins: int = 1024) -> go.Figure:
    """|decode(encode(x)) - x| against |x|, with the documented worst-case bound."""
    values, decoded = np.asarray(values, np.float64).ravel(), np.asarray(decoded, np.float64).ravel()
    err = np.abs(decoded - values)
    order = np.argsort(np.abs(values))
    bound = tk.continuous_roundtrip_bound(values[order], use_mu_law, num_bins)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.abs(values), y=np.maximum(err, 1e-12), mode="markers", marker=dict(size=3, opacity=0.5),
                             name="|x_hat - x|"))
    fig.add_trace(go.Scatter(x=np.abs(values[order]), y=bound, mode="lines", name="bound", line=dict(color="#E45756")))
    kind = "mu-law + 1024 bins" if use_mu_law else "1024 bins (no mu-law)"
    fig.update_layout(height=380, title=f"Round-trip error, {kind}: max {err.max():.3g} (bound holds: {bool(np.all(err[order] <= bound + 1e-9))})",
                      xaxis=dict(title="|x|", type="log" if use_mu_law else "linear"), yaxis=dict(title="abs error", type="log"))
    return fig
