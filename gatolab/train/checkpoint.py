"""Checkpoints with orbax: parameters, optimiser state, step, RNG and the data iterator.

Layout of a run directory:

    runs/NAME/checkpoints/<step>/state     arrays (orbax StandardSave: params, opt state, rng)
    runs/NAME/checkpoints/<step>/meta      JSON: step, data iterator state, config, tokenizer, version
    runs/NAME/checkpoints/<step>/gatolab_checksums.json   SHA-256 of every other file of the step (written last)
    runs/NAME/checkpoints/<step>.damaged   a step found damaged when a run resumed, set aside (never deleted)

orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save never corrupts the last good checkpoint; `keep` bounds how many
stay. A checkpoint records everything needed to rebuild the model from its path alone:
the model/train config, the tokenizer config and SentencePiece model, and the gatolab
version.

Integrity, as for the dataset shards (`gatolab.data.storage`): orbax's files carry no
checksums of their own, so a flipped bit in an array file restores silently as different
parameters and a truncated one fails deep inside TensorStore. After orbax has finished a
step, `Checkpointer.save` records the SHA-256 of each of its files in
`gatolab_checksums.json` (atomically, inside the step folder), and every restore
recomputes them first: a missing or changed file is a `CheckpointDamaged` naming the step
folder and the file. The step's meta says a manifest belongs to it, so a step whose save
stopped between orbax's rename and the manifest is "incomplete", while a checkpoint
written before checksums existed loads with a one-line warning. `Trainer.restore` falls
back to the newest intact step and sets the damaged ones aside (`<step>.damaged`);
`gatolab checkpoint verify RUN` checks every step of a run.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

import gatolab
from gatolab import io_utils
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.model import Gato, ModelConfig
from gatolab.text import TextTokenizer
from gatolab.tokenizers import Vocabulary
from gatolab.train.optim import OptimConfig, make_optimizer


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or does not match what is being restored."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint's files are missing, truncated or modified: its checksums do not match,
    its save did not finish, or orbax cannot read it. A resumed run falls back past it."""


class CheckpointIncomplete(CheckpointDamaged):
    """A step whose save did not finish (killed between orbax's write and the manifest)."""


CHECKSUM_FILE = "gatolab_checksums.json"
CHECKSUM_FORMAT = 1
DAMAGED_SUFFIX = ".damaged"


def warn(message: str) -> None:
    """One line on stderr (a notebook shows it under the cell; the CLI beside its output)."""
    print(f"gatolab: warning: {message}", file=sys.stderr, flush=True)


