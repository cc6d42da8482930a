"""The whole network: tokens -> embeddings -> transformer -> logits (Gato §2.2).

    batch (from TokenSequence.to_arrays + stack_arrays)
      -> Embedder      (B, T) ids, patches  -> (B, T, D)
      -> Transformer   (B, T, D)            -> (B, T, D)
      -> heads.logits  (B, T, D)            -> (B, T, V)

Axis glossary: B batch, T tokens, S key/value slots, D embed, V vocab (padded),
P patches, H heads, K head size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from gatolab.model import heads
from gatolab.model.config import ModelConfig
from gatolab.model.embed import Embedder
from gatolab.model.layers import fan_in_init, param
from gatolab.model.transformer import Transformer, dropout

# What the model reads from a batch (all made by `TokenSequence.to_arrays`).
MODEL_KEYS = ("ids", "modality", "local_position", "is_action", "patch_index", "valid", "patches",
              "patch_row_interval", "patch_col_interval")
_TOKEN_KEYS = ("ids", "modality", "local_position", "is_action", "patch_index", "valid")


def validate_batch(batch: Mapping[str, Any], config: ModelConfig) -> None:
    """Raises ValueError if `batch` does not fit `config` (skipped for traced arrays).

    Checks: every key in `MODEL_KEYS` is present; per-token arrays share one (B, T) shape
    with T <= context_len; patches are (B, P, S, S, C) for this patch size and channel
    count; ids lie in [0, vocab_size); local positions fit the table.
    """
    missing = [k for k in MODEL_KEYS if k not in batch]
    if missing:
        raise ValueError(f"batch: missing key {missing[0]!r} (expected {MODEL_KEYS}; build it with "
                         f"TokenSequence.to_arrays + stack_arrays)")
    shape = np.shape(batch["ids"])
    if len(shape) != 2:
        raise ValueError(f"batch['ids']: expected shape (B, T), got {shape}")
    for k in _TOKEN_KEYS:
        if np.shape(batch[k]) != shape:
            raise ValueError(f"batch[{k!r}]: expected shape {shape} like batch['ids'], got {np.shape(batch[k])}")
    if shape[1] > config.context_len:
        raise ValueError(f"batch['ids']: {shape[1]} tokens exceed context_len={config.context_len}")
    s, c = config.patch_size, config.image_channels
    pshape = np.shape(batch["patches"])
    if len(pshape) != 5 or pshape[0] != shape[0] or pshape[2:] != (s, s, c):
        raise ValueError(f"batch['patches']: expected shape ({shape[0]}, P, {s}, {s}, {c}), got {pshape}")
    for k in ("patch_row_interval", "patch_col_interval"):
        if np.shape(batch[k]) != (*pshape[:2], 2):
            raise ValueError(f"batch[{k!r}]: expected shape {(*pshape[:2], 2)}, got {np.shape(batch[k])}")
    if any(isinstance(batch[k], jax.core.Tracer) for k in ("ids", "local_position")):
        return  # values are only checkable on concrete arrays
    ids = np.asarray(batch["ids"])
    if ids.size and (ids.min() < 0 or ids.max() >= config.vocab_size):
        raise ValueError(f"batch['ids']: ids must lie in [0, {config.vocab_size}), got [{ids.min()}, {ids.max()}]")
    lp = np.asarray(batch["local_position"])
    if lp.size and lp.max() >= config.max_local_positions:
        raise ValueError(f"batch['local_position']: {lp.max()} >= max_local_positions={config.max_local_positions} "
                         f"(a timestep has more observation tokens than the position table)")
    pi = np.asarray(batch["patch_index"])
    if pi.size and pi.max() >= pshape[1]:
        raise ValueError(f"batch['patch_index']: {pi.max()} points past the {pshape[1]} patches")


class Gato(nnx.Module):
    """Gato: one decoder-only transformer over every modality's tokens.

    Example:
        model = gl.model.Gato(gl.model.ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))
        logits = model(batch)                       # (B, T, V)
        loss, metrics = gl.model.loss_fn(model, batch)
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed = Embedder(config, rngs)
        self.transformer = Transformer(config, rngs)
        if not config.tie_embeddings:
            # GATO_SPEC §3 [open]: an untied (D, V) output matrix.
            self.unembed = param(rngs, fan_in_init(config.embed_dim), (config.embed_dim, config.padded_vocab_size),
                                 ("embed", "vocab"))

    def embed_tokens(self, batch: Mapping[str, Array], *, train: bool = False,
                     key: jax.Array | None = None) -> Float[Array, "B T D"]:
        """Stage 2 only: the (B, T, D) input embeddings (dropout in training)."""
        k_pos, k_drop = jax.random.split(key) if key is not None else (None, None)
        x = self.embed(batch["ids"], batch["modality"], batch["local_position"], batch["is_action"],
                       batch["patch_index"], batch["patches"], batch["patch_row_interval"],
                       batch["patch_col_interval"], train=train, key=k_pos)
        return dropout(x, self.config.dropout, k_drop if train else None)

    def hidden(self, batch: Mapping[str, Array], *, train: bool = False, key: jax.Array | None = None,
               collect: bool = False):
        """Embeddings then all blocks: (B, T, D) final hidden states.

        Args:
          batch: arrays from `TokenSequence.to_arrays` stacked by `stack_arrays`.
          train: sample patch positions and apply dropout (needs `key`).
          key: PRNG key for training.
          collect: also return the embeddings and each block's output.
        """
        validate_batch(batch, self.config)
        if train and key is None:
            raise ValueError("Gato: train=True needs a PRNG key (key=jax.random.key(...))")
        k_emb, k_blocks = jax.random.split(key) if train else (None, None)
        x = self.embed_tokens(batch, train=train, key=k_emb)
        h, _, outs = self.transformer(x, jnp.asarray(batch["valid"], bool), key=k_blocks, collect=collect)
        return (h, {"embeddings": x, "blocks": outs}) if collect else h

    def logits(self, h: Float[Array, "... D"]) -> Float[Array, "... V"]:
        return heads.logits(self, h)

    def __call__(self, batch: Mapping[str, Array], *, train: bool = False, key: jax.Array | None = None) -> Float[Array, "B T V"]:
        """(B, T, V) next-token logits; position t predicts token t + 1 (Gato §2.3)."""
        return self.logits(self.hidden(batch, train=train, key=key))

    # --- deployment (Gato §2.4): extend a key/value cache -----------------------------
    def init_cache(self, batch_size: int, slots: int, dtype=jnp.float32) -> list[tuple[Array, Array]]:
        """An empty per-layer (keys, values) cache, each (B, S, H, K)."""
        cfg = self.config
        shape = (batch_size, slots, cfg.num_heads, cfg.head_dim)
        return [(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.num_layers)]

    def extend(self, chunk: Mapping[str, Array], cache: list[tuple[Array, Array]], slots, slot_order, query_order):
        """Feeds a chunk of new tokens against the cache (evaluation mode).

        Args:
          chunk: per-token and patch arrays like a batch, (B, T) tokens.
          cache: per-layer (keys, values) of shape (B, S, H, K).
          slots: (T,) cache slot each new token is written to.
          slot_order: (B, S) token counter of each slot after this write (-1 = empty).
          query_order: (B, T) token counter of each new token (-1 = chunk padding).

        Returns:
          (hidden (B, T, D), updated cache).
        """
        from gatolab.model.transformer import slot_mask

        x = self.embed_tokens(chunk, train=False)
        h, cache, _ = self.transformer(x, mask=slot_mask(slot_order, query_order), cache=cache, slots=slots)
        return h, cache
