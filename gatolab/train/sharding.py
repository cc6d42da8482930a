"""Sharding by logical axis names: the model names axes, one table maps them to the mesh.

The mesh always has three axes; its shape picks the strategy (as in MaxText):

    ("data", "fsdp", "tensor") = (N, 1, 1)   data parallel (parameters replicated)
                                 (1, N, 1)   fully-sharded data parallel (FSDP): parameters
                                             sharded along "embed", gathered per layer by XLA
                                 (N, M, K)   any mix, with K-way tensor parallelism over
                                             "mlp", "heads" and "vocab"

Model code never names mesh axes; it annotates parameters with logical names
(`nnx.with_partitioning(init, ("embed", "mlp"))`) and `LOGICAL_RULES` maps them.
Everything is JAX's own SPMD machinery (jit + NamedSharding): no hand-written collectives.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

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


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches are split along their leading axis over ("data", "fsdp")."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Places a host-local batch on the mesh (single host) or assembles the global batch
    from each host's local shard (multi-host, `jax.make_array_from_process_local_data`)."""
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return {k: jax.device_put(v, sharding) for k, v in batch.items()}
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