def _one_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line: orbax/TensorStore messages span many lines and end
    with the whole TensorStore spec."""
    text = " ".join(str(e).split()).split(" See full TensorStore details")[0]
    return f"{type(e).__name__}: {text[:limit]}{'…' if len(text) > limit else ''}"


def file_checksums(step_dir: str | os.PathLike) -> dict[str, str]:
    """relative posix path -> SHA-256 of every file under `step_dir` except the manifest."""
    root = Path(step_dir)
    return {p.relative_to(root).as_posix(): io_utils.sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != CHECKSUM_FILE}


def write_checksums(step_dir: str | os.PathLike, step: int) -> dict[str, Any]:
    """Writes `gatolab_checksums.json` into a finished step folder (atomically); returns it."""
    manifest = {"format_version": CHECKSUM_FORMAT, "algorithm": "sha256", "step": int(step),
                "files": file_checksums(step_dir)}
    io_utils.atomic_write_json(Path(step_dir) / CHECKSUM_FILE, manifest)
    return manifest


def verify_checksums(step_dir: str | os.PathLike) -> int:
    """Recomputes every file's SHA-256 against `gatolab_checksums.json`; returns the files checked.

    Raises:
      CheckpointDamaged: naming the step folder and the file that is missing or differs
        (or the manifest, if it is unreadable).
    """
    step_dir = Path(step_dir)
    try:
        manifest = json.loads((step_dir / CHECKSUM_FILE).read_text())
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointDamaged(f"checkpoint {step_dir}: {CHECKSUM_FILE} is unreadable ({_one_line(e)})") from e
    for name, want in files.items():
        f = step_dir / name
        if not f.is_file():
            raise CheckpointDamaged(f"checkpoint {step_dir}: {name} is missing (listed in {CHECKSUM_FILE})")
        got = io_utils.sha256_file(f)
        if got != want:
            raise CheckpointDamaged(f"checkpoint {step_dir}: {name} has sha256 {got[:16]}…, expected {str(want)[:16]}… "
                                    f"(truncated or modified)")
    return len(files)


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

    def step_dir(self, step: int) -> Path:
        return self.directory / str(int(step))

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Writes `state` (a pytree of arrays) and `meta` (JSON-able) for `step`, atomically,
        then the step's checksum manifest (once orbax has finished writing every file)."""
        meta = {**meta, "step": int(step), "gatolab_version": gatolab.__version__, "checksums": CHECKSUM_FILE}
        self._mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                        force=True)
        self._mngr.wait_until_finished()
        if jax.process_index() == 0:  # one writer; every host's files are in the shared step folder by now
            write_checksums(self.step_dir(step), step)

    def verify(self, step: int | None = None, *, warn_unverified: bool = True) -> bool:
        """Checks `step` (default: the latest) against its checksum manifest.

        Returns True when every file matches, False for a checkpoint written before
        checkpoints carried checksums (warned about; it cannot be checked).

        Raises:
          CheckpointDamaged: a file is missing or differs, or the step's save did not finish
            (its meta promises a manifest that is not there).
        """
        step = self._resolve(step)
        path = self.step_dir(step)
        if (path / CHECKSUM_FILE).exists():
            verify_checksums(path)
            return True
        if self._read_meta(step).get("checksums"):
            raise CheckpointIncomplete(f"checkpoint {path}: {CHECKSUM_FILE} is missing (the save did not finish: "
                                    f"an incomplete checkpoint)")
        if warn_unverified:
            warn(f"checkpoint {path} has no {CHECKSUM_FILE} (written before checkpoints carried checksums); "
                 f"loading it unverified")
        return False

    def _read_meta(self, step: int) -> dict[str, Any]:
        try:
            return self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001 - orbax raises JSONDecodeError, OSError, ... on a damaged file
            raise CheckpointDamaged(f"checkpoint {self.step_dir(step)}: meta/metadata is unreadable ({_one_line(e)})") from e

    def restore_meta(self, step: int | None = None, *, verify: bool = True) -> dict[str, Any]:
        """The JSON meta of `step` (default: the latest), checked against its checksums first."""
        step = self._resolve(step)
        if verify:
            self.verify(step)
        return self._read_meta(step)

    def restore(self, abstract_state: Any, step: int | None = None, *, verify: bool = True) -> tuple[Any, dict[str, Any]]:
        """Restores into the structure (and shardings) of `abstract_state`; returns (state, meta).

        Raises:
          CheckpointDamaged: the files fail their checksums or orbax cannot read them.
          CheckpointError: the checkpoint holds another structure than `abstract_state`.
        """
        step = self._resolve(step)
        if verify:
            self.verify(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        out = self._restore_items(step, ocp.args.Composite(state=ocp.args.StandardRestore(abstract)),
                                  "the model being restored")
        return out["state"], self._read_meta(step)

    def _restore_items(self, step: int, args: Any, what: str) -> Any:
        """orbax's restore with its errors as one named line: a structure mismatch is a
        CheckpointError, anything else (TensorStore raises bare `Exception`s on a truncated
        array file) is a CheckpointDamaged."""
        try:
            return self._mngr.restore(step, args=args)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint {self.step_dir(step)} does not match {what}: {_one_line(e)}") from e
        except Exception as e:  # noqa: BLE001 - see the docstring
            raise CheckpointDamaged(f"checkpoint {self.step_dir(step)}: orbax could not read it ({_one_line(e)})") from e

    def set_aside(self, step: int) -> Path:
        """Renames a damaged step to `<step>.damaged` (never deletes it: the user may want to
        look at it, or recover from it) so that orbax no longer lists it; returns the new path."""
        path = self.step_dir(step)
        target, n = path.with_name(path.name + DAMAGED_SUFFIX), 1
        while target.exists():
            target, n = path.with_name(f"{path.name}{DAMAGED_SUFFIX}.{n}"), n + 1
        os.rename(path, target)
        io_utils.fsync_dir(self.directory)
        self._mngr.reload()
        return target

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


@dataclasses.dataclass(frozen=True)
class StepCheck:
    """What `verify_run` found for one step folder.

    status: "ok" (every file matches its checksum), "unverified" (written before
    checkpoints carried checksums), "damaged" (`detail` names the file) or "set aside"
    (a `<step>.damaged` folder a resumed run moved out of the way).
    """

    step: int | None
    path: Path
    status: str
    detail: str = ""


def verify_run(path: str | os.PathLike) -> list[StepCheck]:
    """Checks every step of a run (or its checkpoints/ folder, or one step) against its checksums.

    Raises:
      CheckpointError: the path holds no checkpoint.
    """
    directory, only = _checkpoint_dir(path)
    ck = Checkpointer(directory, create=False)
    steps = [only] if only is not None else ck.steps()
    if not steps:
        raise CheckpointError(f"no checkpoint in {str(directory)!r}")
    out = []
    for step in steps:
        try:
            ok = ck.verify(step, warn_unverified=False)
            out.append(StepCheck(step, ck.step_dir(step), "ok" if ok else "unverified",
                                 "" if ok else f"no {CHECKSUM_FILE} (written before checkpoints carried checksums)"))
        except CheckpointDamaged as e:
            out.append(StepCheck(step, ck.step_dir(step), "damaged", str(e)))
    ck.close()
    if only is None:
        out += [StepCheck(None, p, "set aside", "moved aside by a resumed run; not used")
                for p in sorted(directory.glob(f"*{DAMAGED_SUFFIX}*")) if p.is_dir()]
    return out


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
    if path.name.isdigit() and path.is_dir():  # one step (checked further when it is read)
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
    optimizer = nnx.Optimizer(model, make_optimizer(optim, train_config.get("freeze", ())), wrt=nnx.Param)
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
    The step's files are checked against its checksums first.

    Raises:
      CheckpointDamaged: a file is missing, truncated or modified (named with its step folder).
      CheckpointError: no such checkpoint, or it does not match its own config.
    """
    directory, step_in_path = _checkpoint_dir(path)
    ck = Checkpointer(directory, create=False)
    step = ck._resolve(step if step is not None else step_in_path)
    ck.verify(step)
    meta = ck.restore_meta(step, verify=False)
    for key in ("model_config", "train_config"):
        if key not in meta:
            raise CheckpointError(f"checkpoint {directory} has no {key!r} in its metadata")
    config = ModelConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["model_config"].items()})
    model = Gato(config, rngs=nnx.Rngs(0))
    # The checkpoint holds {"model": ..., "optimizer": ...}: rebuild the optimizer from the
    # stored train config so the whole tree has a known structure, then keep the model part.
    train_config = meta["train_config"]
    optimizer = nnx.Optimizer(model, make_optimizer(OptimConfig(**train_config["optim"]), train_config.get("freeze", ())),
                              wrt=nnx.Param)
    state = nnx.state(model)
    abstract = {"model": nnx.to_pure_dict(state), "optimizer": nnx.to_pure_dict(nnx.state(optimizer))}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    raw = ck._restore_items(step, ocp.args.Composite(state=ocp.args.StandardRestore(abstract)), "its own model config")
    nnx.replace_by_pure_dict(state, raw["state"]["model"])
    nnx.update(model, state)
    ck.close()
    return model, tokenizer_from_meta(meta), meta

