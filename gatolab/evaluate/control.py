"""Control evaluation: the prompted agent in real environments, normalised scores, Figure 5 (GATO_SPEC §6).

    results = gl.evaluate.evaluate("runs/demo/train", tasks=["CartPole-v1", "BabyAI-GoToRedBall-v0"],
                                   episodes=50, out="runs/demo/eval")
    results.aggregate["overall"], gl.evaluate.figure5_data(results.rows)
    # or: gatolab eval --checkpoint runs/demo/train --tasks CartPole-v1 --episodes 50 --out runs/demo/eval

Per control task: N rollouts (50 in the paper, §6) from held-out seeds (`agent.EVAL_SEED`
+ i), played `batch` at a time (default all N) by one batched agent on `batch` copies of
the task's environment (`gl.agent.run_episodes`: a row whose episode ends takes the next
seed; rollout i resets with seed + i whichever copy plays it, so results do not depend
on the batch size), mean return, success rate where the environment defines success, and the
normalised score (agent - random) / (expert - random) with the expert and random returns
measured in the data cards (`data_cards/returns.json`). A task the cards do not cover
gets both references measured here (`reference_episodes` rollouts of the domain's
expert and random policy; the row says `reference: "measured"`). Scores are averaged
within each domain, then across domains (Figure 8's aggregation). A task whose
environment fails (crash, render error) is reported with its error and does not lose
the other tasks' results.

Text and vision-language have no environment: see `gatolab.evaluate.language`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from gatolab import io_utils
from gatolab.agent import EVAL_SEED, AgentConfig, GatoAgent, run_episodes
from gatolab.baselines import Retrieval
from gatolab.data.cards import measure_returns
from gatolab.domains import registry
from gatolab.domains.base import Domain, rollout_batch

DEFAULT_RETURNS = Path(__file__).resolve().parents[2] / "data_cards" / "returns.json"
THRESHOLDS = tuple(range(0, 201, 5))  # Figure 5's x axis, percent of expert


def control_task(task: str) -> tuple[str, str]:
    """(domain, task) of a control task ("domain/task" is accepted too); ValueError otherwise."""
    name = registry.owner(task)
    if registry.entry(name).kind != "control":
        raise ValueError(f"task {task!r} belongs to domain {name!r} (kind {registry.entry(name).kind!r}), which has no "
                         f"environment; evaluate it with gl.evaluate.evaluate_language (control domains: "
                         f"{', '.join(registry.control_names())})")
    return name, registry.split_task(task)[1]


def load_references(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """task -> {"expert_return", "random_return", ...} from the data cards' returns.json."""
    path = Path(path or DEFAULT_RETURNS)
    if not path.exists():
        raise ValueError(f"returns file {str(path)!r} does not exist (write it with `gatolab data card`)")
    return json.loads(path.read_text())


def normalised_score(agent_return: float, expert_return: float, random_return: float) -> float:
    """(agent - random) / (expert - random): 0 = random, 1 = expert (GATO_SPEC §6)."""
    gap = expert_return - random_return
    if not np.isfinite(gap) or abs(gap) < 1e-9:
        raise ValueError(f"normalised_score: expert return {expert_return} equals random return {random_return}")
    return float((agent_return - random_return) / gap)


def _measured_references(domain: Domain, task: str, n: int) -> dict[str, Any]:
    return {"expert_return": float(np.mean(measure_returns(domain, task, n, 1_000_000, policy="expert"))),
            "random_return": float(np.mean(measure_returns(domain, task, n, 1_000_000, policy="random")))}


@dataclasses.dataclass
class _PolicyTrace:
    """What `evaluate_task` reads of a reference policy's episode (an `EpisodeTrace`'s fields)."""

    total_return: float
    success: bool | None
    length: int
    step_seconds: np.ndarray
    prompt_tokens: int = 0


def _policy_episodes(policy, envs, seeds, max_steps, progress) -> list[_PolicyTrace]:
    """One episode per seed of a stateless `Policy` shared by every row, timing each of its calls."""
    seconds: list[float] = []

    def timed(env, observation):
        t0 = time.perf_counter()
        action = policy(env, observation)
        seconds.append(time.perf_counter() - t0)
        return action

    done = (lambda i, r: progress.update(1)) if progress is not None else None
    results = rollout_batch(envs, timed, seeds, max_steps=max_steps, record=False, on_episode=done)
    # Rows interleave, so the calls' times are not split per episode: the first trace carries all of
    # them (the row's latency statistics read them concatenated).
    per_call = [np.asarray(seconds)] + [np.zeros(0)] * (len(results) - 1)
    return [_PolicyTrace(r.total_return, r.success, r.length, t) for r, t in zip(results, per_call)]


