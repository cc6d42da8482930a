"""The prompted Gato agent in real environments, B at a time (Gato §2.4; GATO_SPEC §5).

    model, tokenizer, meta = gl.train.load_model("runs/demo/train")
    agent = gl.agent.GatoAgent(model, tokenizer, gl.agent.AgentConfig(prompt="start"),
                               prompts=gl.agent.PromptBank(["data/classic"]))
    env = gl.domains.get("classic").make("CartPole-v1", render=True)
    trace = gl.agent.run_episode(agent, env, seed=2_000_000, render=True)
    trace.total_return, trace.frames.shape, trace.latency_ms
    envs = [gl.domains.get("classic").make("CartPole-v1") for _ in range(20)]
    traces = gl.agent.run_episodes(agent, envs, seeds=range(2_000_000, 2_000_050))   # 20 at a time

The agent is a `gl.domains.base.BatchPolicy`: it acts for a list of environments of one
task with one batched decoder (`gl.model.Decoder`, one row per environment), and the one
rollout loop (`gl.domains.base.rollout_batch`, whose B = 1 case `gl.domains.rollout`
runs experts and the random policy) runs it. `run_episodes` / `run_episode` add what it
recorded at each step (the chosen tokens and their probabilities) to the rollouts.

One environment step of deployment, for every row that is still playing, in one call:
  observation -> `GatoTokenizer.tokenize_observation` (ends with '|') -> `Decoder.act`:
     feed it, then for each action token: logits restricted to `action_token_ranges(spec)`
     -> sample (or argmax) -> feed back -> ... -> (ids, probabilities)
  -> `decode_action` -> `env.step`.
The decoder returns the probability of every token it chose (and the first token's
whole distribution): the rollout widget (notebook 05) draws them per step.

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
- Context: the decoder holds `context` tokens per environment (default: the model's
  `context_len`); when full it drops the oldest whole timesteps, prompt first
  (Transformer-XL memory, §2.4).
- Temperature: the paper samples; `temperature=1.0` is the default, `<= 0` is greedy.
- Randomness: an episode with reset seed s samples with the decoder row seed s (its key
  at a step: fold_in(key(s), timestep)), so an episode's actions depend on its seed, not
  on how many environments share the batch; the demonstration is chosen by s too.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gatolab.data.storage import EpisodeDataset
from gatolab.domains import registry
from gatolab.domains.base import Domain, Step, TaskEnv, rollout, rollout_batch
from gatolab.episode import Episode
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.model.decode import Decoder
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
      dtype, chunk_dtype, cache_dtype: the `Decoder`'s compute dtypes of single-token steps
        and of chunks (>= 8 tokens), and its key/value cache dtype ("float32" or "bfloat16";
        None: the Decoder's defaults, float32 single tokens on CPU, the model's dtype for
        chunks, a float32 cache). `benchmarks/bench_eval.py` measures their speed and
        their logit differences against float32.
    """

    prompt: PromptKind = "start"
    prompt_tokens: int = 1024
    prompt_fraction: float = 0.5
    temperature: float = 1.0
    context: int | None = None
    overflow: str = "memory"
    dtype: str | None = None
    chunk_dtype: str | None = None
    cache_dtype: str | None = None

    def __post_init__(self):
        if self.prompt not in PROMPT_KINDS:
            raise ValueError(f"AgentConfig.prompt must be one of {PROMPT_KINDS}, got {self.prompt!r}")
        if self.prompt_tokens < 0:
            raise ValueError(f"AgentConfig.prompt_tokens must be >= 0, got {self.prompt_tokens}")
        if not 0.0 <= self.prompt_fraction <= 1.0:
            raise ValueError(f"AgentConfig.prompt_fraction must be in [0, 1], got {self.prompt_fraction}")
        if self.context is not None and self.context < 1:
            raise ValueError(f"AgentConfig.context must be >= 1 or None, got {self.context}")
        for name in ("dtype", "chunk_dtype", "cache_dtype"):
            if getattr(self, name) not in (None, "float32", "bfloat16"):
                raise ValueError(f"AgentConfig.{name} must be 'float32', 'bfloat16' or None, got {getattr(self, name)!r}")

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
    """What the agent did at one step of one environment."""

    action: dict[str, np.ndarray]
    ids: np.ndarray  # (n_action_tokens,) chosen ids
    probs: np.ndarray  # (n_action_tokens,) probability of each chosen id (after temperature)
    first_dist: np.ndarray  # (n,) distribution over the first action token's legal ids
    seconds: float  # wall-clock time of the step's tokenize + decode call (shared by the rows acting together)


