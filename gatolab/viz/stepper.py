"""Stepping through the architecture one token at a time (Gato §2.1–2.4; notebooks 02 and 05).

    stepper = gl.viz.stepper.ArchitectureStepper(model, seq, tokenizer, spec)
    stepper.display()              # click a token of the strip: its path through the network
    stepper.view(17)               # the same numbers, headless (tests, metrics.json)

Every number comes from one forward pass of the model under its own hooks
(`gl.model.inspect.record`: the attention weights, residual stream and logits the network
`sow`s) plus `inspect.embedding_parts` (the vectors the embedder summed, checked against
the recorded embedding). For a token the panels show:

  1. raw: its id, modality, field and value; an image token's 16x16 patch (§2.1);
  2. embedding: the norms of the vectors summed into it -- the table row or the patch's
     ResNet vector, the local observation position, the shared action vector, the row and
     column position embeddings -- with the bins used (§2.2, appendix C.2-C.3);
  3. attention: per layer and head, the weights it pays over the context, the token strip
     (coloured by modality) as the axis; only earlier tokens (causal mask, §2.2);
  4. residual stream: its L2 norm after the embedding and after each block;
  5. an action token: the distribution over its legal ids (predicted at the position
     before it, §2.3-2.4), the chosen id marked, decoded back to the action value.

`WatchedAgent` (mode 2, the rollout widget's Pause / Step) rebuilds the tokens an agent has
seen -- its prompt, every observation and the actions it chose -- so that the stepper can
open on them with the action the agent is about to emit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import HTML, display
from plotly.subplots import make_subplots

from gatolab.agent import prompt_sequence
from gatolab.batch import TokenBatch
from gatolab.episode import Episode
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.model import inspect
from gatolab.sequence import TokenSequence
from gatolab.specs import EnvSpec, Modality, flatten_fields
from gatolab.viz.tokens import MODALITY_COLORS

_PARTS = ("token", "local_position", "action_position", "row_position", "col_position")
_PART_LABELS = {"token": "table row / patch ResNet vector", "local_position": "local position (C.3)",
                "action_position": "action vector", "row_position": "patch row position (C.3)",
                "col_position": "patch column position (C.3)"}


def _round_up(n: int, m: int) -> int:
    return max(m, -(-n // m) * m)


class ArchitectureStepper:
    """One token's path through the network, for any token of a tokenized sequence.

    Args:
      model: a `gl.model.Gato`.
      seq: the tokens (one episode, a window of one, or an agent's context); at most the
        model's `context_len`.
      tokenizer: the `GatoTokenizer` (text pieces for labels; decoding action ids).
      spec: the task's `EnvSpec` (legal action ids; None: no action panel).
      temperature: the sampling temperature of the action distribution (<= 0: reported at 1,
        as the decoder does).
      token: the token selected first (default: the first action token, else the last).
      title: a line shown above the strip.
    """

    def __init__(self, model, seq: TokenSequence, tokenizer: GatoTokenizer, spec: EnvSpec | None = None, *,
                 temperature: float = 1.0, token: int | None = None, title: str = ""):
        if len(seq) == 0:
            raise ValueError("ArchitectureStepper: the sequence is empty")
        if len(seq) > model.config.context_len:
            raise ValueError(f"ArchitectureStepper: {len(seq)} tokens exceed the model's context_len "
                             f"{model.config.context_len}; pass a window (seq.last_window(...))")
        self.model, self.seq, self.tokenizer, self.spec = model, seq, tokenizer, spec
        self.temperature = float(temperature)
        self.title = title
        # Padding at the end changes nothing before it (causal), and a few fixed lengths
        # keep the compiled forward pass reusable while a rollout's context grows.
        arrays = seq.to_arrays(_round_up(len(seq), 64), _round_up(seq.num_patches, 16))
        self.batch = TokenBatch.stack([arrays])
        self.records = inspect.record(model, self.batch)
        self.parts = inspect.embedding_parts(model, self.batch)
        self.table = seq.token_table(tokenizer.text)
        self.norms = self.records.residual_norms[:, 0, : len(seq)]  # (L + 1, T)
        actions = np.flatnonzero(seq.is_action)
        self.selected = int(token if token is not None else (actions[0] if len(actions) else len(seq) - 1))
        self._box = None

    # --- numbers ---------------------------------------------------------------------------
    def action_slot(self, i: int) -> int | None:
        """Which action token of its timestep token `i` is (None for an observation token)."""
        if not self.seq.is_action[i]:
            return None
        t = self.seq.timestep[i]
        return int(np.sum(self.seq.is_action[:i] & (self.seq.timestep[:i] == t)))

    def action_distribution(self, i: int) -> dict[str, Any] | None:
        """For action token `i`: its legal ids, their probabilities, the chosen id and the decoded values."""
        j = self.action_slot(i)
        if j is None or self.spec is None or i == 0:
            return None
        ranges = self.tokenizer.action_token_ranges(self.spec)
        lo, hi = (int(v) for v in ranges[j])
        probs = inspect.legal_distribution(self.records.logits[0], ranges[j : j + 1], np.array([i]), self.temperature)[0]
        name = self.seq.field_names[int(self.seq.field[i])]
        f = self.spec.action[name]
        ids = np.arange(lo, hi)
        if f.modality == Modality.DISCRETE:
            values = self.tokenizer.decode_discrete(f, ids, name=name).astype(np.float64)
        else:
            values = np.clip(self.tokenizer.decode_continuous(f, ids, name=name), f.low, f.high).astype(np.float64)
        chosen = int(self.seq.ids[i])
        return {"field": name, "slot": j, "lo": lo, "hi": hi, "ids": ids, "probs": probs, "values": values,
                "chosen": chosen, "chosen_prob": float(probs[chosen - lo]) if lo <= chosen < hi else float("nan"),
                "chosen_value": float(values[chosen - lo]) if lo <= chosen < hi else float("nan"),
                "argmax_value": float(values[int(np.argmax(probs))])}

    def last_action(self) -> list[dict[str, Any]]:
        """`action_distribution` of each action token of the sequence's last timestep (what an agent just chose)."""
        last = self.seq.timestep[-1]
        return [self.action_distribution(int(i)) for i in np.flatnonzero(self.seq.is_action & (self.seq.timestep == last))]

    def view(self, i: int) -> dict[str, Any]:
        """Everything the panels of token `i` show, as NumPy values."""
        if not 0 <= i < len(self.seq):
            raise ValueError(f"ArchitectureStepper: token must be in [0, {len(self.seq)}), got {i}")
        row = self.table[i]
        p = int(self.seq.patch_index[i])
        emb = {k: float(np.linalg.norm(self.parts[k][0, i])) for k in _PARTS}
        emb["total"] = float(np.linalg.norm(self.records.embeddings[0, i]))
        return {
            "token": i, "row": row, "patch": self.seq.patches[p] if p >= 0 else None,
            "embedding_norms": emb,
            "row_bin": int(self.parts["row_bin"][0, i]), "col_bin": int(self.parts["col_bin"][0, i]),
            "attention": self.records.attention[:, 0, :, i, : len(self.seq)],  # (L, H, T): what token i reads
            "residual_norms": self.norms[:, i],
            "action": self.action_distribution(i),
        }

    # --- figures ---------------------------------------------------------------------------
    def _label(self, i: int) -> str:
        r = self.table[i]
        kind = r["modality"].lower()
        text = kind if r["label"] == kind else f"{kind} {r['label']}"
        return f"{i}: {text}" + (f" ({r['field']})" if r["field"] else "") + (" [action]" if r["is_action"] else "")

    def embedding_figure(self, i: int) -> go.Figure:
        v = self.view(i)
        names = [_PART_LABELS[k] for k in _PARTS] + ["sum = embedding"]
        vals = [v["embedding_norms"][k] for k in _PARTS] + [v["embedding_norms"]["total"]]
        bins = (f"row bin {v['row_bin']}, column bin {v['col_bin']} of {self.model.config.patch_position_bins}"
                if v["row_bin"] >= 0 else f"local position {v['row']['local_position']}")
        cols = 2 if v["patch"] is not None else 1
        fig = make_subplots(rows=1, cols=cols, column_widths=[0.25, 0.75] if cols == 2 else [1.0],
                            subplot_titles=(["its 16x16 patch"] if cols == 2 else []) + [f"vectors summed into its embedding; {bins}"])
        if v["patch"] is not None:
            pix = np.clip((v["patch"] * 4.0 + 1.0) / 2.0, 0, 1)  # [-1, 1] / 4 -> [0, 1]
            fig.add_trace(go.Image(z=(pix * 255).astype(np.uint8), hoverinfo="skip"), row=1, col=1)
            fig.update_xaxes(showticklabels=False, row=1, col=1)
            fig.update_yaxes(showticklabels=False, row=1, col=1)
        fig.add_trace(go.Bar(x=vals, y=names, orientation="h", marker_color=["#9ecae1"] * len(_PARTS) + ["#3182bd"],
                             hovertemplate="%{y}: |v| = %{x:.3f}<extra></extra>", showlegend=False), row=1, col=cols)
        fig.update_xaxes(title="L2 norm", row=1, col=cols)
        fig.update_yaxes(autorange="reversed", row=1, col=cols)
        fig.update_layout(height=260, margin=dict(t=60, b=40, l=10, r=10),
                          title=f"token {self._label(i)}: raw value and embedding (Gato §2.1-2.2, appendix C.2-C.3)")
        return fig

    def attention_figure(self, i: int, layers: Sequence[int] | None = None) -> go.Figure:
        """Heads as small multiples (rows: layers, columns: heads), the context's token strip as the x axis.

        `layers` default: every layer when there are at most 48 panels, else the first, middle and last.
        """
        att = self.view(i)["attention"]  # (L, H, T)
        n_layers, n_heads, _ = att.shape
        if layers is None:
            layers = range(n_layers) if n_layers * n_heads <= 48 else sorted({0, n_layers // 2, n_layers - 1})
        layers = list(layers)
        keys = np.arange(i + 1)
        colours = [MODALITY_COLORS[Modality(int(m))] for m in self.seq.modality[: i + 1]]
        text = [self._label(k) for k in keys]
        fig = make_subplots(rows=len(layers), cols=n_heads, shared_xaxes=True, shared_yaxes=True,
                            horizontal_spacing=0.01, vertical_spacing=0.04,
                            subplot_titles=[f"layer {l} · head {h}" for l in layers for h in range(n_heads)])
        for r, layer in enumerate(layers, start=1):
            for h in range(n_heads):
                fig.add_trace(go.Bar(x=keys, y=att[layer, h, : i + 1], marker_color=colours, text=text, showlegend=False,
                                     hovertemplate="key %{text}<br>weight %{y:.3f}<extra></extra>", textposition="none"),
                              row=r, col=h + 1)
        fig.update_yaxes(range=[0, 1])
        fig.update_xaxes(range=[-0.5, max(i, 1) + 0.5])
        fig.update_layout(height=110 + 150 * len(layers), bargap=0, margin=dict(t=80, b=30, l=30, r=10),
                          title=f"attention of token {self._label(i)} over the context, per layer and head (Gato §2.2)")
        fig.update_annotations(font_size=10)
        return fig

    def residual_figure(self, i: int) -> go.Figure:
        n = self.view(i)["residual_norms"]
        stages = ["embedding"] + [f"block {l}" for l in range(len(n) - 1)]
        fig = go.Figure(go.Scatter(x=stages, y=n, mode="lines+markers", hovertemplate="%{x}: |x| = %{y:.3f}<extra></extra>"))
        fig.update_layout(height=260, margin=dict(t=60, b=40, l=40, r=10), yaxis_title="L2 norm",
                          title=f"residual stream norm of token {i}, layer by layer (Gato §2.2)")
        return fig

    def action_figure(self, i: int) -> go.Figure | None:
        a = self.view(i)["action"]
        if a is None:
            return None
        chosen = a["ids"] == a["chosen"]
        fig = go.Figure(go.Bar(x=a["values"], y=a["probs"], marker_color=np.where(chosen, "#E45756", "#4C78A8"),
                               customdata=a["ids"], hovertemplate="id %{customdata} -> value %{x:.4g}<br>p = %{y:.4f}<extra></extra>"))
        fig.add_annotation(x=a["chosen_value"], y=a["chosen_prob"], text=f"chosen id {a['chosen']} -> {a['chosen_value']:.4g}",
                           showarrow=True, arrowhead=2)
        fig.update_layout(height=280, margin=dict(t=60, b=40, l=40, r=10), xaxis_title=f"action value ({a['field']})",
                          yaxis_title="probability", bargap=0,
                          title=(f"token {i} = action token {a['slot']}: p over its {a['hi'] - a['lo']} legal ids "
                                 f"[{a['lo']}, {a['hi']}), from the logits at token {i - 1} (Gato §2.3-2.4)"))
        return fig

    def figures(self, i: int | None = None) -> list[go.Figure]:
        i = self.selected if i is None else int(i)
        figs = [self.embedding_figure(i), self.attention_figure(i), self.residual_figure(i), self.action_figure(i)]
        return [f for f in figs if f is not None]

    # --- the widget ------------------------------------------------------------------------
    def _strip(self) -> w.Box:
        buttons = []
        for i, r in enumerate(self.table):
            m = Modality[r["modality"]]
            b = w.Button(description="", tooltip=self._label(i), layout=w.Layout(width="14px", height="26px", padding="0",
                                                                                  margin="0 1px 1px 0"))
            b.style.button_color = MODALITY_COLORS[m]
            b.add_class("gl-token")
            b.add_class(f"gl-token-{i}")
            b.on_click(lambda _, i=i: self.select(i))
            buttons.append(b)
        return w.Box(buttons, layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))

    def select(self, i: int) -> None:
        """Shows token `i`'s panels (what clicking it in the strip does)."""
        self.selected = int(i)
        if self._box is None:
            return
        self._info.value = f"<b>selected token {self._label(self.selected)}</b>"
        set_figures(self._panels, self.figures(self.selected))

    def widget(self) -> w.VBox:
        if self._box is None:
            legend = " ".join(f"<span style='background:{c};color:white;padding:0 4px'>{m.name.lower()}</span>"
                              for m, c in MODALITY_COLORS.items() if np.any(self.seq.modality == int(m)))
            self._info = w.HTML()
            self._panels = w.Output()
            head = w.HTML(f"{self.title}<br>{len(self.seq)} tokens · click one: {legend}")
            self._box = w.VBox([head, self._strip(), self._info, self._panels])
            self._box.add_class("gl-stepper")
            self.select(self.selected)
        return self._box

    def display(self):
        display(self.widget())
        return self

    def _ipython_display_(self):
        self.display()


# ---------------------------------------------------------------------------------------
# Mode 2: the tokens an agent has seen
# ---------------------------------------------------------------------------------------
class WatchedAgent:
    """A `GatoAgent` (one environment, row 0) that keeps the tokens it has seen, and can pause.

    It forwards everything to the agent; `act` additionally appends the observation's
    tokens (`tokenize_observation`, as the agent makes them) and the action tokens the
    agent chose (its ids, exactly) to `context`, then calls `on_decision(self)` before the
    action goes to the environment: the widget pauses there. `context` starts with the
    prompt the agent was given (rebuilt with `gl.agent.prompt_sequence` from the same
    demonstration and budget).
    """

    def __init__(self, agent, on_decision=None):
        self.agent, self.on_decision = agent, on_decision
        self.parts: list[TokenSequence] = []
        self.timestep, self.task, self.envs = -1, None, None  # the step being decided, its task and environments

    def __getattr__(self, name):
        return getattr(self.agent, name)

    def start(self, envs, row: int, seed: int) -> None:
        self.agent.start(envs, row, seed)
        self.parts, self.timestep, self.task, self.envs = [], -1, envs[row].task, envs
        cfg = self.agent.config
        if cfg.prompt != "none" and self.agent.prompt_budget > 0 and self.agent.prompt_tokens > 0:
            demo = self.agent.prompts.episode(envs[row].task, seed=seed)
            prompt = prompt_sequence(self.agent.tokenizer, demo, envs[row].spec, cfg.prompt, self.agent.prompt_budget)
            if prompt is not None:
                self.parts.append(prompt)

    def reset(self, env, seed: int = 0) -> None:
        self.start([env], 0, seed)

    def act(self, envs, rows, observations):
        if list(rows) != [0]:
            raise ValueError("WatchedAgent: one environment (row 0) only")
        spec, tok = envs[0].spec, self.agent.tokenizer
        t = int(self.agent.t[0])
        actions = self.agent.act(envs, rows, observations)
        ids = self.agent.last_steps[0].ids
        # The timestep as the agent fed it (`tokenize_observation`'s columns, then the action);
        # the action tokens then get the agent's own ids back (decoded values re-encode to the
        # same bins, but the ids are what was sampled).
        text = {k for k, f in spec.observation.items() if f.modality == Modality.TEXT}
        obs = {k: [v] if k in text else np.asarray(v)[None] for k, v in flatten_fields(observations[0]).items()}
        act = {k: np.asarray(v)[None] for k, v in flatten_fields(actions[0]).items()}
        step = tok.tokenize_episode(Episode(spec.name, obs, actions=act), spec)
        new_ids = step.ids.copy()
        new_ids[len(step) - spec.num_action_tokens:] = ids
        self.parts.append(dataclasses.replace(step, ids=new_ids, timestep=step.timestep + t))
        self.timestep, self.envs = t, envs
        if self.on_decision is not None:
            self.on_decision(self)
        return actions

    def __call__(self, env, observation):
        return self.act([env], [0], [observation])[0]

    @property
    def context(self) -> TokenSequence:
        """Everything seen so far, cut to the agent's context (whole timesteps, as the decoder keeps them)."""
        seq = TokenSequence.concatenate(self.parts)
        cap = min(self.agent.decoder.capacity, self.agent.model.config.context_len)
        return seq if len(seq) <= cap else seq.last_window(cap)

    def stepper(self, **kw) -> ArchitectureStepper:
        """The stepper on the current context, opened on the first action token the agent just chose."""
        seq = self.context
        first = len(seq) - self.agent.spec.num_action_tokens
        info = self.agent.last_steps[0]
        title = (f"{self.task} · timestep {self.timestep}: the agent saw {len(seq)} tokens and emits ids "
                 f"{info.ids.tolist()} (p = {np.round(info.probs, 3).tolist()})")
        dropped = int(np.asarray(self.agent.decoder.dropped_timesteps)[0])
        if dropped and self.agent.config.overflow == "memory":
            title += (f"<br><i>the decoder has dropped its {dropped} oldest timesteps; its cached keys were computed while "
                      "they were visible, so this forward pass over the window approximates what it computed</i>")
        return ArchitectureStepper(self.agent.model, seq, self.agent.tokenizer, self.agent.spec,
                                   temperature=self.agent.config.temperature, token=first, title=title, **kw)


def with_action_ids(seq: TokenSequence, ids: np.ndarray, tokenizer: GatoTokenizer, spec: EnvSpec) -> TokenSequence:
    """`seq` with its last action holding `ids` (e.g. what a decoder sampled), values decoded from them."""
    ids = np.asarray(ids).ravel()
    where = np.flatnonzero(seq.is_action)[-len(ids):]
    if len(ids) != spec.num_action_tokens or len(where) != len(ids):
        raise ValueError(f"with_action_ids: {len(ids)} ids; the spec has {spec.num_action_tokens} action tokens and the "
                         f"sequence {int(seq.is_action.sum())}")
    action = tokenizer.decode_action(ids, spec)
    new_ids, values = seq.ids.copy(), seq.value.copy()
    new_ids[where] = ids
    values[where] = np.concatenate([np.ravel(action[k]) for k in spec.action_order])
    return dataclasses.replace(seq, ids=new_ids, value=values)


def set_figures(out: w.Output, figs: Sequence[go.Figure]) -> None:
    """Puts plotly figures into an Output widget, from any thread.

    Not `append_display_data(fig)`: a plotly figure displays itself (`_ipython_display_`),
    so IPython's formatter returns nothing for it and the figure would go to whichever
    output is current -- from the background rollout thread, not this widget.
    """
    mime = pio.renderers["plotly_mimetype"]
    out.outputs = tuple({"output_type": "display_data", "data": mime.to_mimebundle(f.to_dict()), "metadata": {}}
                        for f in figs)


def show_figures(figs: Sequence[go.Figure]) -> None:
    """Displays figures one after another (the stepper's panels, in a non-interactive run)."""
    for f in figs:
        display(f)
    if not figs:
        display(HTML("<i>no panels</i>"))
