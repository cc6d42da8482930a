"""Checkpoints with orbax: parameters, optimiser state, step, RNG and the data iterator.

Layout of a run directory:

    runs/NAME/checkpoints/<step>/state     arrays (orbax StandardSave: params, opt state, rng)
    runs/NAME/checkpoints/<step>/meta      JSON: step, data iterator state, config, tokenizer, version

orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save never corrupts the last good checkpoint; `keep` bounds how many
stay. A checkpoint records everything needed to rebuild the model from its path alone:
the model/train config, the tokenizer config and SentencePiece model, and the gatolab
version.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

import gatolab
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.model import Gato, ModelConfig
from gatolab.text import TextTokenizer
from gatolab.tokenizers import Vocabulary
from gatolab.train.optim import OptimConfig, make_optimizer


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not match what is being restored."""


def _manager(directory: Path, keep: int | None, create: bool) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=False)
    return ocp.CheckpointManager(directory.resolve(), options=options)


class Checkpointer:
    """Saves and restores train states under `directory` (keep-last-N)."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3, create: bool = True):
        self.directory = Path(directory)
        if not create and not self.directory.exists():
            raise CheckpointError(f"checkpoint directory {str(self.directory)!r} does not exist")
        self._mngr = _manager(self.directory, keep, create)

    def steps(self) -> list[int]:
        return sorted(self._mngr.all_steps())

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Writes `state` (a pytree of arrays) and `meta` (JSON-able) for `step`, atomically."""
        meta = {**meta, "step": int(step), "gatolab_version": gatolab.__version__}
        self._mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                        force=True)
        self._mngr.wait_until_finished()

    def restore_meta(self, step: int | None = None) -> dict[str, Any]:
        step = self._resolve(step)
        return self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Restores into the structure (and shardings) of `abstract_state`; returns (state, meta)."""
        step = self._resolve(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        try:
            out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                   meta=ocp.args.JsonRestore()))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint {self.directory}/{step} does not match the model being restored: {e}") from e
        return out["state"], out["meta"]

    def _resolve(self, step: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {str(self.directory)!r}")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise CheckpointError(f"no checkpoint for step {step} in {str(self.directory)!r} (have {steps})")
        return step

    def close(self) -> None:
        self._mngr.close()


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


# ---------------------------------------------------------------------------------------
# Everything needed to rebuild a model from a checkpoint path alone
# ---------------------------------------------------------------------------------------
def tokenizer_meta(tokenizer) -> dict[str, Any]:
    """JSON facts that rebuild a `GatoTokenizer`: its config and SentencePiece model."""
    cfg = dataclasses.asdict(tokenizer.config)
    return {
        "tokenizer": {
            "config": cfg,
            "sentencepiece": encode_bytes(tokenizer.text.model_proto) if tokenizer.text is not None else None,
        }
    }


def tokenizer_from_meta(meta: dict[str, Any]) -> GatoTokenizer:
    if "tokenizer" not in meta:
        raise CheckpointError("checkpoint metadata has no 'tokenizer' entry (saved without tokenizer_meta?)")
    t = meta["tokenizer"]
    cfg = dict(t["config"])
    cfg["vocab"] = Vocabulary(**cfg["vocab"])
    text = TextTokenizer(decode_bytes(t["sentencepiece"])) if t.get("sentencepiece") else None
    return GatoTokenizer(TokenizerConfig(**cfg), text=text)


def _checkpoint_dir(path: str | os.PathLike) -> tuple[Path, int | None]:
    """Accepts a run dir, its checkpoints/ dir, or one step's dir; returns (checkpoints dir, step)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint path {str(path)!r} does not exist")
    if (path / "checkpoints").is_dir():
        return path / "checkpoints", None
    if path.name.isdigit() and (path / "meta").exists():
        return path.parent, int(path.name)
    if any(p.name.isdigit() for p in path.iterdir()):
        return path, None
    raise CheckpointError(f"{str(path)!r} is not a run directory, a checkpoints directory or a checkpoint step")


def save_model(path: str | os.PathLike, model: Gato, tokenizer: GatoTokenizer, *, step: int = 0,
               meta: dict[str, Any] | None = None) -> Path:
    """Writes `model`'s parameters as a checkpoint of run directory `path` that `load_model` reads.

    For parameters made outside a `Trainer` (e.g. by `gatolab.model.haiku.save`). The layout
    is the Trainer's, {"model", "optimizer"} plus meta; the optimiser state is a fresh one
    for the optimiser in `meta["train_config"]["optim"]` (default `OptimConfig()`), so a
    run resumed from it starts with zero Adam moments.

    Args:
      path: the run directory (the checkpoint goes to `path/checkpoints/<step>`).
      model: the parameters and, through `model.config`, the `model_config` written.
      tokenizer: written as `tokenizer_meta(tokenizer)`.
      step: the step recorded.
      meta: other JSON-able facts to keep (e.g. the meta of the checkpoint the parameters
        came from: its `train_config`, `mixture`).
    """
    meta = dict(meta or {})
    train_config = dict(meta.get("train_config") or {})
    optim = OptimConfig(**train_config.get("optim", {}))
    train_config["optim"] = dataclasses.asdict(optim)
    optimizer = nnx.Optimizer(model, make_optimizer(optim), wrt=nnx.Param)
    state = {"model": nnx.to_pure_dict(nnx.state(model)), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
    meta.update(model_config=model.config.to_json(), train_config=train_config, **tokenizer_meta(tokenizer))
    ck = Checkpointer(Path(path) / "checkpoints", keep=None)
    ck.save(step, state, meta)
    ck.close()
    return Path(path)


def load_model(path: str | os.PathLike, step: int | None = None):
    """Rebuilds (model, tokenizer, meta) from a checkpoint path alone.

    The model is built from the config stored in the checkpoint and gets the saved
    parameters; the tokenizer (config + SentencePiece model) comes from the same place.
    """
    directory, step_in_path = _checkpoint_dir(path)
    ck = Checkpointer(directory, create=False)
    step = step if step is not None else step_in_path
    meta = ck.restore_meta(step)
    for key in ("model_config", "train_config"):
        if key not in meta:
            raise CheckpointError(f"checkpoint {directory} has no {key!r} in its metadata")
    config = ModelConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["model_config"].items()})
    model = Gato(config, rngs=nnx.Rngs(0))
    # The checkpoint holds {"model": ..., "optimizer": ...}: rebuild the optimizer from the
    # stored train config so the whole tree has a known structure, then keep the model part.
    optimizer = nnx.Optimizer(model, make_optimizer(OptimConfig(**meta["train_config"]["optim"])), wrt=nnx.Param)
    state = nnx.state(model)
    abstract = {"model": nnx.to_pure_dict(state), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    try:
        raw = ck._mngr.restore(ck._resolve(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {directory} does not match its own model config: {e}") from e
    nnx.replace_by_pure_dict(state, raw["state"]["model"])
    nnx.update(model, state)
    ck.close()
    return model, tokenizer_from_meta(meta), meta

