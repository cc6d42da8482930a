"""Importing a local Minari dataset (Farama's offline-RL format) as a gatolab dataset.

Any `data_format` Minari 0.5 reads, JPEG or raw).
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
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.data import storage
from gatolab.data.importers.common import (DEFAULT_SHARD_SIZE, MAX_DISCRETE, check_episode, import_info, pad_width,
                                           safe_name, write_dataset)
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality, OutOfRange, flatten_fields

# The data-card prose of datasets imported this way (`gatolab data card`).
NOTES = {
    "what": "A Minari dataset imported from local files (`gatolab data import --format minari`); its observation and "
            "action fields are inferred from the recorded gymnasium spaces (see `imported` and the specs in the JSON card).",
    "expert": "Whatever policy the source dataset recorded (see the source's own metadata); gatolab runs no policy.",
    "licence": "The source dataset's licence (see its Minari metadata and publisher); gatolab's packaging adds no terms.",
    "use": "Training on data a researcher already holds, mixed with gatolab's generated datasets.",
    "limits": "No environment runs on import, so there is no random-policy baseline (normalised scores need reference "
              "returns from elsewhere); the inferred spec should be checked against the source's documentation.",
}


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


def space_fields(space, name: str, *, action: bool = False, out_of_range: OutOfRange = "error") -> dict[str, FieldSpec]:
    """Flat gatolab fields for a gymnasium space (see the module docstring for the mapping).

    Args:
      space: a gymnasium space.
      name: the field name to use for a non-`Dict` space (and the prefix in error messages).
      action: refuse IMAGE/TEXT (actions must be DISCRETE or CONTINUOUS).
      out_of_range: given to every CONTINUOUS field.
    """
    from gymnasium import spaces  # the envs extra (optional): only to read recorded spaces

    def leaf(sp, key: str) -> FieldSpec:
        kind = "action" if action else "observation"
        if isinstance(sp, spaces.Box):
            dt = np.dtype(sp.dtype)
            low, high = np.asarray(sp.low), np.asarray(sp.high)
            shape = tuple(sp.shape)
            if (dt == np.uint8 and len(shape) == 3 and shape[2] in (1, 3) and np.all(low == 0) and np.all(high == 255)
                    and not action):
                return FieldSpec.image(*shape)
            if dt.kind in "iub" and low.size and low.min() >= 0 and high.max() < MAX_DISCRETE:
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
            if n > MAX_DISCRETE:
                raise ValueError(f"{kind} field {key!r}: Discrete({n}) has more than {MAX_DISCRETE} values (Gato §2.1)")
            return FieldSpec.discrete(n)
        if isinstance(sp, spaces.MultiDiscrete):
            n = int(np.max(sp.nvec))
            if n > MAX_DISCRETE:
                raise ValueError(f"{kind} field {key!r}: MultiDiscrete with {n} values per element, more than {MAX_DISCRETE}")
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
            w = pad_width(len(sp.spaces))
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
    from gymnasium import spaces  # the envs extra (optional)

    out: dict[str, np.ndarray] = {}

    def walk(sp, prefix):
        if isinstance(sp, spaces.Dict):
            for k, sub in sp.spaces.items():
                walk(sub, f"{prefix}{k}/")
        elif isinstance(sp, spaces.Tuple):
            w = pad_width(len(sp.spaces))
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
    from gymnasium import spaces  # the envs extra (optional)

    out: dict[str, Any] = {}

    def walk(v, sp, prefix):
        if isinstance(sp, spaces.Dict):
            for k, sub in sp.spaces.items():
                if k not in v:
                    raise ValueError(f"field {prefix + k!r} is missing from the data")
                walk(v[k], sub, f"{prefix}{k}/")
        elif isinstance(sp, spaces.Tuple):
            w = pad_width(len(sp.spaces))
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
            check_episode(where, ep, spec)
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
    from minari.dataset.minari_storage import MinariStorage  # the envs extra (optional): only to read a Minari dataset

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
    name = safe_name(name or dataset_id)
    env_id = None
    if isinstance(meta.get("env_spec"), str):
        try:
            env_id = json.loads(meta["env_spec"]).get("id")
        except (json.JSONDecodeError, AttributeError):
            env_id = None
    task = safe_name(task or env_id or name)
    obs_fields = space_fields(obs_space, "observation", out_of_range=out_of_range)
    act_fields = space_fields(act_space, "action", action=True, out_of_range=out_of_range)
    spec = EnvSpec(task, obs_fields, act_fields)
    offsets = {**_space_offsets(obs_space, "observation"), **_space_offsets(act_space, "action")}
    info = import_info("minari", str(data_dir), task,
                 "from the dataset's serialized observation/action spaces (gatolab/data/importers.py)",
                 {"dataset_id": dataset_id, "env_id": env_id, "minari_version": meta.get("minari_version"),
                  "data_format": fmt, "algorithm_name": meta.get("algorithm_name"), "author": meta.get("author"),
                  "total_episodes": meta.get("total_episodes"), "total_steps": meta.get("total_steps"),
                  "value_offsets": {k: np.asarray(v).tolist() for k, v in offsets.items()},
                  "source_sha256": {p.name: storage.sha256_file(p) for p in sorted(data_dir.iterdir()) if p.is_file()}},
                 shard_size)
    episodes = _minari_episodes(st, data_dir, spec, task, obs_space, act_space, offsets)
    return write_dataset(out, name, spec, episodes, info, shard_size)
