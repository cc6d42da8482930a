"""Reference policies beside Gato, played through the same rollout loop and scoring.

`RetrievalPolicy` is "retrieve and play", the 1-nearest-neighbour baseline of REGENT
(Sridhar et al., 2024): given K stored episodes of a task, act with the action stored at
the observation nearest to the current one. It needs no training, so a fine-tuned Gato
that does not beat it on the same K episodes has learnt nothing a lookup table would not.
(The other reference of Gato §5.2, behaviour cloning from scratch on the K episodes, is a
training run: `init_from` unset, `mixture.episodes_per_task=K`.)

`Retrieval` makes one such policy per task from a run's datasets, storing exactly the
episodes that run trains on (the §2.3 filter, then `mixture.episodes_per_task`), so
`gl.evaluate.evaluate(Retrieval(dirs, mixture), tasks)` -- or a config with
`eval.policy="retrieval"` -- plays it through the same evaluation as Gato.

[open] choices, neither fixed by the paper nor by REGENT for these observation types:
- an observation is the concatenation of its numeric fields in token order (continuous
  values, discrete values, images average-pooled to `image_pool` x `image_pool` per channel
  and scaled to [0, 1]; REGENT embeds images with a pretrained network we do not have);
  text fields must equal the stored one's (e.g. a BabyAI mission), else every stored
  timestep is a candidate;
- distances are Euclidean after standardising each dimension by the stored observations'
  spread (`standardise=True`), so no field dominates by its units; ties go to the earliest
  stored timestep.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gatolab.domains.base import Action, Observation, TaskEnv
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, Modality

if TYPE_CHECKING:
    from gatolab.data.mixture import MixtureConfig


def _pool(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8/float -> (size, size, C) means over blocks, in [0, 1] for uint8."""
    img = np.asarray(image, np.float32)
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        img = img / 255.0
    h, w = img.shape[:2]
    rows = np.array_split(np.arange(h), min(size, h))
    cols = np.array_split(np.arange(w), min(size, w))
    return np.array([[img[r][:, c].mean(axis=(0, 1)) for c in cols] for r in rows], np.float32)


class RetrievalPolicy:
    """1-nearest-neighbour "retrieve and play" over stored episodes of one task (module docstring).

    Args:
      episodes: the K stored episodes (the fine-tuning set); their task's `spec`.
      spec: the task's EnvSpec (which fields, their modality and order).
      standardise: divide each feature by its standard deviation over the stored
        observations (constant features are left as they are).
      image_pool: images are average-pooled to this many rows and columns.
    """

    name = "retrieval-1nn"

    def __init__(self, episodes: Sequence[Episode], spec: EnvSpec, *, standardise: bool = True, image_pool: int = 16):
        if not episodes:
            raise ValueError("RetrievalPolicy: no episodes to retrieve from (expected at least one)")
        if not spec.action:
            raise ValueError(f"RetrievalPolicy: task {spec.name!r} has no action fields (not a control task)")
        self.spec, self.image_pool = spec, image_pool
        order = spec.observation_order
        self._numeric = [k for k in order if spec.observation[k].modality != Modality.TEXT]
        self._text = [k for k in order if spec.observation[k].modality == Modality.TEXT]
        feats, text_ids, actions = [], [], []
        self._text_id: dict[tuple[str, ...], int] = {}  # each distinct tuple of text fields -> an id
        for e in episodes:
            missing = sorted(set(spec.observation) - set(e.observations)) + sorted(set(spec.action) - set(e.actions))
            if missing:
                raise ValueError(f"RetrievalPolicy: episode of {e.task!r} lacks fields {missing} of spec {spec.name!r}")
            for t in range(len(e)):
                obs, act = e.timestep(t)
                feats.append(self._features(obs))
                text_ids.append(self._text_id.setdefault(self._text_key(obs), len(self._text_id)))
                actions.append(act)
        feats = np.stack(feats)  # (N, F)
        self._text_ids = np.asarray(text_ids, np.int64)  # (N,)
        self._actions = actions
        scale = feats.std(axis=0) if standardise else np.ones(feats.shape[1], np.float32)
        self._scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        self._scaled = feats / self._scale

    @property
    def size(self) -> int:
        """Stored timesteps."""
        return len(self._actions)

    def _text_key(self, obs: Observation) -> tuple[str, ...]:
        return tuple(str(obs[k]) for k in self._text)

    def _features(self, obs: Observation) -> np.ndarray:
        parts = []
        for k in self._numeric:
            v = np.asarray(obs[k])
            if not np.all(np.isfinite(v.astype(np.float64))):
                raise ValueError(f"RetrievalPolicy: observation field {k!r} holds NaN or inf")
            parts.append((_pool(v, self.image_pool) if self.spec.observation[k].modality == Modality.IMAGE
                          else v.astype(np.float32)).ravel())
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def nearest(self, obs: Observation) -> int:
        """Index of the stored timestep nearest to `obs` (among those with the same text fields, if any)."""
        d = (((self._scaled - self._features(obs) / self._scale) ** 2).sum(axis=1))
        text_id = self._text_id.get(self._text_key(obs)) if self._text else None
        if text_id is not None:
            d = np.where(self._text_ids == text_id, d, np.inf)
        return int(np.argmin(d))

    def __call__(self, env: TaskEnv, observation: Observation) -> Action:
        return {k: np.array(v, copy=True) for k, v in self._actions[self.nearest(observation)].items()}

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "stored_timesteps": self.size, "features": int(self._scaled.shape[1]),
                "text_fields": self._text, "image_pool": self.image_pool}


