"""Small building blocks shared by the model stages: parameters and activations with logical
axis names, dense maps, LayerNorm, GroupNorm.

Axis glossary (used in every einsum string of `gatolab.model`):
    B batch, T tokens (queries), S key/value slots, D embed, H heads, K head size,
    F ff hidden, V vocab, P patches, X flattened patch features, C/O conv channels.

Every parameter carries logical axis names as nnx sharding metadata (`out_sharding`),
chosen from ("embed", "mlp", "heads", "kv", "vocab", None), so that a rules table can
map them onto a device mesh later (e.g. `nnx.get_partition_spec` under
`flax.core.spmd.logical_axis_rules`). Parameters are always float32.

Activations the mesh needs pinned go through `constrain(x, ("batch", "length", "embed"))`,
maxtext's habit: the same names and the same rules table, applied only inside a mesh and
rules context (`gatolab.train.sharding.activation_sharding`); anywhere else it is the
identity, so one device, the decoder and the notebooks pay nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import spmd
from jax.sharding import PartitionSpec
from jaxtyping import Array, Float

# The logical names a sharding rules table must cover ("length" only names activations).
LOGICAL_AXES = ("batch", "length", "embed", "mlp", "heads", "kv", "vocab")

LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]

# The activations pinned on a mesh, by the logical names of their axes.
RESIDUAL = ("batch", "length", "embed")  # embeddings and the residual stream (B, T, D)
MLP_HIDDEN = ("batch", "length", "mlp")  # the feed-forward hidden layer (B, T, F)
PER_HEAD = ("batch", "length", "heads", "kv")  # queries, keys, values, attention output (B, T, H, K)
LOGITS = ("batch", "length", "vocab")  # output logits (B, T, V)


def param(rngs: nnx.Rngs, init, shape: tuple[int, ...], axes: tuple[str | None, ...]) -> nnx.Param:
    """A float32 `nnx.Param` named by its logical axes (not sharded eagerly: no mesh needed)."""
    if len(axes) != len(shape):
        raise ValueError(f"param: {len(axes)} axis names {axes} for shape {shape}")
    return nnx.Param(init(rngs.params(), shape, jnp.float32), out_sharding=axes, eager_sharding=False)


def zeros_param(shape: tuple[int, ...], axes: tuple[str | None, ...]) -> nnx.Param:
    return nnx.Param(jnp.zeros(shape, jnp.float32), out_sharding=axes, eager_sharding=False)


def ones_param(shape: tuple[int, ...], axes: tuple[str | None, ...]) -> nnx.Param:
    return nnx.Param(jnp.ones(shape, jnp.float32), out_sharding=axes, eager_sharding=False)


def logical_spec(axes: Sequence[str | None], rules: LogicalRules) -> PartitionSpec:
    """The mesh axes of a tensor whose axes have these logical names.

    Each logical axis takes the first rule for its name whose mesh axes this tensor does
    not use yet (maxtext's and flax linen's reading of a rules table), so one table serves
    parameters and activations: with ("batch", ("data", "fsdp")) and ("embed", "fsdp"),
    an (embed, mlp) weight is split along embed, a (batch, length, embed) activation along
    batch only.
    """
    used: set[str] = set()
    out = []
    for name in axes:
        target = None
        for logical, mesh_axes in rules:
            names = set((mesh_axes,) if isinstance(mesh_axes, str) else (mesh_axes or ()))
            if logical == name and not names & used:
                target, used = mesh_axes, used | names
                break
        out.append(target)
    return PartitionSpec(*out)


def constrain(x: Array, axes: tuple[str | None, ...]) -> Array:
    """Pins the sharding of activation `x` by the logical names of its axes.

    Inside `jax.set_mesh(mesh)` plus `nnx.logical_axis_rules(rules)` (both entered by
    `gatolab.train.sharding.activation_sharding`) this is `jax.lax.with_sharding_constraint`
    with `logical_spec(axes, rules)`; outside it returns `x` itself.
    """
    if len(axes) != x.ndim:
        raise ValueError(f"constrain: {len(axes)} axis names {axes} for an array of shape {x.shape}")
    rules = spmd.get_logical_axis_rules()
    if not rules or jax.sharding.get_abstract_mesh().empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_spec(axes, rules))


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


class Record(nnx.Intermediate):
    """Values the network records about itself for inspection (`gatolab.model.inspect`).

    Modules `sow` attention weights, residual streams, embeddings and logits into this
    collection only inside `nnx.capture(fn, Record)`; anywhere else `record` returns
    before touching the value, so training and decoding trace exactly as without hooks.
    """


def recording(module: nnx.Module) -> bool:
    """True while `module` runs under `nnx.capture(..., Record)` (flax sets its captures)."""
    return any(type(v) is Record for v in getattr(module, "__captures__", ()))


def record(module: nnx.Module, name: str, value) -> None:
    """`module.sow(Record, name, value)` when recording, else nothing (one value per name: the latest)."""
    if recording(module):
        module.sow(Record, name, value, reduce_fn=lambda _, new: new)
