"""Trained experts on disk: parameters, the config that rebuilds the policy, the training curve.

An expert is a folder `<root>/<task>/`:

    params.npz    every parameter array, keyed by its path in the pytree ("actor/0/kernel")
    expert.json   {"task", "domain", "algo", "config", "curve", "evaluation", "params_sha256", "versions"}

Written atomically (a temporary folder renamed into place; an existing expert is replaced
only once the new one is complete), checked on load (a missing file or a checksum
mismatch raises a ValueError naming the file). `<root>` is `$GATOLAB_EXPERTS`, or the
repository's `experts/` folder, where the experts behind the data cards are committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from gatolab import io_utils

PARAMS_FILE = "params.npz"
META_FILE = "expert.json"
# Packages whose versions decide what any expert learns; a recipe adds its simulators. Recorded in expert.json.
EXPERT_PACKAGES = ("jax", "flax", "optax", "numpy")


def experts_root() -> Path:
    """`$GATOLAB_EXPERTS`, else `<repository>/experts`."""
    env = os.environ.get("GATOLAB_EXPERTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "experts"


def expert_path(task: str, root: str | os.PathLike | None = None) -> Path:
    return Path(root or experts_root()) / task.replace("/", "_")


def flatten_params(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """A nested dict/list of arrays -> {"a/0/b": array}. Keys are strings; lists use indices."""
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        for k in sorted(tree):
            out.update(flatten_params(tree[k], f"{prefix}{k}/"))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(flatten_params(v, f"{prefix}{i}/"))
    else:
        out[prefix.rstrip("/")] = np.asarray(tree)
    return out


def unflatten_params(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of `flatten_params`, with lists rebuilt from all-integer keys."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        node = root
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value

    def listify(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        node = {k: listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[str(i)] for i in range(len(node))]
        return node

    return listify(root)


def _npz_bytes(flat: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


def to_numpy(tree: Any) -> Any:
    """Trained parameters (device arrays) -> the same tree of NumPy arrays on the host."""
    import jax  # trained parameters are device arrays; the store itself is NumPy

    return jax.tree.map(np.asarray, jax.device_get(tree))


def save_expert(task: str, params: Any, *, domain: str, algo: str, config: dict[str, Any],
                curve: list[dict[str, float]], evaluation: dict[str, Any] | None = None,
                root: str | os.PathLike | None = None, packages: tuple[str, ...] = ()) -> Path:
    """Writes the expert for `task` atomically (an existing one is replaced once the new is complete).

    `packages`: the simulators the expert was trained in, whose versions expert.json records too.
    """
    final = expert_path(task, root)
    flat = flatten_params(params)
    data = _npz_bytes(flat)
    meta = {
        "task": task, "domain": domain, "algo": algo, "config": config, "curve": curve,
        "evaluation": evaluation or {}, "params_sha256": hashlib.sha256(data).hexdigest(),
        "num_params": int(sum(v.size for v in flat.values())),
        "versions": io_utils.package_versions((*EXPERT_PACKAGES, *packages)),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with io_utils.atomic_directory(final, replace=True) as tmp:
        for name, payload in ((PARAMS_FILE, data), (META_FILE, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())):
            with open(tmp / name, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
    return final


def load_expert(task: str, root: str | os.PathLike | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, meta) of the expert for `task`.

    Raises:
      FileNotFoundError: no expert for the task (the message says how to train one).
      ValueError: a corrupt expert (unreadable file, checksum mismatch), naming the file.
    """
    folder = expert_path(task, root)
    meta_path, params_path = folder / META_FILE, folder / PARAMS_FILE
    if not meta_path.exists() or not params_path.exists():
        raise FileNotFoundError(
            f"no trained expert for task {task!r} at {folder} (missing {META_FILE if not meta_path.exists() else PARAMS_FILE}); "
            f"train one with `gatolab experts train --env {task}` (or point $GATOLAB_EXPERTS at a folder that has it)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt expert metadata {meta_path}: {e}") from e
    data = params_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("params_sha256"):
        raise ValueError(f"corrupt expert parameters {params_path}: sha256 {digest[:12]}... does not match "
                         f"{str(meta.get('params_sha256'))[:12]}... recorded in {META_FILE}")
    with np.load(io.BytesIO(data)) as npz:
        flat = {k: npz[k] for k in npz.files}
    return unflatten_params(flat), meta


def has_expert(task: str, root: str | os.PathLike | None = None) -> bool:
    folder = expert_path(task, root)
    return (folder / META_FILE).exists() and (folder / PARAMS_FILE).exists()


def list_experts(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The metadata (expert.json) of every expert under `root`, sorted by task; checksums verified."""
    folder = Path(root or experts_root())
    metas = []
    for meta_path in sorted(folder.glob(f"*/{META_FILE}")) if folder.exists() else []:
        task = json.loads(meta_path.read_text())["task"]
        metas.append(load_expert(task, folder)[1])
    return sorted(metas, key=lambda m: m["task"])


def update_evaluation(task: str, evaluation: dict[str, Any], root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Replaces the recorded evaluation of an existing expert (expert.json rewritten atomically)."""
    _, meta = load_expert(task, root)
    meta["evaluation"] = evaluation
    io_utils.atomic_write_text(expert_path(task, root) / META_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def expert_record(task: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """What a dataset's manifest records about the trained expert behind it: algorithm, training
    steps and wall time, the params checksum and the measured evaluation."""
    _, meta = load_expert(task, root)
    last = meta["curve"][-1] if meta.get("curve") else {}
    return {"task": meta["task"], "algo": meta["algo"], "params_sha256": meta["params_sha256"],
            "train_steps": last.get("step"), "train_wall_s": last.get("wall_s"), "evaluation": meta.get("evaluation", {})}
