"""The prompted Gato agent in a real environment (Gato §2.4; GATO_SPEC §5).

    model, tokenizer, meta = gl.train.load_model("runs/demo/train")
    agent = gl.agent.GatoAgent(model, tokenizer, gl.agent.AgentConfig(prompt="start"),
                               prompts=gl.agent.PromptBank(["data/classic"]))
    env = gl.domains.get("classic").make("CartPole-v1", render=True)
    trace = gl.agent.run_episode(agent, env, seed=2_000_000, render=True)
    trace.total_return, trace.frames.shape, trace.latency_ms

The agent is a `gl.domains.EpisodicPolicy`: the one rollout loop (`gl.domains.rollout`)
that runs experts and the random policy runs it too; `run_episode` adds what it recorded
at each step (the chosen tokens and their probabilities) to the rollout.

One environment step of deployment:
  observation -> `GatoTokenizer.tokenize_observation` (ends with '|') -> `Decoder.observe`
  -> for each action token: logits restricted to `action_token_ranges(spec)` -> sample
     (or argmax) -> `Decoder.feed_actions` -> ... -> `decode_action` -> `env.step`.

The agent samples each action token itself from the decoder's last hidden state (rather
than through `Decoder.sample_action`) so that it can return the probability of every
token it chose: the rollout widget (notebook 05) draws them per step.

Choices where the paper is open (GATO_SPEC §5 [open]):
- Prompt (`AgentConfig.prompt`): "start" = the first tokens of a successful expert
  demonstration of the same task, whole timesteps only (the paper's deployment rule);
  "end" = its last tokens (the goal-conditioning half of the training prompts, §2.3);
  "none". "Successful" = the episode's return is at least E - 0.2|E| where E is the best
  return of that task in the prompt source (the §2.3 filter rule, as in the mixture).
- Prompt length: the paper's 1024 tokens, capped at `prompt_fraction` (default 1/2) of
  the decoder's context, because the training mixture never gave a prompt more than half
  a row (`MixtureConfig.prompt_max_fraction`); a model trained on 256-token rows would
  otherwise see contexts it was never trained on. A prompt whose first timestep alone
  is longer than this budget is dropped (recorded as `prompt_tokens == 0`).
- Context: the decoder holds `context` tokens (default: the model's `context_len`); when
  full it drops the oldest whole timesteps, prompt first (Transformer-XL memory, §2.4).
- Temperature: the paper samples; `temperature=1.0` is the default, `<= 0` is greedy.
- Not batched: `Decoder` decodes one environment at a time (batch 1), so several
  environments are run one after another.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np
from flax import nnx

from gatolab.data.storage import EpisodeDataset
from gatolab.domains import registry
from gatolab.domains.base import Domain, Step, TaskEnv, rollout
from gatolab.episode import Episode
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.model.decode import Decoder, restricted_logits
from gatolab.sequence import TokenSequence
from gatolab.specs import EnvSpec
from gatolab.train.checkpoint import load_model

PromptKind = Literal["start", "end", "none"]
PROMPT_KINDS = ("start", "end", "none")
# Seeds: training data uses 0..N-1, the data cards' random baselines 1,000,000+; the
# agent's rollouts start at 2,000,000 and expert demonstrations made on the fly at
# 3,000,000, so no evaluation episode repeats a training or prompt episode's seed.
EVAL_SEED = 2_000_000
PROMPT_SEED = 3_000_000


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """How the agent is prompted and samples (see the module docstring for the [open] choices).

    Attributes:
      prompt: "start", "end" or "none".
      prompt_tokens: the paper's prompt length (1024), before the `prompt_fraction` cap.
      prompt_fraction: the prompt takes at most this share of the context.
      temperature: softmax temperature of action sampling; <= 0 is greedy.
      context: decoder cache size in tokens; None = the model's `context_len`.
      overflow: `Decoder` overflow rule ("memory" or "recompute").
    """

    prompt: PromptKind = "start"
    prompt_tokens: int = 1024
    prompt_fraction: float = 0.5
    temperature: float = 1.0
    context: int | None = None
    overflow: str = "memory"

    def __post_init__(self):
        if self.prompt not in PROMPT_KINDS:
            raise ValueError(f"AgentConfig.prompt must be one of {PROMPT_KINDS}, got {self.prompt!r}")
        if self.prompt_tokens < 0:
            raise ValueError(f"AgentConfig.prompt_tokens must be >= 0, got {self.prompt_tokens}")
        if not 0.0 <= self.prompt_fraction <= 1.0:
            raise ValueError(f"AgentConfig.prompt_fraction must be in [0, 1], got {self.prompt_fraction}")
        if self.context is not None and self.context < 1:
            raise ValueError(f"AgentConfig.context must be >= 1 or None, got {self.context}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------
# Prompts: successful expert demonstrations of the same task
# ---------------------------------------------------------------------------------------
class PromptBank:
    """Successful expert episodes per task, from stored datasets or the domain's expert.

    Args:
      data: dataset directories (`gl.data.generate` output). Tasks found there take their
        demonstrations from the stored episodes.
      run_expert: for a task no dataset holds, run the domain's expert (seeds from
        `PROMPT_SEED`) to make a demonstration.
    """

    def __init__(self, data: Sequence[str | os.PathLike] = (), run_expert: bool = True):
        self.datasets = [EpisodeDataset(p) for p in data]
        self.run_expert = run_expert
        self._made: dict[str, Episode] = {}

    def has_stored(self, task: str) -> bool:
        return any(task in ds.tasks for ds in self.datasets)

    def episode(self, task: str, seed: int = 0) -> Episode:
        """A successful demonstration of `task` (chosen by `seed` among the successful ones)."""
        for ds in self.datasets:
            if task not in ds.tasks:
                continue
            idx = np.flatnonzero(np.asarray(ds.episode_task) == task)
            returns = ds.episode_return[idx]
            best = float(returns.max())
            keep = idx[returns >= best - 0.2 * abs(best) - 1e-9]  # GATO_SPEC §4 filter rule
            return ds[int(keep[np.random.default_rng(seed).integers(len(keep))])]
        if not self.run_expert:
            raise ValueError(f"PromptBank: no stored demonstration of task {task!r} (datasets: "
                             f"{[str(ds.path) for ds in self.datasets]}) and run_expert=False")
        if task not in self._made:
            self._made[task] = _expert_demonstration(registry.get(registry.owner(task)), task)
        return self._made[task]


def _expert_demonstration(domain: Domain, task: str, tries: int = 5) -> Episode:
    """Runs the domain's expert until an episode succeeds (or the best of `tries`)."""
    env = domain.make(task, seed=PROMPT_SEED)
    try:
        best = None
        for i in range(tries):
            ep = rollout(env, domain.expert(task), seed=PROMPT_SEED + i).episode
            if ep.metadata.get("success"):
                return ep
            if best is None or ep.total_return > best.total_return:
                best = ep
        return best
    finally:
        env.close()