def evaluate_task(agent: GatoAgent | Retrieval, task: str, episodes: int = 50, seed: int = EVAL_SEED,
                  references: dict[str, dict[str, Any]] | None = None, reference_episodes: int = 10,
                  max_steps: int | None = None, progress=None, batch: int | None = None) -> dict[str, Any]:
    """One control task's row: returns, success, normalised score, latency. Raises on env errors.

    `agent`: the Gato agent, or a reference with `policy(task)` (`gatolab.baselines.Retrieval`).

    `batch`: environments played at once (default: all `episodes`); the row's latency is
    the time of one agent step for all of them, `seconds` the task's wall time.
    """
    name, task = control_task(task)
    domain = registry.get(name)
    ref = (references or {}).get(task)
    ref_source = "data_cards"
    if ref is None or ref.get("expert_return") is None or ref.get("random_return") is None:
        ref, ref_source = _measured_references(domain, task, reference_episodes), "measured"
    n_envs = min(batch or episodes, episodes)
    if n_envs < 1:
        raise ValueError(f"evaluate: batch must be >= 1, got {batch}")
    envs = []
    seeds = [seed + i for i in range(episodes)]
    try:
        t0 = time.perf_counter()
        envs += [domain.make(task, seed=seed) for _ in range(n_envs)]
        if isinstance(agent, GatoAgent):
            traces = run_episodes(agent, envs, seeds, max_steps=max_steps,
                                  on_episode=(lambda _: progress.update(1)) if progress is not None else None)
        else:  # a reference policy (`gatolab.baselines.Retrieval`): the same rollout loop, no network
            traces = _policy_episodes(agent.policy(task), envs, seeds, max_steps, progress)
        seconds = time.perf_counter() - t0
    finally:
        for env in envs:
            env.close()
    rets = np.array([t.total_return for t in traces])
    succ = [t.success for t in traces if t.success is not None]
    score = normalised_score(float(rets.mean()), ref["expert_return"], ref["random_return"])
    all_steps = np.concatenate([t.step_seconds for t in traces])
    return {"domain": name, "task": task, "episodes": episodes, "batch": n_envs, "mean_return": float(rets.mean()),
            "std_return": float(rets.std()), "success_rate": float(np.mean(succ)) if succ else None,
            "expert_return": float(ref["expert_return"]), "random_return": float(ref["random_return"]),
            "reference": ref_source, "normalised_score": score, "mean_length": float(np.mean([t.length for t in traces])),
            "latency_ms_median": float(np.median(all_steps) * 1e3), "latency_ms_p90": float(np.percentile(all_steps, 90) * 1e3),
            "prompt_tokens": int(np.mean([t.prompt_tokens for t in traces])), "seconds": round(seconds, 2), "error": None,
            # Per rollout (rollout i reset with seed + i): what an experiment's long table and its bootstrap read.
            "returns": rets.tolist(), "successes": [t.success for t in traces]}


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean normalised score (and success rate) per domain, then across domains (GATO_SPEC §6)."""
    ok = [r for r in rows if r.get("error") is None and r.get("normalised_score") is not None]
    per_domain = {}
    for d in sorted({r["domain"] for r in ok}):
        rs = [r for r in ok if r["domain"] == d]
        succ = [r["success_rate"] for r in rs if r.get("success_rate") is not None]
        per_domain[d] = {"tasks": len(rs), "normalised_score": float(np.mean([r["normalised_score"] for r in rs])),
                         "success_rate": float(np.mean(succ)) if succ else None,
                         "tasks_above_50": int(sum(r["normalised_score"] >= 0.5 for r in rs))}
    overall = float(np.mean([v["normalised_score"] for v in per_domain.values()])) if per_domain else None
    return {"per_domain": per_domain, "overall": overall, "tasks": len(ok),
            "failed": [{"task": r["task"], "error": r["error"]} for r in rows if r.get("error") is not None]}


def figure5_data(rows: Sequence[dict[str, Any]], thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Figure 5: for each threshold x (% of expert), the number of tasks scoring >= x, per domain."""
    ok = [r for r in rows if r.get("error") is None and r.get("normalised_score") is not None]
    domains = sorted({r["domain"] for r in ok})
    counts = {d: [int(sum(100 * r["normalised_score"] >= x for r in ok if r["domain"] == d)) for x in thresholds]
              for d in domains}
    return {"thresholds": list(thresholds), "counts": counts,
            "total": [int(sum(c[i] for c in counts.values())) for i in range(len(thresholds))]}


@dataclasses.dataclass
class EvalResults:
    rows: list[dict[str, Any]]
    aggregate: dict[str, Any]
    figure5: dict[str, Any]
    config: dict[str, Any]
    paths: dict[str, str] = dataclasses.field(default_factory=dict)


