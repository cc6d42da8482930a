"""Looking inside the network (for the architecture notebook and debugging).

`stage_shapes` runs one batch through the data flow and reports what comes out of each
stage (tokens -> embeddings -> each block -> final norm -> logits); `attention_weights`
returns one layer's causal attention probabilities; `patch_positions` the row/column
position bins of each patch.

Axis glossary: B batch, T tokens, S keys, D embed, H heads, V vocab, P patches.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from gatolab.batch import TokenBatch
from gatolab.model.embed import patch_position_bounds, patch_position_indices
from gatolab.model.gato import Gato, logits
from gatolab.model.loss import loss_fn


def _describe(stage: str, x, note: str = "") -> dict[str, Any]:
    a = np.asarray(x)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    return {"stage": stage, "shape": tuple(int(s) for s in a.shape), "dtype": str(a.dtype),
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "std": float(finite.std()) if finite.size else float("nan"), "note": note}


def stage_shapes(model: Gato, batch: TokenBatch) -> list[dict[str, Any]]:
    """One row per stage: name, shape, dtype, mean and std of the values (evaluation mode).

    The whole pass is compiled once (`jax.jit`) rather than run op by op.
    """
    cfg = model.config
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, batch):
        m = nnx.merge(graphdef, state)
        pvec = m.embed.embed_patches(batch, train=False)
        h, extra = m.hidden(batch, collect=True)
        return pvec, extra["embeddings"], extra["blocks"], h, logits(m, h)

    pvec, emb, blocks, h, scores = run(state, batch)
    rows = [_describe("tokens (ids)", batch.ids, "one id per token; image tokens hold a placeholder"),
            _describe("patches", batch.patches, "16x16x3 pixels per image token"),
            _describe("patch embeddings (ResNet + row/col)", pvec, "one vector per patch"),
            _describe("embeddings", emb, "table lookup or patch vector, + local position")]
    for i, out in enumerate(blocks):
        rows.append(_describe(f"block {i}", out, "attention + MLP, residual"))
    if cfg.norm == "pre":
        rows.append(_describe("final LayerNorm", h, ""))
    rows.append(_describe("logits", scores, f"{cfg.padded_vocab_size - cfg.vocab_size} padded ids at -inf"))
    return rows


def loss(model: Gato, batch: TokenBatch) -> tuple[Array, dict[str, Array]]:
    """`loss.loss_fn` in evaluation mode, compiled once."""
    graphdef, state = nnx.split(model)
    run = jax.jit(lambda state, batch: loss_fn(nnx.merge(graphdef, state), batch))
    return run(state, batch)


def attention_weights(model: Gato, batch: TokenBatch, layer: int) -> Float[Array, "B H T S"]:
    """Causal attention probabilities of every head of block `layer` (evaluation mode)."""
    if not 0 <= layer < model.config.num_layers:
        raise ValueError(f"attention_weights: layer must be in [0, {model.config.num_layers}), got {layer}")
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, batch):
        m = nnx.merge(graphdef, state)
        valid = jnp.asarray(batch.valid, bool)
        x = m.embed_tokens(batch)
        for block in m.transformer.blocks[:layer]:
            x, _ = block(x, valid, block=m.config.attention_block)
        blk = m.transformer.blocks[layer]
        return blk.attn.weights(blk.ln_attn(x) if m.config.norm == "pre" else x, valid)

    return run(state, batch)


def patch_positions(rows: np.ndarray, cols: np.ndarray, bins: int = 128, draws: int = 0,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Quantised row/column bins of each patch: bounds, evaluation index, and training draws.

    Args:
      rows, cols: (P, 2) normalised intervals (from `tokenizers.patchify`).
      bins: the position vocabulary (128, Gato appendix C.3).
      draws: how many training-time samples to take per patch.

    Returns:
      dict with `row_lo`, `row_hi`, `col_lo`, `col_hi`, `row_eval`, `col_eval` (P,) and,
      when `draws`, `row_train`, `col_train` (draws, P).
    """
    r, c = jnp.asarray(rows), jnp.asarray(cols)
    out = {}
    for name, iv in (("row", r), ("col", c)):
        lo, hi = patch_position_bounds(iv, bins)
        out[f"{name}_lo"], out[f"{name}_hi"] = np.asarray(lo), np.asarray(hi)
        out[f"{name}_eval"] = np.asarray(patch_position_indices(iv, bins, train=False))
        if draws:
            keys = jax.random.split(jax.random.key(seed + (name == "col")), draws)
            sample = jax.jit(jax.vmap(lambda k, iv=iv: patch_position_indices(iv, bins, train=True, key=k)))
            out[f"{name}_train"] = np.asarray(sample(keys))  # (draws, P)
    return out


def patch_vector_norms(model: Gato, batch: TokenBatch) -> np.ndarray:
    """(B, P) norms of each patch's embedding (ResNet vector + row/column positions)."""
    graphdef, state = nnx.split(model)
    run = jax.jit(lambda state, batch: jnp.linalg.norm(nnx.merge(graphdef, state).embed.embed_patches(batch, train=False),
                                                       axis=-1))
    return np.asarray(run(state, batch))
