"""Observation and action specs: which field of an environment is which modality.

An environment adapter declares an `EnvSpec`; the tokenizer reads it to decide how
each field becomes tokens (Gato §2.1, `../shared/GATO_SPEC.md` §1) and how action
tokens decode back into an environment action (§2.4).

Field names are flat strings; nested observation dicts are flattened with "/". Fields are
ordered by their key path (`key_path`: "arm/pos" -> ("arm", "pos")), which is the
lexicographic nested order the paper asks for ("nested structures lexicographic by key").
Sorting the joined strings is not: "-" and "." sort before "/", so "arm-vel" would come
before "arm/pos" although the nested dict {"arm": {"pos"}, "arm-vel"} lists "arm" first.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np


class Modality(enum.IntEnum):
    """What a token is. Stored per token in `TokenSequence.modality` (int8)."""

    TEXT = 0
    IMAGE = 1
    DISCRETE = 2
    CONTINUOUS = 3
    SEPARATOR = 4  # Gato's '|' between observation and action tokens.
    PAD = 5


MuLawMode = Literal["auto", "always", "never"]
OutOfRange = Literal["error", "clip"]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One observation or action field.

    Attributes:
      modality: TEXT, IMAGE, DISCRETE or CONTINUOUS.
      shape: per-timestep shape. TEXT: (). IMAGE: (H, W, C) with C in {1, 3}.
      num_values: DISCRETE only: every element lies in [0, num_values), num_values <= 1024.
      low, high: CONTINUOUS only: declared bounds (may be infinite).
      mu_law: CONTINUOUS only. Gato §2.1 mu-law encodes a value "if not already in
        [-1, 1]". gatolab makes that a static, per-field rule so that decoding an
        action is exact and unambiguous:
          "auto"   -> mu-law iff the declared bounds are not inside [-1, 1];
          "always" -> always mu-law;
          "never"  -> never (values must then lie in [-1, 1]).
      out_of_range: what to do with a value outside the declared range (DISCRETE:
        outside [0, num_values); CONTINUOUS: outside [low, high] or outside [-1, 1]
        after the mu-law step). "error" (default) raises; "clip" saturates.
        Nothing is clipped silently unless a field says so.
      loss: override whether this field's tokens are loss targets. None follows the
        paper (§2.3): text and action tokens are targets, everything else is not.
    """

    modality: Modality
    shape: tuple[int, ...] = ()
    num_values: int | None = None
    low: float = -math.inf
    high: float = math.inf
    mu_law: MuLawMode = "auto"
    out_of_range: OutOfRange = "error"
    loss: bool | None = None

    def __post_init__(self):
        object.__setattr__(self, "modality", Modality(self.modality))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.modality == Modality.DISCRETE:
            if self.num_values is None or not 1 <= self.num_values <= 1024:
                raise ValueError(
                    f"FieldSpec: a DISCRETE field needs 1 <= num_values <= 1024 (Gato §2.1), "
                    f"got num_values={self.num_values}"
                )
        if self.modality == Modality.IMAGE:
            if len(self.shape) != 3 or self.shape[2] not in (1, 3):
                raise ValueError(f"FieldSpec: an IMAGE field needs shape (H, W, C) with C in {{1, 3}}, got {self.shape}")
        if self.modality == Modality.TEXT and self.shape != ():
            raise ValueError(f"FieldSpec: a TEXT field has shape (), got {self.shape}")
        if self.mu_law not in ("auto", "always", "never"):
            raise ValueError(f"FieldSpec: mu_law must be 'auto', 'always' or 'never', got {self.mu_law!r}")
        if self.out_of_range not in ("error", "clip"):
            raise ValueError(f"FieldSpec: out_of_range must be 'error' or 'clip', got {self.out_of_range!r}")
        if self.modality in (Modality.SEPARATOR, Modality.PAD):
            raise ValueError(f"FieldSpec: {self.modality.name} is not a field modality")

    # --- constructors -------------------------------------------------------------
    @classmethod
    def text(cls, **kw) -> FieldSpec:
        return cls(Modality.TEXT, (), **kw)

    @classmethod
    def image(cls, height: int, width: int, channels: int = 3, **kw) -> FieldSpec:
        return cls(Modality.IMAGE, (height, width, channels), **kw)

    @classmethod
    def discrete(cls, num_values: int, shape: tuple[int, ...] = (), **kw) -> FieldSpec:
        return cls(Modality.DISCRETE, shape, num_values=num_values, **kw)

    @classmethod
    def continuous(cls, shape: tuple[int, ...] = (), low: float = -math.inf, high: float = math.inf, **kw) -> FieldSpec:
        return cls(Modality.CONTINUOUS, shape, low=float(low), high=float(high), **kw)

    # --- derived facts ------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of tokens per timestep for DISCRETE/CONTINUOUS fields (row-major)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def uses_mu_law(self) -> bool:
        """The static mu-law decision for a CONTINUOUS field (see `mu_law`)."""
        if self.mu_law == "always":
            return True
        if self.mu_law == "never":
            return False
        return not (self.low >= -1.0 and self.high <= 1.0)

    def is_loss_target(self, is_action: bool) -> bool:
        if self.loss is not None:
            return self.loss
        return is_action or self.modality == Modality.TEXT

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modality"] = self.modality.name
        d["shape"] = list(self.shape)
        for k in ("low", "high"):  # JSON has no infinity
            d[k] = None if math.isinf(d[k]) else d[k]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FieldSpec:
        d = dict(d)
        d["modality"] = Modality[d["modality"]]
        d["shape"] = tuple(d["shape"])
        d["low"] = -math.inf if d.get("low") is None else d["low"]
        d["high"] = math.inf if d.get("high") is None else d["high"]
        return cls(**d)


