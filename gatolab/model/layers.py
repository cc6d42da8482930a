"""Small building blocks shared by the model stages: parameters with logical axis names,
dense maps, LayerNorm, GroupNorm.

Axis glossary (used in every einsum string of `gatolab.model`):
    B batch, T tokens (queries), S key/value slots, D embed, H heads, K head size,
    F ff hidden, V vocab, P patches, X flattened patch features, C/O conv channels.

Every parameter carries logical axis names as nnx sharding metadata (`out_sharding`),
chosen from ("embed", "mlp", "heads", "kv", "vocab", None), so that a rules table can
map them onto a device mesh later (e.g. `nnx.get_partition_spec` under
`flax.core.spmd.logical_axis_rules`). Parameters are always float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

# The logical names a sharding rules table must cover.
LOGICAL_AXES = ("batch", "embed", "mlp", "heads", "kv", "vocab")


def param(rngs: nnx.Rngs, init, shape: tuple[int, ...], axes: tuple[str | None, ...]) -> nnx.Param:
    """A float32 `nnx.Param` named by its logical axes (not sharded eagerly: no mesh needed)."""
    if len(axes) != len(shape):
        raise ValueError(f"param: {len(axes)} axis names {axes} for shape {shape}")
    return nnx.Param(init(rngs.params(), shape, jnp.float32), out_sharding=axes, eager_sharding=False)


def zeros_param(shape: tuple[int, ...], axes: tuple[str | None, ...]) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, jnp.float32), out_sharding=axes, eager_sharding=False)


def ones_param(shape: tuple[int, ...], axes: tuple[str | None, ...]) -> nnx.Param:
    return nnx.Param(jnp.ones(shape, jnp.float32), out_sharding=axes, eager_sharding=False)


def fan_in_init(fan_in: int, scale: float = 1.0):
    """Truncated normal with std = scale / sqrt(fan_in) (variance scaling, fan-in)."""
    return jax.nn.initializers.truncated_normal(stddev=scale / fan_in**0.5)


def compute_dtype(name: str) -> jnp.dtype:
    return jnp.bfloat16 if name == "bfloat16" else jnp.float32


def einsum(spec: str, x: Array, w: Array, dtype: jnp.dtype) -> Float[Array, "..."]:
    """`jnp.einsum` with both operands cast to the compute dtype and float32 accumulation.

    On CPUs with AVX512-BF16 (and on TPUs/GPUs) bfloat16 operands double matmul throughput;
    accumulating in float32 keeps sums of 3072 products accurate.
    """
    return jnp.einsum(spec, x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


class LayerNorm(nnx.Module):
    """LayerNorm over the last (embed) axis, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        self.scale = ones_param((dim,), ("embed",))
        self.bias = zeros_param((dim,), ("embed",))
        self.eps = eps

    def __call__(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
        x = x.astype(jnp.float32)
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class GroupNorm(nnx.Module):
    """GroupNorm over (height, width, channels-in-group) of NHWC maps (Gato appendix C.2)."""

    def __init__(self, channels: int, groups: int, eps: float = 1e-6):
        if channels % groups:
            raise ValueError(f"GroupNorm: channels {channels} not divisible by groups {groups}")
        self.scale = ones_param((channels,), (None,))
        self.bias = zeros_param((channels,), (None,))
        self.groups, self.eps = groups, eps

    def __call__(self, x: Float[Array, "N H W C"]) -> Float[Array, "N H W C"]:
        n, h, w, c = x.shape
        g = x.astype(jnp.float32).reshape(n, h, w, self.groups, c // self.groups)
        mean = g.mean((1, 2, 4), keepdims=True)
        var = jnp.square(g - mean).mean((1, 2, 4), keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + self.eps)
        return g.reshape(n, h, w, c) * self.scale[...] + self.bias[...]


class Conv3x3(nnx.Module):
    """A 3x3 'SAME' convolution, NHWC, kernel (3, 3, C, O)."""

    def __init__(self, c_in: int, c_out: int, rngs: nnx.Rngs):
        self.kernel = param(rngs, fan_in_init(9 * c_in), (3, 3, c_in, c_out), (None, None, None, None))
        self.bias = zeros_param((c_out,), (None,))

    def __call__(self, x: Float[Array, "N H W C"], dtype: jnp.dtype) -> Float[Array, "N H W O"]:
        y = jax.lax.conv_general_dilated(
            x.astype(dtype), self.kernel[...].astype(dtype), window_strides=(1, 1), padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)
        return y + self.bias[...]
