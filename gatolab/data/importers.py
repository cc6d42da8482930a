"""Importers: datasets researchers already hold -> gatolab datasets (Minari shards + manifest).

    from gatolab.data.importers import import_jat, import_minari
    import_minari("~/.minari/datasets/mujoco/pusher/expert-v0", "data")    # -> data/mujoco-pusher-expert-v0
    import_jat("jat-dataset/metaworld-assembly", "data", task="metaworld-assembly")  # -> data/jat-metaworld-assembly
    # or: gatolab data import --format minari|jat --src PATH --out DIR [--task T] [--name N]

Both write `<out>/<name>/` in the format of `storage.py` (so `EpisodeDataset`, the
mixture, `gatolab data verify` and `gatolab data card` read it like generated data),
atomically: the whole dataset is built in a hidden temporary folder next to its final
place and renamed into place when complete; an existing `<out>/<name>` is never
overwritten. Nothing is downloaded: both read local files only.

Minari (Farama's offline-RL format; any `data_format` Minari 0.5 reads, JPEG or raw).
`path` is a dataset folder (`<dataset>/data/{main_data.hdf5, metadata.json}`, the
layout under `~/.minari/datasets/...`) or its `data` folder itself. The `EnvSpec` is
inferred from the serialized spaces:
- `Box` uint8 (H, W, C), C in {1, 3}, bounds [0, 255]          -> IMAGE
- `Box` float                                                  -> CONTINUOUS with its bounds
  (per-element bounds become the field's [min low, max high])
- `Box` integer/bool with bounds inside [0, 1023]              -> DISCRETE(num_values = max high + 1)
- other integer `Box`                                          -> CONTINUOUS with its bounds
- `Discrete(n, start)`, `MultiDiscrete`, `MultiBinary`          -> DISCRETE (values shifted by -start)
- `Text`                                                       -> TEXT
- `Dict` -> nested fields ("a/b"); `Tuple` -> fields "0", "1", ... (zero-padded)
- a non-`Dict` space becomes one field named "observation" / "action".
Anything else (Graph, Sequence, OneOf, a DISCRETE field with more than 1024 values, an
image or text action) is a ValueError naming the field. Minari keeps T + 1
observations per episode (the last one follows the final action); gatolab episodes
hold the T observations the policy acted on, so the last one is dropped (the episode
metadata says `final_observation_dropped`). The episode's termination/truncation
flags are kept ("terminated"/"truncated" in the metadata).

JAT (`jat-project/jat-dataset` on the Hugging Face hub, parquet files, one row per
episode, each column a list over the episode's timesteps):
`continuous_observations` (T, n) floats, `discrete_observations` (T, n) ints,
`image_observations` (T images: the datasets library's {bytes, path} structs of
PNG/JPEG, or nested uint8 lists), `text_observations` (T strings),
`continuous_actions` (T, n), `discrete_actions` (T,) ints, `rewards` (T,); numeric image
arrays may be (H, W), (H, W, C) or channel-first (C, H, W) with C <= 4. Field names
are the column names. The format carries no spaces, so the spec is inferred from the
data and says so in the manifest: discrete fields get num_values = the largest value
seen + 1 (override with `num_values={"discrete_actions": 18}`); continuous actions get
bounds [-1, 1] when every value lies there (no mu-law, as in Gato), otherwise
unbounded (mu-law); continuous observations are unbounded (mu-law). Images with a
channel count other than 1 or 3 (e.g. JAT's 4 stacked Atari frames) become one
grayscale field per channel, "image_observations/c0", "/c1", ... in channel order.
Columns of the text / vision-language configs (`text`, `images`) are not control data
and are refused with a clear error.

Neither format comes with an environment gatolab can run, so an imported dataset's
data card reports the returns in the data but no random-policy baseline
(`gatolab data card` skips it for datasets whose manifest has "imported").
"""

from __future__ import annotations

import glob
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatolab import tokenizers as tk
from gatolab.data import storage
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality, OutOfRange, flatten_fields

DEFAULT_SHARD_SIZE = 50
_MAX_DISCRETE = 1024  # Gato §2.1: discrete values lie in [0, 1024)

