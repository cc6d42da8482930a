"""The Gato network in Haiku: `gatolab.model`'s twin, module for module (Gato §2.2, appendix C).

    TokenBatch (gatolab.batch)
      -> Embedder      (B, T) ids, (B, P, S, S, C) patches -> (B, T, D)
      -> Transformer   (B, T, D)                           -> (B, T, D)
      -> Gato.logits   (B, T, D)                           -> (B, T, V)
      -> loss          masked cross-entropy on text and action targets (Gato §2.3)

Written the way the DeepMind agents of Gato's time were (the Multi-Game Decision
Transformer's released code is JAX + Haiku): `hk.Module`s whose `__call__` create their
parameters with `hk.get_parameter`, under `hk.transform`. It computes what the NNX
network computes, in the same order: the same einsum strings, float32 LayerNorm and
GroupNorm written out as `gatolab.model.layers` writes them (`hk.LayerNorm` multiplies
scale and 1/sigma in another order, which moves results by an ulp), the same query-blocked
causal attention, the same patch-position rule and the same -inf logits on padded ids.
The functions that hold no parameters (the compute-dtype einsum, the patch-position rule,
the padded-vocab bias, the cross-entropy) are imported from `gatolab.model`, so the two
cannot drift on them; every parameter and module here is Haiku's.

Training mode (`is_training=True`) draws one key with `hk.next_rng_key()` and splits it
the way `Gato.hidden` splits its key, so dropout masks and sampled patch positions are
those of the NNX model given that key (`tests/test_model_haiku.py` checks the loss).

Parameter names follow Haiku's habits: weights `w`, biases `b`, norm `scale` / `offset`,
one module per projection (`attn/~/query`), modules made in `__init__` (`gato/~/embed`).
`gatolab.model.haiku.convert` maps them onto the NNX names, one line per parameter.

Axis glossary (the one of `gatolab.model.layers`): B batch, T tokens (queries), S key/value
slots, D embed, H heads, K head size, F ff hidden, V vocab (padded), P patches,
X flattened patch features, C/O conv channels, N gathered targets.
"""

from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from gatolab.batch import TokenBatch
from gatolab.model.config import ModelConfig
from gatolab.model.embed import patch_position_indices
from gatolab.model.heads import vocab_bias
from gatolab.model.layers import compute_dtype, einsum
from gatolab.model.loss import LOSS_MODALITIES, cross_entropy
from gatolab.specs import Modality

_NEG = -1e30  # masked attention logits: finite, so fully masked (padding) rows stay NaN-free


def _fan_in(fan_in: int, scale: float = 1.0) -> hk.initializers.Initializer:
    """Truncated normal with std = scale / sqrt(fan_in), as `gatolab.model.layers.fan_in_init`."""
    return hk.initializers.TruncatedNormal(stddev=scale / fan_in**0.5)


def _dropout(x: Array, rate: float, key: jax.Array | None) -> Array:
    """`hk.dropout` when training (`key` given), the identity in evaluation."""
    return x if key is None or rate == 0.0 else hk.dropout(key, rate, x)


# ---------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------
class LayerNorm(hk.Module):
    """LayerNorm over the last (embed) axis in float32; parameters `scale`, `offset` (D,)."""

    def __init__(self, eps: float, name: str | None = None):
        super().__init__(name=name)
        self.eps = eps

    def __call__(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
        d = x.shape[-1]
        scale = hk.get_parameter("scale", (d,), jnp.float32, init=jnp.ones)
        offset = hk.get_parameter("offset", (d,), jnp.float32, init=jnp.zeros)
        x = x.astype(jnp.float32)
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + offset


class GroupNorm(hk.Module):
    """GroupNorm over (height, width, channels-in-group) of NHWC maps, float32 (Gato appendix C.2)."""

    def __init__(self, groups: int, eps: float = 1e-6, name: str | None = None):
        super().__init__(name=name)
        self.groups, self.eps = groups, eps

    def __call__(self, x: Float[Array, "N H W C"]) -> Float[Array, "N H W C"]:
        n, h, w, c = x.shape
        scale = hk.get_parameter("scale", (c,), jnp.float32, init=jnp.ones)
        offset = hk.get_parameter("offset", (c,), jnp.float32, init=jnp.zeros)
        g = x.astype(jnp.float32).reshape(n, h, w, self.groups, c // self.groups)
        mean = g.mean((1, 2, 4), keepdims=True)
        var = jnp.square(g - mean).mean((1, 2, 4), keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + self.eps)
        return g.reshape(n, h, w, c) * scale + offset


class Conv3x3(hk.Module):
    """A 3x3 'SAME' convolution, NHWC, `w` (3, 3, C, O) and `b` (O,).

    `hk.Conv2D` would take its weight's dtype from the input's; this keeps parameters in
    float32 and casts to the compute dtype, as every gatolab layer does.
    """

    def __init__(self, channels: int, dtype: jnp.dtype, name: str | None = None):
        super().__init__(name=name)
        self.channels, self.dtype = channels, dtype

    def __call__(self, x: Float[Array, "N H W C"]) -> Float[Array, "N H W O"]:
        c = x.shape[-1]
        w = hk.get_parameter("w", (3, 3, c, self.channels), jnp.float32, init=_fan_in(9 * c))
        b = hk.get_parameter("b", (self.channels,), jnp.float32, init=jnp.zeros)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), w.astype(self.dtype), window_strides=(1, 1), padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)
        return y + b


