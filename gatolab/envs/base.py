"""The domain interface: real environments + expert policies -> `Episode`s.

A `Domain` (BabyAI, Meta-World, classic control, text, vision-language, ...) knows
its tasks, each task's `EnvSpec`, and how to generate episodes for a task. Control
domains do it by running an expert in the real environment (`rollout`); text and
vision-language domains produce episodes directly from a corpus.

    domain = gatolab.envs.get_domain("babyai")
    env = domain.make("BabyAI-GoToRedBall-v0", seed=0)
    episode, frames = rollout(env, domain.expert("BabyAI-GoToRedBall-v0"), seed=0, render=True)
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import numpy as np

from gatolab.episode import Episode
from gatolab.specs import EnvSpec

Observation = dict[str, Any]  # flat field name -> value, keys exactly `spec.observation`
Action = dict[str, np.ndarray]  # flat field name -> value, keys exactly `spec.action`
Policy = Callable[["TaskEnv", Observation], Action]  # (env, observation) -> action
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


class Domain(abc.ABC):
    """A family of tasks with one way to make data for them."""

    name: str
    kind: DomainKind = "control"

    @abc.abstractmethod
    def tasks(self) -> list[str]: ...

    @abc.abstractmethod
    def spec(self, task: str) -> EnvSpec: ...

    def make(self, task: str, seed: int = 0, render: bool = False) -> TaskEnv:
        raise NotImplementedError(f"domain {self.name!r} has no environment (kind {self.kind!r})")

    def expert(self, task: str) -> Policy:
        raise NotImplementedError(f"domain {self.name!r} has no expert policy")

    def random_policy(self, task: str, seed: int = 0) -> Policy:
        raise NotImplementedError(f"domain {self.name!r} has no random policy")

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Expert episodes for `task`; episode i uses seed `seed + i` (deterministic)."""
        env = self.make(task, seed=seed)
        try:
            policy = self.expert(task)
            for i in range(num_episodes):
                episode, _ = rollout(env, policy, seed=seed + i)
                yield episode
        finally:
            env.close()

    def expert_record(self, task: str) -> dict[str, Any] | None:
        """For a trained (RL) expert: what the dataset manifest records about it
        (`gatolab.experts.store.expert_record`); None for scripted experts."""
        return None

    def check_task(self, task: str) -> None:
        if task not in self.tasks():
            raise ValueError(f"unknown task {task!r} for domain {self.name!r} (known: {', '.join(self.tasks()[:8])}, ...)")


@dataclasses.dataclass
class RolloutResult:
    episode: Episode
    frames: np.ndarray | None  # (T + 1, H, W, 3) uint8 when rendering, else None


def rollout(env: TaskEnv, policy: Policy, seed: int = 0, max_steps: int | None = None, render: bool = False,
            metadata: Mapping[str, Any] | None = None) -> tuple[Episode, np.ndarray | None]:
    """Runs `policy` in `env` for one episode; returns the Episode and (optionally) frames.

    The episode holds the T observations the policy acted on and its T actions;
    `metadata` records seed, success (if the env reports it), return and length.
    """
    max_steps = max_steps or env.max_steps
    obs = env.reset(seed=seed)
    observations, actions, rewards, frames = [], [], [], []
    success = False
    if render:
        frames.append(env.render())
    for _ in range(max_steps):
        action = policy(env, obs)
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        success = success or bool(info.get("success", False))
        if render:
            frames.append(env.render())
        if terminated or truncated:
            break
    meta = {"seed": seed, "success": success, "return": float(np.sum(rewards)), "length": len(rewards), **(metadata or {})}
    episode = Episode.from_steps(env.task, env.spec, observations, actions, rewards, meta)
    return episode, (np.stack(frames) if render and frames and frames[0] is not None else None)


_REGISTRY: dict[str, Callable[[], Domain]] = {}


def register(name: str, factory: Callable[[], Domain]) -> None:
    _REGISTRY[name] = factory


def get_domain(name: str) -> Domain:
    if name not in _REGISTRY:
        raise ValueError(f"unknown domain {name!r} (known: {sorted(_REGISTRY)})")
    return _REGISTRY[name]()


def domain_names() -> list[str]:
    return sorted(_REGISTRY)