def key_path(name: str) -> tuple[str, ...]:
    """A flat field name's nested key path, the sort key of fields: "arm/pos" -> ("arm", "pos")."""
    return tuple(name.split("/"))


def flatten_fields(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens a nested dict to {"a/b": leaf}; keys come out in key-path order (Gato §2.1).

    Idempotent: an already flat dict (keys with "/") comes back in the same order as the
    nested one it stands for.
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise ValueError(f"field name {prefix + str(key)!r}: names must be strings")
        if isinstance(value, Mapping):
            out.update(flatten_fields(value, prefix + key + "/"))
        else:
            out[prefix + key] = value
    return dict(sorted(out.items(), key=lambda kv: key_path(kv[0])))


# Gato §2.1 / appendix B: within a timestep, text, then image patches, then tensors.
_MODALITY_ORDER = {Modality.TEXT: 0, Modality.IMAGE: 1, Modality.DISCRETE: 2, Modality.CONTINUOUS: 2}


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An environment's (or dataset's) observation and action fields.

    `action` is empty for datasets without actions (text, vision-language): their
    timesteps have no separator and no action tokens.

    `order` optionally fixes the order of the observation fields within a timestep. The
    default (None) is the paper's rule for control data (appendix B): text, then image
    patches, then tensors. Vision-language data needs the image first, so that a
    caption or answer is predicted from its image (Gato §2.1 places images before the
    text they come with): such specs set `order=("image", "text")`.
    """

    name: str
    observation: Mapping[str, FieldSpec]
    action: Mapping[str, FieldSpec] = dataclasses.field(default_factory=dict)
    order: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "observation", flatten_fields(self.observation))
        object.__setattr__(self, "action", flatten_fields(self.action))
        for key, f in self.action.items():
            if f.modality not in (Modality.DISCRETE, Modality.CONTINUOUS):
                raise ValueError(f"EnvSpec {self.name!r}: action field {key!r} must be DISCRETE or CONTINUOUS, got {f.modality.name}")
        if not self.observation:
            raise ValueError(f"EnvSpec {self.name!r}: needs at least one observation field")
        if self.order is not None:
            object.__setattr__(self, "order", tuple(self.order))
            if sorted(self.order) != sorted(self.observation):
                raise ValueError(f"EnvSpec {self.name!r}: order {list(self.order)} must list every observation field "
                                 f"exactly once ({sorted(self.observation)})")

    @property
    def observation_order(self) -> list[str]:
        """Observation fields in token order: `order` if given, else text, images, tensors, each
        group by key path (`key_path`, the nested dicts' order)."""
        if self.order is not None:
            return list(self.order)
        return sorted(self.observation, key=lambda k: (_MODALITY_ORDER[self.observation[k].modality], key_path(k)))

    @property
    def action_order(self) -> list[str]:
        """Action fields in the order they are generated: by key path."""
        return sorted(self.action, key=key_path)

    @property
    def num_action_tokens(self) -> int:
        return sum(f.size for f in self.action.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "observation": {k: f.to_json() for k, f in self.observation.items()},
            "action": {k: f.to_json() for k, f in self.action.items()},
            "order": list(self.order) if self.order is not None else None,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EnvSpec:
        return cls(
            name=d["name"],
            observation={k: FieldSpec.from_json(v) for k, v in d["observation"].items()},
            action={k: FieldSpec.from_json(v) for k, v in d.get("action", {}).items()},
            order=tuple(d["order"]) if d.get("order") else None,
        )
