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
# # 06 · Report: what one small Gato learned on a CPU
#
# Written by `python -m gatolab.demo` (`make demo`): a small multi-domain dataset (BabyAI,
# Meta-World, classic control, text, vision-language), a `tiny`-class Gato trained for a
# bounded time on CPU, evaluated in the real environments, prompted with an expert
# demonstration of the same task (Gato §2.4). Scores are normalised per task:
# 0% = the random policy, 100% = the expert (GATO_SPEC §6), with both measured in
# `data_cards/returns.json`; averaged within each domain, then across domains.

# %% tags=["parameters"]
OUT_DIR = "runs/demo"
SMOKE = False
RUN_DIR = "../runs/demo"  # the demo's output folder (data/, train/, eval/, demo.json)
VIDEO_STEPS = None  # cap on the length of each domain's video (None: the whole episode)

# %%
import json
import os

import gatolab as gl

if SMOKE:
    VIDEO_STEPS = 40
demo = json.load(open(os.path.join(RUN_DIR, "demo.json")))
print("stage times (s):", demo["timings_s"])
print("training:", demo["train"]["steps"], "steps,", f"{demo['train']['seconds_per_step']:.3f} s/step,",
      "stopped by the time budget" if demo["train"]["stopped_by_time"] else "all steps done")

# %% [markdown]
# ## Training curves
# Loss on the action and text targets (overall, per modality and per domain).

# %%
gl.viz.training.run_figure(os.path.join(RUN_DIR, "train"))

# %% [markdown]
# ## Scores per domain and per task

# %%
results = gl.evaluate.load_results(os.path.join(RUN_DIR, "eval"))
print(json.dumps(results.aggregate, indent=1))
gl.viz.rollouts.domain_scores_figure(results.aggregate)

# %%
gl.viz.rollouts.task_scores_figure(results.rows)

# %%
for r in results.rows:
    print(f"{r['domain']:10s} {r['task']:28s} " + (f"FAILED: {r['error']}" if r.get("error") else
          f"return {r['mean_return']:9.2f} (random {r['random_return']:9.2f}, expert {r['expert_return']:9.2f}) "
          f"-> {100 * r['normalised_score']:6.1f}%  success {r['success_rate']}  {r['latency_ms_median']:.1f} ms/step"))

# %% [markdown]
# ## Figure 5
# For each threshold x% of expert, how many tasks reach it, by domain (Gato Figure 5;
# control tasks only, as in the paper).

# %%
gl.viz.rollouts.figure5(results.figure5)

# %% [markdown]
# ## A video per domain
# One episode of the first task of each control domain, prompted like the evaluation.

# %%
agent = gl.agent.GatoAgent.from_checkpoint(os.path.join(RUN_DIR, "train"),
                                           gl.agent.AgentConfig(temperature=demo["temperature"]))
videos = {}
for domain in sorted({r["domain"] for r in results.rows if r.get("domain")}):
    task = next(r["task"] for r in results.rows if r["domain"] == domain)
    tr = gl.agent.play(agent, domain, task, render=True, max_steps=VIDEO_STEPS)
    videos[domain] = tr.length
    gl.viz.video.show_video(tr.frames, title=f"{domain}: {task}, return {tr.total_return:.2f}")

# %% [markdown]
# ## Text and vision-language
# No environment: held-out episodes (new seeds) scored by per-token likelihood of the text
# targets, then a greedy caption and a greedy text continuation.

# %%
for lang in demo["language"]:
    print(f"{lang['domain']}/{lang['task']}: {lang['tokens']} target tokens, NLL {lang['nll']:.3f}, "
          f"perplexity {lang['perplexity']:.1f}, next-token accuracy {100 * lang['next_token_accuracy']:.1f}%")

# %%
vl = gl.domains.get("vision_language")
episode = next(vl.generate("shapes_captions", 1, seed=gl.agent.EVAL_SEED))
image, truth = episode.observations["image"][0], episode.observations["text"][0]
caption = gl.evaluate.complete_text(agent.model, agent.tokenizer, vl.spec("shapes_captions"), {"image": image, "text": ""})
gl.viz.video.show_image(image, title="held-out scene")
print("true caption:   ", truth)
print("model's caption:", caption)

# %%
text_domain = gl.domains.get("text")
paragraph = next(text_domain.generate(text_domain.tasks()[0], 1, seed=gl.agent.EVAL_SEED)).observations["text"][0]
prefix = " ".join(paragraph.split()[:8])
continuation = gl.evaluate.complete_text(agent.model, agent.tokenizer, text_domain.spec(text_domain.tasks()[0]),
                                         {"text": prefix}, max_new_tokens=30, stop="")
print("prefix:      ", prefix)
print("continuation:", continuation)

# %%
gl.notebooks.write_metrics(OUT_DIR, {
    "per_domain": {d: v["normalised_score"] for d, v in results.aggregate["per_domain"].items()},
    "overall": results.aggregate["overall"],
    "figure5_total": results.figure5["total"],
    "videos": videos,
    "caption": caption,
    "continuation": continuation,
    "timings_s": demo["timings_s"],
})
