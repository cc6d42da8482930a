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
# # 08 · Fine-tuning on held-out tasks (Gato §5.2, Figure 10)
#
# Gato holds a few tasks out of pretraining, then fine-tunes on K demonstrations of each and asks
# whether pretraining helped. Here every held-out task is one experiment
# (`gl.experiments.finetuning.spec`): pretraining runs on **all data**, the **same domain only**
# and **no control data** (text and image-text), none of which holds the task; each is
# fine-tuned on the task's first K episodes that pass the §2.3 filter (the same episodes in
# every arm), beside **behaviour cloning from scratch** on those K episodes (the paper's BC
# baseline) and REGENT's **1-nearest-neighbour "retrieve and play"** over them, all evaluated on
# the same rollout seeds. Intervals are 95% stratified-bootstrap over seeds (rliable).
#
# The scale is the workbench's, not the paper's (a 2-layer x 64 network, hundreds of steps,
# K up to 100 against the paper's 1.18B parameters and K up to 5,000), so this is what the
# first minutes of pretraining do for fine-tuning; a flat line is a result. From a shell:
# `gatolab ablate finetune_assembly --out runs/08 --seeds 2`.

# %% tags=["parameters"]
OUT_DIR = "runs/08"
SMOKE = False
HELD_OUT = ["assembly", "cartpole-swingup"]  # keys of gl.experiments.finetuning.PROTOCOLS
EPISODES = [1, 10, 100]  # fine-tuning set sizes K
VARIANTS = ["all", "same", "nocontrol", "scratch"]  # pretraining variants ("scratch" = BC baseline)
SEEDS = 2
PRETRAIN_STEPS = 120
FINETUNE_STEPS = 60
EVAL_EPISODES = 10  # rollouts of the held-out task per cell
LAUNCHER = "processes"  # "inline", "processes" (with PARALLEL), "submitit-local", "slurm"
PARALLEL = 2
EXTRA = {}  # config overrides for every cell, e.g. {"model.num_layers": 4}

# %%
import json
import os

import gatolab as gl
from gatolab.experiments import finetuning

kwargs = dict(episodes=EPISODES, variants=VARIANTS, seeds=range(SEEDS), pretrain_steps=PRETRAIN_STEPS,
              finetune_steps=FINETUNE_STEPS, eval_episodes=EVAL_EPISODES, overrides=EXTRA)
if SMOKE:  # the tests: one held-out task, K = 1 and 2, two variants, a few steps, short episodes
    LAUNCHER, PARALLEL = "inline", 1  # one process: compiled functions are reused across cells
    HELD_OUT = ["cartpole-swingup"]
    kwargs.update(episodes=[1, 2], variants=["all", "scratch"], seeds=range(2), pretrain_steps=3, finetune_steps=2,
                  eval_episodes=2, pretrain_episodes=2,
                  overrides={"batch_size": 2, "seq_len": 64, "eval.max_steps": 20, "ckpt_every": 2, "log_every": 1})
specs = {h: finetuning.spec(h, **kwargs) for h in HELD_OUT}

# %% [markdown]
# ## The specs
# Each held-out task's arms: pretraining runs (train only), fine-tuning runs (each starting from
# the pretraining run of its seed), BC from scratch, and the retrieval reference (no network).

# %%
for h, spec in specs.items():
    cells = gl.experiments.cells(spec)
    print(spec.question)
    print(f"  {len(cells)} cells, {len({c.train_key for c in cells if c.trains})} training runs, "
          f"{len(gl.experiments.runner.dataset_keys(cells))} dataset folders")
    for a in spec.arms:
        print(f"  {a.name:16s} {'from ' + a.init_from if a.init_from else '':14s} {'' if a.evaluate else '(train only)'}")

# %% [markdown]
# ## Run them (a finished folder is reused, an unfinished one resumes)

# %%
records = {h: gl.experiments.run(spec, os.path.join(OUT_DIR, spec.name), launcher=LAUNCHER, parallel=PARALLEL)
           for h, spec in specs.items()}
curves = {h: finetuning.curve(spec, os.path.join(OUT_DIR, spec.name)) for h, spec in specs.items()}

# %% [markdown]
# ## Figure 10: held-out score against fine-tuning episodes

# %%
for h in HELD_OUT:
    gl.viz.experiments.finetuning_curve(curves[h]).show()

# %% [markdown]
# ## Does pretraining help at each K? Each variant minus BC from scratch on the same episodes

# %%
for h, c in curves.items():
    for variant, pts in c["vs_scratch"].items():
        for p in pts:
            verdict = {None: "one seed: no verdict", True: "distinguishable", False: "not distinguishable at this budget"}
            print(f"{h:17s} K={p['episodes']:<4d} {variant:10s} - scratch: {p['value']:+.3f} "
                  f"[{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}]  {verdict[p['distinguishable']]}")

# %% [markdown]
# ## Checks: the fine-tuned runs started from their pretrained parameters; retrieval replays stored actions

# %%
provenance = {h: finetuning.provenance(spec, os.path.join(OUT_DIR, spec.name)) for h, spec in specs.items()}
replay = {h: finetuning.retrieval_check(spec, os.path.join(OUT_DIR, spec.name)) for h, spec in specs.items()}
for h in HELD_OUT:
    ok = sum(p["match"] for p in provenance[h])
    print(f"{h}: {ok}/{len(provenance[h])} fine-tuning runs start from their source's final parameters (SHA-256); "
          f"retrieval returns the stored action on {replay[h]['exact']:.0%} of {replay[h]['checked']} stored observations")

# %%
metrics = {
    h: {"spec": specs[h].name, "task": curves[h]["task"], "cells": records[h]["cells"], "done": records[h]["done"],
        "episodes": curves[h]["episodes"], "lines": curves[h]["lines"], "vs_scratch": curves[h]["vs_scratch"],
        "provenance": provenance[h], "retrieval_replay": replay[h], "training": records[h]["training"]}
    for h in HELD_OUT
}
gl.notebooks.write_metrics(OUT_DIR, metrics)
print(json.dumps({h: {v: [round(p["value"], 3) for p in pts] for v, pts in m["lines"].items()} for h, m in metrics.items()}, indent=1))
