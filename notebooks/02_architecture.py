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
# # 02 · Architecture: one multi-modal timestep through the Gato network
#
# Gato (Reed et al., 2022, §2.2 and appendix C) embeds every token into one sequence and runs a
# decoder-only transformer over it. This notebook steps one real timestep (text, an image,
# discrete and continuous observations, `|`, a mixed action) through `gatolab.model`:
#
# episode → tokens → **embeddings → transformer → logits** → actions → environment
#
# `SMOKE=True` uses the `tiny` preset and the 512-piece text model so the run takes seconds.

# %% tags=["parameters"]
OUT_DIR = "runs/02"
SMOKE = False
PRESET = "tiny"  # "tiny", "gato_79m", "gato_364m", "gato_1_18b" (Gato Table 5)
SEED = 0
IMAGE_HW = (48, 64)  # 3 x 4 patches of 16 x 16
LAYER = 0  # which block's attention to draw
HEAD = 0  # which head
POSITION_DRAWS = 200  # training-time draws of the patch position indices

# %%
import jax
import numpy as np
import treescope
from flax import nnx
from IPython.display import HTML

import gatolab as gl
from gatolab.viz import model as vizm

preset = "tiny" if SMOKE else PRESET
config = gl.model.ModelConfig.preset(preset)
config

# %% [markdown]
# ## One real multi-modal timestep
# The spec has one field of every modality: a text mission, a camera image, a 3×3 discrete grid,
# continuous joints, then `|` and a 3-dim continuous torque plus one discrete button. The network
# reads a `gl.batch.TokenBatch`: the timestep's `to_arrays`, stacked into a batch of one.

# %%
tokenizer = gl.testing.tiny_tokenizer() if SMOKE else gl.GatoTokenizer(text=gl.default_text_tokenizer())
spec = gl.testing.multimodal_spec(image_hw=IMAGE_HW)
episode = gl.testing.synthetic_episode(spec, num_steps=1, seed=SEED)
step = tokenizer.tokenize_episode(episode, spec)
batch = gl.batch.TokenBatch.stack([step.to_arrays(len(step), step.num_patches)])  # what the network reads
step

# %% [markdown]
# ## The module tree
# `nnx.display` draws the model with treescope: expand any node for its parameters, shapes and
# logical axis names (`out_sharding`, e.g. `('vocab', 'embed')`), which a sharding rules table maps
# onto a device mesh later.

# %%
model = gl.model.Gato(config, rngs=nnx.Rngs(SEED))
nnx.display(model)

# %%
print(f"{preset}: {gl.model.count_params(model):,} parameters", gl.model.count_by_part(model))

# %% [markdown]
# ## The data after each stage
# Tokens `(B, T)` and patches `(B, P, 16, 16, 3)` → embeddings `(B, T, D)` → each block `(B, T, D)` →
# logits `(B, T, V)`. V is the 33,027-id vocabulary padded to a multiple of 128; the padded ids get
# −∞ logits so they are never predicted or sampled.

# %%
stages = gl.model.inspect.stage_shapes(model, batch)
vizm.stage_table(stages, title=f"{preset}: one timestep of {len(step)} tokens through the network")

# %%
vizm.stage_std_figure(stages)

# %% [markdown]
# ## Image patches: one ResNet v2 block each, plus row and column positions
# Each 16×16 patch goes through one pre-activation ResNet block (GroupNorm, GELU) to a D-vector.
# Its normalised row and column intervals are quantised into 128 bins; in training the index is
# drawn uniformly inside the interval (dots), at evaluation it is the interval's mean (diamond).

# %%
image = episode.observations["camera"][0]
_, rows, cols = gl.tokenizers.patchify(image)
positions = gl.model.inspect.patch_positions(rows, cols, config.patch_position_bins, draws=POSITION_DRAWS, seed=SEED)
patch_norms = gl.model.inspect.patch_vector_norms(model, batch)[0]
vizm.patch_positions_figure(image, positions, bins=config.patch_position_bins, patch_norms=patch_norms)

# %% [markdown]
# ## Causal attention of one head
# Rows are queries, columns keys, both along the token strip (coloured by modality). Everything above
# the diagonal is exactly zero: a token never sees the future. Note the model has no global position
# encoding (GATO_SPEC §3 [open]): order reaches it only through this mask and the local positions.

