"""Generating datasets: a domain's expert episodes -> Minari shards (see `storage.py`).

    gl.data.generate("classic", "data", episodes=100, workers=2)
    # or: gatolab data generate --domain classic --episodes 100 --workers 2 --out data

Work is split into units (task, shard k) of `shard_size` episodes; unit k of a task
holds episodes k·S ... with seeds `seed + k·S + i` (the `Domain.generate` convention),
so every unit is a pure function of its arguments. That makes the run
- resumable: a restarted run skips units whose shard is already complete (and
  verified), removes half-written `.tmp` folders, and writes only what is missing;
  the result is the same set of episodes as an uninterrupted run, with no duplicates;
- parallel: units go to `workers` processes (spawned, so no simulator state is
  shared), with a tqdm bar counting episodes.
A shard found on disk with different generation parameters (another seed, shard
size or episode count) is an error rather than a silent mix of two runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from gatolab import io_utils, launch
from gatolab.data import storage
from gatolab.domains import registry
from gatolab.domains.base import Domain

if TYPE_CHECKING:  # the type only: generating data does not load the run configs (they load JAX)
    from gatolab.configs.base import DataConfig


def resolve_domain(domain: str | Domain, options: Mapping[str, Any] | None = None) -> Domain:
    """A `Domain` as given, or the registered one of that name built with its keyword `options`."""
    if isinstance(domain, Domain):
        if options:
            raise ValueError(f"options {dict(options)} apply to a domain given by name, not to a {type(domain).__name__}")
        return domain
    return registry.get(domain, **dict(options or {}))


@dataclass(frozen=True)
class Unit:
    """One shard's worth of work."""

    task: str
    shard: int
    first_episode: int
    num_episodes: int
    seed: int  # seed of the unit's first episode

    def params(self, domain_name: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out = {"domain": domain_name, "task": self.task, "shard": self.shard, "first_episode": self.first_episode,
               "requested_episodes": self.num_episodes, "seed": self.seed}
        return {**out, "options": dict(options)} if options else out  # no key without options: older shards match


def plan(tasks: Sequence[str], episodes: int, shard_size: int, seed: int) -> list[Unit]:
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    units = []
    for task in tasks:
        for k, first in enumerate(range(0, episodes, shard_size)):
            units.append(Unit(task, k, first, min(shard_size, episodes - first), seed + first))
    return units


def _run_unit(dom: Domain, unit: Unit, out: str, progress=None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Generates one unit's episodes and writes its shard (runs in a worker process: `dom` is pickled)."""
    spec = dom.spec(unit.task)
    episodes = []
    for ep in dom.generate(unit.task, unit.num_episodes, seed=unit.seed):
        episodes.append(ep)
        if progress is not None:
            progress.update(1)
    if len(episodes) != unit.num_episodes:
        raise ValueError(f"domain {dom.name!r} task {unit.task!r}: generate() gave {len(episodes)} episodes, "
                         f"asked for {unit.num_episodes}")
    path = storage.shard_dir(out, unit.task, unit.shard)
    side = storage.write_shard(path, spec, episodes, extra=unit.params(dom.name, options))
    return {"task": unit.task, "shard": unit.shard, "num_episodes": side["num_episodes"],
            "num_timesteps": side["num_timesteps"]}


def _check_existing(path: Path, unit: Unit, domain_name: str, options: Mapping[str, Any] | None = None) -> bool:
    """True if the unit's shard is complete and matches; raises on a mismatch or corruption."""
    if not (path / storage.SHARD_SIDECAR).exists():
        return False
    side = storage.verify_shard(path)
    want = unit.params(domain_name, options)
    got = {k: side.get("extra", {}).get(k) for k in want}
    if got != want:
        diff = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        raise ValueError(f"shard {path} was generated with different parameters {diff} (found, requested); "
                         f"use another --out folder or delete the dataset")
    return True


def generate(domain: str | Domain, out: str | os.PathLike, *, tasks: Sequence[str] | None = None, episodes: int = 10,
             workers: int = 1, seed: int = 0, shard_size: int = 50, dataset_name: str | None = None,
             options: Mapping[str, Any] | None = None, progress: bool = True, launcher: str = "processes",
             launcher_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Generates (or resumes) a dataset of expert episodes for `domain`.

    Args:
      domain: a registered domain name (`gl.domains.names()`) or a `Domain`.
      out: the root folder; the dataset goes to `out/<dataset_name>`.
      tasks: which tasks (default: all of the domain's tasks).
      episodes: episodes per task.
      workers: units at once; 1 generates in this process (with the "processes" launcher).
      seed: episode i of every task uses seed `seed + i`.
      shard_size: episodes per shard (the unit of atomic writes and of resume).
      dataset_name: default the domain's name.
      options: keyword options of the domain's constructor (a domain given by name); recorded
        in every shard and the manifest, so data made with other options is never mixed in.
      progress: show a tqdm bar.
      launcher: where units run (`gatolab.launch`): "processes" (local, `workers` at a time),
        "submitit-local", or "slurm" (one job per shard, on any machine that sees `out`; shards
        are atomic, so jobs of one dataset never clash); `launcher_params` go to submitit.

    Returns:
      The manifest (also written to `out/<dataset_name>/manifest.json`).

    Raises:
      ValueError: unknown domain or task, bad counts, or a conflicting/corrupt shard on disk.
    """
    dom = resolve_domain(domain, options)
    all_tasks = dom.tasks()
    tasks = list(tasks) if tasks else all_tasks
    for t in tasks:
        if t not in all_tasks:
            raise ValueError(f"unknown task {t!r} for domain {dom.name!r}; known tasks ({len(all_tasks)}): {', '.join(all_tasks)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    name = dataset_name or dom.name
    storage._check_name("dataset", name)
    ds_dir = Path(out) / name
    ds_dir.mkdir(parents=True, exist_ok=True)
    storage.remove_partial_shards(ds_dir)  # leftovers of an interrupted run
    units = plan(tasks, episodes, shard_size, seed)
    todo = [u for u in units if not _check_existing(storage.shard_dir(ds_dir, u.task, u.shard), u, dom.name, options)]
    total = sum(u.num_episodes for u in todo)
    bar = tqdm(total=total, unit="ep", desc=f"generate {name}", disable=not progress)
    try:
        if launcher == "processes" and (workers == 1 or len(todo) <= 1):
            for u in todo:
                _run_unit(dom, u, str(ds_dir), progress=bar, options=options)
        else:
            with launch.executor(launcher, ds_dir.parent / ".submitit", workers, launcher_params) as ex:
                jobs = [ex.submit(_run_unit, dom, u, str(ds_dir), None, options) for u in todo]
                for job in jobs:
                    bar.update(job.result()["num_episodes"])
    finally:
        bar.close()
    info = {
        "domain": dom.name,
        "kind": dom.kind,
        "domain_module": type(dom).__module__,
        "domain_class": type(dom).__qualname__,
        "generation": {"episodes_per_task": episodes, "seed": seed, "shard_size": shard_size,
                       "seed_rule": "episode i of each task uses seed + i (Domain.generate)"},
        "versions": io_utils.package_versions((*io_utils.DATA_PACKAGES, *dom.packages)),
        **({"options": dict(options)} if options else {}),
    }
    experts = {t: rec for t in tasks if (rec := dom.expert_record(t)) is not None}
    if experts:  # trained experts: which parameters made the data, and how strong they measured
        info["experts"] = experts
    return storage.write_manifest(ds_dir, info)


def prepare(data: DataConfig, root: str | os.PathLike, *, progress: bool = True) -> list[str]:
    """Generates (or finds, resuming) every dataset a `RunConfig`'s data section names, under `root`.

    Returns the dataset folders, then `data.paths` (datasets made elsewhere) as given.
    """
    dirs = []
    for name, ds in data.datasets.items():
        generate(ds.domain, root, tasks=ds.tasks, episodes=ds.episodes, workers=data.workers, seed=data.seed,
                 shard_size=data.shard_size, dataset_name=name, options=ds.options, progress=progress)
        dirs.append(str(Path(root) / name))
    return dirs + [str(p) for p in data.paths]
