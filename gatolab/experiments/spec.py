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
from gatolab.configs.base import to_json as config_json
from gatolab.domains import registry


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: a name and the config overrides that make it (empty: the base config).

    Attributes:
      name: the arm's name (a folder name).
      overrides: config overrides on top of the spec's.
      init_from: another arm whose training run (of the same seed) gives this arm's starting
        parameters: fine-tuning (Gato §5.2; `train.init_from` is set to that run's folder).
        That arm trains first.
      evaluate: False for an arm that only trains (a pretraining run other arms start from):
        it gets no evaluation, no rows and no statistics.
      tags: what the arm stands for, for figures (e.g. {"variant": "all", "episodes": 10});
        recorded in spec.json, not in any config.
    """

    name: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    init_from: str | None = None
    evaluate: bool = True
    tags: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "overrides": dict(self.overrides)}
        if self.init_from is not None:
            out["init_from"] = self.init_from
        if not self.evaluate:
            out["evaluate"] = False
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Arm:
        return cls(d["name"], d["overrides"], d.get("init_from"), d.get("evaluate", True), d.get("tags", {}))


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """What to compare.

    Attributes:
      name: the experiment's name.
      arms: the arms; the `baseline` (default the first evaluated one) is what the others are compared with.
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
        """`baseline`, else the first evaluated arm."""
        return self.baseline or next((a.name for a in self.arms if a.evaluate), self.arms[0].name if self.arms else "")

    def with_overrides(self, overrides: Mapping[str, Any], seeds: Sequence[int] | None = None) -> ExperimentSpec:
        """The spec with more overrides for every cell (and other seeds)."""
        return dataclasses.replace(self, overrides={**self.overrides, **dict(overrides)},
                                   seeds=tuple(seeds) if seeds is not None else self.seeds)

    def to_json(self) -> dict[str, Any]:
        """JSON values only (dataclasses in overrides as dicts, tuples as lists): what spec.json holds."""
        return config_json({"name": self.name, "config": self.config, "overrides": dict(self.overrides),
                            "seeds": list(self.seeds), "baseline": self.baseline_arm, "question": self.question,
                            "arms": [a.to_json() for a in self.arms]})

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise ValueError(f"experiment {self.name!r}: no arm {name!r} (arms: {[a.name for a in self.arms]})")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (arm, seed) with its resolved config, and the training run and data it uses."""

    arm: str
    seed: int
    config: RunConfig
    train_key: str | None  # cells with the same key share one training run; None: no network (retrieval)
    data_key: str  # ... and with the same data key the same datasets
    init_from: str | None = None  # the arm whose run (same seed) this one starts from
    evaluate: bool = True

    @property
    def name(self) -> str:
        return f"{self.arm}/seed{self.seed}"

    @property
    def trains(self) -> bool:
        return self.train_key is not None


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
    if not spec.arm(spec.baseline_arm).evaluate:
        raise ValueError(f"experiment {spec.name!r}: baseline {spec.baseline_arm!r} is not evaluated (evaluate=False)")
    _check_inits(spec)
    base = configs.load(spec.config, spec.overrides)
    resolved: dict[str, RunConfig] = {}
    for arm in spec.arms:
        try:
            resolved[arm.name] = configs.apply(base, arm.overrides)
        except ValueError as e:
            raise ValueError(f"experiment {spec.name!r}, arm {arm.name!r}: {e}") from None
    for arm in spec.arms:
        c = resolved[arm.name]
        if c.eval.policy == "retrieval" and arm.init_from is not None:
            raise ValueError(f"experiment {spec.name!r}, arm {arm.name!r}: eval.policy='retrieval' uses no network, so "
                             f"init_from={arm.init_from!r} would start nothing; drop one of them")
        if c.train.init_from is not None and arm.init_from is not None:
            raise ValueError(f"experiment {spec.name!r}, arm {arm.name!r}: both train.init_from and the arm's init_from "
                             f"are set; give one")
    seen: dict[str, str] = {}
    for arm in spec.arms:
        key = json.dumps([resolved[arm.name].to_json(), arm.init_from, arm.evaluate], sort_keys=True)
        if key in seen:
            raise ValueError(f"experiment {spec.name!r}: arm {arm.name!r} changes nothing relative to arm "
                             f"{seen[key]!r} (the same config); give it an override that differs")
        seen[key] = arm.name
    protocol = {name: (sorted(control_tasks(c)), c.eval.episodes, c.eval.seed, c.eval.max_steps)
                for name, c in resolved.items() if spec.arm(name).evaluate}
    ref = protocol[spec.baseline_arm]
    for name, p in protocol.items():
        if p != ref:
            what = [w for w, a, b in zip(("tasks", "episodes", "rollout seeds", "max_steps"), p, ref) if a != b]
            raise ValueError(f"experiment {spec.name!r}: arm {name!r} is evaluated on other {', '.join(what)} than the "
                             f"baseline {spec.baseline_arm!r}: the cells disagree on data, so the arms cannot be "
                             f"compared pairwise (set eval.tasks / eval.episodes / eval.seed for every arm)")
    out: list[Cell] = []
    keys: dict[tuple[str, int], str | None] = {}
    for arm in _init_order(spec):
        for seed in spec.seeds:
            c = configs.apply(resolved[arm.name], {"seed": int(seed), "name": f"{spec.name}/{arm.name}"})
            if c.eval.policy == "retrieval":
                key = None  # no network to train
            else:  # a fine-tuning run is as distinct as the run it starts from
                key = _key([c.without_eval().to_json(), keys[(arm.init_from, int(seed))] if arm.init_from else None])
            keys[(arm.name, int(seed))] = key
            out.append(Cell(arm.name, int(seed), c, key, c.data.identity(), arm.init_from, arm.evaluate))
    order = {a.name: i for i, a in enumerate(spec.arms)}
    return sorted(out, key=lambda c: (order[c.arm], spec.seeds.index(c.seed)))


def _check_inits(spec: ExperimentSpec) -> None:
    """Every `init_from` names another arm that trains, and no arm starts from itself through a chain."""
    names = [a.name for a in spec.arms]
    for arm in spec.arms:
        if arm.init_from is None:
            continue
        if arm.init_from not in names:
            close = difflib.get_close_matches(arm.init_from, names, n=1)
            raise ValueError(f"experiment {spec.name!r}, arm {arm.name!r}: init_from {arm.init_from!r} is not an arm "
                             f"(arms: {names})" + (f"; did you mean {close[0]!r}?" if close else ""))
        seen, cur = [arm.name], arm.init_from
        while cur is not None:
            if cur in seen:
                raise ValueError(f"experiment {spec.name!r}: arms start from each other in a cycle: "
                                 f"{' <- '.join(seen + [cur])}")
            seen.append(cur)
            cur = spec.arm(cur).init_from


def _init_order(spec: ExperimentSpec) -> list[Arm]:
    """The arms with every arm after the arm it starts from."""
    done: list[Arm] = []
    while len(done) < len(spec.arms):
        for a in spec.arms:
            if a not in done and (a.init_from is None or any(d.name == a.init_from for d in done)):
                done.append(a)
    return done


def train_waves(all_cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells that train, in waves: a cell's run starts after the run it starts from (`init_from`)."""
    depth: dict[tuple[str, int], int] = {}
    by = {(c.arm, c.seed): c for c in all_cells}

    def d(c: Cell) -> int:
        k = (c.arm, c.seed)
        if k not in depth:
            depth[k] = 0 if c.init_from is None else 1 + d(by[(c.init_from, c.seed)])
        return depth[k]

    waves: dict[int, list[Cell]] = {}
    for c in all_cells:
        if c.trains:
            waves.setdefault(d(c), []).append(c)
    return [waves[k] for k in sorted(waves)]


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
        return ExperimentSpec(d["name"], tuple(Arm.from_json(a) for a in d["arms"]), d["config"],
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
