"""Starting a run from another run's parameters: fine-tuning (Gato §5.2).

    gatolab train --config demo --out runs/ft --init-from runs/pretrained --freeze embed
    gl.train.train("demo", out="runs/ft", overrides={"init_from": "runs/pretrained"})

The new run gets the pretrained network's parameters and nothing else: a fresh optimiser
state and learning-rate schedule (its own `optim` settings, from step 0), its own data
and data position. It must be the same network and read the same tokens, so before any
step this module compares the two sides and names each difference (`IncompatibleInit`):

- the model configs, except fields that change how it is computed but not what
  (`COMPUTE_ONLY`: dropout, dtypes, attention block, remat, context length — no global
  position encoding, so a longer or shorter context is the same network);
- the tokenizers: id layout and tokenization switches, and the SentencePiece model itself.

What the run started from (the checkpoint folder, its step and a SHA-256 over the parameter
arrays) is written to `<run>/init_from.json` and into every checkpoint's meta.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from gatolab.model import ModelConfig
from gatolab.train.checkpoint import CheckpointError, load_model
from gatolab.train.optim import is_frozen, parameter_path

INIT_FILE = "init_from.json"
# ModelConfig fields a fine-tuning run may change: they do not change the parameters or the function.
COMPUTE_ONLY = frozenset({"dropout", "dtype", "patch_dtype", "attention_block", "remat", "context_len"})


class IncompatibleInit(CheckpointError):
    """The pretrained run and this one differ in network or tokenizer (each difference named)."""


def params_sha256(params: Any) -> str:
    """SHA-256 over a parameter tree: each leaf's path, dtype, shape and bytes, in path order."""
    h = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda pl: jax.tree_util.keystr(pl[0])):
        a = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _differences(theirs: dict[str, Any], ours: dict[str, Any], prefix: str, skip=frozenset()) -> list[str]:
    out = []
    for key in sorted(set(theirs) | set(ours)):
        if key in skip:
            continue
        a, b = theirs.get(key), ours.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} (pretrained) vs {b!r} (this run)")
    return out


def check_compatible(source: str, meta: dict[str, Any], model_config: ModelConfig,
                     tokenizer: dict[str, Any] | None) -> None:
    """Raises IncompatibleInit naming every field where the pretrained checkpoint (`meta`) and
    this run (its model config, its `tokenizer_meta(...)["tokenizer"]`) disagree."""
    diffs = _differences(dict(meta["model_config"]), model_config.to_json(), "model.", skip=COMPUTE_ONLY)
    if tokenizer is not None:
        theirs = meta.get("tokenizer") or {}
        diffs += _differences(dict(theirs.get("config", {})), dict(tokenizer["config"]), "tokenizer.")
        if theirs.get("sentencepiece") != tokenizer.get("sentencepiece"):
            digest = [hashlib.sha256(str(t.get("sentencepiece")).encode()).hexdigest()[:12] for t in (theirs, tokenizer)]
            diffs.append(f"text model: the SentencePiece models differ (sha256 {digest[0]} pretrained vs {digest[1]} "
                         f"this run; text.vocab_size / text.corpus_chars decide it)")
    if diffs:
        raise IncompatibleInit(f"init_from {source}: the pretrained run does not fit this one: " + "; ".join(diffs))


def load_init(source: str | os.PathLike, step: int | None, model_config: ModelConfig,
              tokenizer: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the pretrained model's parameters as a pure dict, the record of where they came from).

    Args:
      source: a run folder, its checkpoints folder or one step's folder.
      step: which step (None: the one in `source`, else the latest).
      model_config: this run's network (checked against the pretrained one).
      tokenizer: this run's `tokenizer_meta(tok)["tokenizer"]`, or None to skip that check
        (synthetic data brings its own tokenizer).
    """
    model, tok, meta = load_model(source, step)
    check_compatible(str(source), meta, model_config, tokenizer)
    params = nnx.to_pure_dict(nnx.state(model))  # the layout of a Trainer's model state
    record = {"path": str(Path(source).resolve()), "step": int(meta["step"]), "params_sha256": params_sha256(params),
              "gatolab_version": meta.get("gatolab_version")}
    return params, record


def check_shapes(source: str, pretrained: Any, ours: Any) -> None:
    """The two parameter trees hold the same arrays (path, shape): the last guard before copying."""
    def shapes(tree):
        return {jax.tree_util.keystr(p): tuple(np.shape(v)) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}

    theirs, mine = shapes(pretrained), shapes(ours)
    diffs = [f"{k}: {theirs.get(k)} (pretrained) vs {mine.get(k)} (this run)" for k in sorted(set(theirs) | set(mine))
             if theirs.get(k) != mine.get(k)]
    if diffs:
        raise IncompatibleInit(f"init_from {source}: the parameter arrays differ: " + "; ".join(diffs[:5])
                               + (f"; … {len(diffs) - 5} more" if len(diffs) > 5 else ""))


def check_freeze(freeze: tuple[str, ...], params: Any) -> None:
    """Every `freeze` prefix must name some parameter (a typo would silently train everything)."""
    paths = [parameter_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    for f in freeze:
        if not any(is_frozen(p, (f,)) for p in paths):
            groups = sorted({"/".join(p.split("/")[:2]) for p in paths})
            raise ValueError(f"train.freeze: {f!r} names no parameter (parameter groups: {groups})")


__all__ = ["COMPUTE_ONLY", "INIT_FILE", "IncompatibleInit", "check_compatible", "check_freeze", "check_shapes", "load_init", "params_sha256"]
