"""The domain interface: a task's environment, what acts in it, and the one rollout loop.

    episode → tokens → embeddings → transformer → logits → actions → environment
                                                             (Policy) → (TaskEnv)

A `Domain` (BabyAI, Meta-World, classic control, text, ...) knows its tasks, each
task's `EnvSpec`, how to make a task's environment (`TaskEnv`), its expert and random
policies, and how to generate episodes. Control domains generate by running their
expert in the real environment through `rollout`; text and vision-language domains
make episodes directly from a corpus.

Everything that acts is a `Policy`: `policy(env, observation) -> action`. Experts, the
random policy and the Gato agent all go through the same `rollout`; a policy that
needs to know when an episode starts also has `reset(env, seed)` (`EpisodicPolicy`).

    domain = gl.domains.get("babyai")
    env = domain.make("BabyAI-GoToRedBall-v0", render=True)
    result = rollout(env, domain.expert("BabyAI-GoToRedBall-v0"), seed=0, render=True)
    result.episode, result.frames, result.success
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality

Observation = dict[str, Any]  # flat field name -> value, keys exactly `spec.observation`
Action = dict[str, np.ndarray]  # flat field name -> value, keys exactly `spec.action`
DomainKind = Literal["control", "text", "vision_language"]


class TaskEnv(abc.ABC):
    """One task of a real environment, speaking flat dicts that match `spec`."""

    spec: EnvSpec
    task: str
    max_steps: int

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> Observation: ...

    @abc.abstractmethod
    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """(observation, reward, terminated, truncated, info); info may hold "success"."""

    def render(self) -> np.ndarray | None:
        """An RGB uint8 frame (H, W, 3) of the current state, or None."""
        return None

    def close(self) -> None:
        pass


class Policy(Protocol):
    """What acts in a `TaskEnv`: the observation the env returned -> the action to take."""

    def __call__(self, env: TaskEnv, observation: Observation) -> Action: ...


@runtime_checkable
class EpisodicPolicy(Protocol):
    """A policy told when an episode starts (before `env.reset(seed)`), e.g. to empty a cache."""

    def __call__(self, env: TaskEnv, observation: Observation) -> Action: ...

    def reset(self, env: TaskEnv, seed: int) -> None: ...


class ExpertError(RuntimeError):
    """An expert cannot act from this state (e.g. a planner over its budget): the episode is lost, not the run."""


def policy_name(policy: Policy) -> str:
    """What episode metadata calls a policy: its `name` attribute, else its class name."""
    return str(getattr(policy, "name", type(policy).__name__))


def check_task(task: str, known: list[str], domain: str) -> None:
    """Raises ValueError naming `task` and listing every known task."""
    if task not in known:
        raise ValueError(f"unknown task {task!r} for domain {domain!r}; known tasks ({len(known)}): {', '.join(known)}")


class RandomPolicy:
    """Uniform random actions over the spec's declared action ranges (Gato §6's 0% baseline).

    Continuous fields need finite bounds; discrete fields sample [0, num_values).
    """

    def __init__(self, spec: EnvSpec, seed: int = 0):
        for key, f in spec.action.items():
            if f.modality == Modality.CONTINUOUS and not (math.isfinite(f.low) and math.isfinite(f.high)):
                raise ValueError(f"{spec.name}: random policy needs finite bounds on action field {key!r}, got [{f.low}, {f.high}]")
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def _sample(self, f: FieldSpec) -> np.ndarray:
        if f.modality == Modality.DISCRETE:
            return np.asarray(self.rng.integers(0, f.num_values, size=f.shape), np.int64)
        return np.asarray(self.rng.uniform(f.low, f.high, size=f.shape), np.float32)

    def __call__(self, env: TaskEnv, observation: Observation) -> Action:
        return {k: self._sample(f) for k, f in self.spec.action.items()}


# ---------------------------------------------------------------------------------------
# The rollout loop
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Step:
    """One environment step, as `rollout`'s `on_step` callback sees it."""

    t: int
    observation: Observation  # what the policy acted on
    action: Action
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    frame: np.ndarray | None  # the frame after the step, when rendering
    return_so_far: float


@dataclasses.dataclass
class RolloutResult:
    """One episode of a policy in an environment."""

    task: str
    seed: int
    rewards: np.ndarray  # (T,) float64
    success: bool | None  # any step reported info["success"]; None where no step reported it
    episode: Episode | None  # the T observations acted on and the T actions (None unless `record`)
    frames: np.ndarray | None  # (T + 1, H, W, 3) uint8 when rendering, else None

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards))

    @property
    def length(self) -> int:
        return int(len(self.rewards))


