"""Evaluation: the prompted agent in real environments, normalised scores, Figure 5 (GATO_SPEC §6).

    results = gl.evaluate.evaluate("runs/demo/train", tasks=["CartPole-v1", "BabyAI-GoToRedBall-v0"],
                                   episodes=50, out="runs/demo/eval")
    results.aggregate["overall"], gl.evaluate.figure5_data(results.rows)
    # or: gatolab eval --checkpoint runs/demo/train --tasks CartPole-v1 --episodes 50 --out runs/demo/eval

Per control task: N rollouts (50 in the paper, §6) from held-out seeds (`agent.EVAL_SEED`
+ i), mean return, success rate where the environment defines success, and the
normalised score (agent - random) / (expert - random) with the expert and random returns
measured in the data cards (`data_cards/returns.json`). A task the cards do not cover
gets both references measured here (`reference_episodes` rollouts of the domain's
expert and random policy; the row says `reference: "measured"`). Scores are averaged
within each domain, then across domains (Figure 8's aggregation). A task whose
environment fails (crash, render error) is reported with its error and does not lose
the other tasks' results.

Text and vision-language have no environment: `evaluate_language` measures held-out
per-token negative log-likelihood, perplexity and next-token accuracy of the text
targets on freshly generated episodes (new seeds). They are not in Figure 5, which
counts control tasks only (as the paper's Figure 5 does).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatolab import io_utils
from gatolab.agent import EVAL_SEED, AgentConfig, GatoAgent, run_episode

DEFAULT_RETURNS = Path(__file__).resolve().parent.parent / "data_cards" / "returns.json"
CONTROL_DOMAINS = ("classic", "babyai", "metaworld", "sokoban", "minatar", "atari", "procgen", "dmc")
THRESHOLDS = tuple(range(0, 201, 5))  # Figure 5's x axis, percent of expert


def bare_task(task: str) -> str:
    """`task` without a leading "<domain>/" ("ALE/Pong-v5", a gymnasium id, keeps its "ALE/")."""
    from gatolab import envs

    head, sep, rest = task.partition("/")
    return rest if sep and head in envs.domain_names() else task


def find_domain(task: str) -> str:
    """The control domain that has `task` ("domain/task" is accepted too)."""
    from gatolab import envs

    if task.startswith("ALE/") and "atari" in envs.domain_names():  # Atari tasks are gymnasium ids, with a "/"
        envs.get_domain("atari").check_task(task)
        return "atari"
    if "/" in task:
        name, _, bare = task.partition("/")
        envs.get_domain(name).check_task(bare)
        return name
    for name in CONTROL_DOMAINS:
        if name not in envs.domain_names():
            continue
        if name == "babyai" and not task.startswith("BabyAI-"):
            continue
        if name == "metaworld" and not task.endswith("-v3") and not task.endswith("-v2"):
            continue
        if name == "sokoban" and not task.startswith("Sokoban-"):
            continue
        if name == "minatar" and not task.endswith("-MinAtar"):
            continue
        if name == "dmc" and not task.split("-")[0].islower():
            continue
        if name == "atari" and not task.startswith("ALE/"):
            continue
        if name == "procgen" and ("-" in task or not task.islower()):
            continue
        try:
            if task in envs.get_domain(name).tasks():
                return name
        except ImportError:
            continue
    raise ValueError(f"unknown task {task!r}: not a task of the control domains {CONTROL_DOMAINS}")


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


def _measured_references(domain, task: str, n: int) -> dict[str, Any]:
    from gatolab.data.cards import measure_returns

    return {"expert_return": float(np.mean(measure_returns(domain, task, n, 1_000_000, policy="expert"))),
            "random_return": float(np.mean(measure_returns(domain, task, n, 1_000_000, policy="random")))}


def evaluate_task(agent: GatoAgent, task: str, episodes: int = 50, seed: int = EVAL_SEED,
                  references: dict[str, dict[str, Any]] | None = None, reference_episodes: int = 10,
                  max_steps: int | None = None, progress=None) -> dict[str, Any]:
    """One control task's row: returns, success, normalised score, latency. Raises on env errors."""
    from gatolab import envs

    name = find_domain(task)
    task = bare_task(task)
    domain = envs.get_domain(name)
    ref = (references or {}).get(task)
    ref_source = "data_cards"
    if ref is None or ref.get("expert_return") is None or ref.get("random_return") is None:
        ref, ref_source = _measured_references(domain, task, reference_episodes), "measured"
    env = domain.make(task, seed=seed)
    try:
        t0 = time.perf_counter()
        traces = []
        for i in range(episodes):
            traces.append(run_episode(agent, env, domain, seed=seed + i, max_steps=max_steps))
            if progress is not None:
                progress.update(1)
        seconds = time.perf_counter() - t0
    finally:
        env.close()
    rets = np.array([t.total_return for t in traces])
    succ = [t.success for t in traces if t.success is not None]
    score = normalised_score(float(rets.mean()), ref["expert_return"], ref["random_return"])
    all_steps = np.concatenate([t.step_seconds for t in traces])
    return {"domain": name, "task": task, "episodes": episodes, "mean_return": float(rets.mean()),
            "std_return": float(rets.std()), "success_rate": float(np.mean(succ)) if succ else None,
            "expert_return": float(ref["expert_return"]), "random_return": float(ref["random_return"]),
            "reference": ref_source, "normalised_score": score, "mean_length": float(np.mean([t.length for t in traces])),
            "latency_ms_median": float(np.median(all_steps) * 1e3), "latency_ms_p90": float(np.percentile(all_steps, 90) * 1e3),
            "prompt_tokens": int(np.mean([t.prompt_tokens for t in traces])), "seconds": round(seconds, 2), "error": None}


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


