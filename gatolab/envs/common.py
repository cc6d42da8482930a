"""Pieces every control domain shares: optional imports, action/observation checks,
a gymnasium-backed `TaskEnv`, and a random policy read off the spec.

The checks here are the domains' side of "bad input raises a clear ValueError": an
action with the wrong fields, shape, dtype or range, or an observation with NaN,
never reaches (or leaves) the real environment silently.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from gatolab.envs.base import Action, Domain, Observation, Policy, TaskEnv, rollout
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality


def require(module: str, domain: str, package: str | None = None) -> ModuleType:
    """Imports `module` for `domain`, or raises an ImportError naming the missing package.

    Domain modules call this lazily (when a task is made, not when the module is
    imported), so `import gatolab.envs` works on machines without the optional
    simulators.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pkg = package or module.split(".")[0]
        raise ImportError(
            f"domain {domain!r} needs the package {pkg!r} (import of {module!r} failed: {e}); "
            f"install it with `pip install 'gatolab[envs]'`"
        ) from e


def check_task(task: str, known: list[str], domain: str) -> None:
    """Raises ValueError naming `task` and listing every known task."""
    if task not in known:
        raise ValueError(f"unknown task {task!r} for domain {domain!r}; known tasks ({len(known)}): {', '.join(known)}")