JAT_OBSERVATION_COLUMNS = ("continuous_observations", "discrete_observations", "image_observations", "text_observations")
JAT_ACTION_COLUMNS = ("continuous_actions", "discrete_actions")
JAT_REWARD_COLUMN = "rewards"
_JAT_NON_CONTROL_COLUMNS = ("text", "images", "pixel_values", "input_ids")


# ----------------------------------------------------------------------------------------
# Shared: validation and the atomic dataset writer
# ----------------------------------------------------------------------------------------
def _safe_name(s: str) -> str:
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


def _check_episode(where: str, ep: Episode, spec: EnvSpec) -> None:
    for key, f in spec.observation.items():
        _check_values(where, key, f, ep.observations[key])
    for key, f in spec.action.items():
        _check_values(where, key, f, ep.actions[key])


def _batches(episodes: Iterable[Episode], size: int) -> Iterator[list[Episode]]:
    batch: list[Episode] = []
    for ep in episodes:
        batch.append(ep)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_dataset(out: str | os.PathLike, name: str, spec: EnvSpec, episodes: Iterable[Episode], info: Mapping[str, Any],
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
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}.", suffix=".import.tmp"))
    try:
        ds_tmp = tmp / name  # the folder's name is the dataset's name in the manifest
        n = 0
        for k, batch in enumerate(_batches(episodes, shard_size)):
            storage.write_shard(storage.shard_dir(ds_tmp, spec.name, k), spec, batch,
                                extra={"policy": f"imported ({info['imported']['format']})", "imported_shard": k})
            n += len(batch)
        if n == 0:
            raise ValueError(f"{info['imported']['source']}: no episodes to import")
        manifest = storage.write_manifest(ds_tmp, info)
        if final.exists():
            raise ValueError(f"dataset {final} appeared while importing; not overwriting it")
        os.rename(ds_tmp, final)  # atomic: the dataset appears whole or not at all
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _info(fmt: str, source: str, task: str, spec_inference: str, extra: Mapping[str, Any], shard_size: int) -> dict[str, Any]:
    from gatolab.data.generation import package_versions

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
        "versions": package_versions(),
    }