# %%
weights = np.asarray(gl.model.inspect.attention_weights(model, batch, LAYER))[0, HEAD]
labels = [f"{r['modality'].lower()} {r['label']}" for r in step.token_table(tokenizer.text)]
vizm.attention_figure(weights, step, labels, title=f"block {LAYER}, head {HEAD}: causal attention over one timestep")

# %% [markdown]
# ## The presets next to the paper
# Table 5 fixes layers, width, heads and FF size. The paper's sizes (79M / 364M / 1.18B) do not follow
# from any single decimal count (see `gl.model.PARAM_CONVENTION`); counting every parameter as built
# and reading the paper's sizes with binary prefixes puts all three within a few percent.

# %%
table = gl.model.paper_param_table()
vizm.preset_table(table, gl.model.PARAM_CONVENTION)

# %% [markdown]
# ## Logits → an action
# At deployment the cached decoder feeds the observation, then samples the action one token at a
# time, each restricted to the ids its action field allows.

# %%
obs_only = step.slice(0, len(step) - spec.num_action_tokens)
decoder = gl.model.Decoder(model)
sampled = decoder.act(obs_only, tokenizer.action_token_ranges(spec), temperature=1.0, rng=jax.random.key(SEED))
action_ids, action_probs = sampled.ids[0], sampled.probs[0]
action = tokenizer.decode_action(action_ids, spec)
print("legal id ranges:", tokenizer.action_token_ranges(spec).tolist())
print("sampled ids:", action_ids.tolist(), "with probabilities", action_probs.round(4).tolist(), "->", action)

# %% [markdown]
# ## Stepping through the network, one token at a time
# `gl.viz.stepper.ArchitectureStepper` runs the timestep (with the action the decoder just sampled)
# through the network once, under the model's own hooks: the attention weights, residual stream and
# logits are what the forward pass recorded (`gl.model.inspect.record`, Flax NNX `sow` into an
# `Intermediate` collection), not a second implementation. Click any token of the strip to see its
# path: its raw value or patch and the vectors summed into its embedding (§2.1–2.2, C.2–C.3), the
# attention it pays over the context per layer and head (§2.2), its residual-stream norm per layer,
# and for an action token the distribution over its legal ids, the chosen one marked and decoded
# back to the action value (§2.3–2.4).

# %%
stepper = gl.viz.stepper.ArchitectureStepper(model, gl.viz.stepper.with_action_ids(step, action_ids, tokenizer, spec),
                                             tokenizer, spec,
                                             title=f"{preset}: one timestep, the sampled action {action_ids.tolist()}")
stepper.display()

# %% [markdown]
# The panels of the first action token (the discrete button), also as plain figures so that the
# executed notebook's HTML export shows them:

# %%
first_action = int(np.flatnonzero(step.is_action)[0])
gl.viz.stepper.show_figures(stepper.figures(first_action))

# %% [markdown]
# ## The same network in Haiku
# Gato and the DeepMind agents of its time (the Multi-Game Decision Transformer's released code, for
# one) were written in Haiku. `gl.model.haiku` is this network again as `hk.Module`s under
# `hk.transform`, with the same parameters under Haiku's names (`w`, `b`, `scale`, `offset`, one
# module per projection): `to_haiku` moves the arrays across, `to_nnx` moves them back bit for bit.
# The same timestep through both, evaluation mode, float32:

# %%
hk_fns = gl.model.haiku.transform(config)  # .forward / .hidden / .loss, each an hk.Transformed
hk_params = gl.model.haiku.to_haiku(model)
hk_logits = jax.jit(hk_fns.forward.apply)(hk_params, None, batch)
haiku_max_diff = gl.model.haiku.logit_difference(model, batch)
print(f"Haiku logits {hk_logits.shape}; largest |NNX - Haiku| logit difference: {haiku_max_diff:.3g}")
parameter_map = gl.model.haiku.parameter_map(config)  # (NNX path, Haiku module, Haiku name), one row per tensor
print(f"{len(parameter_map)} parameter tensors mapped; block 0's query projection:")
print(*[row for row in parameter_map if "block_0/~/attn/~/query" in row[1]], sep="\n")