def evaluate(checkpoint: str | os.PathLike | GatoAgent, tasks: Sequence[str], *, episodes: int = 50,
             config: AgentConfig = AgentConfig(), data: Sequence[str | os.PathLike] | None = None,
             returns: str | os.PathLike | None = None, reference_episodes: int = 10, max_steps: int | None = None,
             seed: int = EVAL_SEED, out: str | os.PathLike | None = None, progress: bool = True) -> EvalResults:
    """Evaluates a checkpoint (or an agent) on control tasks; writes results.{json,csv} to `out`.

    Args:
      checkpoint: a run directory / checkpoint path, or a ready `GatoAgent`.
      tasks: control task names ("CartPole-v1", "BabyAI-GoToRedBall-v0", "reach-v3", or "domain/task").
      episodes: rollouts per task (50 in the paper).
      config: the agent's prompt and sampling settings.
      data: datasets for prompt demonstrations (default: the checkpoint's training data).
      returns: the data cards' returns.json (default `data_cards/returns.json`).
      reference_episodes: rollouts to measure expert/random returns of tasks not in `returns`.
      max_steps: cap on episode length (default each environment's own limit).
      seed: rollout i of every task resets with seed + i.
      out: folder for results.json and results.csv (None: not written).
    """
    if episodes < 1:
        raise ValueError(f"evaluate: episodes must be >= 1, got {episodes}")
    if not tasks:
        raise ValueError("evaluate: tasks is empty; expected control task names such as 'CartPole-v1'")
    for t in tasks:
        find_domain(t)  # unknown tasks fail before any rollout
    agent = checkpoint if isinstance(checkpoint, GatoAgent) else GatoAgent.from_checkpoint(checkpoint, config, data)
    refs = load_references(returns) if returns is not None or DEFAULT_RETURNS.exists() else {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=episodes * len(tasks), desc="evaluate", unit="ep")
    rows = []
    for task in tasks:
        try:
            rows.append(evaluate_task(agent, task, episodes, seed, refs, reference_episodes, max_steps, bar))
        except Exception as e:  # noqa: BLE001 - a failing environment must not lose the other tasks
            rows.append({"domain": _domain_or_none(task), "task": bare_task(task), "episodes": episodes,
                         "normalised_score": None, "error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=4)})
    if bar is not None:
        bar.close()
    cfg = {"checkpoint": getattr(agent, "checkpoint", None), "agent": agent.config.to_json(), "episodes": episodes,
           "seed": seed, "max_steps": max_steps, "returns": str(returns or DEFAULT_RETURNS),
           "model_config": agent.model.config.to_json() if hasattr(agent.model.config, "to_json") else None}
    res = EvalResults(rows, aggregate(rows), figure5_data(rows), cfg)
    if out is not None:
        res.paths = write_results(res, out)
    return res


def _domain_or_none(task: str) -> str | None:
    try:
        return find_domain(task)
    except Exception:  # noqa: BLE001
        return None


_CSV_COLUMNS = ("domain", "task", "episodes", "mean_return", "std_return", "success_rate", "expert_return", "random_return",
                "reference", "normalised_score", "mean_length", "latency_ms_median", "latency_ms_p90", "prompt_tokens",
                "seconds", "error")


def write_results(res: EvalResults, out: str | os.PathLike) -> dict[str, str]:
    """results.json (everything, with the checkpoint and config) and results.csv (one row per task)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io_utils.atomic_write_json(out / "results.json", {"config": res.config, "aggregate": res.aggregate,
                                                      "figure5": res.figure5, "rows": res.rows})
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in res.rows:
            w.writerow({k: r.get(k) for k in _CSV_COLUMNS})
    os.replace(tmp, out / "results.csv")
    return {"json": str(out / "results.json"), "csv": str(out / "results.csv")}


def load_results(path: str | os.PathLike) -> EvalResults:
    """Reads results.json (a file or its folder) back."""
    path = Path(path)
    path = path / "results.json" if path.is_dir() else path
    if not path.exists():
        raise ValueError(f"results file {str(path)!r} does not exist")
    d = json.loads(path.read_text())
    return EvalResults(d["rows"], d["aggregate"], d["figure5"], d["config"], {"json": str(path)})


# ---------------------------------------------------------------------------------------
# Text and vision-language: held-out likelihood (no environment, no normalised score)
# ---------------------------------------------------------------------------------------
def evaluate_language(model, tokenizer, domain: str, task: str | None = None, episodes: int = 8,
                      seed: int = EVAL_SEED) -> dict[str, Any]:
    """Held-out text NLL / perplexity / next-token accuracy on the loss-target tokens.

    Episodes are generated fresh with seeds `seed + i` (the training data used 0..N-1), and
    each is scored as one sequence cut to the model's context (whole timesteps where they
    fit, else the first `context_len` tokens).
    """
    from gatolab import envs
    from gatolab.model.decode import Decoder

    dom = envs.get_domain(domain)
    if dom.kind == "control":
        raise ValueError(f"evaluate_language: domain {domain!r} is a control domain; use evaluate()")
    task = task or dom.tasks()[0]
    dom.check_task(task)
    spec = dom.spec(task)
    dec = Decoder(model, vocab=tokenizer.vocab)
    nll, correct, count = 0.0, 0, 0
    for ep in dom.generate(task, episodes, seed=seed):
        seq = tokenizer.tokenize_episode(ep, spec)
        cap = dec.capacity
        try:
            seq = seq.window(0, cap)
        except ValueError:
            seq = seq.slice(0, cap)
        dec.reset()
        logits = np.asarray(dec.prefill(seq, return_logits=True), np.float64)[:, : tokenizer.vocab.size]  # (N, V)
        target = seq.loss_mask[1:]
        lg, ids = logits[:-1][target], seq.ids[1:][target]
        m = lg.max(axis=1, keepdims=True)
        logz = (m[:, 0] + np.log(np.exp(lg - m).sum(axis=1)))
        nll += float(np.sum(logz - lg[np.arange(len(ids)), ids]))
        correct += int(np.sum(lg.argmax(axis=1) == ids))
        count += int(len(ids))
    if count == 0:
        raise ValueError(f"evaluate_language: no text targets in {episodes} episodes of {domain}/{task}")
    mean = nll / count
    return {"domain": domain, "task": task, "episodes": episodes, "tokens": count, "nll": mean,
            "perplexity": float(np.exp(mean)), "next_token_accuracy": correct / count}


def add_cli(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint in real environments (normalised scores, Figure 5)")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint path")
    p.add_argument("--tasks", nargs="+", required=True, help="control tasks, e.g. CartPole-v1 BabyAI-GoToRedBall-v0")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--prompt", default="start", choices=["start", "end", "none"])
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--data", nargs="*", default=None, help="datasets for demonstrations (default: the run's own)")
    p.add_argument("--returns", default=None, help="returns.json (default data_cards/returns.json)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--out", default=None)
    p.set_defaults(func=_cli_eval)


def _cli_eval(args) -> int:
    res = evaluate(args.checkpoint, args.tasks, episodes=args.episodes, data=args.data, returns=args.returns,
                   config=AgentConfig(prompt=args.prompt, temperature=args.temperature), max_steps=args.max_steps,
                   out=args.out)
    for r in res.rows:
        if r.get("error"):
            print(f"{r['task']}: FAILED {r['error']}")
        else:
            sr = "" if r["success_rate"] is None else f", success {r['success_rate']:.0%}"
            print(f"{r['domain']}/{r['task']}: return {r['mean_return']:.3f} -> {100 * r['normalised_score']:.1f}% of expert{sr}")
    agg = res.aggregate
    for d, v in agg["per_domain"].items():
        print(f"domain {d}: {100 * v['normalised_score']:.1f}% over {v['tasks']} tasks")
    if agg["overall"] is not None:
        print(f"overall (mean of domain means): {100 * agg['overall']:.1f}%")
    if res.paths:
        print(f"results: {res.paths['json']} and {res.paths['csv']}")
    return 1 if agg["failed"] else 0


def complete_text(model, tokenizer, spec, observation: dict[str, Any], text_field: str = "text",
                  max_new_tokens: int = 24, stop: str = ".") -> str:
    """Greedy continuation of `observation[text_field]` given the rest of the observation.

    E.g. an image and an empty caption -> a caption; a paragraph's first words -> more text.
    Each new token re-reads the whole (short) sequence with `Decoder.prefill`, so the text
    keeps its observation positions exactly as in training (the cached action path would
    feed generated text as action tokens). Restricted to the text ids [0, text vocab).
    """
    from gatolab.model.decode import Decoder

    if text_field not in spec.observation:
        raise ValueError(f"complete_text: spec {spec.name!r} has no field {text_field!r} (fields: {sorted(spec.observation)})")
    if tokenizer.text is None:
        raise ValueError("complete_text: the tokenizer has no text model")
    dec = Decoder(model, vocab=tokenizer.vocab)
    n_text = min(tokenizer.vocab.text_size, tokenizer.text.vocab_size)  # the SentencePiece model may be smaller
    ids = list(tokenizer.text.encode(observation[text_field])) if observation[text_field] else []
    start = len(ids)
    for _ in range(max_new_tokens):
        obs = {**observation, text_field: tokenizer.text.decode(ids)}
        seq = tokenizer.tokenize_observation(obs, spec)
        if len(seq) >= dec.capacity:
            break
        dec.reset()
        logits = np.asarray(dec.prefill(seq, return_logits=True))[-1, :n_text]
        ids.append(int(np.argmax(logits)))
        if stop and stop in tokenizer.text.decode(ids[start:]):
            break
    return tokenizer.text.decode(ids[start:])
