"""Stage 3: embeddings -> hidden states. A decoder-only causal transformer (Gato §2.2,
appendix C.1, Table 5; GATO_SPEC §3).

The same code runs the training forward pass (keys are the T tokens themselves, causal
mask) and deployment decoding (keys are S cached slots plus the new tokens, a
slot-order mask; see `gatolab.model.decode`).

Axis glossary: B batch, T tokens (queries), S key/value slots, D embed, H heads,
K head size, F ff hidden.

On a mesh the residual stream, the MLP hidden layer and the per-head queries, keys,
values and attention outputs are pinned by logical axis names (`layers.constrain`).

Hooks (`layers.Record`, recorded only under `nnx.capture(..., Record)`; see
`gatolab.model.inspect`): each block's `attn` records `attention_weights` (B, H, T, S),
the softmax it multiplies the values with (zero where masked, and above the diagonal
in the blocked causal pass); each block records `residual` (B, T, D), its output. Under
`scan_layers` and `remat="block"` the blocks run as pure functions; their records are
returned as scan/checkpoint outputs and re-recorded on each block, so they are the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

from gatolab.model.config import ModelConfig
from gatolab.model.layers import (MLP_HIDDEN, PER_HEAD, RESIDUAL, LayerNorm, Record, compute_dtype, constrain, einsum,
                                  fan_in_init, param, record, recording, zeros_param)

# A layer's cache: keys and values, each (B, S, H, K).
LayerCache = tuple[Array, Array]

_NEG = -1e30  # added to masked logits; finite so fully masked (padding) rows stay NaN-free


def dropout(x: Array, rate: float, key: jax.Array | None) -> Array:
    """Inverted dropout; identity when `key` is None (evaluation) or `rate` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def causal_mask(valid: Bool[Array, "B T"]) -> Bool[Array, "B T S"]:
    """Query t may attend to key s <= t when s is a real (non-padding) token."""
    t = valid.shape[1]
    causal = jnp.tril(jnp.ones((t, t), bool))
    return causal[None] & valid[:, None, :]


def slot_mask(slot_order: Int[Array, "B S"], query_order: Int[Array, "B T"]) -> Bool[Array, "B T S"]:
    """Deployment mask: a query sees every filled slot written at or before it.

    `slot_order` is the global token counter at which each cache slot was written
    (-1 for an empty or dropped slot); `query_order` is each new token's counter
    (-1 for chunk padding). With no absolute positions (GATO_SPEC §3 [open]), this
    mask alone makes cached decoding equal the full causal forward pass.
    """
    return (slot_order[:, None, :] >= 0) & (slot_order[:, None, :] <= query_order[:, :, None]) & (query_order[:, :, None] >= 0)