class GatoAgent:
    """A Gato model acting in a list of environments of one task (Gato §2.4), as a `BatchPolicy`.

    `rollout_batch(envs, agent, seeds)` calls `agent.start(envs, row, seed)` when row `row`
    begins an episode (its decoder row emptied, its prompt chosen by `seed`, its sampling
    seeded by `seed`) and `agent.act(envs, rows, observations)` once per step for every row
    still playing: one decoder call for all of them. Each row's last step is in
    `agent.last_steps[row]`. It is also an `EpisodicPolicy` for one environment (row 0):
    `agent.reset(env, seed)`, `agent(env, observation)`, `agent.last_step`.

    Args:
      model: a `gl.model.Gato`.
      tokenizer: the `GatoTokenizer` the model was trained with.
      config: an `AgentConfig`.
      prompts: where demonstrations come from (default: run the domain's expert).
      batch_size: decoder rows to start with (grown when more environments play at once).
    """

    def __init__(self, model, tokenizer: GatoTokenizer, config: AgentConfig = AgentConfig(),
                 prompts: PromptBank | None = None, batch_size: int = 1):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.prompts = prompts if prompts is not None else PromptBank()
        self.decoder = self._decoder(batch_size)
        self._rows_reset(batch_size)

    def _rows_reset(self, rows: int) -> None:
        self.specs: dict[int, EnvSpec] = {}  # each started row's task spec
        self.t = np.zeros(rows, np.int64)  # each row's step in its episode
        self.prompt_tokens_of = np.zeros(rows, np.int64)  # each row's prompt length
        self.last_steps: dict[int, StepInfo] = {}
        self._prompts: dict[int, TokenSequence] = {}  # rows whose prompt is fed with their first step

    def _decoder(self, rows: int) -> Decoder:
        c = self.config
        return Decoder(self.model, capacity=c.context, overflow=c.overflow, vocab=self.tokenizer.vocab, batch_size=rows,
                       dtype=c.dtype, chunk_dtype=c.chunk_dtype, cache_dtype=c.cache_dtype)

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

    @property
    def spec(self) -> EnvSpec | None:
        """Row 0's task spec (one environment)."""
        return self.specs.get(0)

    @property
    def ranges(self) -> np.ndarray | None:
        """Row 0's legal action id ranges (one environment)."""
        return None if self.spec is None else self.tokenizer.action_token_ranges(self.spec)

    @property
    def prompt_tokens(self) -> int:
        """Row 0's prompt length (one environment)."""
        return int(self.prompt_tokens_of[0])

    @property
    def last_step(self) -> StepInfo | None:
        """Row 0's last step (one environment)."""
        return self.last_steps.get(0)

    def reserve(self, rows: int) -> None:
        """Makes room for `rows` environments at once (a new, larger decoder; episodes in progress are lost)."""
        if rows > self.decoder.batch_size:
            self.decoder = self._decoder(rows)
            self._rows_reset(rows)

    # --- BatchPolicy ---------------------------------------------------------------------
    def start(self, envs: Sequence[TaskEnv], row: int, seed: int) -> None:
        """Row `row` starts an episode of `envs[row]`: its decoder row is emptied and seeded with
        `seed`, and the prompt (the demonstration chosen by `seed`) is fed with its first step."""
        self.reserve(len(envs))
        env = envs[row]
        self.specs[row] = env.spec
        self.decoder.reset([row], [seed])
        self.t[row], self.prompt_tokens_of[row] = 0, 0
        self.last_steps.pop(row, None)
        self._prompts.pop(row, None)
        prompt = None
        if self.config.prompt != "none" and self.prompt_budget > 0:
            demo = self.prompts.episode(env.task, seed=seed)
            prompt = prompt_sequence(self.tokenizer, demo, env.spec, self.config.prompt, self.prompt_budget)
        if prompt is not None:
            self._prompts[row] = prompt
            self.prompt_tokens_of[row] = len(prompt)

    def act(self, envs: Sequence[TaskEnv], rows: Sequence[int], observations: Sequence[dict[str, Any]]) -> list[dict[str, np.ndarray]]:
        """One step of every row in `rows`: tokenize, one decoder call, decode (`last_steps` keeps each row's step)."""
        rows = [int(r) for r in rows]
        if any(r not in self.specs for r in rows):
            raise ValueError("GatoAgent.act: call reset(env, seed) (or start(envs, row, seed)) first")
        spec = self.specs[rows[0]]
        if any(self.specs[r] != spec for r in rows):
            raise ValueError(f"GatoAgent.act: the rows acting together must play one task, got "
                             f"{sorted({self.specs[r].name for r in rows})}")
        ranges = self.tokenizer.action_token_ranges(spec)
        t0 = time.perf_counter()
        waiting = [r for r in rows if r in self._prompts]
        if waiting:  # the prompts of rows that just started, in one call
            self.decoder.prefill([self._prompts.pop(r) for r in waiting], rows=waiting)
        seqs = [self.tokenizer.tokenize_observation(obs, spec, timestep=int(self.t[r])) for r, obs in zip(rows, observations)]
        out = self.decoder.act(seqs, ranges, self.config.temperature, rows=rows)
        seconds = time.perf_counter() - t0
        lo, hi = int(ranges[0, 0]), int(ranges[0, 1])
        actions = []
        for i, r in enumerate(rows):
            action = self.tokenizer.decode_action(out.ids[i], spec)
            self.last_steps[r] = StepInfo(action, out.ids[i], out.probs[i].astype(np.float64), out.first_dist(i, lo, hi), seconds)
            self.t[r] += 1
            actions.append(action)
        return actions

    # --- EpisodicPolicy (one environment: row 0) -------------------------------------------
    def reset(self, env: TaskEnv, seed: int = 0) -> None:
        """Starts an episode of `env` in row 0 (see `start`)."""
        self.start([env], 0, seed)

    def __call__(self, env: TaskEnv, observation: dict[str, Any]) -> dict[str, np.ndarray]:
        """The `Policy` step for one environment (row 0); the step is kept in `last_step`."""
        return self.act([env], [0], [observation])[0]


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