# ----------------------------------------------------------------------------------------
# Minari
# ----------------------------------------------------------------------------------------
def minari_data_dir(path: str | os.PathLike) -> Path:
    """The folder holding `metadata.json` + the data file: `path` itself or `path/data`."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"Minari dataset {p}: no such file or folder")
    if p.is_file():
        p = p.parent  # e.g. .../data/main_data.hdf5
    for cand in (p, p / "data"):
        if (cand / "metadata.json").is_file():
            return cand.absolute()
    raise ValueError(f"Minari dataset {p}: no metadata.json in it or in {p / 'data'} (expected the layout "
                     f"<dataset>/data/{{main_data.hdf5, metadata.json}})")


def _pad_width(n: int) -> int:
    return len(str(max(n - 1, 0)))


def space_fields(space, name: str, *, action: bool = False, out_of_range: OutOfRange = "error") -> dict[str, FieldSpec]:
    """Flat gatolab fields for a gymnasium space (see the module docstring for the mapping).

    Args:
      space: a gymnasium space.
      name: the field name to use for a non-`Dict` space (and the prefix in error messages).
      action: refuse IMAGE/TEXT (actions must be DISCRETE or CONTINUOUS).
      out_of_range: given to every CONTINUOUS field.
    """
    from gymnasium import spaces

    def leaf(sp, key: str) -> FieldSpec:
        kind = "action" if action else "observation"
        if isinstance(sp, spaces.Box):
            dt = np.dtype(sp.dtype)
            low, high = np.asarray(sp.low), np.asarray(sp.high)
            shape = tuple(sp.shape)
            if (dt == np.uint8 and len(shape) == 3 and shape[2] in (1, 3) and np.all(low == 0) and np.all(high == 255)
                    and not action):
                return FieldSpec.image(*shape)
            if dt.kind in "iub" and low.size and low.min() >= 0 and high.max() < _MAX_DISCRETE:
                return FieldSpec.discrete(int(high.max()) + 1, shape)
            if dt.kind not in "fiub":
                raise ValueError(f"{kind} field {key!r}: Box of dtype {dt} cannot be mapped")
            # Bounds as float32 (how values and spaces are stored): rounding is monotonic, so every
            # value inside the Box stays inside these bounds after the float32 cast.
            with np.errstate(over="ignore"):
                lo = float(np.float32(low.min())) if low.size else -math.inf
                hi = float(np.float32(high.max())) if high.size else math.inf
            return FieldSpec.continuous(shape, lo, hi, out_of_range=out_of_range)
        if isinstance(sp, spaces.Discrete):
            n = int(sp.n)
            if n > _MAX_DISCRETE:
                raise ValueError(f"{kind} field {key!r}: Discrete({n}) has more than {_MAX_DISCRETE} values (Gato §2.1)")
            return FieldSpec.discrete(n)
        if isinstance(sp, spaces.MultiDiscrete):
            n = int(np.max(sp.nvec))
            if n > _MAX_DISCRETE:
                raise ValueError(f"{kind} field {key!r}: MultiDiscrete with {n} values per element, more than {_MAX_DISCRETE}")
            return FieldSpec.discrete(n, tuple(sp.shape))
        if isinstance(sp, spaces.MultiBinary):
            return FieldSpec.discrete(2, tuple(sp.shape))
        if isinstance(sp, spaces.Text):
            if action:
                raise ValueError(f"action field {key!r}: a Text action cannot be mapped (actions are DISCRETE or CONTINUOUS)")
            return FieldSpec.text()
        raise ValueError(f"{kind} field {key!r}: {type(sp).__name__} spaces cannot be mapped to gatolab fields "
                         f"(supported: Box, Discrete, MultiDiscrete, MultiBinary, Text, Dict, Tuple)")

    def walk(sp, prefix: str) -> dict[str, FieldSpec]:
        if isinstance(sp, spaces.Dict):
            out: dict[str, FieldSpec] = {}
            for k, sub in sp.spaces.items():
                out.update(walk(sub, f"{prefix}{k}/"))
            return out
        if isinstance(sp, spaces.Tuple):
            w = _pad_width(len(sp.spaces))
            out = {}
            for i, sub in enumerate(sp.spaces):
                out.update(walk(sub, f"{prefix}{i:0{w}d}/"))
            return out
        key = prefix[:-1]
        f = leaf(sp, key)
        if action and f.modality not in (Modality.DISCRETE, Modality.CONTINUOUS):
            raise ValueError(f"action field {key!r}: {f.modality.name} actions cannot be mapped "
                             f"(actions are DISCRETE or CONTINUOUS)")
        return {key: f}

    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return flatten_fields(walk(space, ""))
    return walk(space, f"{name}/")


def _space_offsets(space, name: str) -> dict[str, np.ndarray]:
    """Per-field value shifts for Discrete/MultiDiscrete spaces with a non-zero `start`."""
    from gymnasium import spaces

    out: dict[str, np.ndarray] = {}

    def walk(sp, prefix):
        if isinstance(sp, spaces.Dict):
            for k, sub in sp.spaces.items():
                walk(sub, f"{prefix}{k}/")
        elif isinstance(sp, spaces.Tuple):
            w = _pad_width(len(sp.spaces))
            for i, sub in enumerate(sp.spaces):
                walk(sub, f"{prefix}{i:0{w}d}/")
        elif isinstance(sp, (spaces.Discrete, spaces.MultiDiscrete)):
            start = np.asarray(getattr(sp, "start", 0))
            if np.any(start != 0):
                out[prefix[:-1]] = start

    walk(space, "" if isinstance(space, (spaces.Dict, spaces.Tuple)) else f"{name}/")
    return out


def _flatten_data(value: Any, space, name: str) -> dict[str, Any]:
    """Minari's decoded episode data (dicts / tuples / arrays) -> flat {field: column}."""
    from gymnasium import spaces

    out: dict[str, Any] = {}

    def walk(v, sp, prefix):
        if isinstance(sp, spaces.Dict):
            for k, sub in sp.spaces.items():
                if k not in v:
                    raise ValueError(f"field {prefix + k!r} is missing from the data")
                walk(v[k], sub, f"{prefix}{k}/")
        elif isinstance(sp, spaces.Tuple):
            w = _pad_width(len(sp.spaces))
            for i, sub in enumerate(sp.spaces):
                walk(v[i], sub, f"{prefix}{i:0{w}d}/")
        else:
            out[prefix[:-1]] = v

    walk(value, space, "" if isinstance(space, (spaces.Dict, spaces.Tuple)) else f"{name}/")
    return out


