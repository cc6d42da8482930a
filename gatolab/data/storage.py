"""Episodes on disk: Minari-format shards with SHA-256 checksums, written atomically.

Format choice (issue 4). Minari (Farama's standard for offline RL datasets) with its
HDF5 backend stores everything our episodes carry: `Box` arrays (continuous values,
discrete grids, raw uint8 images), `Discrete`/`MultiDiscrete`, and `Text` (UTF-8
strings), nested under `Dict` spaces. So every gatolab shard *is* a Minari data
folder that other tools open without gatolab:

    import minari
    ds = minari.MinariDataset("data/classic/CartPole-v1/shard-00000")
    ep = next(ds.iterate_episodes())   # ep.observations["state"], ep.actions["action"], ep.rewards

Layout of one dataset (one domain, e.g. "classic"):

    <root>/<dataset>/
      manifest.json                     gatolab: dataset facts + sha256 of every shard file (written last)
      <task>/shard-00000/               one Minari data folder per shard
        metadata.json                   Minari: spaces (serialized), totals, data_format="hdf5", jpeg_encoding=false
        main_data.hdf5                  Minari: episode_<i>/{observations/<field>, actions/<field>, rewards,
                                        terminations, truncations}; attrs: id, seed, total_steps, gatolab_metadata (JSON)
        gatolab_shard.json              gatolab: EnvSpec, episode count/timesteps, sha256 of the two files above

Deviations from Minari's conventions, stated rather than hidden:
- Observations hold T rows (the observations the policy acted on), not Minari's T + 1:
  `gatolab.domains.rollout` does not keep the final observation and we do not invent one.
- Episodes from `rollout` do not record whether they ended by termination or by the
  time limit; unless the episode metadata has "terminated"/"truncated", the last step
  is marked `truncations[-1] = True` ("the recording ends here") and the episode attribute
  `end_reason_recorded` is false.
- Images are stored raw (`jpeg_encoding=false`): Minari's default JPEG is lossy and
  the tokenizer would see different pixels than the environment produced.
- Text fields use `Text(charset=string.printable)`; real strings are UTF-8 and may
  contain characters outside that charset (HDF5 stores them regardless).
- Flat gatolab field names "a/b" become nested `Dict` spaces {"a": {"b": ...}}.

Integrity. A shard is written into a temporary folder next to its final place and
renamed into place only when complete (rename is atomic on POSIX), so a reader never
sees half a shard and an interrupted run leaves only a `.tmp` folder that the next run
removes. `gatolab_shard.json` records the SHA-256 of each data file; `read_shard`
(and `verify`) recompute it and raise a ValueError naming the shard path on mismatch,
so a truncated or corrupted file is never read as data. No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatolab import io_utils
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality, flatten_fields

FORMAT_VERSION = 1
SHARD_SIDECAR = "gatolab_shard.json"
MANIFEST = "manifest.json"
_DATA_FILES = ("main_data.hdf5", "metadata.json")
_TEXT_MAX_LENGTH = 1 << 20


# ----------------------------------------------------------------------------------------
# EnvSpec <-> gymnasium spaces (what Minari serializes)
# ----------------------------------------------------------------------------------------
def _field_space(f: FieldSpec):
    from gymnasium import spaces  # the envs extra (optional): shards' spaces only

    if f.modality == Modality.TEXT:
        return spaces.Text(max_length=_TEXT_MAX_LENGTH, min_length=0, charset=string.printable)
    if f.modality == Modality.IMAGE:
        return spaces.Box(0, 255, f.shape, np.uint8)
    if f.modality == Modality.DISCRETE:
        if f.shape == ():
            return spaces.Discrete(f.num_values)
        return spaces.MultiDiscrete(np.full(f.shape, f.num_values, np.int64))
    return spaces.Box(np.float32(f.low), np.float32(f.high), f.shape, np.float32)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"a/b": x} -> {"a": {"b": x}} (Minari's Dict spaces and HDF5 groups nest by "/")."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split("/")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _dict_space(fields: Mapping[str, FieldSpec]):
    from gymnasium import spaces  # the envs extra (optional)

    def build(tree):
        return spaces.Dict({k: build(v) if isinstance(v, dict) else _field_space(v) for k, v in tree.items()})

    return build(_nest(fields))


def spaces_for(spec: EnvSpec):
    """(observation_space, action_space) as gymnasium `Dict` spaces, for Minari metadata."""
    return _dict_space(spec.observation), _dict_space(spec.action)


# ----------------------------------------------------------------------------------------
# Checksums
# ----------------------------------------------------------------------------------------
sha256_file = io_utils.sha256_file  # one checksum helper for shards and checkpoints (gatolab.io_utils)


def _check_name(kind: str, name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"{kind} name {name!r}: must be non-empty, without '/', and not start with '.'")


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------
def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def task_dir_name(task: str) -> str:
    """The folder of a task's shards: the task name, with the "/" of gymnasium ids such as
    "ALE/Pong-v5" written as "__" (the task itself is recorded in every shard's sidecar)."""
    if "__" in task:
        raise ValueError(f"task name {task!r}: must not contain '__' (reserved for '/' in folder names)")
    _check_name("task", task.replace("/", "__"))
    return task.replace("/", "__")


def shard_dir(dataset_dir: str | os.PathLike, task: str, index: int) -> Path:
    return Path(dataset_dir) / task_dir_name(task) / shard_name(index)


def _episode_buffer(ep: Episode, spec: EnvSpec, episode_id: int):
    from minari.data_collector import EpisodeBuffer  # the envs extra (optional): loaded by the functions that touch shard files only

    t = len(ep)
    obs = {}
    for key, f in spec.observation.items():
        col = ep.observations[key]
        obs[key] = [str(s) for s in col] if f.modality == Modality.TEXT else np.asarray(col)
    acts = {key: np.asarray(ep.actions[key]) for key in spec.action}
    meta = dict(ep.metadata)
    terminations = np.zeros(t, bool)
    truncations = np.zeros(t, bool)
    end_recorded = "terminated" in meta or "truncated" in meta
    if t:
        if end_recorded:
            terminations[-1] = bool(meta.get("terminated", False))
            truncations[-1] = bool(meta.get("truncated", False))
        else:
            truncations[-1] = True  # see the module docstring: "the recording ends here"
    seed = meta.get("seed")
    return EpisodeBuffer(
        id=episode_id,
        seed=int(seed) if isinstance(seed, (int, np.integer)) else None,
        observations=_nest(obs),
        actions=_nest(acts),
        rewards=np.asarray(ep.rewards, np.float32),
        terminations=terminations,
        truncations=truncations,
    ), end_recorded


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def write_shard(path: str | os.PathLike, spec: EnvSpec, episodes: Sequence[Episode], extra: Mapping[str, Any] | None = None,
                dataset_id: str | None = None) -> dict[str, Any]:
    """Writes `episodes` (all of one task, matching `spec`) as one Minari shard, atomically.

    Args:
      path: the shard folder to create (must not exist).
      spec: the task's EnvSpec (stored in the sidecar; the Minari spaces derive from it).
      episodes: at least one episode.
      extra: JSON-able facts to keep in the sidecar (e.g. generation seeds, versions).
      dataset_id: Minari's "namespace/name-vN" id for this shard (default
        "gatolab/<task>-<shard>-v0", sanitised).

    Returns:
      The sidecar dict (with per-file sha256).

    Raises:
      ValueError: if the shard already exists, `episodes` is empty, or an episode's
        fields do not match `spec`.
    """
    import minari  # optional (the envs extra): loaded by the functions that touch shard files only
    from minari.dataset.minari_storage import MinariStorage

    path = Path(path).absolute()  # Minari joins relative data paths twice
    if path.exists():
        raise ValueError(f"shard {path} already exists (shards are written once; delete it to rewrite)")
    if not episodes:
        raise ValueError(f"shard {path}: no episodes to write")
    for i, ep in enumerate(episodes):
        obs_keys, act_keys = set(flatten_fields(ep.observations)), set(flatten_fields(ep.actions))
        if obs_keys != set(spec.observation) or act_keys != set(spec.action):
            raise ValueError(
                f"shard {path}: episode {i} has observation fields {sorted(obs_keys)} and action fields {sorted(act_keys)}; "
                f"spec {spec.name!r} expects {sorted(spec.observation)} and {sorted(spec.action)}"
            )
    with io_utils.atomic_directory(path) as tmp:  # the shard appears whole or not at all
        obs_space, act_space = spaces_for(spec)
        storage = MinariStorage.new(tmp, observation_space=obs_space, action_space=act_space, data_format="hdf5",
                                    jpeg_encoding=False)
        buffers, metas = [], []
        for i, ep in enumerate(episodes):
            buf, end_recorded = _episode_buffer(ep, spec, i)
            buffers.append(buf)
            metas.append({"task": ep.task, "end_reason_recorded": end_recorded,
                          "gatolab_metadata": json.dumps(_jsonable(dict(ep.metadata)), sort_keys=True)})
        storage.update_episodes(buffers)
        storage.update_episode_metadata(metas, range(len(episodes)))
        # MinariDataset(path) needs these two keys to open the folder without gatolab.
        storage.update_metadata({"dataset_id": dataset_id or _minari_id(path), "minari_version": minari.__version__,
                                 "algorithm_name": str((extra or {}).get("policy", "gatolab expert")),
                                 "code_permalink": "gatolab/data/storage.py"})
        for name in _DATA_FILES:
            with open(tmp / name, "rb+") as f:
                os.fsync(f.fileno())
        sidecar = {
            "format_version": FORMAT_VERSION,
            "task": episodes[0].task,
            "spec": spec.to_json(),
            "num_episodes": len(episodes),
            "num_timesteps": int(sum(len(ep) for ep in episodes)),
            # Per-episode facts the mixture's filter and the data cards need without reading the data.
            "returns": [ep.total_return for ep in episodes],
            "lengths": [len(ep) for ep in episodes],
            "sha256": {name: sha256_file(tmp / name) for name in _DATA_FILES},
            **({"extra": _jsonable(dict(extra))} if extra else {}),
        }
        io_utils.atomic_write_json(tmp / SHARD_SIDECAR, sidecar)
    return sidecar


def _minari_id(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", f"{path.parent.name}_{path.name}").strip("_")
    return f"gatolab/{name}-v0"


def remove_partial_shards(dataset_dir: str | os.PathLike) -> list[Path]:
    """Deletes `.shard-*.tmp` folders an interrupted run left behind; returns them."""
    removed = []
    for tmp in Path(dataset_dir).glob("*/.shard-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


# ----------------------------------------------------------------------------------------
# Reading and verifying
# ----------------------------------------------------------------------------------------
def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    side = path / SHARD_SIDECAR
    if not side.exists():
        raise ValueError(f"shard {path}: {SHARD_SIDECAR} is missing (not a complete gatolab shard)")
    try:
        d = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"shard {path}: {SHARD_SIDECAR} is corrupt ({e})") from e
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"shard {path}: format_version {d.get('format_version')!r}, expected {FORMAT_VERSION}")
    return d


def verify_shard(path: str | os.PathLike, expected: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Recomputes each data file's SHA-256; raises ValueError naming the shard on mismatch.

    Args:
      path: the shard folder.
      expected: name -> sha256 (e.g. from the manifest); defaults to the sidecar's.
    """
    path = Path(path)
    side = read_sidecar(path)
    want = dict(expected or side["sha256"])
    for name in _DATA_FILES:
        f = path / name
        if not f.exists():
            raise ValueError(f"corrupt shard {path}: {name} is missing")
        got = sha256_file(f)
        if got != want.get(name):
            raise ValueError(f"corrupt shard {path}: {name} has sha256 {got[:16]}…, expected {str(want.get(name))[:16]}… "
                             f"(truncated or modified; regenerate it)")
    return side


def _from_minari(ep: Mapping[str, Any], meta: Mapping[str, Any], spec: EnvSpec, task: str) -> Episode:
    obs = flatten_fields(ep["observations"])
    acts = flatten_fields(ep["actions"]) if spec.action else {}
    obs = {k: (list(v) if spec.observation[k].modality == Modality.TEXT else np.asarray(v)) for k, v in obs.items()}
    md = json.loads(meta["gatolab_metadata"]) if "gatolab_metadata" in meta else {}
    return Episode(task, obs, {k: np.asarray(v) for k, v in acts.items()}, np.asarray(ep["rewards"], np.float32), md)


def read_shard(path: str | os.PathLike, verify: bool = True, expected: Mapping[str, str] | None = None) -> tuple[EnvSpec, list[Episode]]:
    """Reads one shard with Minari's own reader; checks checksums first when `verify`.

    Raises:
      ValueError: naming the shard path, if it is incomplete, corrupt or unreadable.
    """
    from minari.dataset.minari_storage import MinariStorage  # the envs extra (optional)

    path = Path(path).absolute()
    side = verify_shard(path, expected) if verify else read_sidecar(path)
    spec = EnvSpec.from_json(side["spec"])
    try:
        storage = MinariStorage.read(path)
        n = storage.total_episodes
        raw = list(storage.get_episodes(range(n)))
        metas = list(storage.get_episode_metadata(range(n)))
    except Exception as e:  # h5py/Minari raise many types on a damaged file
        raise ValueError(f"corrupt shard {path}: Minari could not read it ({type(e).__name__}: {e})") from e
    if n != side["num_episodes"]:
        raise ValueError(f"corrupt shard {path}: {n} episodes, the sidecar says {side['num_episodes']}")
    return spec, [_from_minari(r, m, spec, side["task"]) for r, m in zip(raw, metas)]


def list_shards(dataset_dir: str | os.PathLike) -> list[Path]:
    """Complete shard folders (with a sidecar) under a dataset, sorted by task then index."""
    return sorted(p.parent for p in Path(dataset_dir).glob(f"*/shard-*/{SHARD_SIDECAR}"))


# ----------------------------------------------------------------------------------------
# Manifest and dataset reader
# ----------------------------------------------------------------------------------------
def write_manifest(dataset_dir: str | os.PathLike, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Scans the complete shards and writes `manifest.json` atomically (after generation)."""
    dataset_dir = Path(dataset_dir)
    shards, specs = [], {}
    for sd in list_shards(dataset_dir):
        side = read_sidecar(sd)
        specs[side["task"]] = side["spec"]
        shards.append({"path": str(sd.relative_to(dataset_dir)), "task": side["task"], "num_episodes": side["num_episodes"],
                       "num_timesteps": side["num_timesteps"], "returns": side["returns"], "lengths": side["lengths"],
                       "sha256": side["sha256"]})
    manifest = {
        "format_version": FORMAT_VERSION,
        "format": "minari-hdf5 shards (see gatolab/data/storage.py)",
        "dataset": dataset_dir.name,
        **_jsonable(dict(info or {})),
        "tasks": sorted(specs),
        "specs": specs,
        "num_episodes": sum(s["num_episodes"] for s in shards),
        "num_timesteps": sum(s["num_timesteps"] for s in shards),
        "shards": shards,
    }
    io_utils.atomic_write_json(dataset_dir / MANIFEST, manifest)
    return manifest


class EpisodeDataset:
    """A generated dataset on disk: its manifest, specs and episodes (read lazily per shard).

    Episodes are addressed by a global index in manifest order (task, shard, episode).
    Every shard's checksums are checked against the manifest when it is first read.
    """

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not mf.exists():
            raise ValueError(f"dataset {self.path}: {MANIFEST} is missing (generate it with `gatolab data generate`)")
        try:
            self.manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"dataset {self.path}: {MANIFEST} is corrupt ({e})") from e
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"dataset {self.path}: format_version {self.manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
        self.verify = verify
        self.name: str = self.manifest["dataset"]
        self.specs = {t: EnvSpec.from_json(s) for t, s in self.manifest["specs"].items()}
        self._shards = self.manifest["shards"]
        counts = [s["num_episodes"] for s in self._shards]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.episode_task = [s["task"] for s in self._shards for _ in range(s["num_episodes"])]
        self.episode_return = np.array([r for s in self._shards for r in s["returns"]], np.float64)
        self.episode_length = np.array([n for s in self._shards for n in s["lengths"]], np.int64)
        self._cache: dict[int, list[Episode]] = {}

    @property
    def tasks(self) -> list[str]:
        return list(self.manifest["tasks"])

    @property
    def kind(self) -> str:
        return self.manifest.get("kind", "control")

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _shard(self, k: int) -> list[Episode]:
        if k not in self._cache:
            s = self._shards[k]
            _, eps = read_shard(self.path / s["path"], verify=self.verify, expected=s["sha256"])
            self._cache[k] = eps
        return self._cache[k]

    def __getitem__(self, i: int) -> Episode:
        if not 0 <= i < len(self):
            raise IndexError(f"dataset {self.name!r}: episode {i} outside [0, {len(self)})")
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return self._shard(k)[i - int(self._offsets[k])]

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self[i]

    def verify_all(self) -> int:
        """Checks every shard against the manifest; returns the number checked."""
        for s in self._shards:
            verify_shard(self.path / s["path"], s["sha256"])
        return len(self._shards)

    def __getstate__(self):  # grain workers re-read shards themselves rather than receiving them
        d = dict(self.__dict__)
        d["_cache"] = {}
        return d


def open_datasets(paths: Iterable[str | os.PathLike], verify: bool = True) -> list[EpisodeDataset]:
    return [EpisodeDataset(p, verify=verify) for p in paths]
