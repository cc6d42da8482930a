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
# # 09 · Scaling: normalised score against tokens processed, per model size (Gato Figure 8)
#
# Gato trains 79M, 364M and 1.18B-parameter networks on the same data for the same tokens and
# plots, along training, the per-task normalised score averaged within each domain and then
# across domains. Here the three sizes keep the ratios of Table 5's shapes, scaled down to a
# 2-core CPU (`gl.experiments.scaling`: layers 2 / 3 / 6, widths 48 / 96 / 128), train on
# BabyAI, classic control and a little text for the same steps of the same batches, and every
# run's checkpoints along training are evaluated on the same rollouts (evaluation-only arms
# share their size's run). Intervals: 95% stratified bootstrap over seeds (rliable).
# `SIZES = "paper"` switches to Table 5's presets (for a GPU/TPU kernel). From a shell:
# `gatolab ablate scaling --out runs/09 --seeds 2`.

# %% tags=["parameters"]
OUT_DIR = "runs/09"
SMOKE = False
SIZES = "workbench"  # "workbench" (scaled-down Table 5 ratios) or "paper" (gato_79m / 364m / 1_18b)
STEPS = 200  # optimiser steps per size (batch 8 x 256 tokens: the same tokens for every size)
CHECKPOINTS = 4  # evaluated checkpoints per run, evenly spaced
SEEDS = 2
EVAL_EPISODES = 10  # rollouts per control task per checkpoint
LAUNCHER = "processes"  # "inline", "processes" (with PARALLEL), "submitit-local", "slurm"
PARALLEL = 2
EXTRA = {}  # config overrides for every cell, e.g. {"batch_size": 16}

# %%
import json
import os

import gatolab as gl
from gatolab.experiments import scaling

overrides = dict(EXTRA)
if SMOKE:  # the tests: CartPole only, a few steps, short episodes
    LAUNCHER, PARALLEL = "inline", 1  # one process: compiled functions are reused across cells
    STEPS, CHECKPOINTS, SEEDS, EVAL_EPISODES = 4, 2, 2, 2
    overrides = {"data.datasets": {"classic": {"domain": "classic", "tasks": ["CartPole-v1"], "episodes": 4}},
                 "mixture.weights": None, "batch_size": 2, "seq_len": 64, "log_every": 1, "eval.max_steps": 10,
                 "eval.language_episodes": 1}
spec = scaling.spec(sizes=SIZES, steps=STEPS, checkpoints=CHECKPOINTS, seeds=range(SEEDS), eval_episodes=EVAL_EPISODES,
                    overrides=overrides)
out = os.path.join(OUT_DIR, spec.name)

# %% [markdown]
# ## The spec: sizes x checkpoints, one training run per size and seed

# %%
cells = gl.experiments.cells(spec)
print(spec.question)
print(f"{len(cells)} cells, {len({c.train_key for c in cells})} training runs; arms: {[a.name for a in spec.arms]}")

# %% [markdown]
# ## Run it (a finished folder is reused, an unfinished one resumes)

# %%
record = gl.experiments.run(spec, out, launcher=LAUNCHER, parallel=PARALLEL)
curve = scaling.curve(spec, out)
for size, n in curve["parameters"].items():
    print(f"{size}: {n['total']:,} parameters ({n['blocks']:,} in the transformer blocks)")

# %% [markdown]
# ## Figure 8: score against tokens processed

# %%
gl.viz.experiments.scaling_curve(curve)

# %% [markdown]
# ## Per domain, at the last checkpoint

# %%
for size, pts in curve["points"].items():
    last = pts[-1]
    print(f"{size:8s} step {last['step']:4d} ({last['tokens']:,.0f} tokens): Gato score {last['score']['value']:+.3f} "
          f"[{last['score']['ci'][0]:+.3f}, {last['score']['ci'][1]:+.3f}]; "
          + "; ".join(f"{d} {v['value']:+.3f}" for d, v in last["per_domain"].items()))

# %% [markdown]
# ## The largest size minus the smallest at the end of training (the paper's trend: bigger is better)

# %%
summary = record["summary"]
sizes = list(curve["points"])
big, small = f"{sizes[-1]}_s{STEPS}", f"{sizes[0]}_s{STEPS}"
diff = summary["difference_from_baseline"].get(big, {}).get("gato")
if diff is not None:
    verdict = {None: "one seed: no verdict", True: "distinguishable", False: "not distinguishable at this budget"}
    print(f"{big} - {small}: {diff['value']:+.3f} [{diff['ci'][0]:+.3f}, {diff['ci'][1]:+.3f}]: {verdict[diff['distinguishable']]}")

# %%
metrics = {"spec": spec.name, "sizes": curve["sizes"], "parameters": curve["parameters"], "points": curve["points"],
           "cells": record["cells"], "done": record["done"], "training_runs": len({c.train_key for c in cells}),
           "largest_minus_smallest": diff, "training": record["training"]}
gl.notebooks.write_metrics(OUT_DIR, metrics)
print(json.dumps({s: [(p["step"], round(p["score"]["value"], 3)) for p in pts] for s, pts in curve["points"].items()}))
