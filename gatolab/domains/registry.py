"""The registry: the one place that answers "which domains exist, which are control, with
what Table-1 weight, which expert trainer, and who owns task X".

Each domain folder (`gatolab/domains/<name>/`) describes itself in one `DomainEntry`
named `ENTRY`: its `Domain` class, the sample weights of the datasets it makes (Gato
Table 1, GATO_SPEC §8), the prose its data cards print, how it recognises its task ids,
and its RL training recipe if its experts are learned. `BUILTIN` lists gatolab's
domains, one line each; nothing else in the package names them. A domain of your own
registers the same way:

    gl.domains.register(gl.domains.DomainEntry("reach", ReachDomain, weights={"reach": 1.0}, notes={...},
                                               owns=lambda task: task.startswith("reach-")))
    gl.domains.get("reach").make("reach-short")

Registration is explicit: importing a domain's module registers nothing; the registry
loads a builtin domain's module the first time that domain is asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gatolab.domains.base import Domain, DomainKind

# The card prose a domain gives (every key optional; numbers never go here, they are measured).
NOTE_KEYS = ("what", "expert", "licence", "use", "limits")


@dataclasses.dataclass(frozen=True)
class DomainEntry:
    """Everything the rest of gatolab needs to know about one domain.

    Attributes:
      name: the registry name (also the default dataset name).
      factory: builds the `Domain` (its class, or any callable taking its keyword options).
      weights: dataset name -> sample weight in the default mixture (Table 1's percentage,
        GATO_SPEC §8); a domain may make several datasets (DM Control: state and pixels).
        Empty: not in the default mixture.
      notes: data-card prose, keys from `NOTE_KEYS`.
      owns: a cheap test of a task id (no simulator import) that says whether this
        domain would name a task so; `owner` confirms with `Domain.tasks()`.
      train_expert: the RL recipe `(task, *, steps, seed, root, time_limit_s, log) -> Path`
        of a domain whose experts are learned, or "module:function" naming it (loaded
        only to train: the recipes need JAX, listing domains does not); None for
        scripted experts or none.
    """

    name: str
    factory: Callable[..., Domain]
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    owns: Callable[[str], bool] = lambda task: False
    train_expert: Callable[..., Path] | str | None = None

    def __post_init__(self):
        unknown = sorted(set(self.notes) - set(NOTE_KEYS))
        if unknown:
            raise ValueError(f"DomainEntry {self.name!r}: unknown notes key {unknown[0]!r} (expected some of {NOTE_KEYS})")
        for dataset, w in self.weights.items():
            if not (isinstance(w, (int, float)) and w >= 0):
                raise ValueError(f"DomainEntry {self.name!r}: weights[{dataset!r}] must be a number >= 0, got {w!r}")

    @property
    def kind(self) -> DomainKind:
        return getattr(self.factory, "kind", "control")

    def make(self, **options: Any) -> Domain:
        return self.factory(**options)

    def trainer(self) -> Callable[..., Path]:
        """The expert-training recipe; ValueError for a domain without one."""
        if self.train_expert is None:
            raise ValueError(f"domain {self.name!r} has no expert trainer (its experts are scripted or it has none)")
        if isinstance(self.train_expert, str):
            module, _, func = self.train_expert.partition(":")
            return getattr(importlib.import_module(module), func)
        return self.train_expert


# gatolab's domains: registry name -> the module whose ENTRY describes it.
BUILTIN: dict[str, str] = {
    "atari": "gatolab.domains.atari",
    "babyai": "gatolab.domains.babyai",
    "classic": "gatolab.domains.classic",
    "dmc": "gatolab.domains.dmc",
    "metaworld": "gatolab.domains.metaworld",
    "minatar": "gatolab.domains.minatar",
    "procgen": "gatolab.domains.procgen",
    "sokoban": "gatolab.domains.sokoban",
    "text": "gatolab.domains.text",
    "vision_language": "gatolab.domains.vision_language",
}

_ENTRIES: dict[str, DomainEntry] = {}


def register(entry: DomainEntry, *, replace: bool = False) -> DomainEntry:
    """Adds a domain; a name already registered is an error unless `replace`."""
    if not isinstance(entry, DomainEntry):
        raise TypeError(f"register: expected a DomainEntry, got {type(entry).__name__}")
    if not replace and entry.name in names():
        raise ValueError(f"domain {entry.name!r} is already registered (pass replace=True to replace it)")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Removes a domain registered with `register` (builtin domains come back on next use)."""
    _ENTRIES.pop(name, None)