# %% [markdown]
# The two parameter trees side by side: gatolab's NNX names on the left, Haiku's modules on the right
# (`gato/~/transformer/~/block_0/~/attn/~/query` nested by module).

# %%
trees = {"NNX: nnx.to_pure_dict(nnx.state(model))": nnx.to_pure_dict(nnx.state(model)),
         "Haiku: gl.model.haiku.module_tree(hk_params)": gl.model.haiku.module_tree(hk_params)}
HTML("<div style='display:flex; gap:2em'>" + "".join(
    f"<div style='flex:1; min-width:0; overflow-x:auto'><b>{title}</b>{treescope.render_to_html(tree)}</div>"
    for title, tree in trees.items()) + "</div>")

# %%
loss, loss_metrics = gl.model.inspect.loss(model, batch)
upper = float(np.triu(weights, k=1).sum())
views = [stepper.view(int(i)) for i in np.flatnonzero(step.is_action)]
image_token = int(np.flatnonzero(step.modality == int(gl.Modality.IMAGE))[-1])
image_view = stepper.view(image_token)
stepper_attention = np.stack([stepper.view(i)["attention"] for i in range(len(step))], axis=2)  # (L, H, T, T)
metrics = {
    "preset": preset,
    "num_params": gl.model.count_params(model),
    "timestep_tokens": len(step),
    "num_patches": step.num_patches,
    "stages": [{"stage": s["stage"], "shape": list(s["shape"])} for s in stages],
    "embed_dim": config.embed_dim,
    "padded_vocab": config.padded_vocab_size,
    "attention_above_diagonal": upper,
    "attention_rows_sum_to_one": bool(np.allclose(weights.sum(-1), 1.0, atol=1e-5)),
    "eval_positions_row": positions["row_eval"].tolist(),
    "train_positions_inside_interval": bool(np.all((positions["row_train"] >= positions["row_lo"]) & (positions["row_train"] < positions["row_hi"]))),
    "presets": {r["preset"]: {"total": r["total"], "paper": r["paper"], "gap_binary": r["gap_binary"],
                              "gap_decimal": r["gap_decimal"]} for r in table},
    "initial_loss": float(loss),
    "loss_targets": {k: float(v) for k, v in loss_metrics.items() if k.startswith("targets")},
    "action_ids": action_ids.tolist(),
    "haiku_max_logit_diff": haiku_max_diff,
    "haiku_parameter_tensors": len(parameter_map),
    "stepper_tokens": len(stepper.seq),
    "stepper_attention_rows_sum_to_one": bool(np.allclose(stepper_attention.sum(-1), 1.0, atol=1e-5)),
    # the tokens before the first action are the same in both sequences (the stepper's holds the sampled action)
    "stepper_attention_matches_layer_weights": float(np.abs(stepper_attention[LAYER, HEAD][:first_action, :first_action]
                                                            - weights[:first_action, :first_action]).max()),
    "stepper_residual_norms": views[0]["residual_norms"].tolist(),
    "stepper_action_probs": [v["action"]["chosen_prob"] for v in views],
    "decoder_action_probs": action_probs.tolist(),
    "stepper_vs_decoder_max_diff": float(np.max(np.abs(np.array([v["action"]["chosen_prob"] for v in views]) - action_probs))),
    "stepper_action_values": [v["action"]["chosen_value"] for v in views],
    "decoded_action_values": [float(x) for x in np.concatenate([np.ravel(action[k]) for k in spec.action_order])],
    "stepper_action_dists_sum_to_one": bool(all(abs(v["action"]["probs"].sum() - 1) < 1e-6 for v in views)),
    "stepper_image_bins": [image_view["row_bin"], image_view["col_bin"]],
    "stepper_embedding_norms": image_view["embedding_norms"],
    "action_ids_legal": bool(np.all((action_ids >= tokenizer.action_token_ranges(spec)[:, 0]) & (action_ids < tokenizer.action_token_ranges(spec)[:, 1]))),
}
gl.notebooks.write_metrics(OUT_DIR, metrics)
metrics
