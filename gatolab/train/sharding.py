"""Sharding by logical axis names: the model names axes, one table maps them to the mesh.

The mesh always has three axes; its shape picks the strategy (as in MaxText):

    ("data", "fsdp", "tensor") = (N, 1, 1)   data parallel (parameters replicated)
                                 (1, N, 1)   fully-sharded data parallel (FSDP): parameters
                                             sharded along "embed", gathered per layer by XLA
                                 (N, M, K)   any mix, with K-way tensor parallelism over
                                             "mlp", "heads" and "vocab"

Model code never names mesh axes; it annotates parameters with logical names
(`param(..., ("embed", "mlp"))` in `gatolab.model.layers`) and `LOGICAL_RULES` maps them.
The activations the mesh needs pinned carry logical names too (`layers.constrain`):
embeddings and the residual stream ("batch", "length", "embed"), the MLP hidden layer
("batch", "length", "mlp"), the attention's per-head tensors ("batch", "length", "heads",
"kv") and the logits ("batch", "length", "vocab"). The same table maps them, inside
`activation_sharding(mesh)` only, where each logical axis takes the first rule whose
mesh axes the tensor does not use yet: under FSDP, (batch, length, embed) activations are
split by batch, not along "fsdp" twice.
Everything is JAX's own SPMD machinery (jit + NamedSharding): no hand-written collectives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gatolab.batch import TokenBatch

MESH_AXES = ("data", "fsdp", "tensor")

# logical axis -> mesh axis (or a tuple of mesh axes, or None = replicated)
LOGICAL_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("length", None),
    ("layers", None),
)


def make_mesh(shape: Sequence[int] | None = None, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ("data", "fsdp", "tensor") mesh over `devices` (default: all). Default shape: all data-parallel.

    On one host a smaller mesh takes the first prod(shape) devices (e.g. (1, 1, 1) = one
    device); with several hosts the mesh must cover every device.
    """
    devices = list(devices if devices is not None else jax.devices())
    n = len(devices)
    shape = tuple(shape) if shape is not None else (n, 1, 1)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ValueError(f"mesh shape must be three positive sizes for {MESH_AXES}, got {shape}")
    need = int(np.prod(shape))
    if need > n or (need < n and jax.process_count() > 1):
        raise ValueError(f"mesh shape {shape} needs {need} devices, but {n} are available"
                         + (" (with several processes the mesh must use all of them)" if need < n else ""))
    return Mesh(np.asarray(devices[:need]).reshape(shape), MESH_AXES)


def parameter_shardings(model: nnx.Module, mesh: Mesh, rules=LOGICAL_RULES):
    """NamedShardings for every variable of `model`, from its logical annotations."""
    state = nnx.state(model)
    with nnx.logical_axis_rules(rules):
        specs = nnx.get_partition_spec(state)
    return jax.tree.map(lambda p: NamedSharding(mesh, p), specs)


def shard_model(model: nnx.Module, mesh: Mesh, rules=LOGICAL_RULES) -> None:
    """Places `model`'s variables on `mesh` in place, per the rules."""
    state = nnx.state(model)
    shardings = parameter_shardings(model, mesh, rules)
    nnx.update(model, jax.device_put(state, shardings))


@contextlib.contextmanager
def activation_sharding(mesh: Mesh, rules=LOGICAL_RULES) -> Iterator[None]:
    """Inside, tracing the model pins its activations onto `mesh` by `rules` (`layers.constrain`).

    Enter it around every call of a jitted function over the sharded model, so that its
    trace carries the constraints; outside it the model traces without them.
    """
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        yield


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches are split along their leading axis over ("data", "fsdp")."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def shard_batch(batch: TokenBatch, mesh: Mesh) -> TokenBatch:
    """Places a host-local batch on the mesh (single host) or assembles the global batch
    from each host's local shard (multi-host, `jax.make_array_from_process_local_data`)."""
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.tree.map(lambda v: jax.device_put(v, sharding), batch)
    return jax.tree.map(lambda v: jax.make_array_from_process_local_data(sharding, v), batch)
