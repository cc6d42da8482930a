"""Writing artefacts safely, and what they record about the software that wrote them.

- `atomic_write_bytes` / `_text` / `_json`: a reader never sees a half-written file, a
  crash never loses the old one.
- `atomic_directory`: a folder (a dataset shard, an imported dataset, a trained expert)
  is built in a hidden temporary sibling and renamed into place only when complete.
- `sha256_file`: the checksum dataset shards and checkpoints record for each file.
- `package_versions`: the versions a dataset manifest or an expert records.

Files and folders written here get the mode a plain `open()` / `mkdir()` would give them
under the user's umask (0644 / 0755 with the usual 022): `mkstemp`/`mkdtemp` create them
0600 / 0700, which would keep a report or a dataset copied to a shared folder unreadable
to everyone else.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


@functools.cache
def _umask() -> int:
    """The process's umask. POSIX only lets it be read by setting it, so set it back at once
    (once per process: the umask is process-wide state a thread could race on)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open(path, "w")` gives a new file under the current umask (0644 for umask 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode `mkdir` gives a new folder under the current umask (0755 for umask 022)."""
    return 0o777 & ~_umask()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (shards and checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes to a temporary file in the same folder, fsyncs, then renames over `path`.

    The file gets `file_mode()` (the umask's), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fsync_dir(path: str | os.PathLike) -> None:
    """Makes a rename inside folder `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, *, replace: bool = False, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields an empty hidden folder beside `final`; renames it to `final` when the block ends.

    The folder is `.<name>.<random><suffix>` in `final`'s parent (so a cleanup can glob for
    leftovers of an interrupted write), and the rename is the commit point: readers see
    the whole folder or none of it. If the block raises, the temporary folder is removed
    and `final` is untouched. An existing `final` is replaced only with `replace=True`
    (moved aside first, deleted after the rename); otherwise its appearance during the
    write is a ValueError. Callers fsync the files they write inside the folder. The
    folder gets `dir_mode()` (the umask's), not mkdtemp's 0700.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix))
    try:
        os.chmod(tmp, dir_mode())
        yield tmp
        old = None
        if final.exists():
            if not replace:
                raise ValueError(f"{final} appeared while it was being written; not overwriting it")
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
        os.rename(tmp, final)
        fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# Packages whose versions decide how any dataset is stored and tokenized; a domain adds its own
# simulators (`Domain.packages`). Recorded in dataset manifests.
DATA_PACKAGES = ("minari", "h5py", "numpy", "sentencepiece")


def package_versions(packages: Sequence[str] = DATA_PACKAGES) -> dict[str, str]:
    """Python's and gatolab's versions, and those of `packages` that are installed."""
    out = {"python": platform.python_version()}
    for pkg in ("gatolab", *packages):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out
