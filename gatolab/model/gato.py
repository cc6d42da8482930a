"""The whole network: tokens -> embeddings -> transformer -> logits (Gato §2.2).

    TokenBatch (gatolab.batch: TokenSequence.to_arrays rows, stacked)
      -> Embedder      (B, T) ids, (B, P, S, S, C) patches -> (B, T, D)
      -> Transformer   (B, T, D)                           -> (B, T, D)
      -> head: Unembed (B, T, D)                           -> (B, T, V)

Axis glossary: B batch, T tokens, S key/value slots, D embed, V vocab (padded),
P patches, H heads, K head size.

Hooks: under `nnx.capture(model, layers.Record)` the network records what it computes
on the way (`gatolab.model.inspect.record` runs that, compiled): the embedder's patch
vectors, position bins and `embeddings`, every block's attention weights and residual
stream (`transformer`), and the `logits`. Outside a capture nothing is recorded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from gatolab.batch import TokenBatch
from gatolab.model.config import ModelConfig
from gatolab.model.embed import Embedder
from gatolab.model.heads import Unembed
from gatolab.model.layers import RESIDUAL, constrain, fan_in_init, param, record
from gatolab.model.transformer import LayerCache, Transformer, dropout, slot_mask


class Gato(nnx.Module):
    """Gato: one decoder-only transformer over every modality's tokens.

    Example:
        model = gl.model.Gato(gl.model.ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))
        logits = model(batch)                       # batch: a gl.batch.TokenBatch -> (B, T, V)
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

    @property
    def head(self) -> Unembed:
        """The output projection: the token table when tied, else the top-level `unembed`.

        Every logit goes through it: all ids with `logits(model, h)`, one action token's
        legal ids with `decode.restricted_logits`.
        """
        untied = None if self.config.tie_embeddings else self.unembed[...]
        return Unembed(self.config, self.embed.table[...], untied)

    def embed_tokens(self, batch: TokenBatch, *, train: bool = False,
                     key: jax.Array | None = None) -> Float[Array, "B T D"]:
        """Stage 2 only: the (B, T, D) input embeddings (dropout in training)."""
        k_pos, k_drop = jax.random.split(key) if key is not None else (None, None)
        x = self.embed(batch, train=train, key=k_pos)
        x = constrain(dropout(x, self.config.dropout, k_drop if train else None), RESIDUAL)
        record(self, "embeddings", x)  # what block 0 reads
        return x

    def hidden(self, batch: TokenBatch, *, train: bool = False, key: jax.Array | None = None) -> Float[Array, "B T D"]:
        """Embeddings then all blocks: (B, T, D) final hidden states.

        Args:
          batch: the `TokenBatch` (checked against the config first: `TokenBatch.validate`).
          train: sample patch positions and apply dropout (needs `key`).
          key: PRNG key for training.
        """
        batch.validate(self.config)
        if train and key is None:
            raise ValueError("Gato: train=True needs a PRNG key (key=jax.random.key(...))")
        k_emb, k_blocks = jax.random.split(key) if train else (None, None)
        x = self.embed_tokens(batch, train=train, key=k_emb)
        h, _ = self.transformer(x, jnp.asarray(batch.valid, bool), key=k_blocks)
        h = constrain(h, RESIDUAL)
        record(self, "hidden", h)  # after the final LayerNorm when norms are "pre"
        return h

    def __call__(self, batch: TokenBatch, *, train: bool = False, key: jax.Array | None = None) -> Float[Array, "B T V"]:
        """(B, T, V) next-token logits; position t predicts token t + 1 (Gato §2.3)."""
        out = logits(self, self.hidden(batch, train=train, key=key))
        record(self, "logits", out)
        return out

    # --- deployment (Gato §2.4): extend a key/value cache -----------------------------
    def init_cache(self, batch_size: int, slots: int, dtype=jnp.float32) -> list[LayerCache]:
        """An empty per-layer (keys, values) cache, each (B, S, H, K)."""
        cfg = self.config
        shape = (batch_size, slots, cfg.num_heads, cfg.head_dim)
        return [(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.num_layers)]

    def extend(self, chunk: TokenBatch, cache: list[LayerCache], slots: Int[Array, "T"], slot_order: Int[Array, "B S"],
               query_order: Int[Array, "B T"]) -> tuple[Float[Array, "B T D"], list[LayerCache]]:
        """Feeds a chunk of new tokens against the cache (evaluation mode).

        Args:
          chunk: the new tokens, (B, T), with their own patches.
          cache: per-layer (keys, values) of shape (B, S, H, K).
          slots: (T,) cache slot each new token is written to.
          slot_order: (B, S) token counter of each slot after this write (-1 = empty).
          query_order: (B, T) token counter of each new token (-1 = chunk padding).

        Returns:
          (hidden (B, T, D), updated cache).
        """
        x = self.embed_tokens(chunk, train=False)
        h, cache = self.transformer(x, mask=slot_mask(slot_order, query_order), cache=cache, slots=slots)
        return h, cache


def logits(model: Gato, h: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
    """Output logits over the padded vocabulary (padded ids at -inf), float32 (`model.head`)."""
    return model.head(h)
