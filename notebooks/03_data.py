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
# # 03 · Data: expert episodes, data cards and the training mixture
#
# Gato (Reed et al., 2022) trains on a weighted mixture of datasets (Table 1): control episodes from
# experts, text, and image-text pairs, cut into 1024-token sequences, a quarter of them prefixed with a
# prompt from another episode of the same task (§2.3). This notebook builds a small version of that:
#
# **episode** → tokens → embeddings → transformer → logits → actions → environment
#
# 1. generate expert episodes for each domain into Minari shards (`gatolab data generate`);
# 2. measure them into data cards and a Table-1-style summary (`gatolab data card`);
# 3. compare expert and random-policy returns (the 100% and 0% of Gato's normalised score);
# 4. watch an expert play BabyAI and Meta-World, then the second wave of domains (Sokoban, MinAtar,
#    Atari, Procgen, DM Control) and the training curves of their RL experts;
# 5. draw one training batch from the grain mixture, prompts and loss masks visible.
#
# `SMOKE=True` generates a handful of episodes and runs in about a minute.

# %% tags=["parameters"]
OUT_DIR = "runs/03"
SMOKE = False
SEED = 0
WORKERS = 2  # generation processes
EPISODES = {"classic": 20, "babyai": 5, "metaworld": 3, "sokoban": 10, "minatar": 5, "atari": 3, "procgen": 5, "dmc": 3,
            "text": 10, "vision_language": 10}  # per task
TASKS = {  # None = every task of the domain
    "classic": None,
    "sokoban": None,
    "minatar": None,
    # The RL domains' tasks with a trained expert (experts/): `gatolab experts list`
    "atari": ["ALE/Breakout-v5"],
    "procgen": ["starpilot"],
    "dmc": ["cartpole-swingup"],
    "babyai": ["BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0", "BabyAI-OpenDoor-v0"],
    "metaworld": ["reach-v3", "push-v3", "drawer-open-v3", "button-press-v3"],
    "text": None,
    "vision_language": None,
}
RANDOM_EPISODES = 10  # random-policy rollouts per control task (data cards)
SEQUENCE_LENGTH = 1024  # Gato §2.3: sequences of 1024 tokens
BATCH_SIZE = 8
PROMPT_PROBABILITY = 0.25  # Gato §2.3
TEXT_VOCAB = 32_000

# %%
from pathlib import Path

import gatolab as gl
from gatolab.viz import data as vizd

if SMOKE:
    EPISODES = {"classic": 3, "babyai": 2, "metaworld": 2, "sokoban": 2, "minatar": 2, "atari": 1, "procgen": 2, "dmc": 2,
                "text": 3, "vision_language": 3}
    TASKS = {**TASKS, "classic": ["CartPole-v1", "Pendulum-v1"], "babyai": TASKS["babyai"][:2], "metaworld": ["reach-v3"],
             "sokoban": ["Sokoban-7x7-1box"], "minatar": ["Breakout-MinAtar"]}
    RANDOM_EPISODES, SEQUENCE_LENGTH = 3, 256
DATA_DIR = Path(OUT_DIR) / "data"
tokenizer = gl.testing.tiny_tokenizer() if SMOKE else gl.GatoTokenizer(gl.TokenizerConfig(), text=gl.default_text_tokenizer(TEXT_VOCAB))

# %% [markdown]
# ## 1. Generate
# Each domain's expert runs in its real environment (`gatolab.domains`); episodes go to Minari-format
# HDF5 shards with SHA-256 checksums, written atomically. Re-running this cell resumes: complete shards
# are verified and skipped.

# %%
manifests = {d: gl.data.generate(d, DATA_DIR, tasks=TASKS[d], episodes=EPISODES[d], workers=WORKERS, seed=SEED, shard_size=10)
             for d in EPISODES}
{d: (len(m["tasks"]), m["num_episodes"], m["num_timesteps"]) for d, m in manifests.items()}

# %% [markdown]
# The shards are plain Minari datasets: any Minari user can open one without gatolab.

# %%
import minari

shard = DATA_DIR / "classic" / manifests["classic"]["shards"][0]["path"]
mds = minari.MinariDataset(str(shard))
first = next(mds.iterate_episodes())
print(mds.total_episodes, "episodes;", first.observations["state"].shape, first.actions["action"][:10], first.rewards.sum())

# %% [markdown]
# ## 2. Data cards and the Table-1-style summary
# Every number is measured: episodes, timesteps and expert returns from the shards, tokens by running
# the Gato tokenizer over every episode, random-policy returns by rolling out the uniform random policy.

# %%
cards = [gl.data.write_card(DATA_DIR / d, Path(OUT_DIR) / "cards", random_episodes=RANDOM_EPISODES, tokenizer=tokenizer)
         for d in EPISODES]
vizd.summary_table(cards)

# %%
print((Path(OUT_DIR) / "cards" / "babyai.md").read_text()[:1800])

# %% [markdown]
# ## 3. Expert vs random returns
# Gato's normalised score puts the random policy at 0% and the expert at 100% (§6). The gap below is
# what a policy learned from this data can be measured on.

# %%
vizd.return_distributions(cards)

# %% [markdown]
# ## 4. Experts at work
# One BabyAI episode (the bot) and one Meta-World episode (the scripted policy), rendered as videos.

