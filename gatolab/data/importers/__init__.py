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

One module per format: `minari.py` (Minari dataset folders, spec from the recorded
spaces), `jat.py` (JAT parquet files, spec inferred from the data); `common.py` holds
the value checks and the atomic dataset writer they share.

Neither format comes with an environment gatolab can run, so an imported dataset's
data card reports the returns in the data but no random-policy baseline
(`gatolab data card` skips it for datasets whose manifest has "imported").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gatolab.data.importers import jat, minari
from gatolab.data.importers.jat import import_jat, jat_files
from gatolab.data.importers.minari import import_minari, minari_data_dir, space_fields

FORMATS = {"minari": minari, "jat": jat}  # format -> its module


def card_notes(fmt: str) -> Mapping[str, str]:
    """The data-card prose of datasets imported in format `fmt` (empty for an unknown format)."""
    module = FORMATS.get(fmt)
    return module.NOTES if module is not None else {}


def import_dataset(fmt: str, src: str | os.PathLike, out: str | os.PathLike, *, task: str | None = None,
                   name: str | None = None, **kw) -> dict[str, Any]:
    """Dispatch for the CLI: `fmt` is "minari" or "jat"."""
    if fmt == "minari":
        return import_minari(src, out, name, task=task, **kw)
    if fmt == "jat":
        if not task:
            raise ValueError("a JAT import needs --task (the parquet files do not record it), e.g. --task metaworld-assembly")
        return import_jat(src, out, task, name, **kw)
    raise ValueError(f"unknown import format {fmt!r} (known: {', '.join(FORMATS)})")


__all__ = ["FORMATS", "card_notes", "import_dataset", "import_jat", "import_minari", "jat_files", "minari_data_dir",
           "space_fields"]
