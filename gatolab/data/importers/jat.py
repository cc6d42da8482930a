"""Importing episodes in the JAT dataset's parquet layout as a gatolab dataset.

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
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatolab.data import storage
from gatolab.data.importers.common import (DEFAULT_SHARD_SIZE, MAX_DISCRETE, check_episode, import_info, pad_width,
                                           safe_name, write_dataset)
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality, OutOfRange

JAT_OBSERVATION_COLUMNS = ("continuous_observations", "discrete_observations", "image_observations", "text_observations")
JAT_ACTION_COLUMNS = ("continuous_actions", "discrete_actions")
JAT_REWARD_COLUMN = "rewards"
_JAT_NON_CONTROL_COLUMNS = ("text", "images", "pixel_values", "input_ids")


# The data-card prose of datasets imported this way (`gatolab data card`).
NOTES = {
    "what": "Episodes imported from the JAT dataset's parquet layout (huggingface jat-project/jat-dataset: per-episode "
            "columns of image/continuous/discrete observations, actions, rewards) with `gatolab data import --format jat`; "
            "the spec is inferred from the data (see `imported` in the JSON card).",
    "expert": "The JAT project's agents (see the JAT dataset card for each task); gatolab runs no policy.",
    "licence": "The JAT dataset's licence (see its dataset card on the hub); gatolab's packaging adds no terms.",
    "use": "Training on JAT data a researcher already holds, mixed with gatolab's generated datasets.",
    "limits": "No environment runs on import: no random-policy baseline; continuous bounds are inferred from the values "
              "seen, so a later file with wider values needs `--clip` or a re-import.",
}


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
        from PIL import Image  # Pillow (optional): only to decode image bytes

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
    import pyarrow as pa  # the envs extra (optional): only to read parquet files
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
    w = pad_width(img.shape[-1])
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
    task = safe_name(task)
    name = safe_name(name or f"jat-{task}")
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
            if n > MAX_DISCRETE:
                raise ValueError(f"column {c!r}: values up to {n - 1}, beyond Gato's {MAX_DISCRETE} discrete values")
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
            check_episode(where, ep, spec)
            k += 1
            yield ep

    info = import_info("jat", ", ".join(str(f) for f in files[:4]) + (f" (+{len(files) - 4} files)" if len(files) > 4 else ""),
                 task, inference,
                 {"files": [str(f) for f in files], "num_values": {c: f.num_values for c, f in {**obs, **act}.items()
                                                                   if f.modality == Modality.DISCRETE},
                  "rewards_recorded": JAT_REWARD_COLUMN in columns,
                  "source_sha256": {str(f): storage.sha256_file(f) for f in files}},
                 shard_size)
    return write_dataset(out, name, spec, episodes(), info, shard_size)
