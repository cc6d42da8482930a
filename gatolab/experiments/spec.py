"""An experiment: a base config, named arms (each a set of overrides), and seeds.

    spec = ExperimentSpec("prompt_at_eval", config="demo",
                          arms=(Arm("start", {"agent.prompt": "start"}), Arm("none", {"agent.prompt": "none"})),
                          seeds=(0, 1, 2))

Every (arm, seed) is a cell: the base config, the spec's overrides, the arm's overrides and
`seed=s`. Cells whose configs differ only in their `eval` section share one training run
(an evaluation-only arm, e.g. the prompt at deployment, costs no training), and cells
whose data sections agree share one dataset folder. Every arm is evaluated on the same
tasks with the same rollout seeds, so arms are compared pairwise on the same episodes.

Ready specs are `gatolab/configs/ablations/<name>.py`, each with `get_spec()`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import json
import pkgutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gatolab import configs
from gatolab.configs.base import RunConfig
from gatolab.domains import registry


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: a name and the config overrides that make it (empty: the base config)."""

    name: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """What to compare.

    Attributes:
      name: the experiment's name.
      arms: the arms; the `baseline` (default the first) is what the others are compared with.
      config: the base config (a name in gatolab/configs/ or a run_config.json).
      overrides: applied to every cell before the arm's (e.g. a budget, the episodes).
      seeds: one cell per arm and seed (`train.seed`: parameters, dropout, data order).
      baseline: the arm the others are compared with.
      question: what the experiment asks, with the paper section it concerns (for the summary).
    """

    name: str
    arms: tuple[Arm, ...]
    config: str = "demo"
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    baseline: str | None = None
    question: str = ""

    @property
    def baseline_arm(self) -> str:
        return self.baseline or self.arms[0].name

    def with_overrides(self, overrides: Mapping[str, Any], seeds: Sequence[int] | None = None) -> ExperimentSpec:
        """The spec with more overrides for every cell (and other seeds)."""
        return dataclasses.replace(self, overrides={**self.overrides, **dict(overrides)},
                                   seeds=tuple(seeds) if seeds is not None else self.seeds)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config, "overrides": dict(self.overrides), "seeds": list(self.seeds),
                "baseline": self.baseline_arm, "question": self.question,
                "arms": [{"name": a.name, "overrides": dict(a.overrides)} for a in self.arms]}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (arm, seed) with its resolved config, and the training run and data it uses."""

    arm: str
    seed: int
    config: RunConfig
    train_key: str  # cells with the same key share one training run
    data_key: str  # ... and with the same data key one dataset folder

    @property
    def name(self) -> str:
        return f"{self.arm}/seed{self.seed}"


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def control_tasks(config: RunConfig) -> list[str]:
    """The control tasks a config is evaluated on: `eval.tasks`, or every task of its control datasets."""
    if config.eval.tasks is not None:
        return list(config.eval.tasks)
    out = []
    for ds in config.data.datasets.values():
        if registry.entry(ds.domain).kind == "control":
            out += list(ds.tasks) if ds.tasks is not None else registry.get(ds.domain, **dict(ds.options)).tasks()
    return out


def cells(spec: ExperimentSpec) -> list[Cell]:
    """Every (arm, seed) cell, checked before anything runs.

    Raises:
      ValueError: naming the problem: no arms or seeds, a duplicate arm, an unknown baseline,
        an unknown config key in an arm (with the closest valid keys), an arm that changes
        nothing, or arms evaluated differently (other tasks, episodes, rollout seeds or caps:
        the comparison must be paired).
    """
    if not spec.arms:
        raise ValueError(f"experiment {spec.name!r}: no arms")
    if len(spec.seeds) < 1:
        raise ValueError(f"experiment {spec.name!r}: seeds must name at least 1 seed, got {list(spec.seeds)}")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ValueError(f"experiment {spec.name!r}: seeds repeat: {list(spec.seeds)}")
    names = [a.name for a in spec.arms]
    if len(set(names)) != len(names):
        raise ValueError(f"experiment {spec.name!r}: arm names repeat: {names}")
    for a in names:
        if not a or "/" in a or a.startswith("."):
            raise ValueError(f"experiment {spec.name!r}: arm name {a!r} cannot name a folder")
    if spec.baseline_arm not in names:
        close = difflib.get_close_matches(spec.baseline_arm, names, n=1)
        raise ValueError(f"experiment {spec.name!r}: baseline {spec.baseline_arm!r} is not an arm (arms: {names})"
                         + (f"; did you mean {close[0]!r}?" if close else ""))
    base = configs.load(spec.config, spec.overrides)
    resolved: dict[str, RunConfig] = {}
    for arm in spec.arms:
        try:
            resolved[arm.name] = configs.apply(base, arm.overrides)
        except ValueError as e:
            raise ValueError(f"experiment {spec.name!r}, arm {arm.name!r}: {e}") from None
    seen: dict[str, str] = {}
    for arm in spec.arms:
        key = json.dumps(resolved[arm.name].to_json(), sort_keys=True)
        if key in seen:
            raise ValueError(f"experiment {spec.name!r}: arm {arm.name!r} changes nothing relative to arm "
                             f"{seen[key]!r} (the same config); give it an override that differs")
        seen[key] = arm.name
    protocol = {name: (sorted(control_tasks(c)), c.eval.episodes, c.eval.seed, c.eval.max_steps)
                for name, c in resolved.items()}
    ref = protocol[spec.baseline_arm]
    for name, p in protocol.items():
        if p != ref:
            what = [w for w, a, b in zip(("tasks", "episodes", "rollout seeds", "max_steps"), p, ref) if a != b]
            raise ValueError(f"experiment {spec.name!r}: arm {name!r} is evaluated on other {', '.join(what)} than the "
                             f"baseline {spec.baseline_arm!r}: the cells disagree on data, so the arms cannot be "
                             f"compared pairwise (set eval.tasks / eval.episodes / eval.seed for every arm)")
    out = []
    for arm in spec.arms:
        for seed in spec.seeds:
            c = configs.apply(resolved[arm.name], {"seed": int(seed), "name": f"{spec.name}/{arm.name}"})
            out.append(Cell(arm.name, int(seed), c, _key(c.without_eval().to_json()), c.data.identity()))
    return out


# ---------------------------------------------------------------------------------------
# Ready specs: gatolab/configs/ablations/<name>.py with get_spec()
# ---------------------------------------------------------------------------------------
ABLATIONS = "gatolab.configs.ablations"


def names() -> list[str]:
    """The ready ablations."""
    package = importlib.import_module(ABLATIONS)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__))


def load(source: str | ExperimentSpec) -> ExperimentSpec:
    """A ready ablation by name, or the spec.json an experiment folder recorded."""
    if isinstance(source, ExperimentSpec):
        return source
    path = Path(source)
    if path.is_dir():
        path = path / "spec.json"
    if path.suffix == ".json" and path.exists():
        d = json.loads(path.read_text())
        return ExperimentSpec(d["name"], tuple(Arm(a["name"], a["overrides"]) for a in d["arms"]), d["config"],
                              d["overrides"], tuple(d["seeds"]), d["baseline"], d.get("question", ""))
    if str(source) not in names():
        close = difflib.get_close_matches(str(source), names(), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown experiment {str(source)!r}{hint} (ready ablations: {', '.join(names())}; "
                         f"or an experiment folder / spec.json)")
    spec = importlib.import_module(f"{ABLATIONS}.{source}").get_spec()
    if not isinstance(spec, ExperimentSpec):
        raise ValueError(f"{ABLATIONS}.{source}.get_spec() returned {type(spec).__name__}, expected an ExperimentSpec")
    return spec
