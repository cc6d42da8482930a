"""Rollouts, scores and Figure 5 (plotly, ipywidgets, mediapy): notebook 05 and the demo report.

    trace = gl.agent.play(agent, "classic", "CartPole-v1", render=True)
    gl.viz.video.show_video(trace.frames)             # inline mp4 (mediapy)
    gl.viz.rollouts.trace_figure(trace)               # action-token probabilities + return so far
    gl.viz.rollouts.RolloutWidget(["runs/demo/train"]).display()   # pick, Run, Pause / Step, watch, replay
    gl.viz.rollouts.figure5(results.figure5)          # Gato Figure 5 (GATO_SPEC §6)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
from IPython.display import HTML, display
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gatolab.agent import AgentConfig, GatoAgent, play
from gatolab.domains import registry
from gatolab.viz.stepper import ArchitectureStepper, WatchedAgent, set_figures
from gatolab.viz.video import png, video_html

def domain_colour(name: str | None) -> str:
    """One colour per domain, fixed by its place in the registry (grey for none)."""
    if name not in registry.names():
        return "grey"
    return qualitative.D3[registry.names().index(name) % len(qualitative.D3)]


def trace_figure(trace, title: str | None = None) -> go.Figure:
    """Per step: the probability of each action token the agent chose, and the return so far."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["probability of the chosen action tokens", "return so far"])
    steps = np.arange(trace.length)
    n_tok = trace.action_probs.shape[1] if trace.length else 0
    for j in range(min(n_tok, 8)):
        fig.add_trace(go.Scatter(x=steps, y=trace.action_probs[:, j], mode="lines+markers", marker=dict(size=4),
                                 name=f"action token {j}"), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=trace.returns_so_far, mode="lines", name="return", line=dict(color="black")), 1, 2)
    fig.update_xaxes(title="step")
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_layout(height=330, title=title or f"{trace.task} · seed {trace.seed} · return {trace.total_return:.2f}")
    return fig


def first_token_heatmap(trace, max_ids: int = 32) -> go.Figure:
    """The distribution over the first action token's legal ids at every step (discrete actions)."""
    d = np.stack(trace.first_token_dists)[:, :max_ids] if trace.length else np.zeros((0, 1))
    fig = go.Figure(go.Heatmap(z=d.T, colorscale="Viridis", zmin=0, zmax=1, colorbar=dict(title="p")))
    fig.update_layout(height=260, title="first action token: distribution per step", xaxis_title="step",
                      yaxis_title="action value")
    return fig


def figure5(fig5: Mapping[str, Any], title: str = "Figure 5: tasks at or above x% of expert") -> go.Figure:
    """Gato Figure 5 (GATO_SPEC §6): stacked counts of tasks reaching each threshold, by domain."""
    fig = go.Figure()
    for d, counts in fig5["counts"].items():
        fig.add_trace(go.Scatter(x=fig5["thresholds"], y=counts, name=d, stackgroup="tasks", mode="lines",
                                 line=dict(color=domain_colour(d))))
    fig.add_vline(x=50, line=dict(dash="dot", color="grey"))
    fig.update_layout(height=380, title=title, xaxis_title="performance threshold (% of expert)",
                      yaxis_title="number of tasks")
    return fig


def domain_scores_figure(aggregate: Mapping[str, Any], language: Sequence[Mapping[str, Any]] = ()) -> go.Figure:
    """Mean normalised score per control domain (and the overall mean) as bars."""
    per = aggregate["per_domain"]
    names = list(per)
    vals = [100 * per[d]["normalised_score"] for d in names]
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=[domain_colour(d) for d in names],
                           text=[f"{v:.0f}%" for v in vals], textposition="outside"))
    fig.add_hline(y=100, line=dict(dash="dot", color="grey"), annotation_text="expert")
    fig.add_hline(y=0, line=dict(color="black"), annotation_text="random")
    if aggregate.get("overall") is not None:
        fig.add_hline(y=100 * aggregate["overall"], line=dict(dash="dash", color="purple"),
                      annotation_text=f"mean of domains {100 * aggregate['overall']:.0f}%")
    fig.update_layout(height=360, title="normalised score per domain (% of expert)", yaxis_title="% of expert")
    return fig


