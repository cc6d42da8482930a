"""Looking inside the network (for the architecture notebook, the stepper and debugging).

Everything here reads the network's own hooks (`layers.Record`: the model `sow`s what it
computes, only under `nnx.capture`), so what is plotted is what the forward pass
computed, not a second implementation beside it:

    recs = gl.model.inspect.record(model, batch)     # one compiled forward pass, captured
    recs.attention[layer]      # (B, H, T, S) softmax weights of every head
    recs.residual[layer]       # (B, T, D) each block's output (the residual stream)
    recs.embeddings, recs.logits
    gl.model.inspect.legal_distribution(recs.logits[0], ranges, positions, temperature)

`stage_shapes` tabulates a batch after each stage; `attention_weights` is one layer of
`record`; `embedding_parts` splits each token's embedding into the vectors that were
summed (checked against the recorded embedding); `patch_positions` the row/column bins.

Axis glossary: B batch, T tokens, S keys, D embed, H heads, V vocab, P patches, L layers,
W width of a legal id range.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from gatolab.batch import TokenBatch
from gatolab.model.embed import patch_position_bounds, patch_position_indices
from gatolab.model.gato import Gato
from gatolab.model.layers import Record
from gatolab.model.loss import loss_fn
from gatolab.specs import Modality


@dataclasses.dataclass(frozen=True)
class Records:
    """What one forward pass (evaluation mode) recorded, as NumPy arrays.

    Attributes:
      embeddings: (B, T, D) the input of block 0 (token/patch vector + positions).
      attention: (L, B, H, T, T) every block's attention probabilities (rows: queries).
      residual: (L, B, T, D) every block's output.
      hidden: (B, T, D) the final hidden states (after the final LayerNorm when "pre").
      logits: (B, T, V) next-token logits (padded ids at -inf).
    """

    embeddings: np.ndarray
    attention: np.ndarray
    residual: np.ndarray
    hidden: np.ndarray
    logits: np.ndarray

    @property
    def residual_norms(self) -> np.ndarray:
        """(L + 1, B, T) L2 norm of the residual stream: the embeddings, then after each block."""
        stream = np.concatenate([self.embeddings[None], self.residual])
        return np.linalg.norm(stream.astype(np.float64), axis=-1)


@functools.lru_cache(maxsize=8)
def _recorder(graphdef):
    @jax.jit
    def run(state, batch):
        m = nnx.merge(graphdef, state)
        out, recs = nnx.capture(m, Record)(batch)
        blocks = recs["transformer"]["blocks"]
        layers = sorted(blocks.keys())
        return {"embeddings": recs["embeddings"].get_value(),
                "attention": jnp.stack([blocks[i]["attn"]["attention_weights"].get_value() for i in layers]),
                "residual": jnp.stack([blocks[i]["residual"].get_value() for i in layers]),
                "hidden": recs["hidden"].get_value(), "logits": out}
    return run


def record(model: Gato, batch: TokenBatch) -> Records:
    """Runs `model(batch)` (evaluation mode) under `nnx.capture(..., Record)`, compiled once per model structure."""
    batch.validate(model.config)
    graphdef, state = nnx.split(model)
    out = _recorder(graphdef)(state, batch)
    return Records(**{k: np.asarray(v) for k, v in out.items()})


def _describe(stage: str, x, note: str = "") -> dict[str, Any]:
    a = np.asarray(x)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    return {"stage": stage, "shape": tuple(int(s) for s in a.shape), "dtype": str(a.dtype),
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "std": float(finite.std()) if finite.size else float("nan"), "note": note}


def stage_shapes(model: Gato, batch: TokenBatch) -> list[dict[str, Any]]:
    """One row per stage: name, shape, dtype, mean and std of the values (evaluation mode).

    Read from the model's records (`record`); the patch vectors from `embedding_parts`.
    """
    cfg = model.config
    recs = record(model, batch)
    parts = embedding_parts(model, batch)
    rows = [_describe("tokens (ids)", batch.ids, "one id per token; image tokens hold a placeholder"),
            _describe("patches", batch.patches, "16x16x3 pixels per image token"),
            _describe("patch embeddings (ResNet + row/col)", parts["patch_vectors"], "one vector per patch"),
            _describe("embeddings", recs.embeddings, "table lookup or patch vector, + local position")]
    for i, out in enumerate(recs.residual):
        rows.append(_describe(f"block {i}", out, "attention + MLP, residual"))
    if cfg.norm == "pre":
        rows.append(_describe("final LayerNorm", recs.hidden, ""))
    rows.append(_describe("logits", recs.logits, f"{cfg.padded_vocab_size - cfg.vocab_size} padded ids at -inf"))
    return rows


def loss(model: Gato, batch: TokenBatch) -> tuple[Array, dict[str, Array]]:
    """`loss.loss_fn` in evaluation mode, compiled once."""
    graphdef, state = nnx.split(model)
    run = jax.jit(lambda state, batch: loss_fn(nnx.merge(graphdef, state), batch))
    return run(state, batch)


def attention_weights(model: Gato, batch: TokenBatch, layer: int) -> Float[Array, "B H T S"]:
    """Causal attention probabilities of every head of block `layer` (evaluation mode; from `record`)."""
    if not 0 <= layer < model.config.num_layers:
        raise ValueError(f"attention_weights: layer must be in [0, {model.config.num_layers}), got {layer}")
    return record(model, batch).attention[layer]


def legal_distribution(logits: Float[Array, "T V"], ranges: np.ndarray, positions: np.ndarray,
                       temperature: float = 1.0) -> list[np.ndarray]:
    """The distribution over the legal ids of each action token, as the decoder samples it.

    Args:
      logits: (T, V) one row's recorded logits.
      ranges: (A, 2) half-open legal id range of each action token (`action_token_ranges`).
      positions: (A,) where each action token sits in the row; it is predicted from the
        logits one position earlier (Gato §2.3).
      temperature: the agent's; <= 0 (greedy) reports temperature 1, as the decoder does.

    Returns:
      A arrays: softmax(logits[pos - 1, lo:hi] / temperature), each of length hi - lo.
    """
    t = float(temperature) if temperature > 0 else 1.0
    out = []
    for (lo, hi), pos in zip(np.asarray(ranges), np.asarray(positions)):
        z = np.asarray(logits[int(pos) - 1, int(lo):int(hi)], np.float64) / t
        z = np.exp(z - z.max())
        out.append(z / z.sum())
    return out


def embedding_parts(model: Gato, batch: TokenBatch) -> dict[str, np.ndarray]:
    """Each token's embedding split into the vectors the Embedder sums (evaluation mode).

    Returns NumPy arrays: `token` (B, T, D) the table row or the patch's ResNet vector;
    `local_position`, `action_position`, `row_position`, `col_position` (B, T, D), zero
    where they do not apply; `row_bin`, `col_bin` (B, T) the position bins an image token
    used (-1 otherwise); `patch_vectors` (B, P, D) ResNet + row + column per patch; and
    `total`, their sum, which equals the recorded `embeddings` (tests check this). With
    `obs_encoding="field"` a field token's `token` is its field vector (an image's: the mean of
    its patch vectors, positions included), and the row/column parts are zero.
    """
    graphdef, state = nnx.split(model)
    out = _parts(graphdef)(state, batch)
    return {k: np.asarray(v) for k, v in out.items()}


@functools.lru_cache(maxsize=8)
def _parts(graphdef):
    @jax.jit
    def run(state, batch):
        m = nnx.merge(graphdef, state)
        emb, cfg = m.embed, m.config
        b, t = batch.ids.shape
        d = cfg.embed_dim
        is_image = batch.modality == Modality.IMAGE
        token = emb.table[...][batch.ids]
        zeros = jnp.zeros((b, t, d), jnp.float32)
        row_v = col_v = zeros
        row_bin = col_bin = jnp.full((b, t), -1, jnp.int32)
        pvec = jnp.zeros((b, 0, d), jnp.float32)
        if batch.patches.shape[1]:
            p = batch.patches.shape[1]
            resnet = emb.patch(batch.patches.reshape(b * p, *batch.patches.shape[2:])).reshape(b, p, -1)
            ri = patch_position_indices(batch.patch_row_interval, cfg.patch_position_bins, train=False)
            ci = patch_position_indices(batch.patch_col_interval, cfg.patch_position_bins, train=False)
            pvec = emb.embed_patches(batch, train=False)
            idx = jnp.maximum(batch.patch_index, 0)
            take = lambda a: jnp.take_along_axis(a, idx[..., None] if a.ndim == 3 else idx, axis=1)  # noqa: E731
            token = jnp.where(is_image[..., None], take(resnet), token)
            row_v = jnp.where(is_image[..., None], emb.row_position[...][take(ri)], 0.0)
            col_v = jnp.where(is_image[..., None], emb.col_position[...][take(ci)], 0.0)
            row_bin, col_bin = jnp.where(is_image, take(ri), -1), jnp.where(is_image, take(ci), -1)
        if cfg.obs_encoding == "field":  # one vector per field; an image's pooled patches keep their positions
            token = emb.field(batch, emb.table[...][batch.ids], pvec)
            row_v = col_v = zeros
            row_bin = col_bin = jnp.full((b, t), -1, jnp.int32)
        lp = batch.local_position
        local = jnp.where((lp >= 0)[..., None], emb.local_position[...][jnp.clip(lp, 0, cfg.max_local_positions - 1)], 0.0)
        action = (jnp.where(batch.is_action[..., None], emb.action_position[...], 0.0) if cfg.action_position == "shared"
                  else zeros)
        total = token + row_v + col_v + local + action
        return {"token": token, "local_position": local, "action_position": action, "row_position": row_v,
                "col_position": col_v, "row_bin": row_bin, "col_bin": col_bin, "patch_vectors": pvec, "total": total}
    return run


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
