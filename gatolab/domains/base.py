"""The domain interface: a task's environment, what acts in it, and the one rollout loop.

    episode → tokens → embeddings → transformer → logits → actions → environment
                                                             (Policy) → (TaskEnv)

A `Domain` (BabyAI, Meta-World, classic control, text, ...) knows its tasks, each
task's `EnvSpec`, how to make a task's environment (`TaskEnv`), its expert and random
policies, and how to generate episodes. Control domains generate by running their
expert in the real environment through `rollout`; text and vision-language domains
make episodes directly from a corpus.

Everything that acts is a `Policy`: `policy(env, observation) -> action`. Experts, the
random policy and the Gato agent all go through the same loop; a policy that needs to
know when an episode starts also has `reset(env, seed)` (`EpisodicPolicy`). A policy that
acts for B environments at once (the Gato agent: one batched decoder) is a `BatchPolicy`.

There is one rollout loop, `rollout_batch`: B environments step together, each row's
episode ends on its own, and a finished row takes the next seed until every seed has
run. `rollout` (one environment, one seed) is its B = 1 case.

    domain = gl.domains.get("babyai")
    env = domain.make("BabyAI-GoToRedBall-v0", render=True)
    result = rollout(env, domain.expert("BabyAI-GoToRedBall-v0"), seed=0, render=True)
    result.episode, result.frames, result.success
    results = rollout_batch(envs, agent, seeds=range(2_000_000, 2_000_050))   # 50 episodes on len(envs) envs
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
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


@runtime_checkable
class BatchPolicy(Protocol):
    """A policy acting for B environments at once (`rollout_batch`'s rows), e.g. the Gato agent.

    `start(envs, row, seed)` is called when row `row` begins an episode (before
    `envs[row].reset(seed)`); `act(envs, rows, observations)` returns one action per row of
    `rows` (the rows whose episodes go on), from the observation each of those envs returned.
    """

    def start(self, envs: Sequence[TaskEnv], row: int, seed: int) -> None: ...

    def act(self, envs: Sequence[TaskEnv], rows: Sequence[int], observations: Sequence[Observation]) -> list[Action]: ...


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
    index: int = 0  # which of `rollout_batch`'s seeds this episode runs (0 for `rollout`)
    row: int = 0  # which of its environments


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
    """Runs `policy` in `env` for one episode: `rollout_batch` with one environment and one seed.

    Args:
      env: the task's environment.
      policy: `policy(env, observation) -> action`; an `EpisodicPolicy` is reset first (a
        `BatchPolicy` acts as row 0).
      seed: `env.reset(seed)` (and `policy.reset(env, seed)`).
      max_steps: cap on steps (default the environment's own `max_steps`).
      render: keep a frame before the first step and after each step.
      metadata: extra entries for the episode's metadata.
      record: keep the observations and actions as an `Episode` (its metadata: seed,
        success, return, length, then `metadata`); False keeps only rewards (evaluation).
      on_step: called after every step with its `Step` (live widgets, per-step records).
    """
    return rollout_batch([env], policy, [seed], max_steps=max_steps, render=render, metadata=metadata, record=record,
                         on_step=on_step)[0]


class _PerEnv:
    """Policies acting one environment at a time, as a `BatchPolicy` (scripted experts, random play)."""

    def __init__(self, policies: Sequence[Policy]):
        self.policies = list(policies)

    def start(self, envs: Sequence[TaskEnv], row: int, seed: int) -> None:
        policy = self.policies[row]
        if isinstance(policy, EpisodicPolicy):
            policy.reset(envs[row], seed)

    def act(self, envs: Sequence[TaskEnv], rows: Sequence[int], observations: Sequence[Observation]) -> list[Action]:
        return [self.policies[r](envs[r], obs) for r, obs in zip(rows, observations)]


def _as_batch_policy(policy: BatchPolicy | Policy | Sequence[Policy], n_envs: int) -> BatchPolicy:
    if isinstance(policy, BatchPolicy):
        return policy
    if isinstance(policy, Sequence):
        if len(policy) != n_envs:
            raise ValueError(f"rollout_batch: {len(policy)} policies for {n_envs} environments (one per environment)")
        return _PerEnv(policy)
    if n_envs > 1 and isinstance(policy, EpisodicPolicy):
        raise ValueError(f"rollout_batch: one {policy_name(policy)} cannot play {n_envs} episodes at once (it is reset "
                         "per episode); pass one policy per environment")
    return _PerEnv([policy] * n_envs)


@dataclasses.dataclass
class _Running:
    """One row's episode in progress."""

    index: int
    seed: int
    observation: Observation
    max_steps: int
    observations: list = dataclasses.field(default_factory=list)
    actions: list = dataclasses.field(default_factory=list)
    rewards: list = dataclasses.field(default_factory=list)
    frames: list = dataclasses.field(default_factory=list)
    success: bool = False
    reported: bool = False


def rollout_batch(envs: Sequence[TaskEnv], policy: BatchPolicy | Policy | Sequence[Policy], seeds: Sequence[int],
                  max_steps: int | None = None, render: bool = False, metadata: Mapping[str, Any] | None = None,
                  record: bool = True, on_step: Callable[[Step], None] | None = None,
                  on_episode: Callable[[int, RolloutResult], None] | None = None) -> list[RolloutResult]:
    """Runs one episode per seed on B = len(envs) environments at once (the one rollout loop).

    Row b starts with seed `seeds[b]`; when its episode ends (terminated, truncated or
    `max_steps`), it takes the next seed not yet run, until every seed has run. Each step,
    the policy acts for every row whose episode goes on, and only those environments step.
    Episode i is `env.reset(seed=seeds[i])` on whichever environment is free, so with
    identical environments its result depends on its seed alone, not on B.

    Args:
      envs: B environments (of one task, for a `BatchPolicy` like the Gato agent).
      policy: a `BatchPolicy`; or one `Policy` per environment (scripted experts act per
        env); or one stateless `Policy` shared by all rows (an `EpisodicPolicy` may only be
        shared when B = 1).
      seeds: the episodes to run, in order; results come back in this order.
      max_steps, render, metadata, record, on_step: as in `rollout` (per episode; `Step`
        says which episode (`index`) and environment (`row`)).
      on_episode: called as on_episode(index, result) when episode `index` ends.

    Returns:
      One `RolloutResult` per seed.
    """
    envs = list(envs)
    if not envs:
        raise ValueError("rollout_batch: no environments")
    seeds = [int(s) for s in seeds]
    acting = _as_batch_policy(policy, len(envs))
    results: list[RolloutResult | None] = [None] * len(seeds)
    running: dict[int, _Running] = {}
    queue = iter(enumerate(seeds))

    def start(row: int) -> None:
        nxt = next(queue, None)
        if nxt is None:
            return
        index, seed = nxt
        env = envs[row]
        acting.start(envs, row, seed)
        ep = _Running(index, seed, env.reset(seed=seed), max_steps or env.max_steps)
        if render:
            ep.frames.append(env.render())
        running[row] = ep

    def finish(row: int) -> None:
        ep, env = running.pop(row), envs[row]
        episode = None
        if record:
            meta = {"seed": ep.seed, "success": ep.success, "return": float(np.sum(ep.rewards)), "length": len(ep.rewards),
                    **(metadata or {})}
            episode = Episode.from_steps(env.task, env.spec, ep.observations, ep.actions, ep.rewards, meta)
        frames = np.stack(ep.frames) if render and ep.frames and ep.frames[0] is not None else None
        results[ep.index] = RolloutResult(env.task, ep.seed, np.asarray(ep.rewards, np.float64),
                                          ep.success if ep.reported else None, episode, frames)
        if on_episode is not None:
            on_episode(ep.index, results[ep.index])

    for row in range(min(len(envs), len(seeds))):
        start(row)
    while running:
        rows = sorted(running)
        actions = acting.act(envs, rows, [running[r].observation for r in rows])
        if len(actions) != len(rows):
            raise ValueError(f"rollout_batch: the policy returned {len(actions)} actions for {len(rows)} environments")
        for row, action in zip(rows, actions):
            ep, env = running[row], envs[row]
            if record:
                ep.observations.append(ep.observation)
                ep.actions.append(action)
            acted_on = ep.observation
            ep.observation, reward, terminated, truncated, info = env.step(action)
            ep.rewards.append(float(reward))
            if "success" in info:
                ep.reported = True
                ep.success = ep.success or bool(info["success"])
            frame = env.render() if render else None
            if render:
                ep.frames.append(frame)
            if on_step is not None:
                on_step(Step(len(ep.rewards) - 1, acted_on, action, float(reward), bool(terminated), bool(truncated), info,
                             frame, float(np.sum(ep.rewards)), ep.index, row))
            if terminated or truncated or len(ep.rewards) >= ep.max_steps:
                finish(row)
                start(row)
    return results


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
