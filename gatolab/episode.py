"""An episode: what an environment and its expert produced, before tokenization.

Columnar: each observation and action field is one array over time (T, ...), text
fields a list of T strings. Gato §2.1: "an episode is timesteps in time order".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gatolab.specs import EnvSpec, Modality, flatten_fields


@dataclasses.dataclass(frozen=True)
class Episode:
    """One episode of one task.

    Attributes:
      task: task name (e.g. "BabyAI-GoToRedBall-v0").
      observations: flat field name -> (T, *shape) array, or list of T str for TEXT.
      actions: flat field name -> (T, *shape) array; empty for text / vision-language.
      rewards: (T,) float32; zeros where the dataset has no reward.
      metadata: free-form JSON-able facts (seed, expert, success, ...).
    """

    task: str
    observations: Mapping[str, Any]
    actions: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    rewards: np.ndarray | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        obs = {k: _column(self.task, f"observations[{k!r}]", v) for k, v in flatten_fields(self.observations).items()}
        acts = {k: _column(self.task, f"actions[{k!r}]", v) for k, v in flatten_fields(self.actions).items()}
        object.__setattr__(self, "observations", obs)
        object.__setattr__(self, "actions", acts)
        lengths = {f"observations[{k!r}]": len(v) for k, v in obs.items()}
        lengths.update({f"actions[{k!r}]": len(v) for k, v in acts.items()})
        if not lengths:
            raise ValueError(f"Episode {self.task!r}: no observation fields")
        t = next(iter(lengths.values()))
        if any(n != t for n in lengths.values()):
            raise ValueError(f"Episode {self.task!r}: fields have different lengths {lengths}")
        rewards = np.zeros(t, np.float32) if self.rewards is None else np.asarray(self.rewards, np.float32)
        if rewards.shape != (t,):
            raise ValueError(f"Episode {self.task!r}: rewards must have shape ({t},), got {rewards.shape}")
        object.__setattr__(self, "rewards", rewards)

    def __len__(self) -> int:
        return len(next(iter(self.observations.values())))

    @property
    def num_timesteps(self) -> int:
        return len(self)

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))

    def timestep(self, t: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(observation, action) at time t, as flat dicts."""
        return ({k: v[t] for k, v in self.observations.items()}, {k: v[t] for k, v in self.actions.items()})

    def slice(self, start: int, stop: int) -> Episode:
        return Episode(
            task=self.task,
            observations={k: v[start:stop] for k, v in self.observations.items()},
            actions={k: v[start:stop] for k, v in self.actions.items()},
            rewards=self.rewards[start:stop],
            metadata=dict(self.metadata),
        )

    @classmethod
    def from_steps(
        cls,
        task: str,
        spec: EnvSpec,
        observations: Sequence[Mapping[str, Any]],
        actions: Sequence[Mapping[str, Any]] | None = None,
        rewards: Sequence[float] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Episode:
        """Builds the columnar episode from per-step dicts (as an environment loop makes them)."""
        flat_obs = [flatten_fields(o) for o in observations]
        obs_cols: dict[str, Any] = {}
        for key, f in spec.observation.items():
            col = [o[key] for o in flat_obs]
            obs_cols[key] = col if f.modality == Modality.TEXT else np.stack([np.asarray(x) for x in col])
        act_cols: dict[str, np.ndarray] = {}
        if spec.action:
            flat_act = [flatten_fields(a) for a in (actions or [])]
            for key in spec.action:
                act_cols[key] = np.stack([np.asarray(a[key]) for a in flat_act])
        return cls(task, obs_cols, act_cols, None if rewards is None else np.asarray(rewards, np.float32), dict(metadata or {}))


def _column(task: str, where: str, v: Any) -> Any:
    """One field over time: a list of T strings (text) or a (T, ...) array. A single value
    (a str, a scalar) is an error naming the field: it has no time axis to be T long."""
    if isinstance(v, (str, bytes)) or (not isinstance(v, (list, tuple)) and np.ndim(v) == 0):
        raise ValueError(f"Episode {task!r}: {where} is a single {type(v).__name__} ({v!r:.60}); expected one value "
                         f"per timestep (a list of T strings for text, a (T, ...) array otherwise)")
    return list(v) if _is_text_column(v) else np.asarray(v)


def _is_text_column(v: Any) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind in ("U", "S", "O")
    return isinstance(v, (list, tuple)) and (len(v) == 0 or isinstance(v[0], str))