class Retrieval:
    """"Retrieve and play" for every task of some datasets: `policy(task)` is a `RetrievalPolicy`
    over the task's episodes that a run with mixture config `mixture` trains on.

    Args:
      data: dataset folders (a run's, e.g. a fine-tuning set of the held-out task).
      mixture: decides which stored episodes count (the §2.3 filter, `episodes_per_task`).
      **options: `RetrievalPolicy`'s (`standardise`, `image_pool`).
    """

    name = RetrievalPolicy.name

    def __init__(self, data: Sequence[str | os.PathLike], mixture: MixtureConfig | None = None, **options: Any):
        from gatolab.data.mixture import MixtureConfig  # lazy: gatolab.data (grain, tokenizers) only when a Retrieval is built
        from gatolab.data.storage import open_datasets

        if not data:
            raise ValueError("Retrieval: no dataset folders to retrieve from")
        self.datasets = open_datasets(data)
        self.mixture = mixture or MixtureConfig()
        self.options = options
        self._policies: dict[str, RetrievalPolicy] = {}

    @property
    def tasks(self) -> list[str]:
        return sorted({t for ds in self.datasets if ds.kind == "control" for t in ds.tasks})

    def episodes(self, task: str) -> list[Episode]:
        """The task's stored episodes a run trains on, in stored order."""
        return self._stored(task)[0]

    def _stored(self, task: str) -> tuple[list[Episode], EnvSpec]:
        from gatolab.data.mixture import kept_mask  # lazy: as in __init__

        for ds in self.datasets:
            if ds.kind != "control" or task not in ds.tasks:
                continue
            idx = np.array([i for i, t in enumerate(ds.episode_task) if t == task], np.int64)
            keep, _, _ = kept_mask(ds.episode_return[idx], self.mixture, filtered=bool(ds.specs[task].action))
            if not keep.any():
                raise ValueError(f"Retrieval: task {task!r} has no episode left after the filter (episodes_per_task="
                                 f"{self.mixture.episodes_per_task}, filter_episodes={self.mixture.filter_episodes})")
            return [ds[int(i)] for i in idx[keep]], ds.specs[task]
        raise ValueError(f"Retrieval: no dataset holds episodes of task {task!r} (tasks: {', '.join(self.tasks) or 'none'})")

    def policy(self, task: str) -> RetrievalPolicy:
        if task not in self._policies:
            episodes, spec = self._stored(task)
            self._policies[task] = RetrievalPolicy(episodes, spec, **self.options)
        return self._policies[task]

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "data": [str(ds.path) for ds in self.datasets],
                "episodes_per_task": self.mixture.episodes_per_task, "filter_episodes": self.mixture.filter_episodes,
                "stored_timesteps": {t: p.size for t, p in self._policies.items()}}