class Attention(nnx.Module):
    """Multi-head self-attention with H heads of size K (Table 5)."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, h, k = config.embed_dim, config.num_heads, config.head_dim
        self.query = param(rngs, fan_in_init(d), (d, h, k), ("embed", "heads", "kv"))
        self.key = param(rngs, fan_in_init(d), (d, h, k), ("embed", "heads", "kv"))
        self.value = param(rngs, fan_in_init(d), (d, h, k), ("embed", "heads", "kv"))
        self.out = param(rngs, fan_in_init(h * k, 1.0 / (2 * config.num_layers) ** 0.5), (h, k, d), ("heads", "kv", "embed"))
        self.use_bias = config.use_bias
        if config.use_bias:
            self.query_bias = zeros_param((h, k), ("heads", "kv"))
            self.key_bias = zeros_param((h, k), ("heads", "kv"))
            self.value_bias = zeros_param((h, k), ("heads", "kv"))
            self.out_bias = zeros_param((d,), ("embed",))
        self.dtype = compute_dtype(config.dtype)
        self.scale = k**-0.5

    def _project(self, x: Float[Array, "B T D"], w: nnx.Param, b: nnx.Param | None) -> Float[Array, "B T H K"]:
        y = einsum("BTD,DHK->BTHK", x, w[...], self.dtype)
        return constrain(y + b[...] if b is not None else y, PER_HEAD)

    def qkv(self, x: Float[Array, "B T D"]) -> tuple[Float[Array, "B T H K"], ...]:
        """Queries (already scaled by 1/sqrt(K)), keys and values."""
        bias = (lambda name: getattr(self, name)) if self.use_bias else (lambda name: None)
        q = self._project(x, self.query, bias("query_bias")) * self.scale
        return q, self._project(x, self.key, bias("key_bias")), self._project(x, self.value, bias("value_bias"))

    def _attend(self, q: Float[Array, "B T H K"], k: Float[Array, "B S H K"], v: Float[Array, "B S H K"],
                mask: Bool[Array, "B T S"]) -> tuple[Float[Array, "B T H K"], Float[Array, "B H T S"]]:
        logits = einsum("BTHK,BSHK->BHTS", q, k, self.dtype)
        logits = jnp.where(mask[:, None], logits, _NEG)
        weights = jax.nn.softmax(logits, axis=-1)
        return constrain(einsum("BHTS,BSHK->BTHK", weights, v, self.dtype), PER_HEAD), weights

    def _output(self, ctx: Float[Array, "B T H K"]) -> Float[Array, "B T D"]:
        out = einsum("BTHK,HKD->BTD", ctx, self.out[...], self.dtype)
        return out + self.out_bias[...] if self.use_bias else out

    def __call__(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"] | None = None, *,
                 mask: Bool[Array, "B T S"] | None = None, cache: LayerCache | None = None,
                 slots: Int[Array, "T"] | None = None, block: int = 0):
        """Self-attention over the sequence (training) or over the cache (deployment).

        Training / full forward (`valid` given, no cache): causal attention computed in
        query blocks of `block` tokens, each against only the keys at or before it.
        Skipping the masked upper triangle halves the work, and each block's (B, H,
        block, S) scores stay in cache instead of streaming a (B, H, T, T) array through
        memory several times (the bottleneck on CPUs). `block=0` means one block.

        Deployment (`mask` and `cache` given): first writes this chunk's keys/values into
        `slots`, then attends to every slot the mask allows.

        Returns:
          (out (B, T, D), the updated cache or None).
        """
        q, k, v = self.qkv(x)
        if cache is not None:
            k_cache, v_cache = cache
            k = k_cache.at[:, slots].set(k.astype(k_cache.dtype))  # (B, S, H, K)
            v = v_cache.at[:, slots].set(v.astype(v_cache.dtype))
            ctx, w = self._attend(q, k, v, mask)
            record(self, "attention_weights", w)  # (B, H, T, S): over the cache slots
            return self._output(ctx), (k, v)
        t = x.shape[1]
        block = t if block <= 0 else min(block, t)
        outs, probs = [], []
        for start in range(0, t, block):
            end = min(start + block, t)
            causal = (jnp.arange(start, end)[:, None] >= jnp.arange(end)[None, :])[None]  # (1, Tb, S)
            ctx, w = self._attend(q[:, start:end], k[:, :end], v[:, :end], causal & valid[:, None, :end])
            outs.append(ctx)
            if recording(self):  # the keys this query block skipped (all in its future) get weight 0
                probs.append(jnp.pad(w, ((0, 0), (0, 0), (0, 0), (0, t - end))))
        if probs:
            record(self, "attention_weights", jnp.concatenate(probs, axis=2))  # (B, H, T, T)
        return self._output(jnp.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]), None


class MLP(nnx.Module):
    """Position-wise feed-forward D -> F -> D. GATO_SPEC §3 [open]: GELU by default."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, f = config.embed_dim, config.ff_dim
        self.activation = config.activation
        self.up = param(rngs, fan_in_init(d), (d, f), ("embed", "mlp"))
        if config.activation == "geglu":
            self.gate = param(rngs, fan_in_init(d), (d, f), ("embed", "mlp"))
        self.down = param(rngs, fan_in_init(f, 1.0 / (2 * config.num_layers) ** 0.5), (f, d), ("mlp", "embed"))
        self.use_bias = config.use_bias
        if config.use_bias:
            self.up_bias = zeros_param((f,), ("mlp",))
            if config.activation == "geglu":
                self.gate_bias = zeros_param((f,), ("mlp",))
            self.down_bias = zeros_param((d,), ("embed",))
        self.dtype = compute_dtype(config.dtype)

    def __call__(self, x: Float[Array, "B T D"]) -> Float[Array, "B T D"]:
        h = einsum("BTD,DF->BTF", x, self.up[...], self.dtype)
        if self.use_bias:
            h = h + self.up_bias[...]
        if self.activation == "geglu":
            g = einsum("BTD,DF->BTF", x, self.gate[...], self.dtype)
            if self.use_bias:
                g = g + self.gate_bias[...]
            h = jax.nn.gelu(g) * h
        elif self.activation == "gelu":
            h = jax.nn.gelu(h)
        else:
            h = jax.nn.relu(h)
        h = constrain(h, MLP_HIDDEN)
        y = einsum("BTF,FD->BTD", h, self.down[...], self.dtype)
        return y + self.down_bias[...] if self.use_bias else y