def prompt_sequence(tokenizer: GatoTokenizer, episode: Episode, spec: EnvSpec, kind: PromptKind,
                    max_tokens: int) -> TokenSequence | None:
    """The prompt tokens: whole timesteps from the start ("start") or end ("end") of `episode`.

    Returns None for kind "none", `max_tokens <= 0`, or when not even one timestep fits.
    """
    if kind not in PROMPT_KINDS:
        raise ValueError(f"prompt kind must be one of {PROMPT_KINDS}, got {kind!r}")
    if kind == "none" or max_tokens <= 0:
        return None
    seq = tokenizer.tokenize_episode(episode, spec)
    starts, ends = seq.timestep_bounds()
    if kind == "start":
        if ends[0] - starts[0] > max_tokens:
            return None
        return seq.window(0, max_tokens)
    if ends[-1] - starts[-1] > max_tokens:
        return None
    return seq.last_window(max_tokens)


# ---------------------------------------------------------------------------------------
# The agent
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class StepInfo:
    """What the agent did at one step."""

    action: dict[str, np.ndarray]
    ids: np.ndarray  # (n_action_tokens,) chosen ids
    probs: np.ndarray  # (n_action_tokens,) probability of each chosen id (after temperature)
    first_dist: np.ndarray  # (n,) distribution over the first action token's legal ids
    seconds: float  # wall-clock time of tokenize + observe + sampling