def task_scores_figure(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Every task's normalised score, coloured by domain."""
    ok = sorted([r for r in rows if r.get("error") is None], key=lambda r: (r["domain"], r["task"]))
    fig = go.Figure(go.Bar(x=[r["task"] for r in ok], y=[100 * r["normalised_score"] for r in ok],
                           marker_color=[domain_colour(r["domain"]) for r in ok],
                           hovertext=[f"return {r['mean_return']:.2f} (random {r['random_return']:.2f}, expert "
                                      f"{r['expert_return']:.2f}); success {r.get('success_rate')}" for r in ok]))
    fig.update_layout(height=380, title="normalised score per task (% of expert)", yaxis_title="% of expert")
    return fig


class RolloutWidget:
    """Pick a checkpoint, domain, task, seed, prompt kind and temperature; press Run.

    While the episode plays, the frame updates live; then it is shown as an inline video
    next to a plotly panel of the action-token probabilities and the return so far.
    `run()` does what the button does and returns the `EpisodeTrace`, so it also works
    headless (tests, papermill).

    Pause / Step (mode 2 of `gl.viz.stepper`): the Run button plays the episode in a
    background thread, so Pause is heard while it plays. Paused at a timestep -- after the
    agent chose its action, before the environment gets it -- the widget opens an
    `ArchitectureStepper` on the tokens the agent has seen (prompt, observations, its
    actions; `WatchedAgent`) with the action it is about to emit, the frame it saw beside
    it. Step plays one timestep and pauses again; Resume plays on. Headless:
    `start(pause_at=t)` returns once paused at timestep t, then `resume()` and `join()`.

    Args:
      checkpoints: run directories to choose from.
      domains: control domains offered (default: those of `tasks`, else every control domain).
      tasks: optional fixed task list per domain (default: the domain's own).
      max_steps: cap on episode length (None: the environment's limit).
      live_every: redraw the live frame every this many steps.
    """

    def __init__(self, checkpoints: Sequence[str | os.PathLike], domains: Sequence[str] | None = None,
                 tasks: Mapping[str, Sequence[str]] | None = None, max_steps: int | None = None, live_every: int = 2):
        if not checkpoints:
            raise ValueError("RolloutWidget: checkpoints is empty; expected at least one run directory")
        domains = list(domains if domains is not None else (tasks or registry.control_names()))
        self._tasks = {d: list((tasks or {}).get(d) or registry.get(d).tasks()) for d in domains}
        self.max_steps, self.live_every = max_steps, max(1, live_every)
        self._agents: dict[tuple, Any] = {}
        self.trace = None
        style = {"description_width": "90px"}
        self.checkpoint = w.Dropdown(options=[str(c) for c in checkpoints], description="checkpoint", style=style)
        self.domain = w.Dropdown(options=list(domains), description="domain", style=style)
        self.task = w.Dropdown(options=self._tasks[domains[0]], description="task", style=style)
        self.seed = w.IntText(value=2_000_000, description="seed", style=style)
        self.prompt = w.Dropdown(options=["start", "end", "none"], description="prompt", style=style)
        self.temperature = w.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.1, description="temperature", style=style)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.pause_button = w.Button(description="Pause", icon="pause", disabled=True)
        self.step_button = w.Button(description="Step", icon="step-forward", disabled=True)
        self.status = w.HTML("press Run")
        self.inspector = w.VBox([])  # the stepper on the paused timestep
        self.stepper: ArchitectureStepper | None = None
        self.paused_step = None  # the agent's StepInfo at the paused timestep
        self.paused_at: int | None = None
        self._go = threading.Event()  # set: play on; cleared: pause at the next decision
        self._go.set()
        self._paused = threading.Event()  # set while paused (headless callers wait on it)
        self._done = threading.Event()
        self._step_once = False
        self._pause_at: int | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.frame = w.Image(format="png", width=320)
        self.video = w.Output()
        self.panel = w.Output()  # a plotly figure per run (FigureWidget would need anywidget)
        self.domain.observe(lambda ch: setattr(self.task, "options", self._tasks[ch["new"]]), names="value")
        self.button.on_click(lambda _: self.start())
        self.pause_button.on_click(lambda _: self.resume() if self._paused.is_set() else self.pause())
        self.step_button.on_click(lambda _: self.step())
        controls = w.VBox([self.checkpoint, self.domain, self.task, self.seed, self.prompt, self.temperature,
                           w.HBox([self.button, self.pause_button, self.step_button]), self.status])
        self.box = w.VBox([w.HBox([controls, w.VBox([self.frame, self.video])]), self.panel, self.inspector])

    def display(self):
        display(self.box)
        return self

    def _ipython_display_(self):
        self.display()

    def agent(self):
        cfg = AgentConfig(prompt=self.prompt.value, temperature=float(self.temperature.value))
        key = (self.checkpoint.value, cfg)
        if key not in self._agents:
            self._agents[key] = GatoAgent.from_checkpoint(self.checkpoint.value, cfg)
        return self._agents[key]

    # --- Pause / Step -----------------------------------------------------------------------
    def start(self, pause_at: int | None = None, timeout: float = 600.0):
        """Plays one episode in a background thread (what Run does); returns at once, or, with
        `pause_at`, once paused at that timestep (or when the episode ended before it)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._pause_at, self._error = pause_at, None
        self._go.set()
        self._paused.clear()
        self._done.clear()

        def target():
            try:
                self.run()
            except BaseException as e:  # noqa: BLE001 - shown in the status line by run(); kept for join()
                self._error = e
            finally:
                self._done.set()

        self._thread = threading.Thread(target=target, daemon=True, name="RolloutWidget")
        self._thread.start()
        if pause_at is not None:
            t0 = time.perf_counter()
            while not (self._paused.wait(0.05) or self._done.is_set()):
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError(f"RolloutWidget.start: not paused within {timeout} s")
            if self._error is not None:
                raise self._error
        return self

    def pause(self) -> None:
        """Pauses at the agent's next decision (the Pause button)."""
        self._go.clear()

    def resume(self) -> None:
        """Plays on (the button that reads Resume while paused)."""
        self._step_once = False
        self._go.set()

    def step(self) -> None:
        """Plays one timestep and pauses again (the Step button)."""
        self._step_once = True
        self._go.set()

    def join(self, timeout: float | None = 600.0):
        """Waits for the background episode; returns its `EpisodeTrace` (re-raises its error)."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self.trace

    def _on_decision(self, watched: WatchedAgent) -> None:
        """Called by the `WatchedAgent` once the action is chosen, before the environment steps."""
        if self._step_once:
            self._step_once = False
            self._go.clear()
        if self._pause_at is not None and watched.timestep >= self._pause_at:
            self._pause_at = None
            self._go.clear()
        if self._go.is_set():
            return
        self._show_paused(watched)
        self._paused.set()
        self.pause_button.description, self.pause_button.icon = "Resume", "play"
        self.step_button.disabled = False
        self._go.wait()
        self._paused.clear()
        self.pause_button.description, self.pause_button.icon = "Pause", "pause"
        self.step_button.disabled = True
        self.status.value = f"playing from step {watched.timestep + 1} ..."

    def _show_paused(self, watched: WatchedAgent) -> None:
        self.paused_at, self.paused_step = watched.timestep, watched.last_steps[0]
        self.status.value = f"paused at timestep {watched.timestep}: opening the stepper ..."
        frame = watched.envs[0].render() if watched.envs else None
        self.stepper = watched.stepper()
        seen = w.Image(value=png(frame), format="png", width=240) if frame is not None else w.HTML("(no frame)")
        action = {k: np.round(np.asarray(v), 3).tolist() for k, v in self.paused_step.action.items()}
        note = w.HTML(f"<b>timestep {watched.timestep}</b>: the frame the agent saw; it is about to emit<br>"
                      f"ids {self.paused_step.ids.tolist()} &rarr; {action}<br>(p = "
                      f"{np.round(self.paused_step.probs, 4).tolist()})")
        self.inspector.children = [w.HBox([seen, note]), self.stepper.widget()]
        self.status.value = f"paused at timestep {watched.timestep} · Step or Resume"

    def run(self):
        """Runs one episode with the current selection; returns its `EpisodeTrace`."""
        self.button.disabled = True
        self.pause_button.disabled = False
        self.status.value = f"loading {self.checkpoint.value} ..."
        try:
            agent = WatchedAgent(self.agent(), on_decision=self._on_decision)
            self.video.outputs = ()

            last = [-1.0]

            def on_step(t, frame, info, ret):
                # At most ~10 redraws a second: every widget update is a kernel message, and a
                # flood of them can back up the notebook's output channel (headless runs too).
                now = time.perf_counter()
                if t % self.live_every or now - last[0] < 0.1:
                    return
                last[0] = now
                if frame is not None:
                    self.frame.value = png(frame)
                self.status.value = f"step {t + 1} · return {ret:.2f}"

            tr = play(agent, self.domain.value, self.task.value, seed=int(self.seed.value), render=True,
                      max_steps=self.max_steps, on_step=on_step)
            self.trace = tr
            # The Output widgets get their outputs set directly (`append_display_data`), not
            # captured with `with output:` -- capturing relies on message routing that headless
            # executors (papermill/nbclient) have been seen to hang on.
            if tr.frames is not None:
                self.frame.value = png(tr.frames[-1])
                self.video.append_display_data(HTML(video_html(tr.frames, title=f"{tr.task} seed {tr.seed}")))
            set_figures(self.panel, [trace_figure(tr)])  # also from the background thread of Run
            sr = "" if tr.success is None else f" · success {tr.success}"
            self.status.value = (f"done: {tr.length} steps · return {tr.total_return:.2f}{sr} · "
                                 f"{tr.latency_ms:.1f} ms/step · prompt {tr.prompt_tokens} tokens")
            return tr
        except Exception as e:  # noqa: BLE001 - shown in the widget, then re-raised
            self.status.value = f"<span style='color:red'>{type(e).__name__}: {e}</span>"
            raise
        finally:
            self.button.disabled = False
            self.pause_button.disabled, self.step_button.disabled = True, True
