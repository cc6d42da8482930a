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
# # 01 · Tokenization: how Gato turns everything into one sequence
#
# Gato (Reed et al., 2022, §2.1) serialises text, images, discrete and continuous values into
# one flat token sequence. This notebook steps through each tokenizer in `gatolab`
# (pure NumPy, `gatolab/tokenizers.py`, `gatolab/sequence.py`) and draws what comes out:
#
# **episode → tokens** → embeddings → transformer → logits → actions → environment
#
# Hover any plot for exact values. `SMOKE=True` uses a 512-piece text model so the run takes seconds.

# %% tags=["parameters"]
OUT_DIR = "runs/01"
SMOKE = False
TEXT_VOCAB = 32_000  # Gato §2.1: SentencePiece with 32k subwords
IMAGE_HW = (48, 72)  # 72 is not a multiple of 16: shows the padding policy
NUM_VALUES = 20_000  # continuous values for the round-trip error plot
SEED = 0

# %%
import numpy as np

import gatolab as gl
from gatolab.viz import tokens as vt

rng = np.random.default_rng(SEED)

# %% [markdown]
# ## The id space
# One embedding table serves text, discrete and continuous tokens plus the separator `|`.
# GATO_SPEC §1 leaves open whether discrete values share ids with text (the paper literally
# says both live in [0, 1024)); `Vocabulary(discrete_policy="shared" | "disjoint")` switches it.

# %%
vocab = gl.Vocabulary()
vocab.describe(), gl.Vocabulary(discrete_policy="disjoint").describe()

# %% [markdown]
# ## Text: SentencePiece
# gatolab trains its own SentencePiece model (no downloads). The default corpus is the prose
# of the CPython standard library that ships with Python (PSF licence).

# %%
text_tok = gl.testing.tiny_text_tokenizer() if SMOKE else gl.default_text_tokenizer(TEXT_VOCAB)
mission = "pick up the red ball behind the blue door"
ids = text_tok.encode(mission)
print(text_tok)
print([text_tok.piece(i) for i in ids])
assert text_tok.decode(ids) == mission

# %% [markdown]
# ## Continuous values: mu-law, then 1024 uniform bins
# F(x) = sgn(x)·log(|x|μ+1)/log(Mμ+1) with μ=100, M=256 (appendix B) squeezes [-256, 256]
# into [-1, 1]; the bins are uniform in F, so they are dense near 0 and sparse near ±256.

# %%
vt.mu_law_figure()

# %% [markdown]
# ## Images: 16×16 patches in raster order
# Pixels go to [-1, 1] and are divided by √16 = 4. Sides that are not multiples of 16 are
# padded (bottom/right, black) by default; `TokenizerConfig(image_policy="resize" | "error")`
# switches. Each patch also carries its normalised row and column interval, which the model
# turns into position encodings (appendix C.3).

# %%
image = gl.testing.demo_image(*IMAGE_HW, seed=SEED)
patches, row_iv, col_iv = gl.tokenizers.patchify(image)
print("image", image.shape, "-> patches", patches.shape, "value range", patches.min(), patches.max())
vt.patch_figure(image)

# %% [markdown]
# ## One multi-modal timestep
# Text, then image patches, then tensors (nested keys in lexicographic order), then `|`, then the
# action. Red outlines mark loss targets: Gato trains only on text and action tokens (§2.3).

# %%
spec = gl.testing.multimodal_spec(image_hw=IMAGE_HW)
tokenizer = gl.GatoTokenizer(gl.TokenizerConfig(), text=text_tok)
episode = gl.testing.synthetic_episode(spec, num_steps=3, seed=SEED)
seq = tokenizer.tokenize_episode(episode, spec)
one_step = seq.window(0, max_len=len(seq))
one_step = one_step.slice(0, one_step.timestep_bounds()[1][0])
print(spec.observation_order, "| actions:", spec.action_order)
one_step

# %%
vt.token_strip_figure(one_step, text_tok, title="timestep 0: observation tokens, '|', action tokens")

# %%
vt.token_strip_figure(seq, text_tok, title="the whole 3-step episode")

# %% [markdown]
# ## Windows at timestep boundaries
# Training sequences are windows of L tokens cut at timestep boundaries (never mid-timestep).

# %%
long_episode = gl.testing.synthetic_episode(spec, num_steps=30 if SMOKE else 60, seed=SEED + 1)
long_seq = tokenizer.tokenize_episode(long_episode, spec)
windows = list(long_seq.windows(max_len=1024))
print(f"{len(long_seq)} tokens, {long_seq.num_timesteps} timesteps -> {len(windows)} windows of <= 1024 tokens:",
      [len(w) for w in windows])

# %% [markdown]
# ## Round trip of continuous actions
# Decoding an action maps a bin back to its centre and inverts the mu-law. The worst case is
# half a bin: 1/1024 without mu-law, and 0.00996·(|x| + 0.01) with it (about 1% relative).

# %%
signs = rng.choice([-1.0, 1.0], NUM_VALUES)
x_mu = signs * 10 ** rng.uniform(-4, np.log10(256), NUM_VALUES)  # mu-law field (unbounded)
x_lin = rng.uniform(-1, 1, NUM_VALUES)  # field declared in [-1, 1]: no mu-law
f_mu, f_lin = gl.FieldSpec.continuous((NUM_VALUES,)), gl.FieldSpec.continuous((NUM_VALUES,), -1, 1)
dec_mu = tokenizer.decode_continuous(f_mu, tokenizer.encode_continuous("x_mu", f_mu, x_mu[None])[0][0])
dec_lin = tokenizer.decode_continuous(f_lin, tokenizer.encode_continuous("x_lin", f_lin, x_lin[None])[0][0])
err_mu, err_lin = np.abs(dec_mu - x_mu), np.abs(dec_lin - x_lin)
bound_ok = bool(np.all(err_mu <= gl.tokenizers.continuous_roundtrip_bound(x_mu, True) + 1e-12)
                and np.all(err_lin <= gl.tokenizers.continuous_roundtrip_bound(x_lin, False) + 1e-12))
print(f"max error without mu-law {err_lin.max():.3g}, with mu-law {err_mu.max():.3g} "
      f"(max relative for |x| >= 1: {np.max((err_mu / np.abs(x_mu))[np.abs(x_mu) >= 1]):.3%}); bound holds: {bound_ok}")
vt.roundtrip_error_figure(x_mu, dec_mu, use_mu_law=True)

# %%
counts = one_step.counts()
metrics = {
    "vocab_size": vocab.size,
    "text_vocab": text_tok.vocab_size,
    "timestep_tokens": counts["total"],
    "timestep_counts": counts,
    "episode_tokens": len(seq),
    "num_patches_per_image": int(patches.shape[0]),
    "windows": len(windows),
    "max_window_tokens": max(len(w) for w in windows),
    "max_roundtrip_error_linear": float(err_lin.max()),
    "max_roundtrip_error_mu_law": float(err_mu.max()),
    "max_relative_error_mu_law_above_1": float(np.max((err_mu / np.abs(x_mu))[np.abs(x_mu) >= 1])),
    "roundtrip_bound_holds": bound_ok,
}
gl.notebooks.write_metrics(OUT_DIR, metrics)
metrics
