"""Weights both ways between gatolab's NNX network and its Haiku twin, and checkpoints.

    nnx.to_pure_dict(nnx.state(model))  <-- parameter_map(config) -->  Haiku params
    {"embed": {"table": ...},                                          {"gato/~/embed": {"table": ...},
     "transformer": {"blocks": {0: {"attn": {"query": ...,              "gato/~/transformer/~/block_0/~/attn/~/query":
                                              "query_bias": ...}}}}}       {"w": ..., "b": ...}, ...}

`parameter_map(config)` lists every parameter once, as (NNX path, Haiku module, Haiku
name); both directions read that one table and only move arrays (no transposes or
reshapes: the twin keeps gatolab's shapes), so NNX -> Haiku -> NNX is bit-exact. Any
pytree in either layout converts, not only parameters (gradients, optimiser moments).

A gatolab checkpoint loads into the twin from its path (`load`, through
`gatolab.train.load_model`), and Haiku parameters are saved as a gatolab checkpoint
(`save`, through `gatolab.train.checkpoint.save_model`) that `gl.train.load_model` and
`gl.agent.GatoAgent.from_checkpoint` read.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gatolab.batch import TokenBatch
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.model.config import ModelConfig
from gatolab.model.count import abstract_model
from gatolab.model.gato import Gato
from gatolab.model.haiku.network import Functions, require_gato_tokens, transform
from gatolab.train.checkpoint import load_model, save_model

NnxPath = tuple[str | int, ...]


def parameter_map(config: ModelConfig) -> list[tuple[NnxPath, str, str]]:
    """Every parameter of `config`'s network: (NNX path, Haiku module, Haiku parameter name).

    NNX paths index `nnx.to_pure_dict(nnx.state(model))`; Haiku params are
    `params[module][name]`. Shapes are the same on both sides.
    """
    require_gato_tokens(config)
    rows: list[tuple[NnxPath, str, str]] = []

    def dense(path: NnxPath, module: str, bias: bool) -> None:  # NNX keeps `x` and `x_bias` side by side
        rows.append((path, module, "w"))
        if bias:
            rows.append((path[:-1] + (f"{path[-1]}_bias",), module, "b"))

    def norm(path: NnxPath, module: str) -> None:
        rows.extend([(path + ("scale",), module, "scale"), (path + ("bias",), module, "offset")])

    embed, patch = "gato/~/embed", "gato/~/embed/~/patch"
    tables = ["table", "local_position", "row_position", "col_position"]
    tables += ["action_position"] if config.action_position == "shared" else []
    rows += [(("embed", t), embed, t) for t in tables]
    for conv in ("stem", "conv1", "conv2"):
        rows += [(("embed", "patch", conv, "kernel"), f"{patch}/~/{conv}", "w"),
                 (("embed", "patch", conv, "bias"), f"{patch}/~/{conv}", "b")]
    for gn in ("norm1", "norm2", "norm_out"):
        norm(("embed", "patch", gn), f"{patch}/~/{gn}")
    dense(("embed", "patch", "proj"), f"{patch}/~/proj", bias=True)
    mlp = ("up", "gate", "down") if config.activation == "geglu" else ("up", "down")
    for i in range(config.num_layers):
        path, block = ("transformer", "blocks", i), f"gato/~/transformer/~/block_{i}"
        norm(path + ("ln_attn",), f"{block}/~/ln_attn")
        for proj in ("query", "key", "value", "out"):
            dense(path + ("attn", proj), f"{block}/~/attn/~/{proj}", config.use_bias)
        norm(path + ("ln_mlp",), f"{block}/~/ln_mlp")
        for proj in mlp:
            dense(path + ("mlp", proj), f"{block}/~/mlp/~/{proj}", config.use_bias)
    if config.norm == "pre":
        norm(("transformer", "ln_final"), "gato/~/transformer/~/ln_final")
    if not config.tie_embeddings:
        rows.append((("unembed",), "gato", "unembed"))
    return rows


def _leaves(tree: dict, prefix: NnxPath = ()) -> dict[NnxPath, Any]:
    out = {}
    for k, v in tree.items():
        out.update(_leaves(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


def _check(what: str, have: set, want: set) -> None:
    if have != want:
        missing, extra = sorted(map(str, want - have))[:5], sorted(map(str, have - want))[:5]
        raise ValueError(f"{what}: missing {missing}, unexpected {extra} (is the config the one it was made with?)")


def tree_to_haiku(tree: dict, config: ModelConfig) -> hk.Params:
    """An NNX-layout pytree (`nnx.to_pure_dict(...)` of parameters, gradients, ...) -> Haiku layout."""
    leaves = _leaves(tree)
    rows = parameter_map(config)
    _check("tree_to_haiku: NNX tree", set(leaves), {p for p, _, _ in rows})
    params: dict[str, dict[str, Any]] = {}
    for path, module, name in rows:
        params.setdefault(module, {})[name] = leaves[path]
    return params


def tree_to_nnx(params: hk.Params, config: ModelConfig) -> dict:
    """A Haiku-layout pytree (params, gradients, ...) -> the NNX layout of `nnx.to_pure_dict`."""
    rows = parameter_map(config)
    _check("tree_to_nnx: Haiku params", {(m, n) for m, p in params.items() for n in p}, {(m, n) for _, m, n in rows})
    tree: dict = {}
    for path, module, name in rows:
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = params[module][name]
    return tree


def to_haiku(model: Gato) -> hk.Params:
    """The parameters of a gatolab `Gato` (NNX) as Haiku params for `transform(model.config)`."""
    return tree_to_haiku(nnx.to_pure_dict(nnx.state(model, nnx.Param)), model.config)


def to_nnx(params: hk.Params, config: ModelConfig) -> Gato:
    """A gatolab `Gato` (NNX) holding the twin's `params` (built abstractly first: nothing random is drawn)."""
    graphdef, state = nnx.split(abstract_model(config))
    want = _leaves(nnx.to_pure_dict(state))
    tree = jax.tree.map(jnp.asarray, tree_to_nnx(params, config))
    for path, leaf in _leaves(tree).items():
        if leaf.shape != want[path].shape or leaf.dtype != want[path].dtype:
            raise ValueError(f"to_nnx: {'/'.join(map(str, path))} is {leaf.dtype}{list(leaf.shape)}, "
                             f"the model wants {want[path].dtype}{list(want[path].shape)}")
    nnx.replace_by_pure_dict(state, tree)
    return nnx.merge(graphdef, state)