def rollout(env: TaskEnv, policy: Policy, seed: int = 0, max_steps: int | None = None, render: bool = False,
            metadata: Mapping[str, Any] | None = None, record: bool = True,
            on_step: Callable[[Step], None] | None = None) -> RolloutResult:
    """Runs `policy` in `env` for one episode (the one loop experts, random play and Gato share).

    Args:
      env: the task's environment.
      policy: `policy(env, observation) -> action`; an `EpisodicPolicy` is reset first.
      seed: `env.reset(seed)` (and `policy.reset(env, seed)`).
      max_steps: cap on steps (default the environment's own `max_steps`).
      render: keep a frame before the first step and after each step.
      metadata: extra entries for the episode's metadata.
      record: keep the observations and actions as an `Episode` (its metadata: seed,
        success, return, length, then `metadata`); False keeps only rewards (evaluation).
      on_step: called after every step with its `Step` (live widgets, per-step records).
    """
    max_steps = max_steps or env.max_steps
    if isinstance(policy, EpisodicPolicy):
        policy.reset(env, seed)
    obs = env.reset(seed=seed)
    observations, actions, rewards, frames = [], [], [], []
    success, reported = False, False
    if render:
        frames.append(env.render())
    for t in range(max_steps):
        action = policy(env, obs)
        if record:
            observations.append(obs)
            actions.append(action)
        acted_on = obs
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        if "success" in info:
            reported = True
            success = success or bool(info["success"])
        frame = env.render() if render else None
        if render:
            frames.append(frame)
        if on_step is not None:
            on_step(Step(t, acted_on, action, float(reward), bool(terminated), bool(truncated), info, frame,
                         float(np.sum(rewards))))
        if terminated or truncated:
            break
    episode = None
    if record:
        meta = {"seed": seed, "success": success, "return": float(np.sum(rewards)), "length": len(rewards), **(metadata or {})}
        episode = Episode.from_steps(env.task, env.spec, observations, actions, rewards, meta)
    return RolloutResult(env.task, seed, np.asarray(rewards, np.float64), success if reported else None, episode,
                         np.stack(frames) if render and frames and frames[0] is not None else None)


def episode_returns(env: TaskEnv, policy: Policy, seeds: list[int], max_steps: int | None = None) -> list[float]:
    """The return of one episode per seed (cut at `max_steps` if given), through the adapter."""
    return [rollout(env, policy, seed=s, max_steps=max_steps, record=False).total_return for s in seeds]


# ---------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------
class Domain(abc.ABC):
    """A family of tasks with one way to make data for them."""

    name: str
    kind: DomainKind = "control"
    packages: tuple[str, ...] = ()  # the simulators whose versions decide its data (recorded in manifests)

    @abc.abstractmethod
    def tasks(self) -> list[str]: ...

    @abc.abstractmethod
    def spec(self, task: str) -> EnvSpec: ...

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        raise NotImplementedError(f"domain {self.name!r} has no environment (kind {self.kind!r})")

    def expert(self, task: str) -> Policy:
        raise NotImplementedError(f"domain {self.name!r} has no expert policy")

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        """Uniform over the declared action ranges (`RandomPolicy`)."""
        if self.kind != "control":
            raise NotImplementedError(f"domain {self.name!r} has no random policy (kind {self.kind!r})")
        return RandomPolicy(self.spec(task), seed)

    def defines_success(self, task: str) -> bool:
        """Whether `task` has a success criterion; False: judge it by return only (no
        "success" entry in its episodes' metadata, so cards say "no success defined")."""
        return True

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Expert episodes for `task`; episode i uses seed `seed + i` (deterministic).

        Each episode's metadata names the expert (`policy_name`); where the task defines
        no success, the "success" entry `rollout` writes (always False there) is dropped.
        """
        self.check_task(task)
        env = self.make(task, seed=seed)
        try:
            policy = self.expert(task)
            keep_success = self.defines_success(task)
            for i in range(num_episodes):
                episode = rollout(env, policy, seed=seed + i, metadata={"expert": policy_name(policy)}).episode
                if not keep_success:
                    meta = {k: v for k, v in episode.metadata.items() if k != "success"}
                    episode = Episode(episode.task, episode.observations, episode.actions, episode.rewards, meta)
                yield episode
        finally:
            env.close()

    def expert_record(self, task: str) -> dict[str, Any] | None:
        """For a trained (RL) expert: what the dataset manifest records about it
        (`gatolab.experts.store.expert_record`); None for scripted experts."""
        return None

    def check_task(self, task: str) -> None:
        check_task(task, self.tasks(), self.name)


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
