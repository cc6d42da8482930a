"""Stage 2: tokens -> embeddings (Gato §2.2, appendix C.2–C.3; GATO_SPEC §2).

    ids (B, T) ----- one lookup table (text, discrete, continuous, '|') --------+
    patches (B, P, 16, 16, 3) -- ResNet v2 block -> (B, P, D) + row + column ---+--> (B, T, D)
    local_position (B, T) -- learned local observation positions; actions [open] +

Every input is a field of the `gatolab.batch.TokenBatch` the Embedder is called with.

Axis glossary: B batch, T tokens, D embed, P patches, S patch side (16), C channels,
X flattened pooled patch features, V vocab (padded).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from gatolab.batch import TokenBatch
from gatolab.model.config import ModelConfig
from gatolab.model.layers import Conv3x3, GroupNorm, compute_dtype, einsum, fan_in_init, param, zeros_param
from gatolab.specs import Modality


def patch_position_bounds(interval: Float[Array, "... 2"], bins: int) -> tuple[Int[Array, "..."], Int[Array, "..."]]:
    """Quantises normalised [start, end) intervals into half-open bin ranges [lo, hi).

    Gato appendix C.3: a patch's normalised row (or column) interval is quantised into a
    vocabulary of `bins` (128). Adjacent patches get adjacent, non-overlapping ranges that
    cover [0, bins); every range holds at least one bin.
    """
    lo = jnp.floor(interval[..., 0] * bins + 1e-4).astype(jnp.int32)
    hi = jnp.floor(interval[..., 1] * bins + 1e-4).astype(jnp.int32)
    lo = jnp.clip(lo, 0, bins - 1)
    hi = jnp.clip(jnp.maximum(hi, lo + 1), 1, bins)
    return lo, hi


def patch_position_indices(interval: Float[Array, "... 2"], bins: int, *, train: bool,
                           key: jax.Array | None = None) -> Int[Array, "..."]:
    """Which row (or column) position embedding each patch uses (Gato appendix C.3).

    Training: an index sampled uniformly inside the patch's quantised interval.
    Evaluation: the interval's mean, rounded down (deterministic).

    Args:
      interval: normalised [start, end) in [0, 1], shape (..., 2).
      bins: the position vocabulary (128).
      train: sample (True) or take the mean (False).
      key: PRNG key, required when `train`.
    """
    lo, hi = patch_position_bounds(interval, bins)
    if not train:
        return jnp.minimum((lo + hi) // 2, hi - 1)
    if key is None:
        raise ValueError("patch_position_indices: train=True needs a PRNG key")
    u = jax.random.uniform(key, lo.shape)
    return jnp.minimum(lo + jnp.floor(u * (hi - lo)).astype(jnp.int32), hi - 1)


class PatchResNet(nnx.Module):
    """One pre-activation ResNet v2 block per 16x16 patch -> one vector per patch.

    Gato appendix C.2: a single ResNet v2 block with GroupNorm instead of BatchNorm and
    GELU. GATO_SPEC §2 [open] around it: a 3x3 stem lifts 3 channels to `resnet_channels`
    (GroupNorm cannot split 3 channels into 32 groups); after the block, GroupNorm + GELU,
    4x4 average pooling and a linear map give D features. Pooling keeps the 4x4 layout
    of the patch (16 cells) while keeping the final matrix at 16*C x D.
    """

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        c, g = config.resnet_channels, config.resnet_groups
        self.stem = Conv3x3(config.image_channels, c, rngs)
        self.norm1 = GroupNorm(c, g)
        self.conv1 = Conv3x3(c, c, rngs)
        self.norm2 = GroupNorm(c, g)
        self.conv2 = Conv3x3(c, c, rngs)
        self.norm_out = GroupNorm(c, g)
        self.pool = config.patch_size // 4
        x = 16 * c
        self.proj = param(rngs, fan_in_init(x), (x, config.embed_dim), (None, "embed"))
        self.proj_bias = zeros_param((config.embed_dim,), ("embed",))
        self.dtype = compute_dtype(config.patch_dtype or config.dtype)

    def __call__(self, patches: Float[Array, "N S S C"]) -> Float[Array, "N D"]:
        x = self.stem(patches, self.dtype)
        # ResNet v2: norm -> activation -> conv, twice, then the identity skip.
        h = self.conv1(jax.nn.gelu(self.norm1(x)), self.dtype)
        h = self.conv2(jax.nn.gelu(self.norm2(h)), self.dtype)
        x = x + h
        x = jax.nn.gelu(self.norm_out(x))
        n, s, _, c = x.shape
        p = self.pool
        x = x.reshape(n, s // p, p, s // p, p, c).mean((2, 4)).reshape(n, -1)  # (N, X = 16 C)
        return einsum("NX,XD->ND", x, self.proj[...], self.dtype) + self.proj_bias[...]


class FieldEmbedder(nnx.Module):
    """One embedding per observation field (`ModelConfig.obs_encoding="field"`; issue 18).

    Not Gato: the switch asks what Gato's per-element tokens (§2.1) buy over one vector per
    field, the encoding JAT uses. Each continuous / discrete field token carries its values
    zero-padded to F (`TokenBatch.field_values`, `field_width` of them real):

        continuous (B, T, F) in [-1, 1]   -- linear F -> D ------------------------------+
        discrete   (B, T, F) ints         -- table (1024, E) per element, then F*E -> D ---+--> (B, T, D)
        image      (B, P, D) patch vectors -- mean over the token's patches (from the Embedder)

    [open] choices: the discrete table (E = `field_discrete_dim` = 8) makes a value's meaning
    learnable per element (a linear map of raw category numbers would order them); padding
    elements contribute zero; an image's patches keep their row/column position embeddings
    before the mean, so the pooled vector still knows where things are.
    """

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        f, d, e = config.field_width, config.embed_dim, config.field_discrete_dim
        self.continuous = param(rngs, fan_in_init(f), (f, d), (None, "embed"))
        self.continuous_bias = zeros_param((d,), ("embed",))
        self.discrete_table = param(rngs, fan_in_init(e), (1024, e), (None, None))  # Gato §2.1: values in [0, 1024)
        self.discrete = param(rngs, fan_in_init(f * e), (f * e, d), (None, "embed"))
        self.discrete_bias = zeros_param((d,), ("embed",))
        self.dtype = compute_dtype(config.dtype)

    def __call__(self, batch: TokenBatch, x: Float[Array, "B T D"], pvec: Float[Array, "B P D"]) -> Float[Array, "B T D"]:
        """`x` with every field token's embedding replaced by its field's vector."""
        width, values = batch.field_width, batch.field_values
        b, t, f = values.shape
        present = jnp.arange(f) < width[..., None]  # (B, T, F)
        obs = (width > 0) & ~batch.is_action
        vals = jnp.where(present, values, 0.0)
        cont = einsum("BTF,FD->BTD", vals, self.continuous[...], self.dtype) + self.continuous_bias[...]
        ids = jnp.clip(vals, 0, 1023).astype(jnp.int32)
        small = jnp.where(present[..., None], self.discrete_table[...][ids], 0.0)  # (B, T, F, E)
        disc = einsum("BTX,XD->BTD", small.reshape(b, t, -1), self.discrete[...], self.dtype) + self.discrete_bias[...]
        x = jnp.where((obs & (batch.modality == Modality.CONTINUOUS))[..., None], cont, x)
        x = jnp.where((obs & (batch.modality == Modality.DISCRETE))[..., None], disc, x)
        if pvec.shape[1]:
            # An image token: the mean of its patches [patch_index, patch_index + width).
            p = jnp.arange(pvec.shape[1])
            first = batch.patch_index[..., None]
            own = (p >= first) & (p < first + width[..., None]) & (batch.modality == Modality.IMAGE)[..., None]
            pooled = jnp.einsum("BTP,BPD->BTD", own.astype(pvec.dtype), pvec) / jnp.maximum(width, 1)[..., None]
            x = jnp.where((batch.modality == Modality.IMAGE)[..., None], pooled, x)
        return x


class Embedder(nnx.Module):
    """Token, patch and position embeddings -> one (B, T, D) sequence (Gato §2.2).

    Attributes:
      table: (V, D) lookup table for text, discrete, continuous and special tokens; also
        the tied output projection (`heads.Unembed`). V is padded to a multiple of 128.
      local_position: (max_local_positions, D) learned observation positions (C.3).
      action_position: (D,) the shared action vector when `action_position="shared"`.
      row_position, col_position: (128, D) patch position tables (C.3).
      patch: the per-patch ResNet.
      field: the `FieldEmbedder` when `obs_encoding="field"` (one embedding per observation field).
    """

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d = config.embed_dim
        self.config = config
        # Unit-variance-ish rows scaled by 1/sqrt(D), so tied logits start near zero.
        self.table = param(rngs, fan_in_init(d), (config.padded_vocab_size, d), ("vocab", "embed"))
        self.local_position = param(rngs, fan_in_init(d), (config.max_local_positions, d), (None, "embed"))
        if config.action_position == "shared":
            self.action_position = param(rngs, fan_in_init(d), (d,), ("embed",))
        self.row_position = param(rngs, fan_in_init(d), (config.patch_position_bins, d), (None, "embed"))
        self.col_position = param(rngs, fan_in_init(d), (config.patch_position_bins, d), (None, "embed"))
        self.patch = PatchResNet(config, rngs)
        if config.obs_encoding == "field":
            self.field = FieldEmbedder(config, rngs)

    def embed_patches(self, batch: TokenBatch, *, train: bool, key: jax.Array | None = None) -> Float[Array, "B P D"]:
        """ResNet vector per patch plus its row and column position embeddings."""
        patches = batch.patches
        b, p = patches.shape[:2]
        if p == 0:
            return jnp.zeros((b, 0, self.config.embed_dim), jnp.float32)
        vec = self.patch(patches.reshape(b * p, *patches.shape[2:])).reshape(b, p, -1)
        bins = self.config.patch_position_bins
        k_row, k_col = jax.random.split(key) if train else (None, None)
        ri = patch_position_indices(batch.patch_row_interval, bins, train=train, key=k_row)
        ci = patch_position_indices(batch.patch_col_interval, bins, train=train, key=k_col)
        return vec + self.row_position[...][ri] + self.col_position[...][ci]

    def __call__(self, batch: TokenBatch, *, train: bool, key: jax.Array | None = None) -> Float[Array, "B T D"]:
        """The (B, T, D) input embeddings of a batch (`key`: patch-position draws in training)."""
        x = self.table[...][batch.ids]  # (B, T, D): text, discrete, continuous, '|', pad
        pvec = self.embed_patches(batch, train=train, key=key)
        if self.config.obs_encoding == "field":
            x = self.field(batch, x, pvec)
        elif pvec.shape[1]:
            # Gato §2.2: image tokens take their patch's ResNet vector instead of a table row.
            gathered = jnp.take_along_axis(pvec, jnp.maximum(batch.patch_index, 0)[..., None], axis=1)  # (B, T, D)
            x = jnp.where((batch.modality == Modality.IMAGE)[..., None], gathered, x)
        # Gato appendix C.3: learned local positions for observation tokens.
        local_position = batch.local_position
        is_obs = local_position >= 0
        pos = self.local_position[...][jnp.clip(local_position, 0, self.config.max_local_positions - 1)]
        x = x + jnp.where(is_obs[..., None], pos, 0.0)
        if self.config.action_position == "shared":
            # GATO_SPEC §2 [open]: one learned vector marks every action token.
            x = x + jnp.where(batch.is_action[..., None], self.action_position[...], 0.0)
        return x