def _coerce(col: Any, f: FieldSpec, offset: np.ndarray | None, where: str, key: str) -> Any:
    if f.modality == Modality.TEXT:
        return [s.decode("utf-8") if isinstance(s, bytes) else s for s in col]
    x = np.asarray(col)
    if f.modality == Modality.IMAGE:
        return x
    if f.modality == Modality.DISCRETE:
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
                raise ValueError(f"{where}: discrete field {key!r} holds non-integral values")
        elif x.dtype.kind not in "iub":
            raise ValueError(f"{where}: discrete field {key!r} has dtype {x.dtype}, expected integers")
        x = x.astype(np.int64)
        return x - offset if offset is not None else x
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{where}: continuous field {key!r} has dtype {x.dtype}, expected numbers")
    return x.astype(np.float32)


def _minari_episodes(storage_obj, data_dir: Path, spec: EnvSpec, task: str, obs_space, act_space,
                     offsets: Mapping[str, np.ndarray]) -> Iterator[Episode]:
    n = storage_obj.total_episodes
    for start in range(0, n, DEFAULT_SHARD_SIZE):  # read a bounded number of episodes at a time
        idx = range(start, min(n, start + DEFAULT_SHARD_SIZE))
        try:
            raw = list(storage_obj.get_episodes(idx))
            metas = list(storage_obj.get_episode_metadata(idx))
        except Exception as e:  # h5py / pyarrow raise many types on a damaged file
            files = ", ".join(sorted(p.name for p in data_dir.iterdir() if p.name != "metadata.json")) or "no data file"
            raise ValueError(f"Minari dataset {data_dir}: could not read episodes {idx.start}..{idx.stop - 1} from {files} "
                             f"({type(e).__name__}: {e})") from e
        for r, meta in zip(raw, metas):
            eid = int(r.get("id", meta.get("id", -1)))
            where = f"Minari dataset {data_dir}, episode_{eid}"
            rewards = np.asarray(r["rewards"], np.float64)
            t = len(rewards)
            try:
                obs_cols = _flatten_data(r["observations"], obs_space, "observation")
                act_cols = _flatten_data(r["actions"], act_space, "action")
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise ValueError(f"{where}: {e}") from e
            dropped = False
            obs: dict[str, Any] = {}
            for key, f in spec.observation.items():
                col = _coerce(obs_cols[key], f, offsets.get(key), where, key)
                if len(col) == t + 1:
                    col, dropped = col[:t], True
                elif len(col) != t:
                    raise ValueError(f"{where}: observation field {key!r} has {len(col)} rows for {t} rewards "
                                     f"(expected {t} + 1 or {t})")
                obs[key] = col
            acts: dict[str, Any] = {}
            for key, f in spec.action.items():
                col = _coerce(act_cols[key], f, offsets.get(key), where, key)
                if len(col) != t:
                    raise ValueError(f"{where}: action field {key!r} has {len(col)} rows for {t} rewards")
                acts[key] = col
            term = np.asarray(r.get("terminations", np.zeros(t, bool)), bool)
            trunc = np.asarray(r.get("truncations", np.zeros(t, bool)), bool)
            md: dict[str, Any] = {"source_episode": eid, "final_observation_dropped": dropped,
                                  "terminated": bool(term[-1]) if t else False, "truncated": bool(trunc[-1]) if t else False}
            if meta.get("seed") is not None:
                md["seed"] = int(meta["seed"])
            if t == 0:
                raise ValueError(f"{where}: empty episode (no rewards)")
            ep = Episode(task, obs, acts, rewards.astype(np.float32), md)
            _check_episode(where, ep, spec)
            yield ep


