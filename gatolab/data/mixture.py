"""The training mixture: episodes on disk -> fixed-length token batches, with grain.

Gato §2.3 / GATO_SPEC §4, and the choices gatolab makes where the paper is silent:

- Mixing. Each sequence comes from a dataset drawn with probability proportional to
  its sample weight (Table 1, GATO_SPEC §8). `DEFAULT_WEIGHTS` keeps Table 1's
  proportions for the domains we have. [open] Classic control is not in Table 1; it
  takes the weight of its nearest analogue, DM Control Suite from state (4.62%).
  Vision-language takes M3W + the six caption/VQA sets (4% + 6 x 0.67%).
- Within a dataset. [open] `within_dataset="task"` (default) draws a task uniformly,
  then an episode of it uniformly ("roughly uniformly", §2.3, applied one level
  down); "episode" draws episodes uniformly over the whole dataset.
- Window. [open] A sequence is whole timesteps (never cut mid-timestep, except a
  text/vision-language timestep longer than the context, cut at L tokens). Its first
  timestep is uniform over the starts whose window reaches L tokens (or the episode
  end), so short tails are not over-sampled. [open] No packing: a window shorter
  than L is padded (`valid` says which tokens are real).
- Filtering (§2.3). Per task, episodes in generation order; expert return = the
  maximum over windows of W = min(1000, 0.1·N) consecutive episodes of the mean
  return; keep episodes with return >= 80% of it. [open] For negative returns
  (Pendulum, Acrobot), "80% of" is read as "within 20% of |expert|": threshold =
  E - 0.2·|E|, which equals 0.8·E when E >= 0. Only datasets with rewards and actions
  (control) are filtered; `filter_episodes=False` switches it off.
- Prompts (§2.3). With probability 0.25 a sequence is prefixed with a prompt from
  another (kept) episode of the same task: half the time that episode's last
  timesteps (goal conditioning), half a uniformly placed window. [open] The prompt
  takes at most `prompt_max_fraction` (default 1/2) of the L tokens and the episode
  window fills the rest; [open] prompt tokens are not loss targets by default
  (`prompt_loss=True` makes them targets); a task with one episode gets no prompt.

Determinism. Row i of the (infinite) stream is a pure function of (seed, i): its own
NumPy generator seeded by `[seed, i]` makes every draw. So a batch does not depend on
the number of workers, an iterator's state is just a position (grain's
`get_state`/`set_state`), and host h of P takes rows h, h+P, h+2P, ... (per-host
sharding for multi-host training).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gatolab.data.storage import EpisodeDataset
from gatolab.sequence import GatoTokenizer, TokenSequence
from gatolab.specs import Modality

# Table 1 of Gato (GATO_SPEC §8), percentages, for the domains gatolab has.
DEFAULT_WEIGHTS: dict[str, float] = {
    "babyai": 9.06,  # BabyAI
    "metaworld": 8.96,  # Meta-World
    "classic": 4.62,  # [open] not in Table 1: DM Control Suite (state)'s weight, the nearest analogue
    "text": 6.7,  # MassiveText
    "vision_language": 8.02,  # M3W 4% + ALIGN, MS-COCO, CC, LTIP, OKVQA, VQAv2 at 0.67% each
}

PROMPT_NONE, PROMPT_END, PROMPT_UNIFORM = 0, 1, 2
PROMPT_KINDS = {PROMPT_NONE: "none", PROMPT_END: "end", PROMPT_UNIFORM: "uniform"}


@dataclasses.dataclass(frozen=True)
class MixtureConfig:
    """Every mixture choice (GATO_SPEC §4); the [open] ones are explained in the module docstring.

    Attributes:
      sequence_length: L, tokens per row (Gato: 1024).
      max_patches: image patches per row (the batch's patch axis). None -> the most a row
        can hold: min(L, 2 x the most patches in any one episode) (a prompt and a window
        each come from one episode), 0 when no dataset has images.
      weights: dataset name -> sample weight (any positive scale); None -> `DEFAULT_WEIGHTS`
        restricted to the datasets given. Every dataset must have a weight.
      within_dataset: "task" or "episode" (see the module docstring).
      filter_episodes: apply the §2.3 return filter to control datasets.
      filter_fraction: keep returns >= this fraction of the expert return (0.8).
      filter_window_max, filter_window_fraction: W = min(1000, 0.1·N).
      prompt_probability: fraction of rows with a prompt (0.25).
      prompt_end_fraction: of those, the fraction taken from the episode end (0.5).
      prompt_max_fraction: the prompt's share of L at most.
      prompt_loss: whether prompt tokens are loss targets.
      seed: the stream's seed.
      cache_tokens: per-process budget of cached tokenized episodes (tokens).
    """

    sequence_length: int = 1024
    max_patches: int | None = None
    weights: Mapping[str, float] | None = None
    within_dataset: str = "task"
    filter_episodes: bool = True
    filter_fraction: float = 0.8
    filter_window_max: int = 1000
    filter_window_fraction: float = 0.1
    prompt_probability: float = 0.25
    prompt_end_fraction: float = 0.5
    prompt_max_fraction: float = 0.5
    prompt_loss: bool = False
    seed: int = 0
    cache_tokens: int = 20_000_000

    def __post_init__(self):
        if self.sequence_length < 2:
            raise ValueError(f"MixtureConfig.sequence_length must be >= 2, got {self.sequence_length}")
        for name in ("filter_fraction", "prompt_probability", "prompt_end_fraction", "prompt_max_fraction", "filter_window_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"MixtureConfig.{name} must lie in [0, 1], got {v}")
        if self.within_dataset not in ("task", "episode"):
            raise ValueError(f"MixtureConfig.within_dataset must be 'task' or 'episode', got {self.within_dataset!r}")
        if self.weights is not None:
            for k, w in self.weights.items():
                if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                    raise ValueError(f"MixtureConfig.weights[{k!r}] must be a finite number >= 0, got {w!r}")


# ----------------------------------------------------------------------------------------
# Episode filtering (Gato §2.3)
# ----------------------------------------------------------------------------------------
def expert_return(returns: Sequence[float], window_max: int = 1000, window_fraction: float = 0.1) -> float:
    """Max over windows of W = min(window_max, window_fraction·N) consecutive episodes of the mean return."""
    r = np.asarray(returns, np.float64)
    if r.size == 0:
        raise ValueError("expert_return: no episodes")
    w = max(1, min(window_max, int(window_fraction * r.size)))
    means = np.convolve(r, np.ones(w) / w, mode="valid")
    return float(means.max())


def filter_episodes(returns: Sequence[float], fraction: float = 0.8, window_max: int = 1000,
                    window_fraction: float = 0.1) -> tuple[np.ndarray, float, float]:
    """(keep mask, expert return E, threshold) with threshold = E - (1 - fraction)·|E|."""
    e = expert_return(returns, window_max, window_fraction)
    threshold = e - (1.0 - fraction) * abs(e)
    return np.asarray(returns, np.float64) >= threshold - 1e-9 * max(1.0, abs(threshold)), e, threshold


# ----------------------------------------------------------------------------------------
# The mixture
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Draw:
    """What row i is made of (all random choices, before any tokenization)."""

    dataset: int
    task: int  # global task id (index into `Mixture.task_names`)
    episode: int  # episode index within its dataset
    prompt_kind: int
    prompt_episode: int  # -1 without a prompt
    u_prompt_start: float  # uniform numbers that place the prompt and the window
    u_start: float


class Mixture:
    """Weighted, filtered, prompted sampling of fixed-length sequences from datasets on disk.

    Args:
      config: the choices.
      datasets: dataset folders (or opened `EpisodeDataset`s).
      tokenizer: the Gato tokenizer (needs a text model if any dataset has text).
    """

    def __init__(self, config: MixtureConfig, datasets: Sequence[str | os.PathLike | EpisodeDataset], tokenizer: GatoTokenizer):
        if not datasets:
            raise ValueError("Mixture: no datasets given")
        self.config = config
        self.tokenizer = tokenizer
        self.datasets = [d if isinstance(d, EpisodeDataset) else EpisodeDataset(d) for d in datasets]
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"Mixture: dataset names must be unique, got {names}")
        self.dataset_names = names
        raw = dict(config.weights) if config.weights is not None else {n: DEFAULT_WEIGHTS.get(n) for n in names}
        unknown = sorted(set(raw) - set(names)) if config.weights is not None else []
        if unknown:
            raise ValueError(f"MixtureConfig.weights names datasets {unknown} that are not in the mixture {names}")
        missing = [n for n in names if raw.get(n) is None]
        if missing:
            raise ValueError(f"Mixture: no sample weight for datasets {missing}; give MixtureConfig.weights "
                             f"(defaults exist for {sorted(DEFAULT_WEIGHTS)})")
        w = np.array([float(raw[n]) for n in names], np.float64)

        # Index: per dataset, per task, the kept episode indices (§2.3 filter).
        self.task_names: list[str] = []
        self.task_dataset: list[int] = []
        self.kept: list[np.ndarray] = []  # per global task
        self.filter_report: list[dict[str, Any]] = []
        self._dataset_tasks: list[np.ndarray] = []
        patch_bound = 0
        for di, ds in enumerate(self.datasets):
            tids = []
            by_task = collections.defaultdict(list)
            for i, t in enumerate(ds.episode_task):
                by_task[t].append(i)
            for task in sorted(by_task):
                idx = np.array(by_task[task], np.int64)
                spec = ds.specs[task]
                per_step = self._patches_per_timestep(spec)
                if per_step:
                    patch_bound = max(patch_bound, 2 * per_step * int(ds.episode_length[idx].max()))
                rets = ds.episode_return[idx]
                if config.filter_episodes and ds.kind == "control" and spec.action:
                    keep, e, thr = filter_episodes(rets, config.filter_fraction, config.filter_window_max,
                                                   config.filter_window_fraction)
                else:
                    keep, e, thr = np.ones(len(idx), bool), float("nan"), float("nan")
                self.filter_report.append({"dataset": ds.name, "task": task, "episodes": int(len(idx)), "kept": int(keep.sum()),
                                           "expert_return": e, "threshold": thr})
                if keep.any():
                    tids.append(len(self.task_names))
                    self.task_names.append(task)
                    self.task_dataset.append(di)
                    self.kept.append(idx[keep])
            self._dataset_tasks.append(np.array(tids, np.int64))
        usable = np.array([len(t) > 0 for t in self._dataset_tasks])
        if not (w[usable] > 0).any():
            raise ValueError(f"Mixture: no dataset has both a positive weight and episodes left after filtering (weights {dict(zip(names, w))})")
        w = np.where(usable, w, 0.0)
        self.weights = w / w.sum()  # the probabilities actually used
        self.max_patches = config.max_patches if config.max_patches is not None else min(config.sequence_length, patch_bound)
        self._dataset_episode_weights = []
        for di in range(len(self.datasets)):
            tids = self._dataset_tasks[di]
            sizes = np.array([len(self.kept[t]) for t in tids], np.float64)
            self._dataset_episode_weights.append(sizes / sizes.sum() if len(sizes) else sizes)
        self._cache: collections.OrderedDict[tuple[int, int], TokenSequence] = collections.OrderedDict()
        self._cache_size = 0

    def __getstate__(self):  # workers rebuild their own caches
        d = dict(self.__dict__)
        d["_cache"], d["_cache_size"] = collections.OrderedDict(), 0
        return d

    def _patches_per_timestep(self, spec) -> int:
        """Patches the tokenizer makes from one timestep's images (patchify a blank frame of each)."""
        from gatolab import tokenizers as tk

        c = self.tokenizer.config
        n = 0
        for f in spec.observation.values():
            if f.modality == Modality.IMAGE:
                n += tk.patchify(np.zeros(f.shape, np.uint8), c.patch_size, c.image_policy, c.image_channels)[0].shape[0]
        return n

    # --- draws -------------------------------------------------------------------------
    def draw(self, index: int) -> Draw:
        """The random choices of row `index` (pure function of (seed, index))."""
        c = self.config
        rng = np.random.default_rng([c.seed, int(index)])
        u = rng.random(7)
        di = int(np.searchsorted(np.cumsum(self.weights), u[0] * (1 - 1e-12), side="right"))
        tids = self._dataset_tasks[di]
        if c.within_dataset == "task":
            tid = int(tids[min(int(u[1] * len(tids)), len(tids) - 1)])
        else:
            tid = int(tids[np.searchsorted(np.cumsum(self._dataset_episode_weights[di]), u[1] * (1 - 1e-12), side="right")])
        eps = self.kept[tid]
        k = min(int(u[2] * len(eps)), len(eps) - 1)
        kind, pep = PROMPT_NONE, -1
        if len(eps) >= 2 and u[3] < c.prompt_probability:
            kind = PROMPT_END if u[4] < c.prompt_end_fraction else PROMPT_UNIFORM
            j = min(int(u[5] * (len(eps) - 1)), len(eps) - 2)
            pep = int(eps[j if j < k else j + 1])  # another episode of the same task
        return Draw(di, tid, int(eps[k]), kind, pep, float(u[6]), float(rng.random()))

    # --- tokens ------------------------------------------------------------------------
    def tokens(self, dataset: int, episode: int) -> TokenSequence:
        """The tokenized episode (cached per process, LRU by tokens)."""
        key = (dataset, episode)
        seq = self._cache.get(key)
        if seq is not None:
            self._cache.move_to_end(key)
            return seq
        ds = self.datasets[dataset]
        ep = ds[episode]
        seq = self.tokenizer.tokenize_episode(ep, ds.specs[ep.task])
        self._cache[key] = seq
        self._cache_size += len(seq)
        while self._cache_size > self.config.cache_tokens and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_size -= len(old)
        return seq

    @staticmethod
    def _window(seq: TokenSequence, u: float, budget: int, allow_cut: bool) -> TokenSequence | None:
        """Whole timesteps from a start uniform over those whose window reaches `budget` or the end."""
        starts, ends = seq.timestep_bounds()
        if len(starts) == 0:
            return seq
        n = len(seq)
        s_max = int(np.flatnonzero(n - starts <= budget)[0]) if n - starts[-1] <= budget else len(starts) - 1
        s = min(int(u * (s_max + 1)), s_max)
        if ends[s] - starts[s] > budget:  # one timestep longer than the budget
            if not allow_cut:
                return None
            return seq.slice(int(starts[s]), int(starts[s]) + budget)
        return seq.window(s, budget)

    def row(self, index: int) -> dict[str, np.ndarray]:
        """Row `index` of the stream: `TokenSequence.to_arrays` plus prompt mask and provenance."""
        c, L = self.config, self.config.sequence_length
        d = self.draw(index)
        ds = self.datasets[d.dataset]
        allow_cut = not ds.specs[self.task_names[d.task]].action  # text / vision-language only
        prompt, kind = None, d.prompt_kind
        if kind != PROMPT_NONE:
            pseq = self.tokens(d.dataset, d.prompt_episode)
            budget = max(1, int(c.prompt_max_fraction * L))
            try:
                prompt = pseq.last_window(budget) if kind == PROMPT_END else self._window(pseq, d.u_prompt_start, budget, False)
            except ValueError:
                prompt = None  # its last timestep alone exceeds the prompt budget
            if prompt is None or len(prompt) == 0:
                prompt, kind = None, PROMPT_NONE
        seq = self.tokens(d.dataset, d.episode)
        n_prompt = len(prompt) if prompt is not None else 0
        window = self._window(seq, d.u_start, L - n_prompt, allow_cut)
        if window is None and prompt is not None:  # the prompt left too little room: drop it
            prompt, kind, n_prompt = None, PROMPT_NONE, 0
            window = self._window(seq, d.u_start, L, allow_cut)
        if window is None:
            raise ValueError(f"dataset {ds.name!r} task {self.task_names[d.task]!r}: one timestep has more than "
                             f"sequence_length={L} tokens; raise MixtureConfig.sequence_length")
        full = TokenSequence.concatenate([prompt, window]) if prompt is not None else window
        out = full.to_arrays(L, self.max_patches)
        out["prompt_mask"] = np.arange(L) < n_prompt
        if not c.prompt_loss:
            out["loss_mask"] &= ~out["prompt_mask"]
        first = int(window.timestep[0]) if len(window) else 0  # slices keep the episode's timestep numbers
        out.update({
            "dataset_id": np.int32(d.dataset), "task_id": np.int32(d.task), "episode_id": np.int32(d.episode),
            "prompt_kind": np.int8(kind), "prompt_episode_id": np.int32(d.prompt_episode if kind else -1),
            "start_timestep": np.int32(first), "index": np.int64(index),
        })
        return out

    # --- grain ---------------------------------------------------------------------------
    def dataset(self, batch_size: int, *, num_rows: int = 1 << 40, process_index: int = 0, process_count: int = 1):
        """The grain `MapDataset` of batches for this host: rows h, h+P, ... grouped by `batch_size`.

        Args:
          batch_size: rows per batch on this host (global batch / process_count).
          num_rows: length of the global row stream (effectively infinite by default).
          process_index, process_count: this host and the number of hosts.
        """
        import grain

        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index must lie in [0, {process_count}), got {process_index}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ds = grain.MapDataset.range(num_rows)[process_index::process_count]
        return ds.map(self.row).batch(batch_size, drop_remainder=True)

    def iterator(self, batch_size: int, *, workers: int = 0, process_index: int = 0, process_count: int = 1,
                 prefetch: int = 2, num_rows: int = 1 << 40):
        """A grain iterator of batches (dicts of (B, ...) arrays) with `get_state`/`set_state`.

        `workers` > 0 runs the rows in that many processes (grain `mp_prefetch`); the
        batches are the same for any number of workers.
        """
        import grain

        it_ds = self.dataset(batch_size, num_rows=num_rows, process_index=process_index,
                             process_count=process_count).to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
        if workers > 0:
            from absl import flags

            # grain's worker processes read absl flags; outside an absl app they are unparsed.
            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch))
        return iter(it_ds)

    # --- facts ---------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """Per dataset: probability, tasks, kept/total episodes (for notebooks and cards)."""
        rows = []
        for di, ds in enumerate(self.datasets):
            rep = [r for r in self.filter_report if r["dataset"] == ds.name]
            rows.append({"dataset": ds.name, "probability": float(self.weights[di]), "tasks": len(self._dataset_tasks[di]),
                         "episodes": sum(r["episodes"] for r in rep), "kept": sum(r["kept"] for r in rep)})
        return rows