def check_action(spec: EnvSpec, action: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validates an action dict against `spec.action`; returns it as arrays.

    Raises:
      ValueError: naming the field, for a missing or unknown field, a wrong shape,
        a non-integer discrete value, NaN/inf, or a value outside the declared range.
    """
    if not isinstance(action, Mapping):
        raise ValueError(f"{spec.name}: an action must be a dict of fields {sorted(spec.action)}, got {type(action).__name__}")
    unknown = sorted(set(action) - set(spec.action))
    missing = sorted(set(spec.action) - set(action))
    if unknown:
        raise ValueError(f"{spec.name}: action field {unknown[0]!r} is not in the spec (expected fields: {sorted(spec.action)})")
    if missing:
        raise ValueError(f"{spec.name}: action field {missing[0]!r} is missing (expected fields: {sorted(spec.action)})")
    out: dict[str, np.ndarray] = {}
    for key, f in spec.action.items():
        x = np.asarray(action[key])
        if x.shape != f.shape:
            raise ValueError(f"{spec.name}: action field {key!r} must have shape {f.shape}, got {x.shape}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{spec.name}: action field {key!r} must be numeric, got dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{spec.name}: action field {key!r} contains NaN or inf: {x}")
        if f.modality == Modality.DISCRETE:
            if x.dtype.kind == "f" and not np.all(x == np.round(x)):
                raise ValueError(f"{spec.name}: action field {key!r} is discrete; got non-integer {x}")
            x = x.astype(np.int64)
            if np.any(x < 0) or np.any(x >= f.num_values):
                raise ValueError(f"{spec.name}: action field {key!r} must lie in [0, {f.num_values}), got {x}")
        else:
            x = x.astype(np.float32)
            if np.any(x < f.low) or np.any(x > f.high):
                raise ValueError(f"{spec.name}: action field {key!r} must lie in [{f.low}, {f.high}], got {x}")
        out[key] = x
    return out


def check_observation(spec: EnvSpec, obs: Mapping[str, Any]) -> Observation:
    """Raises ValueError naming the field if a numeric observation holds NaN or inf."""
    for key, f in spec.observation.items():
        if key not in obs:
            raise ValueError(f"{spec.name}: observation field {key!r} is missing (got {sorted(obs)})")
        if f.modality in (Modality.CONTINUOUS, Modality.DISCRETE):
            x = np.asarray(obs[key])
            if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
                raise ValueError(f"{spec.name}: observation field {key!r} contains NaN or inf: {x}")
            if x.shape != f.shape:
                raise ValueError(f"{spec.name}: observation field {key!r} has shape {x.shape}, the spec says {f.shape}")
    return dict(obs)


def bounds_of(space: Any) -> tuple[float, float]:
    """The loosest scalar (low, high) covering a gymnasium Box (FieldSpec bounds are scalar)."""
    low, high = float(np.min(space.low)), float(np.max(space.high))
    return (-math.inf if not np.isfinite(low) else low), (math.inf if not np.isfinite(high) else high)


def random_policy_for(spec: EnvSpec, seed: int = 0) -> Policy:
    """Uniform random actions over the spec's declared action ranges (Gato §6's 0% baseline).

    Continuous fields need finite bounds; discrete fields sample [0, num_values).
    """
    rng = np.random.default_rng(seed)
    for key, f in spec.action.items():
        if f.modality == Modality.CONTINUOUS and not (math.isfinite(f.low) and math.isfinite(f.high)):
            raise ValueError(f"{spec.name}: random policy needs finite bounds on action field {key!r}, got [{f.low}, {f.high}]")

    def sample(f: FieldSpec) -> np.ndarray:
        if f.modality == Modality.DISCRETE:
            return np.asarray(rng.integers(0, f.num_values, size=f.shape), np.int64)
        return np.asarray(rng.uniform(f.low, f.high, size=f.shape), np.float32)

    def policy(env: TaskEnv, obs: Observation) -> Action:
        return {k: sample(f) for k, f in spec.action.items()}

    return policy


class TrainedExpertDomain(Domain):
    """A domain whose experts are trained RL agents from the experts store (gatolab/experts/store.py).

    `experts_root` None means `gatolab.experts.store.experts_root()`; `expert_task(task)` names
    the task whose expert acts in `task` (itself, unless the domain says otherwise).
    """

    experts_root: str | None = None

    def expert_task(self, task: str) -> str:
        return task

    def expert_record(self, task: str) -> dict[str, Any]:
        from gatolab.experts.store import expert_record

        check_task(task, self.tasks(), self.name)
        return expert_record(self.expert_task(task), self.experts_root)


class GymTaskEnv(TaskEnv):
    """A `TaskEnv` over one gymnasium environment.

    Subclasses say how a raw gymnasium observation becomes the flat observation dict
    (`observe`), how a checked action dict becomes the gymnasium action
    (`to_env_action`), and optionally what counts as success (`success`).
    """

    def __init__(self, env: Any, spec: EnvSpec, task: str, max_steps: int):
        self.env = env
        self.spec = spec
        self.task = task
        self.max_steps = int(max_steps)
        self.episode_id = -1  # incremented by reset(); experts use it to notice a new episode
        self.steps = 0

    # --- subclass hooks -----------------------------------------------------------
    def observe(self, raw_obs: Any) -> Observation:
        raise NotImplementedError

    def to_env_action(self, action: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError

    def success(self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool | None:
        """Success of the step just taken, or None where the task defines no success."""
        return None

    # --- TaskEnv ------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> Observation:
        raw, _ = self.env.reset(seed=seed)
        self.episode_id += 1
        self.steps = 0
        self.last_raw_obs = raw
        return check_observation(self.spec, self.observe(raw))

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        checked = check_action(self.spec, action)
        raw, reward, terminated, truncated, info = self.env.step(self.to_env_action(checked))
        self.steps += 1
        self.last_raw_obs = raw
        info = dict(info)
        ok = self.success(float(reward), bool(terminated), bool(truncated), info)
        if ok is not None:
            info["success"] = bool(ok)
        return check_observation(self.spec, self.observe(raw)), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        frame = self.env.render()
        return None if frame is None else np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        self.env.close()


def generate_expert_episodes(domain: Domain, task: str, num_episodes: int, seed: int, *, expert_name: str,
                             defines_success: bool = True) -> Iterator[Episode]:
    """`Domain.generate` with the expert's name in each episode's metadata.

    Episode i uses seed `seed + i`. Where the task defines no success (Pendulum),
    the "success" entry `rollout` writes (always False there) is dropped, so data
    cards report "no success defined" rather than 0%.
    """
    env = domain.make(task, seed=seed)
    try:
        policy = domain.expert(task)
        for i in range(num_episodes):
            episode, _ = rollout(env, policy, seed=seed + i, metadata={"expert": expert_name})
            if not defines_success:
                meta = {k: v for k, v in episode.metadata.items() if k != "success"}
                episode = Episode(episode.task, episode.observations, episode.actions, episode.rewards, meta)
            yield episode
    finally:
        env.close()


def episode_returns(env: TaskEnv, policy: Policy, seeds: list[int], max_steps: int | None = None) -> list[float]:
    """The return of one episode per seed (cut at `max_steps` if given), through the adapter."""
    return [float(rollout(env, policy, seed=s, max_steps=max_steps)[0].metadata["return"]) for s in seeds]


def evaluate_policies(domain: Domain, task: str, policies: dict[str, Policy], episodes: int, seed: int,
                      max_steps: int | None = None) -> dict[str, Any]:
    """Mean/std return of each policy over the same `episodes` seeds through the gatolab adapter
    (episodes cut at `max_steps` if given)."""
    out: dict[str, Any] = {"episodes": episodes, "seed": seed, **({"max_steps": max_steps} if max_steps else {})}
    env = domain.make(task, seed=seed)
    try:
        for name, policy in policies.items():
            returns = episode_returns(env, policy, list(range(seed, seed + episodes)), max_steps)
            out[f"{name}_return_mean"] = float(np.mean(returns))
            out[f"{name}_return_std"] = float(np.std(returns))
    finally:
        env.close()
    return out