def run_episodes(agent: GatoAgent, envs: Sequence[TaskEnv], seeds: Sequence[int], render: bool = False,
                 max_steps: int | None = None, on_step: Callable[[int, np.ndarray | None, StepInfo, float], None] | None = None,
                 on_episode: Callable[[EpisodeTrace], None] | None = None) -> list[EpisodeTrace]:
    """Runs one agent episode per seed on `envs` (B = len(envs) at a time) through `rollout_batch`.

    Args:
      envs: environments of one task (a row that finishes its episode takes the next seed).
      seeds: the reset seeds (each also picks its demonstration and seeds its sampling).
      render: keep a frame per step (needs envs made with render=True).
      max_steps: cap on steps (default the environment's own limit).
      on_step: called as on_step(t, frame, step_info, return_so_far) after each step of any row.
      on_episode: called with each finished episode's trace (progress bars).

    Returns:
      One `EpisodeTrace` per seed, in the order of `seeds`.
    """
    seeds = [int(s) for s in seeds]
    steps: dict[int, list[StepInfo]] = {i: [] for i in range(len(seeds))}
    prompt_tokens: dict[int, int] = {}

    def record(step: Step) -> None:
        info = agent.last_steps[step.row]
        steps[step.index].append(info)
        prompt_tokens.setdefault(step.index, int(agent.prompt_tokens_of[step.row]))
        if on_step is not None:
            on_step(step.t, step.frame, info, step.return_so_far)

    traces: list[EpisodeTrace | None] = [None] * len(seeds)

    def finished(i: int, result) -> None:
        s = steps.pop(i)
        traces[i] = EpisodeTrace(
            task=result.task, seed=result.seed, total_return=result.total_return, length=result.length,
            success=result.success, rewards=result.rewards,
            action_ids=np.asarray([x.ids for x in s], np.int32).reshape(-1, n_tok),
            action_probs=np.asarray([x.probs for x in s]).reshape(-1, n_tok), first_token_dists=[x.first_dist for x in s],
            step_seconds=np.asarray([x.seconds for x in s]), prompt_tokens=prompt_tokens.get(i, 0), frames=result.frames)
        if on_episode is not None:
            on_episode(traces[i])

    if not envs:
        raise ValueError("run_episodes: no environments")
    n_tok = envs[0].spec.num_action_tokens
    rollout_batch(envs, agent, seeds, max_steps=max_steps, render=render, record=False, on_step=record, on_episode=finished)
    return traces


def run_episode(agent: GatoAgent, env: TaskEnv, seed: int = EVAL_SEED, render: bool = False, max_steps: int | None = None,
                on_step: Callable[[int, np.ndarray | None, StepInfo, float], None] | None = None) -> EpisodeTrace:
    """Runs `agent` for one episode of `env` (`run_episodes` with B = 1), keeping each step's tokens.

    Args:
      seed: the environment's reset seed (also picks the demonstration and seeds the sampling).
      render: keep a frame per step (needs an env made with render=True).
      max_steps: cap on steps (default the environment's own limit).
      on_step: called as on_step(t, frame, step_info, return_so_far) after each step (live widgets).
    """
    return run_episodes(agent, [env], [seed], render=render, max_steps=max_steps, on_step=on_step)[0]


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