def evaluate(checkpoint: str | os.PathLike | GatoAgent | Retrieval, tasks: Sequence[str], *, episodes: int = 50,
             config: AgentConfig = AgentConfig(), data: Sequence[str | os.PathLike] | None = None,
             returns: str | os.PathLike | None = None, reference_episodes: int = 10, max_steps: int | None = None,
             seed: int = EVAL_SEED, out: str | os.PathLike | None = None, progress: bool = True,
             batch: int | None = None) -> EvalResults:
    """Evaluates a checkpoint (or an agent) on control tasks; writes results.{json,csv} to `out`.

    Args:
      checkpoint: a run directory / checkpoint path, a ready `GatoAgent`, or a reference
        policy per task (`gatolab.baselines.Retrieval`: "retrieve and play", no network).
      tasks: control task names ("CartPole-v1", "BabyAI-GoToRedBall-v0", "reach-v3", or "domain/task").
      episodes: rollouts per task (50 in the paper).
      config: the agent's prompt and sampling settings.
      data: datasets for prompt demonstrations (default: the checkpoint's training data).
      returns: the data cards' returns.json (default `data_cards/returns.json`).
      reference_episodes: rollouts to measure expert/random returns of tasks not in `returns`.
      max_steps: cap on episode length (default each environment's own limit).
      seed: rollout i of every task resets with seed + i.
      out: folder for results.json and results.csv (None: not written).
      batch: environments played at once per task (default: all `episodes`; 1: one after
        another). Results do not depend on it; speed does.
    """
    if episodes < 1:
        raise ValueError(f"evaluate: episodes must be >= 1, got {episodes}")
    if batch is not None and batch < 1:
        raise ValueError(f"evaluate: batch must be >= 1, got {batch}")
    if not tasks:
        raise ValueError("evaluate: tasks is empty; expected control task names such as 'CartPole-v1'")
    for t in tasks:
        control_task(t)  # unknown and non-control tasks fail before any rollout
    agent = (checkpoint if isinstance(checkpoint, (GatoAgent, Retrieval))
             else GatoAgent.from_checkpoint(checkpoint, config, data))
    refs = load_references(returns) if returns is not None or DEFAULT_RETURNS.exists() else {}
    bar = tqdm(total=episodes * len(tasks), desc="evaluate", unit="ep") if progress else None
    rows = []
    for task in tasks:
        try:
            rows.append(evaluate_task(agent, task, episodes, seed, refs, reference_episodes, max_steps, bar, batch))
        except Exception as e:  # noqa: BLE001 - a failing environment must not lose the other tasks
            name, bare = control_task(task)
            rows.append({"domain": name, "task": bare, "episodes": episodes,
                         "normalised_score": None, "error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=4)})
    if bar is not None:
        bar.close()
    if isinstance(agent, Retrieval):
        who = {"checkpoint": None, "policy": agent.describe(), "agent": None, "model_config": None}
    else:
        who = {"checkpoint": getattr(agent, "checkpoint", None), "policy": "gato", "agent": agent.config.to_json(),
               "model_config": agent.model.config.to_json() if hasattr(agent.model.config, "to_json") else None}
    cfg = {**who, "episodes": episodes, "batch": min(batch or episodes, episodes), "seed": seed, "max_steps": max_steps,
           "returns": str(returns or DEFAULT_RETURNS)}
    res = EvalResults(rows, aggregate(rows), figure5_data(rows), cfg)
    if out is not None:
        res.paths = write_results(res, out)
    return res


_CSV_COLUMNS = ("domain", "task", "episodes", "mean_return", "std_return", "success_rate", "expert_return", "random_return",
                "reference", "normalised_score", "mean_length", "latency_ms_median", "latency_ms_p90", "prompt_tokens",
                "seconds", "error")


def write_results(res: EvalResults, out: str | os.PathLike) -> dict[str, str]:
    """results.json (everything, with the checkpoint and config) and results.csv (one row per task)."""
    out = Path(out)
    io_utils.atomic_write_json(out / "results.json", {"config": res.config, "aggregate": res.aggregate,
                                                      "figure5": res.figure5, "rows": res.rows})
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in res.rows:
        w.writerow({k: r.get(k) for k in _CSV_COLUMNS})
    io_utils.atomic_write_text(out / "results.csv", buf.getvalue())
    return {"json": str(out / "results.json"), "csv": str(out / "results.csv")}


def load_results(path: str | os.PathLike) -> EvalResults:
    """Reads results.json (a file or its folder) back."""
    path = Path(path)
    path = path / "results.json" if path.is_dir() else path
    if not path.exists():
        raise ValueError(f"results file {str(path)!r} does not exist")
    d = json.loads(path.read_text())
    return EvalResults(d["rows"], d["aggregate"], d["figure5"], d["config"], {"json": str(path)})