class Block(nnx.Module):
    """Attention then MLP, each with a residual connection and a LayerNorm.

    GATO_SPEC §3 [open]: norm placement. "pre": x + f(LN(x)); "post": LN(x + f(x)).
    """

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.norm = config.norm
        self.rate = config.dropout
        self.ln_attn = LayerNorm(config.embed_dim, config.norm_eps)
        self.attn = Attention(config, rngs)
        self.ln_mlp = LayerNorm(config.embed_dim, config.norm_eps)
        self.mlp = MLP(config, rngs)

    def __call__(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"] | None = None, key: jax.Array | None = None, *,
                 mask: Bool[Array, "B T S"] | None = None, cache: LayerCache | None = None,
                 slots: Int[Array, "T"] | None = None, block: int = 0):
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        kw = dict(mask=mask, cache=cache, slots=slots, block=block)
        if self.norm == "pre":
            a, cache = self.attn(self.ln_attn(x), valid, **kw)
            x = constrain(x + dropout(a, self.rate, k1), RESIDUAL)
            x = constrain(x + dropout(self.mlp(self.ln_mlp(x)), self.rate, k2), RESIDUAL)
        else:
            a, cache = self.attn(x, valid, **kw)
            x = constrain(self.ln_attn(x + dropout(a, self.rate, k1)), RESIDUAL)
            x = constrain(self.ln_mlp(x + dropout(self.mlp(x), self.rate, k2)), RESIDUAL)
        record(self, "residual", x)
        return x, cache


def _block_apply(graphdef, state, x, valid, key, *, block: int, capture: bool = False):
    """A block as a pure function of its parameters (for jax.checkpoint and lax.scan).

    Returns (output, its records as a flat {path: array} dict; empty unless `capture`).
    """
    blk = nnx.merge(graphdef, state)
    if not capture:
        return blk(x, valid, key, block=block)[0], {}
    (y, _), recs = nnx.capture(blk, Record)(x, valid, key, block=block)
    return y, {path: var.get_value() for path, var in nnx.to_flat_state(recs)}


def _rerecord(block: Block, recs: dict[tuple, Array]) -> None:
    """Records on `block` (and its submodules) what its pure-function run recorded."""
    for path, value in recs.items():
        module = block
        for name in path[:-1]:
            module = getattr(module, name)
        record(module, path[-1], value)


class Transformer(nnx.Module):
    """`num_layers` blocks, then a final LayerNorm when norms are "pre"."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        self.blocks = nnx.List([Block(config, rngs) for _ in range(config.num_layers)])
        if config.norm == "pre":
            self.ln_final = LayerNorm(config.embed_dim, config.norm_eps)

    def __call__(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"] | None = None, *, key: jax.Array | None = None,
                 mask: Bool[Array, "B T S"] | None = None, cache: list[LayerCache] | None = None,
                 slots: Int[Array, "T"] | None = None):
        """Runs every block.

        Args:
          x: embeddings (B, T, D).
          valid: (B, T) real tokens, for the causal training / full forward pass.
          key: dropout key (training only).
          mask: deployment only: which key slot each query may see, (B, T, S).
          cache: deployment only: per-layer (keys, values) of shape (B, S, H, K),
            written at `slots`.

        Returns:
          (hidden (B, T, D), new cache or None).
        """
        if cache is None and self.config.scan_layers and len(self.blocks) > 1:
            x = self._scan(x, valid, key)
            return (self.ln_final(x) if self.config.norm == "pre" else x), None
        keys = list(jax.random.split(key, len(self.blocks))) if key is not None else [None] * len(self.blocks)
        new_cache = []
        for i, block in enumerate(self.blocks):
            if cache is None and self.config.remat == "block":
                # Recompute this block's activations in the backward pass (less memory).
                graphdef, state = nnx.split(block)
                step = functools.partial(_block_apply, graphdef, block=self.config.attention_block,
                                         capture=recording(self))
                x, recs = jax.checkpoint(step)(state, x, valid, keys[i])
                _rerecord(block, recs)
            elif cache is None:
                x, _ = block(x, valid, keys[i], block=self.config.attention_block)
            else:
                x, c = block(x, key=None, mask=mask, cache=cache[i], slots=slots)
                new_cache.append(c)
        if self.config.norm == "pre":
            x = self.ln_final(x)
        return x, (new_cache if cache is not None else None)

    def _scan(self, x: Float[Array, "B T D"], valid: Bool[Array, "B T"], key: jax.Array | None) -> Float[Array, "B T D"]:
        """The training / full forward pass as a `lax.scan` over layers.

        The blocks' parameters are stacked into one (L, ...) pytree inside the trace, so
        XLA compiles one block and reuses its buffers layer after layer: with an unrolled
        Python loop, XLA on CPU keeps every layer's backward working set alive at once
        (~0.6 GB per gato_79m layer at 2 x 1024 tokens). Gradients flow back through the
        stacking to each block's own parameters, so checkpoints and sharding names are
        unchanged.
        """
        splits = [nnx.split(b) for b in self.blocks]
        graphdef = splits[0][0]
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *[st for _, st in splits])
        n = len(self.blocks)
        keys = jax.random.split(key, n) if key is not None else None
        step = functools.partial(_block_apply, graphdef, block=self.config.attention_block, capture=recording(self))
        if self.config.remat == "block":
            step = jax.checkpoint(step)

        def body(h, xs):
            st, k = xs
            return step(st, h, valid, k)

        x, recs = jax.lax.scan(body, x, (stacked, keys))  # recs: each record stacked over layers (L, ...)
        for i, block in enumerate(self.blocks):
            _rerecord(block, {path: value[i] for path, value in recs.items()})
        return x
