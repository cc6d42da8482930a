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
# # 04 · Training Gato on whatever kernel this is
#
# episode → tokens → embeddings → transformer → logits → **loss → update** (Gato §2.3)
#
# Runs on a local CPU, a GPU VM, a Colab TPU runtime or a Cloud TPU VM: the device mesh is
# built from `jax.devices()`. AdamW with β=(0.9, 0.95), weight decay 0.1, linear warm-up then
# cosine decay by 10× (GATO_SPEC §4); checkpoints with orbax, resumable exactly.
#
# **On Colab (TPU runtime):** set `GATOLAB_PIP` in the parameters cell to where gatolab lives
# (a git URL or a wheel), then run all. **On a TPU VM**, install with
# `pip install "gatolab[all]" "jax[tpu]"` and start `jupyter lab` there. See the README section
# "Training on a TPU".

# %% tags=["parameters"]
OUT_DIR = "runs/04"
SMOKE = False
PRESET = "tiny"  # model: tiny, gato_79m, gato_364m, gato_1_18b
TRAIN_PRESET = "tiny"  # "tiny" (CPU-sized) or "paper" (GATO_SPEC §4)
MIXTURE = "default"  # "default": generated expert data mixed by Table-1 weights; "synthetic"
DOMAINS = ["classic", "babyai"]
EPISODES_PER_TASK = 20
BABYAI_TASKS = ["BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToObj-v0", "BabyAI-OpenDoor-v0"]
STEPS = 300
BATCH_SIZE = 8
SEQ_LEN = 256
MESH = None  # (data, fsdp, tensor); None = every device data-parallel
TEXT_VOCAB = 32_000
TEXT_CHARS = None  # characters of the default corpus the text model is trained on; None = all
GATOLAB_PIP = ""  # Colab: e.g. "git+https://github.com/<you>/gatolab.git#egg=gatolab[all]"

# %%
import sys

if "google.colab" in sys.modules and GATOLAB_PIP:
    get_ipython().run_line_magic("pip", f"install -q {GATOLAB_PIP}")  # noqa: F821

import os

import gatolab as gl

if SMOKE:
    STEPS, EPISODES_PER_TASK, DOMAINS, BATCH_SIZE, SEQ_LEN = 30, 3, ["classic"], 4, 128
    TEXT_VOCAB, TEXT_CHARS = 512, 100_000  # the tests' tiny text model

# %% [markdown]
# ## Where are we running?

# %%
runtime = gl.train.runtime_info()
print(runtime["summary"])
mesh = gl.train.make_mesh(MESH)
print("mesh:", dict(mesh.shape), "| logical axis rules:", gl.train.LOGICAL_RULES)

# %% [markdown]
# ## Data: real environments and their experts
# A small dataset per domain (`gl.data.generate`), mixed by Gato's Table-1 weights with
# episode filtering and prompt conditioning (notebook 03 shows the mixture itself).

# %%
data_dirs = []
if MIXTURE == "default":
    for domain in DOMAINS:
        tasks = BABYAI_TASKS if domain == "babyai" else None
        gl.data.generate(domain, os.path.join(OUT_DIR, "data"), episodes=EPISODES_PER_TASK, tasks=tasks, workers=1)
        data_dirs.append(os.path.join(OUT_DIR, "data", domain))
data_dirs

# %% [markdown]
# ## Train, with a live loss curve
# Overall loss, and per modality of the target token (text / discrete / continuous). The
# progress bar shows the ETA; metrics also go to `metrics.jsonl` in the run directory.

# %%
live = gl.viz.training.LivePlot()
live.widget if live.widget is not None else None

# %%
run_dir = os.path.join(OUT_DIR, f"run_{PRESET}")
config = gl.configs.get("tiny").with_training_recipe(TRAIN_PRESET)
config = gl.configs.apply(config, {
    "preset": PRESET, "steps": STEPS, "batch_size": BATCH_SIZE, "seq_len": SEQ_LEN, "log_every": max(1, STEPS // 30),
    "ckpt_every": max(1, STEPS // 3), "data.source": "synthetic" if MIXTURE == "synthetic" else "datasets",
    "text.vocab_size": TEXT_VOCAB, "text.corpus_chars": TEXT_CHARS, **({"mesh_shape": tuple(MESH)} if MESH else {})})
result = gl.train.train(config, out=run_dir, data=data_dirs, on_metrics=live.update)
result["last"]

# %%
gl.viz.training.run_figure(run_dir)

# %% [markdown]
# ## Checkpoints
# Each holds parameters, optimiser state, step, the data iterator's position, the configs, the
# tokenizer and the gatolab version: `gl.train.load_model(path)` rebuilds the model from the
# path alone, and re-running this notebook resumes where it stopped.

# %%
ckpt = gl.train.Checkpointer(os.path.join(run_dir, "checkpoints"), create=False)
model, tokenizer, meta = gl.train.load_model(run_dir)
print("checkpoints:", ckpt.steps(), "in", ckpt.directory)
print("rebuilt:", type(model).__name__, gl.model.count_params(model), "parameters; tokenizer text vocab",
      tokenizer.text.vocab_size, "; saved by gatolab", meta["gatolab_version"])

# %%
lines = gl.train.read_metrics(run_dir)
first = sum(m["loss"] for m in lines[:2]) / len(lines[:2])
last = sum(m["loss"] for m in lines[-2:]) / len(lines[-2:])
metrics = {
    "where": runtime["where"], "platform": runtime["platform"], "devices": runtime["devices"],
    "steps": result["step"], "first_loss": first, "last_loss": last, "loss_fell": bool(last < first),
    "tokens_per_s": lines[-1]["tokens_per_s"], "mfu": lines[-1]["mfu"], "checkpoints": ckpt.steps(),
    "live_points": len(live.lines),
}
gl.notebooks.write_metrics(OUT_DIR, metrics)
metrics
