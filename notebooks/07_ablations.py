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
# # 07 · Ablations: change one choice, train, evaluate, and know whether the difference is real
#
# An experiment is a base config, named arms (each a set of config overrides) and seeds
# (`gatolab/configs/ablations/`). Every (arm, seed) cell is trained and evaluated in the real
# environments on the same rollout seeds; arms that differ only in how they are evaluated share
# one training run. The statistics are rliable's (Agarwal et al., 2021): per arm the mean, the
# interquartile mean and Gato's aggregate (mean over domains of each domain's mean, GATO_SPEC §6)
# of normalised scores, with 95% stratified-bootstrap intervals, performance profiles, and each
# arm's difference from the baseline. An interval that holds zero means: **not distinguishable
# at this budget** — a result, not a failure. The same run from a shell:
# `gatolab ablate prompt_at_eval --out runs/07 budget_minutes=6 eval.episodes=10 --seeds 3`.

# %% tags=["parameters"]
OUT_DIR = "runs/07"
SMOKE = False
ABLATION = "prompt_at_eval"  # any of `gatolab ablate --list`
BUDGET_MINUTES = 6.0  # training budget per run (a probe sets the steps so the schedule ends on time); None: use STEPS
STEPS = None  # a fixed number of optimiser steps per run instead of a budget
SEEDS = 3
EPISODES = 10  # rollouts per control task and cell
LAUNCHER = "inline"  # "inline", "processes" (with PARALLEL), "submitit-local", "slurm"
PARALLEL = 1
EXTRA = {}  # more config overrides for every cell, e.g. {"optim.peak_lr": 3e-4}

# %%
import json
import os

import gatolab as gl

overrides = {"eval.episodes": EPISODES, **EXTRA}
if STEPS is not None:
    overrides.update({"budget_minutes": None, "steps": STEPS})
elif BUDGET_MINUTES is not None:
    overrides["budget_minutes"] = BUDGET_MINUTES
if SMOKE:  # the tests: CartPole only, the small text model, a few steps, short episodes
    SEEDS = 2
    overrides = {"data.datasets": {"classic": {"domain": "classic", "tasks": ["CartPole-v1"], "episodes": 4}},
                 "mixture.weights": None, "text.vocab_size": 512, "text.corpus_chars": 100_000, "budget_minutes": None,
                 "steps": 3, "batch_size": 2, "seq_len": 64, "ckpt_every": 3, "log_every": 1, "eval.episodes": 2,
                 "eval.max_steps": 10, "eval.language_episodes": 1}
spec = gl.experiments.load(ABLATION).with_overrides(overrides, seeds=range(SEEDS))
out = os.path.join(OUT_DIR, spec.name)

# %% [markdown]
# ## The spec
# The question, the arms and what each changes, the cells and which of them share a training run.

# %%
print(spec.question)
print(json.dumps({"config": spec.config, "baseline": spec.baseline_arm, "seeds": list(spec.seeds),
                  "arms": {a.name: dict(a.overrides) for a in spec.arms}}, indent=1))
cells = gl.experiments.cells(spec)
print(f"{len(cells)} cells, {len({c.train_key for c in cells})} training runs, {len(gl.experiments.runner.dataset_keys(cells))} dataset folder(s)")

# %% [markdown]
# ## Run it (or load it: a finished experiment folder is reused, an unfinished one resumes)

# %%
record = gl.experiments.run(spec, out, launcher=LAUNCHER, parallel=PARALLEL)
summary = record["summary"]
print(open(os.path.join(out, "summary.md")).read())

# %% [markdown]
# ## Scores per arm, per domain, with intervals

# %%
gl.viz.experiments.domain_scores(summary)

# %% [markdown]
# ## Each arm minus the baseline

# %%
gl.viz.experiments.differences(summary) if summary["difference_from_baseline"] else None

# %%
for line in summary["sentences"]:
    print(line)

# %% [markdown]
# ## Performance profiles (Gato's Figure 5 as a curve, with intervals)

# %%
gl.viz.experiments.profiles(summary)

# %% [markdown]
# ## Training curves, overlaid (`tensorboard --logdir` on the experiment folder shows the same)

# %%
gl.viz.experiments.training_curves(out, spec)

# %%
table = open(os.path.join(out, "results.csv")).read().splitlines()
metrics = {
    "ablation": spec.name, "cells": record["cells"], "done": record["done"], "rows": len(table) - 1,
    "columns": table[0].split(","), "arms": list(summary["arms"]), "baseline": summary["baseline"],
    "gato": {a: v["gato"] for a, v in summary["arms"].items()},
    "differences": {a: d["gato"] for a, d in summary["difference_from_baseline"].items()},
    "sentences": summary["sentences"], "profile_points": len(summary["profiles"]["taus"]),
    "training_runs": len({c.train_key for c in cells}),
    "training": record["training"],  # per arm: steps, seconds, tokens and timesteps seen, their rates
}
gl.notebooks.write_metrics(OUT_DIR, metrics)
metrics