class Dense(hk.Module):
    """`einsum(spec, x, w) + b`: `hk.Linear` with the weight in the shape its einsum names.

    Attention keeps (D, H, K) and (H, K, D) weights, as gatolab.model does, rather than
    `hk.MultiHeadAttention`'s (D, H*K) plus a reshape: the same einsum, the same numbers.
    """

    def __init__(self, spec: str, w_shape: tuple[int, ...], b_shape: tuple[int, ...] | None, *, fan_in: int,
                 dtype: jnp.dtype, scale: float = 1.0, name: str | None = None):
        super().__init__(name=name)
        self.spec, self.w_shape, self.b_shape = spec, w_shape, b_shape
        self.fan_in, self.scale, self.dtype = fan_in, scale, dtype

    def __call__(self, x: Array) -> Array:
        w = hk.get_parameter("w", self.w_shape, jnp.float32, init=_fan_in(self.fan_in, self.scale))
        y = einsum(self.spec, x, w, self.dtype)
        if self.b_shape is None:
            return y
        return y + hk.get_parameter("b", self.b_shape, jnp.float32, init=jnp.zeros)


# ---------------------------------------------------------------------------------------
# Stage 2: tokens -> embeddings (Gato §2.2, appendix C.2-C.3)
# ---------------------------------------------------------------------------------------
class PatchResNet(hk.Module):
    """One pre-activation ResNet v2 block per 16x16 patch -> one vector per patch.

    Gato appendix C.2: a single ResNet v2 block with GroupNorm instead of BatchNorm and
    GELU. Around it (GATO_SPEC §2 [open], as `gatolab.model.embed.PatchResNet`): a 3x3 stem
    to `resnet_channels`, then GroupNorm + GELU, 4x4 average pooling and a linear map to D.
    """

    def __init__(self, config: ModelConfig, name: str | None = "patch"):
        super().__init__(name=name)
        c, g = config.resnet_channels, config.resnet_groups
        dtype = compute_dtype(config.patch_dtype or config.dtype)
        self.pool = config.patch_size // 4
        self.stem = Conv3x3(c, dtype, name="stem")
        self.norm1 = GroupNorm(g, name="norm1")
        self.conv1 = Conv3x3(c, dtype, name="conv1")
        self.norm2 = GroupNorm(g, name="norm2")
        self.conv2 = Conv3x3(c, dtype, name="conv2")
        self.norm_out = GroupNorm(g, name="norm_out")
        x = 16 * c
        self.proj = Dense("NX,XD->ND", (x, config.embed_dim), (config.embed_dim,), fan_in=x, dtype=dtype, name="proj")

    def __call__(self, patches: Float[Array, "N S S C"]) -> Float[Array, "N D"]:
        x = self.stem(patches)
        # ResNet v2: norm -> activation -> conv, twice, then the identity skip.
        h = self.conv1(jax.nn.gelu(self.norm1(x)))
        h = self.conv2(jax.nn.gelu(self.norm2(h)))
        x = jax.nn.gelu(self.norm_out(x + h))
        n, s, _, c = x.shape
        p = self.pool
        x = x.reshape(n, s // p, p, s // p, p, c).mean((2, 4)).reshape(n, -1)  # (N, X = 16 C)
        return self.proj(x)


class Embedder(hk.Module):
    """Token, patch and position embeddings -> one (B, T, D) sequence (Gato §2.2).

    Parameters: `table` (V, D) for text, discrete, continuous and '|' (also the tied
    output matrix), `local_position` (max_local_positions, D) (appendix C.3),
    `action_position` (D,) when `action_position="shared"`, `row_position` and
    `col_position` (128, D) (appendix C.3); the per-patch ResNet is the `patch` module.
    """

    def __init__(self, config: ModelConfig, name: str | None = "embed"):
        super().__init__(name=name)
        self.config = config
        self.patch = PatchResNet(config)

    def _table(self, name: str, rows: int) -> Float[Array, "R D"]:
        d = self.config.embed_dim
        return hk.get_parameter(name, (rows, d), jnp.float32, init=_fan_in(d))

    def table(self) -> Float[Array, "V D"]:
        """The token table; `Gato.logits` reuses it as the output matrix when tied."""
        return self._table("table", self.config.padded_vocab_size)

    def embed_patches(self, batch: TokenBatch, row_key: jax.Array | None = None,
                      col_key: jax.Array | None = None) -> Float[Array, "B P D"]:
        """ResNet vector per patch plus its row and column position embeddings (appendix C.3).

        Evaluation (no keys): each interval's rounded mean; training: a uniform draw inside it.
        """
        cfg = self.config
        patches = batch.patches
        b, p = patches.shape[:2]
        if p == 0:
            return jnp.zeros((b, 0, cfg.embed_dim), jnp.float32)
        vec = self.patch(patches.reshape(b * p, *patches.shape[2:])).reshape(b, p, -1)
        bins = cfg.patch_position_bins
        train = row_key is not None
        ri = patch_position_indices(batch.patch_row_interval, bins, train=train, key=row_key)
        ci = patch_position_indices(batch.patch_col_interval, bins, train=train, key=col_key)
        return vec + self._table("row_position", bins)[ri] + self._table("col_position", bins)[ci]

    def __call__(self, batch: TokenBatch, key: jax.Array | None = None) -> Float[Array, "B T D"]:
        """The (B, T, D) input embeddings (`key`: the patch-position draws, training only)."""
        cfg = self.config
        x = self.table()[batch.ids]  # (B, T, D): text, discrete, continuous, '|', pad
        row_key, col_key = jax.random.split(key) if key is not None else (None, None)
        pvec = self.embed_patches(batch, row_key, col_key)
        if pvec.shape[1]:
            # Gato §2.2: image tokens take their patch's ResNet vector instead of a table row.
            gathered = jnp.take_along_axis(pvec, jnp.maximum(batch.patch_index, 0)[..., None], axis=1)  # (B, T, D)
            x = jnp.where((batch.modality == Modality.IMAGE)[..., None], gathered, x)
        # Gato appendix C.3: learned local positions for observation tokens.
        local_position = batch.local_position
        pos = self._table("local_position", cfg.max_local_positions)[jnp.clip(local_position, 0, cfg.max_local_positions - 1)]
        x = x + jnp.where((local_position >= 0)[..., None], pos, 0.0)
        if cfg.action_position == "shared":
            # GATO_SPEC §2 [open]: one learned vector marks every action token.
            action = hk.get_parameter("action_position", (cfg.embed_dim,), jnp.float32, init=_fan_in(cfg.embed_dim))
            x = x + jnp.where(batch.is_action[..., None], action, 0.0)
        return x


# ---------------------------------------------------------------------------------------
# Stage 3: embeddings -> hidden states (Gato appendix C.1, Table 5)
# ---------------------------------------------------------------------------------------
class Attention(hk.Module):
    """Causal multi-head self-attention with H heads of size K (Table 5).

    Submodules `query`, `key`, `value` (w (D, H, K), b (H, K)) and `out` (w (H, K, D), b (D,)),
    as `hk.MultiHeadAttention` names them (its output projection is `linear`; here `out`).
    """

    def __init__(self, config: ModelConfig, name: str | None = "attn"):
        super().__init__(name=name)
        d, h, k = config.embed_dim, config.num_heads, config.head_dim
        dtype = compute_dtype(config.dtype)
        bias = (h, k) if config.use_bias else None
        self.query = Dense("BTD,DHK->BTHK", (d, h, k), bias, fan_in=d, dtype=dtype, name="query")
        self.key = Dense("BTD,DHK->BTHK", (d, h, k), bias, fan_in=d, dtype=dtype, name="key")
        self.value = Dense("BTD,DHK->BTHK", (d, h, k), bias, fan_in=d, dtype=dtype, name="value")
        # Residual branches start small: std 1/sqrt(2 L) of fan-in (GPT-2's scaled init).
        self.out = Dense("BTHK,HKD->BTD", (h, k, d), (d,) if config.use_bias else None, fan_in=h * k,
                         scale=1.0 / (2 * config.num_layers) ** 0.5, dtype=dtype, name="out")
        self.dtype, self.scale, self.block = dtype, k**-0.5, config.attention_block

    def _attend(self, q: Float[Array, "B T H K"], k: Float[Array, "B S H K"], v: Float[Array, "B S H K"],
                mask: Bool[Array, "B T S"]) -> Float[Array, "B T H K"]:
        logits = einsum("BTHK,BSHK->BHTS", q, k, self.dtype)
        weights = jax.nn.softmax(jnp.where(mask[:, None], logits, _NEG), axis=-1)
        return einsum("BHTS,BSHK->BTHK", weights, v, self.dtype)

    def __call__(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"]) -> Float[Array, "B T D"]:
        """Causal attention in query blocks of `attention_block` tokens, each against only the
        keys at or before it (as `gatolab.model.transformer.Attention`: half the work, same result)."""
        q, k, v = self.query(x) * self.scale, self.key(x), self.value(x)
        t = x.shape[1]
        block = t if self.block <= 0 else min(self.block, t)
        outs = []
        for start in range(0, t, block):
            end = min(start + block, t)
            causal = (jnp.arange(start, end)[:, None] >= jnp.arange(end)[None, :])[None]  # (1, Tb, S)
            outs.append(self._attend(q[:, start:end], k[:, :end], v[:, :end], causal & valid[:, None, :end]))
        return self.out(jnp.concatenate(outs, axis=1) if len(outs) > 1 else outs[0])


class MLP(hk.Module):
    """Position-wise feed-forward D -> F -> D: `up`, `gate` (GEGLU only), `down`.

    GATO_SPEC §3 [open]: GELU by default; ReLU, or GEGLU (gelu(x W_gate) * x W_up).
    """

    def __init__(self, config: ModelConfig, name: str | None = "mlp"):
        super().__init__(name=name)
        d, f = config.embed_dim, config.ff_dim
        dtype = compute_dtype(config.dtype)
        self.activation = config.activation
        self.up = Dense("BTD,DF->BTF", (d, f), (f,) if config.use_bias else None, fan_in=d, dtype=dtype, name="up")
        if config.activation == "geglu":
            self.gate = Dense("BTD,DF->BTF", (d, f), (f,) if config.use_bias else None, fan_in=d, dtype=dtype, name="gate")
        self.down = Dense("BTF,FD->BTD", (f, d), (d,) if config.use_bias else None, fan_in=f,
                          scale=1.0 / (2 * config.num_layers) ** 0.5, dtype=dtype, name="down")

    def __call__(self, x: Float[Array, "B T D"]) -> Float[Array, "B T D"]:
        h = self.up(x)  # (B, T, F)
        if self.activation == "geglu":
            h = jax.nn.gelu(self.gate(x)) * h
        elif self.activation == "gelu":
            h = jax.nn.gelu(h)
        else:
            h = jax.nn.relu(h)
        return self.down(h)


class Block(hk.Module):
    """Attention then MLP, each with a residual connection and a LayerNorm.

    GATO_SPEC §3 [open]: norm placement. "pre": x + f(LN(x)); "post": LN(x + f(x)).
    Dropout 0.1 (GATO_SPEC §3, appendix E) on both branches, training only.
    """

    def __init__(self, config: ModelConfig, name: str | None = None):
        super().__init__(name=name)
        self.norm, self.rate = config.norm, config.dropout
        self.ln_attn = LayerNorm(config.norm_eps, name="ln_attn")
        self.attn = Attention(config)
        self.ln_mlp = LayerNorm(config.norm_eps, name="ln_mlp")
        self.mlp = MLP(config)

    def __call__(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"], key: jax.Array | None = None) -> Float[Array, "B T D"]:
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        if self.norm == "pre":
            x = x + _dropout(self.attn(self.ln_attn(x), valid), self.rate, k1)
            return x + _dropout(self.mlp(self.ln_mlp(x)), self.rate, k2)
        x = self.ln_attn(x + _dropout(self.attn(x, valid), self.rate, k1))
        return self.ln_mlp(x + _dropout(self.mlp(x), self.rate, k2))


class Transformer(hk.Module):
    """`num_layers` blocks (`block_0` ...), then a final LayerNorm `ln_final` when norms are "pre".

    The blocks run as a Python loop (one parameter set per block, as gatolab checkpoints
    keep them); gatolab.model's `lax.scan` over layers computes the same thing.
    """

    def __init__(self, config: ModelConfig, name: str | None = "transformer"):
        super().__init__(name=name)
        self.blocks = [Block(config, name=f"block_{i}") for i in range(config.num_layers)]
        self.ln_final = LayerNorm(config.norm_eps, name="ln_final") if config.norm == "pre" else None

    def __call__(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"], key: jax.Array | None = None) -> Float[Array, "B T D"]:
        keys = jax.random.split(key, len(self.blocks)) if key is not None else [None] * len(self.blocks)
        for block, k in zip(self.blocks, keys):
            x = block(x, valid, k)
        return self.ln_final(x) if self.ln_final is not None else x


# ---------------------------------------------------------------------------------------
# The whole network and its loss
# ---------------------------------------------------------------------------------------
def require_gato_tokens(config: ModelConfig) -> None:
    """The twin is Gato's network (per-element observation tokens, §2.1); it refuses the
    `obs_encoding="field"` ablation rather than silently embedding its tokens as table rows."""
    if config.obs_encoding != "tokens":
        raise ValueError(f"the Haiku twin implements ModelConfig.obs_encoding='tokens' (Gato's) only, got "
                         f"{config.obs_encoding!r}; use the NNX model (gl.model.Gato) for the field encoding")


class Gato(hk.Module):
    """Gato: one decoder-only transformer over every modality's tokens.

    Example:
        fns = gl.model.haiku.transform(gl.model.ModelConfig.preset("tiny"))
        params = fns.forward.init(jax.random.key(0), batch)
        logits = fns.forward.apply(params, None, batch)        # (B, T, V)
    """

    def __init__(self, config: ModelConfig, name: str | None = "gato"):
        super().__init__(name=name)
        require_gato_tokens(config)
        self.config = config
        self.embed = Embedder(config)
        self.transformer = Transformer(config)

    def hidden(self, batch: TokenBatch, is_training: bool = False) -> Float[Array, "B T D"]:
        """Embeddings then all blocks: the (B, T, D) final hidden states.

        Training draws one key (`hk.next_rng_key()`) and splits it as `gatolab.model.Gato.hidden`
        does: (embeddings: (patch positions, dropout), blocks).
        """
        batch.validate(self.config)
        k_emb, k_blocks = jax.random.split(hk.next_rng_key()) if is_training else (None, None)
        k_pos, k_drop = jax.random.split(k_emb) if is_training else (None, None)
        x = _dropout(self.embed(batch, k_pos), self.config.dropout, k_drop)
        return self.transformer(x, jnp.asarray(batch.valid, bool), k_blocks)

    def logits(self, h: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
        """Logits over the padded vocabulary, float32; padded ids at -inf (never predicted).

        GATO_SPEC §3 [open]: tied (h @ table^T, Press & Wolf 2017) or an untied (D, V) `unembed`.
        """
        cfg = self.config
        dtype = compute_dtype(cfg.dtype)
        if cfg.tie_embeddings:
            out = einsum("BTD,VD->BTV", h, self.embed.table(), dtype)
        else:
            unembed = hk.get_parameter("unembed", (cfg.embed_dim, cfg.padded_vocab_size), jnp.float32,
                                       init=_fan_in(cfg.embed_dim))
            out = einsum("BTD,DV->BTV", h, unembed, dtype)
        return out + vocab_bias(cfg.vocab_size, cfg.padded_vocab_size)

    def __call__(self, batch: TokenBatch, is_training: bool = False) -> Float[Array, "B T V"]:
        """(B, T, V) next-token logits; position t predicts token t + 1 (Gato §2.3)."""
        return self.logits(self.hidden(batch, is_training))


def _shifted_targets(batch: TokenBatch) -> tuple[Int[Array, "B T"], Bool[Array, "B T"], Int[Array, "B T"]]:
    """Position t's target is token t + 1: (ids, in the loss, modality); the last position has none."""
    mask = jnp.asarray(batch.loss_mask, bool) & jnp.asarray(batch.valid, bool)
    shift = lambda a, fill: jnp.concatenate([a[:, 1:], jnp.full_like(a[:, :1], fill)], axis=1)
    return shift(jnp.asarray(batch.ids), 0), shift(mask, False), shift(jnp.asarray(batch.modality).astype(jnp.int32), -1)


def loss(model: Gato, batch: TokenBatch, is_training: bool = False,
         max_targets: int | None = None) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Masked next-token cross-entropy over text and action targets (Gato §2.3), inside a transform.

    The same loss and metrics as `gatolab.model.loss_fn`: mean over target tokens; `accuracy`,
    `targets`, per modality of the target `loss/<m>` and `targets/<m>`, per row `row_nll` and
    `row_targets`. `max_targets=K` projects only K gathered targets per row onto the
    vocabulary (`gatolab.model.target_bucket(batch)` picks K; more targets than K are counted
    in `dropped_targets`).
    """
    h = model.hidden(batch, is_training)  # (B, T, D)
    targets, mask, tmod = _shifted_targets(batch)
    dropped = jnp.zeros((), jnp.int32)
    if max_targets is not None:
        counts = mask.sum(1)
        dropped = jnp.maximum(counts - max_targets, 0).sum()
        idx = jax.vmap(lambda m: jnp.nonzero(m, size=max_targets, fill_value=0)[0])(mask)  # (B, N), stable order
        h = jnp.take_along_axis(h, idx[..., None], axis=1)  # (B, N, D)
        targets, tmod = jnp.take_along_axis(targets, idx, axis=1), jnp.take_along_axis(tmod, idx, axis=1)
        mask = jnp.arange(max_targets)[None, :] < counts[:, None]
    nll, correct = cross_entropy(model.logits(h), targets)
    w = mask.astype(jnp.float32)
    n = w.sum()
    metrics = {"loss": (nll * w).sum() / jnp.maximum(n, 1.0), "accuracy": (correct * w).sum() / jnp.maximum(n, 1.0),
               "targets": n, "dropped_targets": dropped}
    for name, m in LOSS_MODALITIES.items():
        wm = w * (tmod == int(m))
        metrics[f"loss/{name}"] = (nll * wm).sum() / jnp.maximum(wm.sum(), 1.0)
        metrics[f"targets/{name}"] = wm.sum()
    metrics["row_nll"], metrics["row_targets"] = (nll * w).sum(-1), w.sum(-1)
    return metrics["loss"], metrics


class Functions(NamedTuple):
    """The twin's entry points, each an `hk.Transformed` over the same parameters.

    forward: `apply(params, rng, batch, is_training=False)` -> (B, T, V) logits.
    hidden: `apply(params, rng, batch, is_training=False)` -> (B, T, D) final hidden states.
    loss: `apply(params, rng, batch, is_training=False, max_targets=None)` -> (loss, metrics).
    `rng` may be None in evaluation; training needs a key (dropout, patch positions).
    """

    forward: hk.Transformed
    hidden: hk.Transformed
    loss: hk.Transformed


def transform(config: ModelConfig) -> Functions:
    """`hk.transform` of the network for `config`: forward, hidden and loss (same parameter names)."""
    require_gato_tokens(config)
    return Functions(
        forward=hk.transform(lambda batch, is_training=False: Gato(config)(batch, is_training)),
        hidden=hk.transform(lambda batch, is_training=False: Gato(config).hidden(batch, is_training)),
        loss=hk.transform(lambda batch, is_training=False, max_targets=None:
                          loss(Gato(config), batch, is_training, max_targets)),
    )


def example_batch(config: ModelConfig, tokens: int = 8, patches: int = 1) -> TokenBatch:
    """A (1, tokens) batch whose first `patches` tokens are image tokens: enough to `init` every parameter.

    (The patch ResNet's parameters are created only when a batch has patches.)
    """
    s, c = config.patch_size, config.image_channels
    modality = np.full((1, tokens), int(Modality.DISCRETE), np.int32)
    modality[:, :patches] = int(Modality.IMAGE)
    patch_index = np.full((1, tokens), -1, np.int32)
    patch_index[:, :patches] = np.arange(patches)
    interval = np.tile(np.asarray([0.0, 1.0], np.float32), (1, patches, 1))
    return TokenBatch(ids=np.zeros((1, tokens), np.int32), modality=modality,
                      local_position=np.arange(tokens, dtype=np.int32)[None] % config.max_local_positions,
                      is_action=np.zeros((1, tokens), bool), patch_index=patch_index, valid=np.ones((1, tokens), bool),
                      loss_mask=np.zeros((1, tokens), bool), patches=np.zeros((1, patches, s, s, c), np.float32),
                      patch_row_interval=interval, patch_col_interval=interval)


__all__ = ["Attention", "Block", "Dense", "Embedder", "Functions", "Gato", "GroupNorm", "LayerNorm", "MLP", "PatchResNet",
           "Transformer", "example_batch", "loss", "transform"]