# %%
babyai = gl.domains.get("babyai")
bt = TASKS["babyai"][0]
run_b = gl.domains.rollout(babyai.make(bt, seed=SEED, render=True), babyai.expert(bt), seed=SEED, render=True)
ep_b = run_b.episode
print(bt, "mission:", ep_b.observations["mission"][0], "| return", round(ep_b.total_return, 3), "| steps", len(ep_b))
gl.viz.video.show_video(run_b.frames, fps=4, title=bt)

# %%
mw = gl.domains.get("metaworld")
mt = TASKS["metaworld"][0]
run_m = gl.domains.rollout(mw.make(mt, seed=SEED, render=True), mw.expert(mt), seed=SEED, render=True,
                           max_steps=150 if SMOKE else None)
ep_m = run_m.episode
print(mt, "| return", round(ep_m.total_return, 1), "| success", ep_m.metadata["success"], "| steps", len(ep_m))
gl.viz.video.show_video(run_m.frames[::2], fps=20, title=mt)

# %% [markdown]
# ### The second wave: Sokoban, MinAtar, Atari, Procgen, DM Control
# Sokoban's expert is an exact A* solver on generated (solvable) levels. The others are RL agents
# trained here by `gatolab experts train --env TASK` (PPO in JAX for MinAtar, Atari and Procgen; SAC for
# DM Control), saved under `experts/` with their training curves. Each episode below is the expert
# playing through the same adapter that generated the data; `SHOW_STEPS` caps the long ones.

# %%
SHOW_STEPS = 120 if SMOKE else 400
SHOWCASE = {"sokoban": "Sokoban-7x7-2box", "minatar": "Breakout-MinAtar", "atari": "ALE/Breakout-v5", "procgen": "starpilot",
            "dmc": "cartpole-swingup"}
showcase = {}
for dname, task in SHOWCASE.items():
    dom = gl.domains.get(dname)
    run = gl.domains.rollout(dom.make(task, seed=SEED, render=True), dom.expert(task), seed=SEED, render=True,
                             max_steps=SHOW_STEPS)
    showcase[task] = {"return": run.total_return, "steps": run.length, "frames": int(len(run.frames))}
    print(f"{dname}: {task} | return {run.total_return:.1f} | steps {run.length}")
    gl.viz.video.show_video(run.frames, fps={"sokoban": 8, "dmc": 30}.get(dname, 15), title=task)

# %% [markdown]
# The RL experts' training curves: the return of the episodes finished between log points, with the
# expert's and the random policy's returns measured through the adapter afterwards.

# %%
from gatolab.experts import store

expert_metas = store.list_experts()
vizd.expert_curves(expert_metas)

# %% [markdown]
# ## 5. The training mixture
# A grain pipeline draws each sequence from a dataset by its sample weight (Table-1 proportions,
# renormalised over the datasets here), filters control episodes to those within 80% of the expert
# return (§2.3), and prefixes 25% of control sequences with a prompt from another episode of the same
# task, half from its end (goal conditioning), half a uniform window. Short text and image-caption
# episodes are packed back to back until the row is full; control rows are padded instead (the
# [open] choices are listed in `gatolab/data/mixture.py`).

# %%
mix = gl.data.Mixture(gl.data.MixtureConfig(sequence_length=SEQUENCE_LENGTH, prompt_probability=PROMPT_PROBABILITY, seed=SEED),
                      [DATA_DIR / d for d in EPISODES], tokenizer)
mix.describe()

# %%
emp = gl.data.mixture.empirical(mix, num_draws=4000 if SMOKE else 20_000)
vizd.mixture_check_figure(emp)

# %%
it = mix.iterator(BATCH_SIZE)
batch = next(it)
print({"ids": batch.tokens.ids.shape, "patches": batch.tokens.patches.shape, "loss_mask": batch.tokens.loss_mask.shape,
       "prompt_mask": batch.info.prompt_mask.shape, "dataset_id": batch.info.dataset_id.shape})
vizd.batch_figure(batch, mix)

# %% [markdown]
# Throughput of this process (steady state, after the episode cache is warm); `benchmarks/bench_data.py`
# measures it per domain and per worker.

# %%
tp = gl.data.mixture.throughput(mix, num_rows=64 if SMOKE else 512, batch_size=BATCH_SIZE)
print(f"{tp['tokens_per_s']:,.0f} real tokens/s in one process; rows {tp['fill']:.0%} full on average")

# %%
metrics = {
    "datasets": {c["dataset"]: {"tasks": c["num_tasks"], "episodes": c["num_episodes"], "timesteps": c["num_timesteps"],
                                "tokens": c["num_tokens"]} for c in cards},
    "expert_return_mean": {t: r["expert_return"]["mean"] for c in cards for t, r in c["tasks"].items()},
    "random_return_mean": {t: r["random_return"]["mean"] for c in cards for t, r in c["tasks"].items() if "random_return" in r},
    "video_frames": {"babyai": int(len(run_b.frames)), "metaworld": int(len(run_m.frames))},
    "showcase": showcase,
    "experts": {m["task"]: {k: v for k, v in m["evaluation"].items() if k.endswith("_mean")} for m in expert_metas},
    "batch_shape": list(batch.tokens.ids.shape),
    "batch_prompt_rows": int((batch.info.prompt_kind > 0).sum()),
    "batch_loss_on_prompt": int((batch.tokens.loss_mask & batch.info.prompt_mask).sum()),
    "batch_valid_tokens": int(batch.tokens.valid.sum()),
    "mixture": emp,
    "tokens_per_s": tp["tokens_per_s"],
}
gl.notebooks.write_metrics(OUT_DIR, metrics)
metrics