@contextlib.contextmanager
def registered(entry: DomainEntry) -> Iterator[DomainEntry]:
    """`register` for the duration of a `with` block (tests, notebooks)."""
    register(entry)
    try:
        yield entry
    finally:
        unregister(entry.name)


def names() -> list[str]:
    """Every domain name: the builtins and the registered ones (loads nothing)."""
    return sorted(set(BUILTIN) | set(_ENTRIES))


def entry(name: str) -> DomainEntry:
    """The entry of domain `name`; ValueError naming the closest known names otherwise."""
    if name not in _ENTRIES:
        if name not in BUILTIN:
            close = difflib.get_close_matches(str(name), names(), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"unknown domain {name!r}{hint} (known: {', '.join(names())})")
        found = importlib.import_module(BUILTIN[name]).ENTRY
        if found.name != name:
            raise ValueError(f"{BUILTIN[name]}.ENTRY is named {found.name!r}, registered as {name!r}")
        _ENTRIES[name] = found
    return _ENTRIES[name]


def entries() -> list[DomainEntry]:
    return [entry(n) for n in names()]


def get(name: str, **options: Any) -> Domain:
    """A fresh `Domain` of `name`, built with its keyword `options` (e.g. pixels=True)."""
    return entry(name).make(**options)


def trainable_names() -> list[str]:
    """The domains whose experts are trained (they have a recipe)."""
    return [e.name for e in entries() if e.train_expert is not None]


def control_names() -> list[str]:
    """The domains with an environment to act in."""
    return [e.name for e in entries() if e.kind == "control"]


def default_weights() -> dict[str, float]:
    """Dataset name -> Table-1 sample weight, over every domain (the default mixture)."""
    out: dict[str, float] = {}
    for e in entries():
        for dataset, w in e.weights.items():
            if dataset in out:
                raise ValueError(f"dataset {dataset!r} has a default weight in two domains")
            out[dataset] = float(w)
    return out


def notes(name: str) -> Mapping[str, str]:
    """The data-card prose of domain `name` (empty for an unknown one)."""
    return entry(name).notes if name in names() else {}


def split_task(task: str) -> tuple[str | None, str]:
    """("domain", "task") for "domain/task"; (None, task) when `task` has no domain prefix.

    A task id that itself holds a "/" (gymnasium's "ALE/Pong-v5") stays whole when a
    domain owns it as written.
    """
    head, sep, rest = task.partition("/")
    if sep and head in names() and not any(e.owns(task) for e in entries()):
        return head, rest
    return None, task


def owner(task: str) -> str:
    """The domain that has `task` ("domain/task" is accepted too).

    Each domain's `owns` narrows the candidates without importing simulators; the
    candidates' own `tasks()` decide.

    Raises:
      ValueError: no domain has `task` (listing the domains asked).
    """
    name, bare = split_task(task)
    if name is not None:
        get(name).check_task(bare)
        return name
    candidates = [e for e in entries() if e.owns(bare)]
    for e in candidates:
        try:
            if bare in e.make().tasks():
                return e.name
        except ImportError:
            continue
    asked = ", ".join(e.name for e in candidates) or "none claims it"
    raise ValueError(f"unknown task {task!r}: no domain has it (domains asked: {asked}; known domains: {', '.join(names())})")
