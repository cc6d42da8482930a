"""Stage 4: hidden states -> logits. The output projection, in one place (Gato §2.2; GATO_SPEC §3).

GATO_SPEC §3 [open]: the output matrix is tied to the token table (`tie_embeddings`,
Press & Wolf 2017: logits = h @ table^T, the table's rows are the ids) or is its own
(D, V) matrix. `Unembed` holds whichever the model has and is what everything that turns
hidden states into logits goes through: the training loss (every target, `__call__`) and
the decoder (only the W legal ids of one action token, `window`). The V rows that only
pad the table to a multiple of 128 are never predicted or sampled.

Axis glossary: B batch, T tokens, D embed, V vocab (padded), W width of a window of ids.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from gatolab.model.config import ModelConfig
from gatolab.model.layers import LOGITS, compute_dtype, constrain, einsum


def vocab_bias(vocab_size: int, padded_size: int) -> Float[Array, "V"]:
    """0 for real ids, -inf for the rows that only pad the table: never predicted or sampled."""
    return jnp.where(jnp.arange(padded_size) < vocab_size, 0.0, -jnp.inf)


@dataclasses.dataclass(frozen=True)
class Unembed:
    """The output projection D -> V of one model (`Gato.head`).

    Attributes:
      config: the model's config (tie, vocabulary sizes, compute dtype).
      table: the (V, D) token table (`embed.table`): the output matrix when tied.
      untied: the (D, V) output matrix (the model's top-level `unembed`) when not tied, else None.
    """

    config: ModelConfig
    table: Float[Array, "V D"]
    untied: Float[Array, "D V"] | None

    def __call__(self, h: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
        """Logits over the whole padded vocabulary (padded ids at -inf), float32."""
        cfg = self.config
        dtype = compute_dtype(cfg.dtype)
        if self.untied is None:
            out = einsum("BTD,VD->BTV", h, self.table, dtype)
        else:
            out = einsum("BTD,DV->BTV", h, self.untied, dtype)
        return constrain(out + vocab_bias(cfg.vocab_size, cfg.padded_vocab_size), LOGITS)

    def window(self, h: Float[Array, "D"], lo: Int[Array, ""], hi: Int[Array, ""],
               width: int) -> tuple[Float[Array, "W"], Int[Array, ""]]:
        """Logits of ids [lo, hi) only, computed on a (W, D) slice of the output matrix.

        Projecting onto W <= 1024 rows instead of all 33k makes a decode step's output
        cost negligible. Returns (logits of ids start .. start + W - 1, illegal ids at
        -inf; start), with start = lo clipped so the window stays inside the table.
        """
        start = jnp.clip(lo, 0, self.config.padded_vocab_size - width)
        if self.untied is None:
            rows = jax.lax.dynamic_slice_in_dim(self.table, start, width, axis=0)  # (W, D)
            logits = einsum("D,WD->W", h, rows, compute_dtype(self.config.dtype))
        else:
            cols = jax.lax.dynamic_slice_in_dim(self.untied, start, width, axis=1)  # (D, W)
            logits = einsum("D,DW->W", h, cols, compute_dtype(self.config.dtype))
        ids = start + jnp.arange(width)
        return jnp.where((ids >= lo) & (ids < hi), logits, -jnp.inf), start
