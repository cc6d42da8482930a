"""Running, pairing and checking the notebooks in `notebooks/`.

Every notebook `NN_name.ipynb` is paired with a jupytext percent-format `NN_name.py`;
the `.py` is the file to edit and review, `sync` regenerates the `.ipynb` from it
without outputs. Each notebook's first code cell is tagged `parameters` (papermill)
and has at least `OUT_DIR` and `SMOKE`; it writes `OUT_DIR/metrics.json` with
`write_metrics`, which tests assert on.

    python -m gatolab.notebooks run 01_tokenization --out runs/demo [-p SMOKE=True]
    python -m gatolab.notebooks sync     # .py -> .ipynb (outputs stripped)
    python -m gatolab.notebooks check    # fails if an .ipynb has outputs or is out of sync
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gatolab import io_utils

NOTEBOOK_DIR = Path(os.environ.get("GATOLAB_NOTEBOOKS", Path(__file__).resolve().parent.parent / "notebooks"))


def write_metrics(out_dir: str | os.PathLike, metrics: dict[str, Any]) -> Path:
    """Writes `metrics.json` atomically (called by the notebooks' last cell)."""
    path = Path(out_dir) / "metrics.json"
    io_utils.atomic_write_json(path, metrics)
    return path


def notebook_names() -> list[str]:
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def _paths(name: str) -> tuple[Path, Path]:
    py, ipynb = NOTEBOOK_DIR / f"{name}.py", NOTEBOOK_DIR / f"{name}.ipynb"
    if not py.exists():
        raise FileNotFoundError(f"notebook {name!r}: {py} does not exist (known: {notebook_names()})")
    return py, ipynb


def _strip(nb) -> None:
    """Removes outputs; gives cells stable ids so `sync` is deterministic."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell["id"] = f"cell-{i:02d}"


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def sync(names: list[str] | None = None) -> list[Path]:
    """Writes each `.ipynb` from its `.py`, without outputs."""
    import jupytext  # the notebooks extra (optional): loaded by the notebook commands only

    written = []
    for name in names or notebook_names():
        py, ipynb = _paths(name)
        nb = jupytext.read(py)
        _strip(nb)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        io_utils.atomic_write_text(ipynb, jupytext.writes(nb, fmt="ipynb"))
        written.append(ipynb)
    return written


def check(names: list[str] | None = None) -> list[str]:
    """Problems with committed notebooks: outputs present, pair out of sync, no parameters cell."""
    import jupytext  # the notebooks extra (optional): loaded by the notebook commands only
    import nbformat

    problems = []
    for name in names or notebook_names():
        py, ipynb = _paths(name)
        if not ipynb.exists():
            problems.append(f"{ipynb.name}: missing (run `make notebooks`)")
            continue
        nb = nbformat.read(ipynb, as_version=4)
        for i, c in enumerate(nb.cells):
            if c.cell_type == "code" and (c.outputs or c.execution_count is not None):
                problems.append(f"{ipynb.name}: cell {i} has outputs (commit notebooks without outputs)")
        if _cells(nb) != _cells(jupytext.read(py)):
            problems.append(f"{ipynb.name}: out of sync with {py.name} (run `make notebooks`)")
        code = [c for c in nb.cells if c.cell_type == "code"]
        if not code or "parameters" not in code[0].metadata.get("tags", []):
            problems.append(f"{ipynb.name}: the first code cell must be tagged 'parameters'")
    return problems


def run(name: str, out_dir: str | os.PathLike, parameters: dict[str, Any] | None = None, html: bool = True,
        timeout: int = 3600) -> dict[str, Any]:
    """Executes a notebook with papermill into `out_dir`, exports HTML, returns its metrics."""
    import nbformat  # the notebooks extra (optional): loaded by the notebook commands only
    import papermill as pm

    _, ipynb = _paths(name)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{name}.ipynb"
    params = {"OUT_DIR": str(out_dir), **(parameters or {})}
    metrics_path = out_dir / "metrics.json"
    if metrics_path.exists():
        metrics_path.unlink()  # never assert on a stale file
    t0 = time.time()
    pm.execute_notebook(str(ipynb), str(executed), parameters=params, cwd=str(NOTEBOOK_DIR), kernel_name="python3",
                        progress_bar=False, execution_timeout=timeout)
    seconds = time.time() - t0
    result: dict[str, Any] = {"notebook": str(executed), "seconds": round(seconds, 1)}
    if html:
        from nbconvert import HTMLExporter  # the notebooks extra (optional)

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
        html_path = executed.with_suffix(".html")
        io_utils.atomic_write_text(html_path, body)
        result["html"] = str(html_path)
    if not metrics_path.exists():
        raise RuntimeError(f"notebook {name!r} ran but wrote no {metrics_path}")
    result["metrics"] = json.loads(metrics_path.read_text())
    return result


def _parse_param(s: str) -> tuple[str, Any]:
    key, sep, value = s.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"parameter {s!r}: expected KEY=VALUE")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gatolab.notebooks", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute a notebook with papermill and export HTML")
    r.add_argument("name")
    r.add_argument("--out", required=True)
    r.add_argument("-p", "--param", action="append", type=_parse_param, default=[], help="KEY=VALUE (Python literal)")
    sub.add_parser("sync", help="regenerate .ipynb from the paired .py")
    sub.add_parser("check", help="fail if a notebook has outputs or is out of sync")
    args = ap.parse_args(argv)
    if args.cmd == "sync":
        for p in sync():
            print(f"wrote {p}")
        return 0
    if args.cmd == "check":
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    res = run(args.name, args.out, dict(args.param))
    print(f"executed notebook: {res['notebook']}")
    if "html" in res:
        print(f"HTML export (plots work offline): {res['html']}")
    print(f"metrics: {json.dumps(res['metrics'])}")
    print(f"took {res['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
