# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Rollouts: the prompted agent in real environments
#
# episode → tokens → embeddings → transformer → logits → **actions → environment** (Gato §2.4)
#
# A checkpoint becomes an agent: it is prompted with a successful expert demonstration of
# the same task (first tokens, last tokens, or none), tokenizes each observation, samples
# the action tokens one at a time restricted to the legal ids, decodes them and steps the
# environment (`gl.agent`). Below: one episode headless (frames, per-step probabilities,
# return), then the interactive widget (pick checkpoint, domain, task, seed, prompt,
# temperature; press **Run**), then a small evaluation with normalised scores (GATO_SPEC §6).

# %% tags=["parameters"]
OUT_DIR = "runs/05"
SMOKE = False
CHECKPOINT = "../runs/demo/train"  # a run directory; trained here on CartPole if missing
DOMAIN = "classic"
TASK = "CartPole-v1"
SEED = 2_000_000
PROMPT = "start"  # "start", "end" or "none"
TEMPERATURE = 1.0
MAX_STEPS = None  # None: the environment's own limit
TRAIN_STEPS = 300  # only used when CHECKPOINT does not exist
EVAL_EPISODES = 10
PAUSE_AT = 2  # the timestep the widget pauses at to open the stepper

# %%
import os

import numpy as np

import gatolab as gl

if SMOKE:
    CHECKPOINT, TRAIN_STEPS, MAX_STEPS, EVAL_EPISODES = os.path.join(OUT_DIR, "train"), 20, 40, 2

# %% [markdown]
# ## A checkpoint
# If `CHECKPOINT` does not exist yet (run `make demo` for the full model), a tiny Gato is
# trained here for `TRAIN_STEPS` steps on CartPole expert data.

# %%
if not os.path.exists(CHECKPOINT):
    gl.data.generate("classic", os.path.join(OUT_DIR, "data"), tasks=["CartPole-v1"], episodes=10 if SMOKE else 50)
    gl.train.train("tiny", out=CHECKPOINT, data=[os.path.join(OUT_DIR, "data", "classic")],
                   overrides={"steps": TRAIN_STEPS, **({} if SMOKE else {"text.vocab_size": 32_000, "text.corpus_chars": None})})
agent = gl.agent.GatoAgent.from_checkpoint(CHECKPOINT, gl.agent.AgentConfig(prompt=PROMPT, temperature=TEMPERATURE))
print(agent.checkpoint, "| prompt budget:", agent.prompt_budget, "tokens | context:", agent.decoder.capacity)

# %% [markdown]
# ## One episode, headless
# `gl.agent.play` returns the frames and the per-step trace that the widget draws.

# %%
trace = gl.agent.play(agent, DOMAIN, TASK, seed=SEED, render=True, max_steps=MAX_STEPS)
print(f"return {trace.total_return:.2f} in {trace.length} steps, success {trace.success}, "
      f"prompt {trace.prompt_tokens} tokens, {trace.latency_ms:.1f} ms per step (median)")
gl.viz.video.show_video(trace.frames, title=f"{TASK} seed {SEED}")

# %%
gl.viz.rollouts.trace_figure(trace)

# %%
gl.viz.rollouts.first_token_heatmap(trace)

# %% [markdown]
# ## The rollout widget
# Pick and press **Run**: the frame updates while the episode plays, then the episode is
# shown as a video with the action-token probabilities and the return so far.

# %%
widget = gl.viz.rollouts.RolloutWidget([CHECKPOINT], domains=("classic", "babyai"), max_steps=MAX_STEPS)
widget.display()

# %% [markdown]
# ## Pause / Step: the network at one decision
# Pressing **Run** plays the episode in the background, so **Pause** is heard while it plays.
# Paused at a timestep (the agent has chosen its action, the environment has not received it),
# the widget opens `gl.viz.stepper.ArchitectureStepper` on the tokens the agent has seen -- its
# prompt, every observation and its own actions, cut to its context -- with the frame it saw:
# click any token for its embedding, its attention per layer and head, its residual-stream norm,
# and, on the action tokens, the distribution over the legal ids that the agent sampled from.
# **Step** plays one timestep and pauses again; **Resume** plays on. The stepper's view is one
# full forward pass over that context with the model's own hooks (`gl.model.inspect.record`);
# its action distribution equals the cached decoder's, below. `start(pause_at=...)` is what Run
# then Pause do, here so that a non-interactive run (papermill, the HTML export) shows a result too:

# %%
widget.start(pause_at=PAUSE_AT)
print(widget.status.value)
stepper_actions = widget.stepper.last_action()
print("agent's probabilities:  ", widget.paused_step.probs.round(5).tolist())
print("stepper's probabilities:", [round(a["chosen_prob"], 5) for a in stepper_actions])

# %% [markdown]
# The stepper's panels for the first action token the agent is about to emit (also as plain
# figures, for the HTML export):

# %%
gl.viz.stepper.show_figures(widget.stepper.figures())

# %% [markdown]
# Resume plays the episode to its end: the video and the per-step panel appear in the widget.

# %%
widget.resume()
widget_trace = widget.join()
print(widget.status.value)

# %% [markdown]
# ## A small evaluation (GATO_SPEC §6)
# Normalised score = (agent − random) / (expert − random), with the expert and random
# returns measured in `data_cards/returns.json`.

# %%
results = gl.evaluate.evaluate(agent, [TASK], episodes=EVAL_EPISODES, max_steps=MAX_STEPS, out=os.path.join(OUT_DIR, "eval"))
results.rows[0]

# %%
gl.notebooks.write_metrics(OUT_DIR, {
    "checkpoint_step": agent.checkpoint["step"],
    "trace_length": trace.length,
    "trace_return": trace.total_return,
    "frames": list(trace.frames.shape),
    "probs_in_range": bool(((trace.action_probs > 0) & (trace.action_probs <= 1)).all()),
    "latency_ms": trace.latency_ms,
    "prompt_tokens": trace.prompt_tokens,
    "widget_length": widget_trace.length,
    "widget_status": widget.status.value,
    "widget_videos": len(widget.video.outputs),
    "stepper_paused_at": widget.paused_at,
    "stepper_context_tokens": len(widget.stepper.seq),
    "stepper_probs": [a["chosen_prob"] for a in stepper_actions],
    "agent_probs": widget.paused_step.probs.tolist(),
    "stepper_vs_agent_max_diff": float(np.max(np.abs(np.array([a["chosen_prob"] for a in stepper_actions]) - widget.paused_step.probs))),
    "stepper_first_dist_max_diff": float(np.abs(stepper_actions[0]["probs"] - widget.paused_step.first_dist).max()),
    "stepper_chosen_ids": [a["chosen"] for a in stepper_actions],
    "agent_ids": widget.paused_step.ids.tolist(),
    "stepper_attention_rows_sum_to_one": bool(np.allclose(widget.stepper.view(widget.stepper.selected)["attention"].sum(-1), 1.0, atol=1e-5)),
    "stepper_panels": len(widget.stepper.figures()),
    "eval_score": results.rows[0]["normalised_score"],
    "eval_return": results.rows[0]["mean_return"],
})