def module_tree(params: hk.Params) -> dict:
    """Haiku params nested by module ('gato/~/embed/~/patch' -> gato > embed > patch), for display."""
    tree: dict = {}
    for module, values in sorted(params.items()):
        node = tree
        for part in module.replace("/~/", "/").split("/"):
            node = node.setdefault(part, {})
        node.update(values)
    return tree


def logit_difference(model: Gato, batch: TokenBatch) -> float:
    """Largest |NNX - Haiku| over the finite logits of `batch`, evaluation mode, each side jitted.

    The twin runs on `to_haiku(model)`. Raises ValueError if the padded ids' -inf logits are
    not in the same places on both sides.
    """
    graphdef, state = nnx.split(model)
    want = np.asarray(jax.jit(lambda s, b: nnx.merge(graphdef, s)(b))(state, batch))
    got = np.asarray(jax.jit(transform(model.config).forward.apply)(to_haiku(model), None, batch))
    padded = np.isneginf(want)
    if not np.array_equal(padded, np.isneginf(got)):
        raise ValueError("logit_difference: the -inf logits (padded ids) differ between NNX and Haiku")
    return float(np.abs(want[~padded] - got[~padded]).max(initial=0.0))


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A gatolab checkpoint in the twin: what a Haiku user needs.

    Attributes:
      functions: `transform(config)`: `.forward`, `.hidden`, `.loss`, each an `hk.Transformed`.
      params: the checkpoint's parameters in Haiku layout.
      config: the `ModelConfig` the checkpoint was made with.
      tokenizer: the checkpoint's `GatoTokenizer` (its SentencePiece model included).
      meta: the checkpoint's metadata (step, train config, mixture, ...).

    Example:
        twin = gl.model.haiku.load("runs/x")
        logits = twin.functions.forward.apply(twin.params, None, batch)
    """

    functions: Functions
    params: hk.Params
    config: ModelConfig
    tokenizer: GatoTokenizer
    meta: dict[str, Any]


def load(path: str | os.PathLike, step: int | None = None) -> Loaded:
    """Loads a gatolab checkpoint (a run dir, its checkpoints/ dir or one step's dir) into the twin."""
    model, tokenizer, meta = load_model(path, step=step)
    return Loaded(transform(model.config), to_haiku(model), model.config, tokenizer, meta)


def save(path: str | os.PathLike, params: hk.Params, config: ModelConfig, tokenizer: GatoTokenizer, *,
         step: int = 0, meta: dict[str, Any] | None = None) -> Path:
    """Saves the twin's `params` as a gatolab checkpoint of run directory `path`.

    `gl.train.load_model(path)` and `gl.agent.GatoAgent.from_checkpoint(path)` read it. Pass
    `meta=loaded.meta` to keep the facts of the checkpoint the parameters came from (its
    train config, mixture); the optimiser state written is a fresh one
    (`gatolab.train.checkpoint.save_model`).
    """
    return save_model(path, to_nnx(params, config), tokenizer, step=step, meta=meta)
