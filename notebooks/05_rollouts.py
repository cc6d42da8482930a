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

# %%
import os

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
# The same `run()` the button calls, here so that a non-interactive run (papermill, the
# HTML export) shows one result too:

# %%
widget_trace = widget.run()

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
    "eval_score": results.rows[0]["normalised_score"],
    "eval_return": results.rows[0]["mean_return"],
})