def import_minari(path_or_dataset_dir: str | os.PathLike, out: str | os.PathLike, name: str | None = None, *,
                  task: str | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                  out_of_range: OutOfRange = "error") -> dict[str, Any]:
    """Imports a local Minari dataset as `<out>/<name>` (see the module docstring).

    Args:
      path_or_dataset_dir: the Minari dataset folder (with `data/`) or its `data` folder.
      out: root folder; the dataset goes to `<out>/<name>`.
      name: gatolab dataset name (default: the Minari dataset id, "/" -> "-").
      task: task name (default: the recorded environment id, else the dataset name).
      shard_size: episodes per shard.
      out_of_range: "clip" lets CONTINUOUS fields saturate values beyond their range at
        tokenization (recorded in the spec); "error" (default) refuses them at import.

    Returns:
      The manifest.

    Raises:
      ValueError: naming the file or field: missing/corrupt files, unmappable spaces,
        data that do not fit the spaces, or an existing `<out>/<name>`.
    """
    from minari.dataset.minari_storage import MinariStorage

    data_dir = minari_data_dir(path_or_dataset_dir)
    try:
        meta = json.loads((data_dir / "metadata.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Minari dataset {data_dir}: metadata.json is corrupt ({e})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"Minari dataset {data_dir}: metadata.json is not a JSON object")
    for key in ("observation_space", "action_space"):
        if key not in meta:
            raise ValueError(f"Minari dataset {data_dir}: metadata.json has no {key!r} (an environment would be needed "
                             f"to recover it; gatolab does not create one)")
    fmt = meta.get("data_format", "hdf5")
    if fmt == "hdf5" and not (data_dir / "main_data.hdf5").is_file():
        raise ValueError(f"Minari dataset {data_dir}: main_data.hdf5 is missing")
    try:
        st = MinariStorage.read(data_dir)
    except Exception as e:
        raise ValueError(f"Minari dataset {data_dir}: Minari could not open it ({type(e).__name__}: {e})") from e
    obs_space, act_space = st.observation_space, st.action_space
    dataset_id = str(meta.get("dataset_id") or data_dir.parent.name)
    name = _safe_name(name or dataset_id)
    env_id = None
    if isinstance(meta.get("env_spec"), str):
        try:
            env_id = json.loads(meta["env_spec"]).get("id")
        except (json.JSONDecodeError, AttributeError):
            env_id = None
    task = _safe_name(task or env_id or name)
    obs_fields = space_fields(obs_space, "observation", out_of_range=out_of_range)
    act_fields = space_fields(act_space, "action", action=True, out_of_range=out_of_range)
    spec = EnvSpec(task, obs_fields, act_fields)
    offsets = {**_space_offsets(obs_space, "observation"), **_space_offsets(act_space, "action")}
    info = _info("minari", str(data_dir), task,
                 "from the dataset's serialized observation/action spaces (gatolab/data/importers.py)",
                 {"dataset_id": dataset_id, "env_id": env_id, "minari_version": meta.get("minari_version"),
                  "data_format": fmt, "algorithm_name": meta.get("algorithm_name"), "author": meta.get("author"),
                  "total_episodes": meta.get("total_episodes"), "total_steps": meta.get("total_steps"),
                  "value_offsets": {k: np.asarray(v).tolist() for k, v in offsets.items()},
                  "source_sha256": {p.name: storage.sha256_file(p) for p in sorted(data_dir.iterdir()) if p.is_file()}},
                 shard_size)
    episodes = _minari_episodes(st, data_dir, spec, task, obs_space, act_space, offsets)
    return _write_dataset(out, name, spec, episodes, info, shard_size)


# ----------------------------------------------------------------------------------------
# JAT (parquet)
# ----------------------------------------------------------------------------------------
def jat_files(parquet_files_or_dir: str | os.PathLike | Sequence[str | os.PathLike], task: str | None = None) -> list[Path]:
    """The parquet files to read: the given files, or every `*.parquet` under a folder
    (under `<folder>/<task>` when that exists, the hub layout `jat-dataset/<task>/<split>/*.parquet`)."""
    items = [parquet_files_or_dir] if isinstance(parquet_files_or_dir, (str, os.PathLike)) else list(parquet_files_or_dir)
    files: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if not p.exists():
            raise ValueError(f"JAT source {p}: no such file or folder")
        if p.is_dir():
            root = p / task if task and (p / task).is_dir() else p
            found = sorted(root.rglob("*.parquet"))
            if not found:
                raise ValueError(f"JAT source {root}: no .parquet files under it")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise ValueError("JAT import: no parquet files given")
    return files


def _decode_image(v: Any, where: str) -> np.ndarray:
    """One JAT image -> (H, W, C) uint8."""
    if isinstance(v, Mapping):  # the datasets library's Image feature: {"bytes": ..., "path": ...}
        data = v.get("bytes")
        if data is None:
            raise ValueError(f"{where}: image has no embedded bytes (path {v.get('path')!r}); "
                             f"only parquet files with embedded images can be imported")
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                a = np.asarray(im)
        except Exception as e:
            raise ValueError(f"{where}: image bytes cannot be decoded ({type(e).__name__}: {e})") from e
    else:
        a = np.asarray(v)
        if a.dtype.kind not in "iuf" or a.size == 0:
            raise ValueError(f"{where}: image is neither an encoded image nor a numeric array")
        if a.min() < 0 or a.max() > 255 or (a.dtype.kind == "f" and not np.all(a == np.round(a))):
            raise ValueError(f"{where}: image values must be integers in [0, 255]")
        a = a.astype(np.uint8)
        if a.ndim == 3 and a.shape[0] <= 4 < a.shape[2]:
            a = a.transpose(1, 2, 0)  # channel-first (C, H, W), as frame-stacking wrappers emit it
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{where}: image has shape {a.shape}, expected (H, W) or (H, W, C)")
    if not 1 <= a.shape[2] <= 4:
        raise ValueError(f"{where}: image has shape {a.shape}: {a.shape[2]} channels, expected 1 to 4")
    return a.astype(np.uint8, copy=False)


def _stack(rows: Any, where: str, dtype: Any) -> np.ndarray:
    try:
        return np.asarray(rows, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: cannot be read as a (T, ...) {np.dtype(dtype).name} array "
                         f"(ragged or non-numeric: {e})") from e


def _jat_rows(files: Sequence[Path], batch_rows: int = 16) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in files:
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"JAT file {path}: not a readable parquet file ({type(e).__name__}: {e})") from e
        cols = set(pf.schema_arrow.names)
        has_action = cols & set(JAT_ACTION_COLUMNS)
        if not has_action:
            extra = sorted(cols & set(_JAT_NON_CONTROL_COLUMNS))
            raise ValueError(f"JAT file {path}: no action column ({' or '.join(JAT_ACTION_COLUMNS)}); columns are "
                             f"{sorted(cols)}" + (f" ({', '.join(extra)}: a text / vision-language config, "
                                                  f"not control data; not supported by this importer)" if extra else ""))
        if not cols & set(JAT_OBSERVATION_COLUMNS):
            raise ValueError(f"JAT file {path}: no observation column (one of {', '.join(JAT_OBSERVATION_COLUMNS)}); "
                             f"columns are {sorted(cols)}")
        wanted = [c for c in (*JAT_OBSERVATION_COLUMNS, *JAT_ACTION_COLUMNS, JAT_REWARD_COLUMN) if c in cols]
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
                for rec in batch.to_pylist():
                    yield path, row, rec
                    row += 1
        except (pa.ArrowException, OSError) as e:  # pyarrow raises OSError for damaged pages
            raise ValueError(f"JAT file {path}: corrupt parquet data near row {row} ({type(e).__name__}: {e})") from e


def _jat_raw_episode(path: Path, row: int, rec: Mapping[str, Any], first_image_only: bool = False) -> dict[str, Any]:
    """One parquet row -> {column: array or list}, checked for equal lengths.

    `first_image_only` (the spec-inference pass) decodes one image per row and repeats it
    (a broadcast view): shapes and lengths are all that pass needs; the writing pass
    decodes every image and checks each against the spec.
    """
    where = f"JAT file {path}, row {row}"
    cols: dict[str, Any] = {}
    for c, v in rec.items():
        if v is None:
            continue  # a column this config does not use (null in the row)
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"{where}: column {c!r} is not a list over timesteps")
        w = f"{where}, column {c!r}"
        if c == "text_observations":
            if any(not isinstance(s, str) for s in v):
                raise ValueError(f"{w}: expected strings")
            cols[c] = list(v)
        elif c == "image_observations" and first_image_only and v:
            first = _decode_image(v[0], f"{w}, timestep 0")
            cols[c] = np.broadcast_to(first, (len(v), *first.shape))
        elif c == "image_observations":
            imgs = [_decode_image(x, f"{w}, timestep {t}") for t, x in enumerate(v)]
            for t, x in enumerate(imgs):
                if x.shape != imgs[0].shape:
                    raise ValueError(f"{w}, timestep {t}: image shape {x.shape}, timestep 0 has {imgs[0].shape}")
            cols[c] = np.stack(imgs) if imgs else np.zeros((0, 1, 1, 1), np.uint8)
        elif c.startswith("discrete_"):
            x = _stack(v, w, np.float64)
            if x.size and (not np.all(np.isfinite(x)) or not np.all(x == np.round(x))):
                raise ValueError(f"{w}: discrete values must be integers")
            cols[c] = x.astype(np.int64)
        else:  # continuous_*, rewards
            x = _stack(v, w, np.float64)
            if x.size and not np.all(np.isfinite(x)):
                raise ValueError(f"{w}: NaN or inf")
            cols[c] = x.astype(np.float32)
    if not any(c in cols for c in JAT_ACTION_COLUMNS):
        raise ValueError(f"{where}: every action column is null")
    t = len(cols[next(c for c in JAT_ACTION_COLUMNS if c in cols)])
    if t == 0:
        raise ValueError(f"{where}: empty episode")
    for c in list(cols):
        n = len(cols[c])
        if c in JAT_OBSERVATION_COLUMNS and n == t + 1:
            cols[c] = cols[c][:t]  # a final observation after the last action (as Minari keeps it)
        elif n != t:
            raise ValueError(f"{where}: column {c!r} has {n} timesteps, the actions have {t}")
    for c in ("continuous_observations", "discrete_observations", "continuous_actions"):
        if c in cols and cols[c].ndim == 1:
            cols[c] = cols[c][:, None]  # one value per timestep -> (T, 1)
    return cols


