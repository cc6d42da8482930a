"""Where units of work run: this process, local processes, or submitit jobs (local or a Slurm cluster).

    with launch.executor("slurm", folder="runs/abl/submitit", params={"slurm_partition": "gpu"}) as ex:
        jobs = [ex.submit(fn, *args) for args in work]
        results = [j.result() for j in jobs]

One interface for the experiment runner's cells and for data generation's shards: anything
with `submit(fn, *args)` returning an object with `result()`. "processes" is a spawn-context
`ProcessPoolExecutor` (fresh interpreters: no forked JAX, simulator or GL state); "submitit-local"
runs submitit's local executor (how a cluster launch is tested on one machine); "slurm" submits
to Slurm through submitit, with `params` passed to `update_parameters` (e.g. `slurm_partition`,
`gpus_per_node`, `cpus_per_task`, `timeout_min`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

LAUNCHERS = ("inline", "processes", "submitit-local", "slurm")


class Inline:
    """Runs each unit at once, here: `result()` returns what it returned."""

    class _Done:
        def __init__(self, value: Any):
            self.value = value

        def result(self) -> Any:
            return self.value

    def submit(self, fn, *args):
        return self._Done(fn(*args))


@contextlib.contextmanager
def executor(launcher: str, folder: str | os.PathLike, parallel: int = 1,
             params: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """An executor for `launcher` (see the module docstring); submitit keeps its logs in `folder`."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if launcher == "inline" or (launcher == "processes" and parallel <= 1):
        yield Inline()
        return
    if launcher == "processes":
        with cf.ProcessPoolExecutor(max_workers=parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
        return
    import submitit  # the experiments extra (optional): only the cluster launchers need it

    ex = submitit.AutoExecutor(folder=str(Path(folder)), cluster="local" if launcher == "submitit-local" else "slurm")
    settings = {"timeout_min": 24 * 60, **dict(params or {})}
    if launcher == "submitit-local":  # the local executor takes only the generic parameters
        settings = {k: v for k, v in settings.items() if k in ("timeout_min", "cpus_per_task", "gpus_per_node")}
    ex.update_parameters(**settings)
    yield ex
