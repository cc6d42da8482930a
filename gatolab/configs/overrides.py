"""`key.sub=value` overrides of a `RunConfig`, from the command line or from Python.

    apply(config, ["model.num_layers=6", "optim.peak_lr=3e-4", "mixture.prompt_probability=0.0"])
    apply(config, {"steps": 500, "data.datasets.babyai.episodes": 100})

Keys are paths through the config's fields (`eval.agent.temperature`, `tokenizer.vocab.
discrete_policy`, `data.datasets.<name>.episodes`); a mapping field takes its keys as the next
part (`mixture.weights.babyai=45`; `=None` removes an entry). Shorthands, as `gatolab train`
has always taken them: `model.X` is `train.model_overrides.X` (a `ModelConfig` field),
`optim.X` is `train.optim.X`, `agent.X` is `eval.agent.X`, and a bare `TrainConfig` field
(`steps`, `batch_size`, `seq_len`, `seed`, ...) is `train.X`. Values are Python literals
(`3e-4`, `True`, `(1, 8, 1)`, `{'babyai': 45}`); anything else is a string. An unknown key,
or a value of the wrong type, is a ValueError naming the key and what was expected (the
closest valid keys, or the type).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from gatolab.configs.base import RunConfig, coerce
from gatolab.model import ModelConfig
from gatolab.train.loop import TrainConfig

# Keys that are derived elsewhere (see gatolab/configs/base.py): where to set them instead.
DERIVED = {
    "mixture.sequence_length": "train.seq_len", "mixture.max_patches": "train.max_patches", "mixture.seed": "train.seed",
    "train.optim.total_steps": "train.steps (the schedule spans the run)",
    "train.model_overrides.vocab_size": "text.vocab_size / text.compact_ids / tokenizer.vocab.* (the tokenizer's layout)",
}
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"optim", "model_overrides"}


def parse(items: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """"KEY=VALUE" strings (or a mapping) -> {key: value}; values are Python literals or strings."""
    if isinstance(items, Mapping):
        return dict(items)
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r}: expected KEY=VALUE (e.g. optim.peak_lr=3e-4)")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def canonical(key: str) -> str:
    """The full path of a key, shorthands expanded ("model.x" -> "train.model_overrides.x")."""
    head, _, rest = key.partition(".")
    if head == "model" and rest:
        return f"train.model_overrides.{rest}"
    if head == "optim" and rest:
        return f"train.optim.{rest}"
    if head == "agent" and rest:
        return f"eval.agent.{rest}"
    if head in _TRAIN_FIELDS:
        return f"train.{key}"
    return key


def keys(config: RunConfig | None = None) -> list[str]:
    """Every settable key (shorthand form), for suggestions and `gatolab config keys`."""
    config = config or RunConfig()
    out = [f"model.{f.name}" for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size"]

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            path = f"{prefix}{f.name}"
            value = getattr(obj, f.name)
            if path in ("train.model_overrides",) or path in DERIVED:
                continue
            if dataclasses.is_dataclass(value):
                walk(value, path + ".")
            elif isinstance(value, Mapping) and value and all(dataclasses.is_dataclass(v) for v in value.values()):
                for k, v in value.items():
                    walk(v, f"{path}.{k}.")
            else:
                out.append(path)

    walk(config, "")
    shorthand = {f"train.{n}": n for n in _TRAIN_FIELDS}
    return sorted({shorthand.get(k, k.replace("train.optim.", "optim.", 1).replace("eval.agent.", "agent.", 1))
                   for k in out})


def apply(config: RunConfig, overrides: Sequence[str] | Mapping[str, Any]) -> RunConfig:
    """`config` with every override applied, in order; ValueError naming a bad key or value."""
    for key, value in parse(overrides).items():
        config = _set(config, key, value)
    return config


def _unknown(key: str, config: RunConfig, detail: str = "") -> ValueError:
    close = difflib.get_close_matches(key, keys(config), n=3, cutoff=0.5)
    hint = f"; closest valid keys: {', '.join(close)}" if close else "; `gatolab config keys` lists them"
    return ValueError(f"unknown config key {key!r}{detail}{hint}")


def _set(config: RunConfig, key: str, value: Any) -> RunConfig:
    path = canonical(key)
    if path in DERIVED:
        raise ValueError(f"config key {key!r} is derived: set {DERIVED[path]} instead")
    parts = path.split(".")
    if parts[:2] == ["train", "model_overrides"]:
        if len(parts) != 3:
            raise _unknown(key, config)
        field = {f.name: f for f in dataclasses.fields(ModelConfig)}.get(parts[2])
        if field is None:
            raise _unknown(key, config, " (not a ModelConfig field)")
        hints = typing.get_type_hints(ModelConfig)
        model = {**config.train.model_overrides, parts[2]: coerce(hints[parts[2]], value, key)}
        return _rebuild(config, ["train", "model_overrides"], model, key)
    return _rebuild(config, parts, value, key, root=config)


def _rebuild(obj: Any, parts: list[str], value: Any, key: str, root: RunConfig | None = None) -> Any:
    """`obj` with the field at `parts` replaced by `value` (checked against its annotation)."""
    root = root if root is not None else obj
    name, rest = parts[0], parts[1:]
    if dataclasses.is_dataclass(obj):
        fields = {f.name for f in dataclasses.fields(obj)}
        if name not in fields:
            raise _unknown(key, root)
        tp = typing.get_type_hints(type(obj))[name]
        current = getattr(obj, name)
        new = coerce(tp, value, key) if not rest else _rebuild_child(tp, current, rest, value, key, root)
        try:
            return dataclasses.replace(obj, **{name: new})
        except (ValueError, TypeError) as e:
            raise ValueError(f"config key {key!r} = {value!r}: {e}") from None
    raise _unknown(key, root)


def _rebuild_child(tp: Any, current: Any, rest: list[str], value: Any, key: str, root: RunConfig) -> Any:
    if dataclasses.is_dataclass(current):
        return _rebuild(current, rest, value, key, root)
    if isinstance(current, Mapping) or current is None and _is_mapping(tp):
        vt = _mapping_value_type(tp)
        entries = dict(current or {})
        entry_key, deeper = rest[0], rest[1:]
        if not deeper:
            if value is None:
                entries.pop(entry_key, None)
            else:
                entries[entry_key] = coerce(vt, value, key)
            return entries
        if entry_key not in entries or not dataclasses.is_dataclass(entries[entry_key]):
            raise _unknown(key, root, f" (no entry {entry_key!r}: {sorted(entries)})")
        entries[entry_key] = _rebuild(entries[entry_key], deeper, value, key, root)
        return entries
    raise _unknown(key, root)


def _is_mapping(tp: Any) -> bool:
    if typing.get_origin(tp) in (Mapping, dict):
        return True
    return any(_is_mapping(a) for a in typing.get_args(tp))


def _mapping_value_type(tp: Any) -> Any:
    if typing.get_origin(tp) in (Mapping, dict):
        args = typing.get_args(tp)
        return args[1] if len(args) == 2 else Any
    for a in typing.get_args(tp):
        if _is_mapping(a):
            return _mapping_value_type(a)
    return Any