def empirical(mix: Mixture, num_draws: int = 10_000, start: int = 0) -> dict[str, Any]:
    """Frequencies over `num_draws` rows of the stream: per dataset, prompted, prompts from the end."""
    draws = [mix.draw(i) for i in range(start, start + num_draws)]
    ds = np.bincount([d.dataset for d in draws], minlength=len(mix.datasets))
    kinds = np.array([d.prompt_kind for d in draws])
    prompted = int((kinds != PROMPT_NONE).sum())
    return {
        "num_draws": num_draws,
        "dataset_fraction": {n: float(c / num_draws) for n, c in zip(mix.dataset_names, ds)},
        "dataset_probability": {n: float(p) for n, p in zip(mix.dataset_names, mix.weights)},
        "prompt_fraction": prompted / num_draws,
        "prompt_end_fraction": float((kinds == PROMPT_END).sum() / prompted) if prompted else float("nan"),
    }


def throughput(mix: Mixture, num_rows: int = 256, batch_size: int = 16, workers: int = 0,
               warmup_batches: int = 2) -> dict[str, float]:
    """Real (non-padding) tokens per second through the grain pipeline, after `warmup_batches`.

    The first batches fill the per-process episode cache (reading shards, tokenizing
    whole episodes); the steady-state figure excludes them, and `cold_seconds` says
    what they cost.
    """
    import time

    it = mix.iterator(batch_size, workers=workers, num_rows=num_rows + warmup_batches * batch_size)
    try:
        t0 = time.perf_counter()
        for _ in range(warmup_batches):
            next(it)
        t1 = time.perf_counter()
        tokens = rows = 0
        for b in it:
            tokens += int(b["valid"].sum())
            rows += b["valid"].shape[0]
        t2 = time.perf_counter()
    finally:
        if hasattr(it, "close"):
            it.close()
    return {"tokens_per_s": tokens / (t2 - t1), "rows_per_s": rows / (t2 - t1), "rows": rows, "tokens": tokens,
            "fill": tokens / max(1, rows * mix.config.sequence_length), "cold_seconds": t1 - t0}


def default_weight_share(names: Sequence[str] | None = None) -> dict[str, float]:
    """Each dataset's probability when the `names` (default: all defaults) are mixed with `DEFAULT_WEIGHTS`."""
    names = list(names or DEFAULT_WEIGHTS)
    unknown = [n for n in names if n not in DEFAULT_WEIGHTS]
    if unknown:
        raise ValueError(f"no default sample weight for datasets {unknown} (known: {sorted(DEFAULT_WEIGHTS)})")
    total = sum(DEFAULT_WEIGHTS[n] for n in names)
    return {n: DEFAULT_WEIGHTS[n] / total for n in names}
