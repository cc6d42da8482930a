"""Runs as config files (big_vision's habit): `gatolab/configs/<name>.py`, each with `get_config()`.

    config = gl.configs.get("demo", ["model.num_layers=6"])     # a named config + overrides
    config = gl.configs.load("runs/x")                           # the resolved config a run recorded
    gl.configs.names()                                           # tiny, demo, demo_smoke, paper, ...
    gatolab config show demo model.num_layers=6                  # the resolved config as JSON
    gatolab config keys                                          # every settable key

Configs are where an experiment names its domains and tasks; the code around them reads
what a domain is from the registry (`gl.domains`). Ready ablations (experiment specs) are
under `gatolab/configs/ablations/`.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import pkgutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gatolab.configs import overrides as _overrides
from gatolab.configs.base import DataConfig, DatasetConfig, EvalConfig, RunConfig, TextConfig

RUN_CONFIG_FILE = "run_config.json"  # what a run folder records (gatolab/train/run.py writes it)
_NOT_CONFIGS = {"base", "overrides", "ablations", "cli", "protocols"}


def names() -> list[str]:
    """The named configs in gatolab/configs/."""
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in _NOT_CONFIGS and not m.ispkg)


def get(name: str, overrides: Sequence[str] | Mapping[str, Any] = ()) -> RunConfig:
    """The named config `name` (gatolab/configs/<name>.py) with `overrides` applied."""
    if name not in names():
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown config {name!r}{hint} (known: {', '.join(names())}; or a run folder / run_config.json)")
    config = importlib.import_module(f"gatolab.configs.{name}").get_config()
    if not isinstance(config, RunConfig):
        raise ValueError(f"gatolab/configs/{name}.py: get_config() returned {type(config).__name__}, expected a RunConfig")
    return _overrides.apply(config, overrides)


def load(source: str | os.PathLike | RunConfig, overrides: Sequence[str] | Mapping[str, Any] = ()) -> RunConfig:
    """A RunConfig from a config name, a run folder, a run_config.json, or a RunConfig, plus overrides."""
    if isinstance(source, RunConfig):
        return _overrides.apply(source, overrides)
    path = Path(source)
    if path.is_dir():
        path = path / RUN_CONFIG_FILE
        if not path.exists():
            raise ValueError(f"{source}: not a run folder (no {RUN_CONFIG_FILE})")
    if path.suffix == ".json":
        if not path.exists():
            raise ValueError(f"config file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        return _overrides.apply(RunConfig.from_json(data), overrides)
    return get(str(source), overrides)


def apply(config: RunConfig, overrides: Sequence[str] | Mapping[str, Any]) -> RunConfig:
    return _overrides.apply(config, overrides)


__all__ = ["DataConfig", "DatasetConfig", "EvalConfig", "RUN_CONFIG_FILE", "RunConfig", "TextConfig", "apply", "get", "load",
           "names"]