def _split_images(cols: dict[str, Any]) -> dict[str, Any]:
    """Images with C not in {1, 3} -> one grayscale field per channel ("image_observations/c<k>")."""
    img = cols.get("image_observations")
    if img is None or img.shape[-1] in (1, 3):
        return cols
    out = {k: v for k, v in cols.items() if k != "image_observations"}
    w = _pad_width(img.shape[-1])
    for k in range(img.shape[-1]):
        out[f"image_observations/c{k:0{w}d}"] = np.ascontiguousarray(img[..., k:k + 1])
    return out


def import_jat(parquet_files_or_dir: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, task: str,
               name: str | None = None, *, num_values: Mapping[str, int] | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
               out_of_range: OutOfRange = "error") -> dict[str, Any]:
    """Imports JAT-format parquet files (one task) as `<out>/<name>` (see the module docstring).

    Args:
      parquet_files_or_dir: a parquet file, a list of them, or a folder (searched recursively;
        `<folder>/<task>` is used when it exists).
      out: root folder; the dataset goes to `<out>/<name>`.
      task: the task name (e.g. "metaworld-assembly"); JAT files do not record it.
      name: gatolab dataset name (default "jat-<task>").
      num_values: per discrete column, the number of values (default: largest seen + 1).
      shard_size: episodes per shard.
      out_of_range: given to every CONTINUOUS field ("clip" saturates at tokenization).

    Two passes over the files: the first infers the spec (shapes, value ranges), the
    second writes the shards; memory holds one shard of episodes at a time.
    """
    task = _safe_name(task)
    name = _safe_name(name or f"jat-{task}")
    files = jat_files(parquet_files_or_dir, task)
    num_values = dict(num_values or {})
    # Pass 1: shapes, ranges, columns present.
    shapes: dict[str, tuple[int, ...]] = {}
    where_first: dict[str, str] = {}
    vmax: dict[str, int] = {}
    amax_abs: dict[str, float] = {}
    columns: set[str] | None = None
    n_episodes = 0
    for path, row, rec in _jat_rows(files):
        cols = _split_images(_jat_raw_episode(path, row, rec, first_image_only=True))
        where = f"JAT file {path}, row {row}"
        if columns is None:
            columns = set(cols)
        elif set(cols) != columns:
            raise ValueError(f"{where}: columns {sorted(cols)} differ from the first episode's {sorted(columns)} "
                             f"(one task per import)")
        for c, v in cols.items():
            if c == "text_observations":
                continue
            shp = tuple(v.shape[1:])
            if c not in shapes:
                shapes[c], where_first[c] = shp, where
            elif shapes[c] != shp:
                raise ValueError(f"{where}: column {c!r} has per-timestep shape {shp}, {where_first[c]} had {shapes[c]}")
            if c.startswith("discrete_"):
                vmax[c] = max(vmax.get(c, 0), int(v.max()))
                if v.min() < 0:
                    raise ValueError(f"{where}: column {c!r} has negative value {int(v.min())} (discrete values lie in [0, n))")
            elif c.startswith("continuous_"):
                amax_abs[c] = max(amax_abs.get(c, 0.0), float(np.abs(v).max()))
        n_episodes += 1
    if not n_episodes or columns is None:
        raise ValueError(f"JAT source {', '.join(map(str, files))}: no episodes (rows)")
    unknown = sorted(set(num_values) - {c for c in columns if c.startswith("discrete_")})
    if unknown:
        raise ValueError(f"num_values names {unknown}, which are not discrete columns of these files")
    obs: dict[str, FieldSpec] = {}
    act: dict[str, FieldSpec] = {}
    for c in sorted(columns):
        if c == JAT_REWARD_COLUMN:
            continue
        target = act if c in JAT_ACTION_COLUMNS else obs
        if c == "text_observations":
            target[c] = FieldSpec.text()
        elif c.startswith("image_observations"):
            target[c] = FieldSpec.image(*shapes[c])
        elif c.startswith("discrete_"):
            n = int(num_values.get(c, vmax[c] + 1))
            if n <= vmax[c]:
                raise ValueError(f"column {c!r}: num_values={n} but the data hold the value {vmax[c]}")
            if n > _MAX_DISCRETE:
                raise ValueError(f"column {c!r}: values up to {n - 1}, beyond Gato's {_MAX_DISCRETE} discrete values")
            shp = shapes[c]
            target[c] = FieldSpec.discrete(n, () if c == "discrete_actions" and shp == (1,) else shp)
        else:
            in_unit = c in JAT_ACTION_COLUMNS and amax_abs[c] <= 1.0
            target[c] = FieldSpec.continuous(shapes[c], -1.0 if in_unit else -math.inf, 1.0 if in_unit else math.inf,
                                             out_of_range=out_of_range)
    if not act:
        raise ValueError(f"JAT source {files[0]}: no action column")
    spec = EnvSpec(task, obs, act)
    inference = ("from the data (JAT parquet has no spaces): discrete num_values = largest value seen + 1 unless given; "
                 "continuous actions bounded [-1, 1] when the data lie there, else unbounded (mu-law); continuous "
                 "observations unbounded (mu-law); images with C not in {1, 3} split into one field per channel")

    def episodes() -> Iterator[Episode]:
        k = 0
        for path, row, rec in _jat_rows(files):
            cols = _split_images(_jat_raw_episode(path, row, rec))
            where = f"JAT file {path}, row {row}"
            o = {c: cols[c] for c in spec.observation}
            a = {c: (cols[c].reshape(len(cols[c])) if spec.action[c].shape == () else cols[c]) for c in spec.action}
            rewards = cols.get(JAT_REWARD_COLUMN)
            ep = Episode(task, o, a, rewards, {"source_file": str(path), "source_row": row, "source_episode": k,
                                               "rewards_recorded": rewards is not None})
            _check_episode(where, ep, spec)
            k += 1
            yield ep

    info = _info("jat", ", ".join(str(f) for f in files[:4]) + (f" (+{len(files) - 4} files)" if len(files) > 4 else ""),
                 task, inference,
                 {"files": [str(f) for f in files], "num_values": {c: f.num_values for c, f in {**obs, **act}.items()
                                                                   if f.modality == Modality.DISCRETE},
                  "rewards_recorded": JAT_REWARD_COLUMN in columns,
                  "source_sha256": {str(f): storage.sha256_file(f) for f in files}},
                 shard_size)
    return _write_dataset(out, name, spec, episodes(), info, shard_size)


def import_dataset(fmt: str, src: str | os.PathLike, out: str | os.PathLike, *, task: str | None = None,
                   name: str | None = None, **kw) -> dict[str, Any]:
    """Dispatch for the CLI: `fmt` is "minari" or "jat"."""
    if fmt == "minari":
        return import_minari(src, out, name, task=task, **kw)
    if fmt == "jat":
        if not task:
            raise ValueError("a JAT import needs --task (the parquet files do not record it), e.g. --task metaworld-assembly")
        return import_jat(src, out, task, name, **kw)
    raise ValueError(f"unknown import format {fmt!r} (known: minari, jat)")