class GatoAgent:
    """A Gato model acting in one environment at a time (Gato §2.4), as an `EpisodicPolicy`.

    `rollout(env, agent, seed)` calls `agent.reset(env, seed)` (empty cache, prompt, a
    sampling generator seeded by `seed`) and then `agent(env, observation)` per step; each
    step's tokens and probabilities are in `agent.last_step`.

    Args:
      model: a `gl.model.Gato`.
      tokenizer: the `GatoTokenizer` the model was trained with.
      config: an `AgentConfig`.
      prompts: where demonstrations come from (default: run the domain's expert).
    """

    def __init__(self, model, tokenizer: GatoTokenizer, config: AgentConfig = AgentConfig(),
                 prompts: PromptBank | None = None):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.prompts = prompts if prompts is not None else PromptBank()
        self.decoder = Decoder(model, capacity=config.context, overflow=config.overflow, vocab=tokenizer.vocab)
        self.spec: EnvSpec | None = None
        self.t = 0
        self.prompt_tokens = 0
        self.rng = np.random.default_rng(0)
        self.last_step: StepInfo | None = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, config: AgentConfig = AgentConfig(),
                        data: Sequence[str | os.PathLike] | None = None, step: int | None = None) -> GatoAgent:
        """Loads a checkpoint; demonstrations come from `data` (default: the run's own datasets)."""
        if not Path(path).exists():
            raise ValueError(f"checkpoint {str(path)!r} does not exist")
        model, tokenizer, meta = load_model(path, step=step)
        if data is None:
            data = [d for d in meta.get("mixture", {}).get("data", []) if (Path(d) / "manifest.json").exists()]
        agent = cls(model, tokenizer, config, PromptBank(data))
        agent.checkpoint = {"path": str(path), "step": int(meta.get("step", -1))}
        return agent

    @property
    def prompt_budget(self) -> int:
        return int(min(self.config.prompt_tokens, self.config.prompt_fraction * self.decoder.capacity))

    def reset(self, env: TaskEnv, seed: int = 0) -> None:
        """Starts an episode of `env`: empties the cache, feeds the prompt (if any), and seeds
        the sampling generator with `seed` (the demonstration is chosen by `seed` too)."""
        self.decoder.reset()
        self.spec, self.t, self.prompt_tokens, self.last_step = env.spec, 0, 0, None
        self.ranges = self.tokenizer.action_token_ranges(env.spec)
        self.rng = np.random.default_rng([seed, 17])
        if self.config.prompt == "none" or self.prompt_budget <= 0:
            return
        demo = self.prompts.episode(env.task, seed=seed)
        prompt = prompt_sequence(self.tokenizer, demo, env.spec, self.config.prompt, self.prompt_budget)
        if prompt is not None:
            self.decoder.prefill(prompt)
            self.prompt_tokens = len(prompt)

    def act(self, observation: dict[str, Any], rng: np.random.Generator) -> StepInfo:
        """Tokenizes `observation`, samples the action token by token, decodes it."""
        if self.spec is None:
            raise ValueError("GatoAgent.act: call reset(env, seed) first")
        t0 = time.perf_counter()
        dec = self.decoder
        dec.observe(self.tokenizer.tokenize_observation(observation, self.spec, timestep=self.t))
        ids = np.zeros(len(self.ranges), np.int32)
        probs = np.zeros(len(self.ranges), np.float64)
        first = None
        for j, (lo, hi) in enumerate(self.ranges):
            p = _legal_probs(dec, int(lo), int(hi), self.config.temperature)  # (hi - lo,)
            k = int(np.argmax(p)) if self.config.temperature <= 0 else int(rng.choice(len(p), p=p))
            ids[j], probs[j] = lo + k, p[k]
            if first is None:
                first = p
            dec.feed_actions(ids[j : j + 1])
        action = self.tokenizer.decode_action(ids, self.spec)
        self.t += 1
        return StepInfo(action, ids, probs, first, time.perf_counter() - t0)

    def __call__(self, env: TaskEnv, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        """The `Policy` step: `act` with the episode's generator; the step is kept in `last_step`."""
        self.last_step = self.act(observation, self.rng)
        return self.last_step.action


def _legal_probs(dec, lo: int, hi: int, temperature: float) -> np.ndarray:
    """Softmax (with temperature) over ids [lo, hi) from the decoder's last hidden state."""
    width = int(min(dec.config.padded_vocab_size, -(-(hi - lo) // 8) * 8))
    p = np.asarray(_probs_fn(dec.graphdef)(dec.state, dec.h_last, np.int32(lo), np.int32(hi),
                                           np.float32(max(temperature, 1e-6) if temperature > 0 else 1.0), width=width))
    start = int(np.clip(lo, 0, dec.config.padded_vocab_size - width))
    p = p[lo - start : hi - start].astype(np.float64)
    return p / p.sum()


_PROBS: dict[int, Callable] = {}


def _probs_fn(graphdef) -> Callable:
    """A jitted (state, h, lo, hi, temperature) -> probabilities that closes over `graphdef`
    (one per network, so calls do not hash the graph definition)."""
    key = id(graphdef)
    if key not in _PROBS:
        @functools.partial(jax.jit, static_argnames=("width",))
        def probs(state, h, lo, hi, temperature, *, width):
            model = nnx.merge(graphdef, state)
            logits, _ = restricted_logits(model, h, lo, hi, width)
            return jax.nn.softmax(logits.astype("float32") / temperature)

        _PROBS[key] = (graphdef, probs)  # keeps graphdef alive so its id is not reused
    return _PROBS[key][1]


# ---------------------------------------------------------------------------------------
# One episode
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class EpisodeTrace:
    """One agent episode, headless: what the widget and the evaluation read."""

    task: str
    seed: int
    total_return: float
    length: int
    success: bool | None  # None where the environment defines no success
    rewards: np.ndarray  # (T,)
    action_ids: np.ndarray  # (T, n_action_tokens)
    action_probs: np.ndarray  # (T, n_action_tokens) probability of each chosen token
    first_token_dists: list[np.ndarray]  # T arrays over the first action token's legal ids
    step_seconds: np.ndarray  # (T,) agent time per step (not the environment's)
    prompt_tokens: int
    frames: np.ndarray | None = None  # (T + 1, H, W, 3) uint8 when rendered

    @property
    def returns_so_far(self) -> np.ndarray:
        return np.cumsum(self.rewards)

    @property
    def latency_ms(self) -> float:
        """Median agent time per step in milliseconds."""
        return float(np.median(self.step_seconds) * 1e3) if len(self.step_seconds) else float("nan")


def run_episode(agent: GatoAgent, env: TaskEnv, seed: int = EVAL_SEED, render: bool = False, max_steps: int | None = None,
                on_step: Callable[[int, np.ndarray | None, StepInfo, float], None] | None = None) -> EpisodeTrace:
    """Runs `agent` for one episode of `env` through `gl.domains.rollout`, keeping each step's tokens.

    Args:
      seed: the environment's reset seed (also picks the demonstration and the sampling RNG).
      render: keep a frame per step (needs an env made with render=True).
      max_steps: cap on steps (default the environment's own limit).
      on_step: called as on_step(t, frame, step_info, return_so_far) after each step (live widgets).
    """
    steps: list[StepInfo] = []

    def record(step: Step) -> None:
        steps.append(agent.last_step)
        if on_step is not None:
            on_step(step.t, step.frame, agent.last_step, step.return_so_far)

    result = rollout(env, agent, seed=seed, max_steps=max_steps, render=render, record=False, on_step=record)
    n_tok = len(agent.ranges)
    return EpisodeTrace(
        task=env.task, seed=seed, total_return=result.total_return, length=result.length, success=result.success,
        rewards=result.rewards, action_ids=np.asarray([s.ids for s in steps], np.int32).reshape(-1, n_tok),
        action_probs=np.asarray([s.probs for s in steps]).reshape(-1, n_tok),
        first_token_dists=[s.first_dist for s in steps], step_seconds=np.asarray([s.seconds for s in steps]),
        prompt_tokens=agent.prompt_tokens, frames=result.frames)


def play(agent: GatoAgent, domain: str, task: str, seed: int = EVAL_SEED, render: bool = True,
         max_steps: int | None = None, on_step: Callable | None = None) -> EpisodeTrace:
    """Makes the task's environment, runs one agent episode (frames kept when `render`), closes it.

    The headless twin of the rollout widget (notebook 05): what it shows, this returns.
    """
    if registry.entry(domain).kind != "control":
        raise ValueError(f"play: domain {domain!r} has no environment (kind {registry.entry(domain).kind!r}); "
                         f"expected a control domain ({', '.join(registry.control_names())})")
    dom = registry.get(domain)
    dom.check_task(task)
    env = dom.make(task, seed=seed, render=render)
    try:
        return run_episode(agent, env, seed=seed, render=render, max_steps=max_steps, on_step=on_step)
    finally:
        env.close()
