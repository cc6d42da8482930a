"""What both importers share: value checks, the atomic dataset writer, the manifest's import facts."""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gatolab import io_utils
from gatolab import tokenizers as tk
from gatolab.data import storage
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality

DEFAULT_SHARD_SIZE = 50
MAX_DISCRETE = 1024  # Gato §2.1: discrete values lie in [0, 1024)


def safe_name(s: str) -> str:
    """A task / dataset name storage accepts: no '/', no leading '.', no spaces at the ends."""
    name = re.sub(r"[/\\]+", "-", str(s)).strip().lstrip(".")
    if not name:
        raise ValueError(f"cannot make a task or dataset name from {s!r}")
    return name


def _check_values(where: str, key: str, f: FieldSpec, x: Any) -> None:
    """Raises a ValueError naming `where` and the field if the data do not fit `f` (what the tokenizer would reject)."""
    if f.modality == Modality.TEXT:
        bad = [v for v in x if not isinstance(v, str)]
        if bad:
            raise ValueError(f"{where}: text field {key!r} holds a {type(bad[0]).__name__}, not a string")
        return
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[1:] != f.shape:
        raise ValueError(f"{where}: field {key!r} has per-timestep shape {x.shape[1:]}, the spec says {f.shape}")
    if f.modality == Modality.IMAGE:
        if x.dtype != np.uint8:
            raise ValueError(f"{where}: image field {key!r} has dtype {x.dtype}, expected uint8")
        return
    if x.size == 0:
        return
    if f.modality == Modality.DISCRETE:
        if x.dtype.kind not in "iub":
            raise ValueError(f"{where}: discrete field {key!r} has dtype {x.dtype}, expected integers")
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= f.num_values:
            raise ValueError(f"{where}: discrete field {key!r} has value {lo if lo < 0 else hi} outside [0, {f.num_values})")
        return
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: continuous field {key!r} holds NaN or inf")
    if f.out_of_range == "clip":
        return
    lo, hi = float(x.min()), float(x.max())
    if lo < f.low or hi > f.high:
        raise ValueError(f"{where}: continuous field {key!r} has value {lo if lo < f.low else hi:.6g} outside its declared "
                         f"bounds [{f.low}, {f.high}]")
    if f.uses_mu_law and max(abs(lo), abs(hi)) > tk.M:
        raise ValueError(f"{where}: continuous field {key!r} has magnitude {max(abs(lo), abs(hi)):.6g} > {tk.M:g}, "
                         f"where Gato's mu-law leaves [-1, 1]; import with out_of_range='clip' to saturate such values")
    if not f.uses_mu_law and (lo < -1.0 or hi > 1.0):
        raise ValueError(f"{where}: continuous field {key!r} has value outside [-1, 1] and no mu-law")


def check_episode(where: str, ep: Episode, spec: EnvSpec) -> None:
    for key, f in spec.observation.items():
        _check_values(where, key, f, ep.observations[key])
    for key, f in spec.action.items():
        _check_values(where, key, f, ep.actions[key])


def batches(episodes: Iterable[Episode], size: int) -> Iterator[list[Episode]]:
    batch: list[Episode] = []
    for ep in episodes:
        batch.append(ep)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_dataset(out: str | os.PathLike, name: str, spec: EnvSpec, episodes: Iterable[Episode], info: Mapping[str, Any],
                  shard_size: int) -> dict[str, Any]:
    """Writes one task's episodes as `<out>/<name>` (shards + manifest), atomically as a whole."""
    storage._check_name("dataset", name)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    final = Path(out) / name
    if final.exists():
        raise ValueError(f"dataset {final} already exists (an import never overwrites; delete it or pass another name)")
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{glob.escape(name)}.*.import.tmp"):  # left by an interrupted import of the same name
        shutil.rmtree(stale, ignore_errors=True)
    with io_utils.atomic_directory(final, suffix=".import.tmp") as tmp:
        n = 0
        for k, batch in enumerate(batches(episodes, shard_size)):
            storage.write_shard(storage.shard_dir(tmp, spec.name, k), spec, batch,
                                extra={"policy": f"imported ({info['imported']['format']})", "imported_shard": k})
            n += len(batch)
        if n == 0:
            raise ValueError(f"{info['imported']['source']}: no episodes to import")
        # The manifest names the dataset after its final folder, not the temporary one.
        manifest = storage.write_manifest(tmp, {**info, "dataset": name})
    return manifest


def import_info(fmt: str, source: str, task: str, spec_inference: str, extra: Mapping[str, Any], shard_size: int) -> dict[str, Any]:
    return {
        "domain": fmt,
        "kind": "control",
        "domain_module": "gatolab.data.importers",
        "domain_class": f"import_{fmt}",
        "imported": {"format": fmt, "source": source, "task": task, "spec_inference": spec_inference,
                     "environment": None, **extra},
        "generation": {
            "episodes_per_task": "as in the source",
            "seed": None,
            "shard_size": shard_size,
            "seed_rule": f"as recorded in the source (imported from {fmt} files at {source}; no environment runs here, "
                         f"so random-policy returns are not measured)",
        },
        "versions": io_utils.package_versions(),
    }


def pad_width(n: int) -> int:
    return len(str(max(n - 1, 0)))
