"""Expert vs random policy, per task, for every control domain: the numbers for the data cards.

For each task: expert success rate, mean return (± std) and mean episode length over
N seeded episodes, the same for a uniform random policy (Gato §6's 0% reference), and
the expert's generation speed (episodes/s, one process, no rendering).

    .venv/bin/python benchmarks/measure_experts.py                       # all control domains, 20 episodes
    .venv/bin/python benchmarks/measure_experts.py --domains babyai --include-excluded
    .venv/bin/python benchmarks/measure_experts.py --domains metaworld --episodes 20 --json out.json

Prints a Markdown table (and writes JSON with --json). Tasks run in parallel over --jobs
processes; each task's episodes use seeds 0..N-1 (expert) and 10_000.. (random).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import gatolab.envs as genv  # noqa: E402
from gatolab.envs.base import rollout  # noqa: E402

RANDOM_SEED_OFFSET = 10_000


def _make(domain_name: str, task: str):
    """(env, expert, random policy, success defined?) — excluded BabyAI levels included on request."""
    domain = genv.get_domain(domain_name)
    if domain_name == "babyai" and task not in domain.tasks():
        from gatolab.envs import babyai

        env = babyai.BabyAITaskEnv(task, babyai.babyai_spec(task))
        return env, babyai.BabyAIExpert(), genv.common.random_policy_for(env.spec, 0), True
    env = domain.make(task)
    has_success = domain.defines_success(task) if hasattr(domain, "defines_success") else True
    return env, domain.expert(task), None, has_success


def measure_task(args: tuple[str, str, int, int]) -> dict:
    domain_name, task, n_expert, n_random = args
    domain = genv.get_domain(domain_name)
    env, expert, random_policy, has_success = _make(domain_name, task)
    out = {"domain": domain_name, "task": task, "has_success": has_success}
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints "Sampling rejected" lines
        for label, n, offset in (("expert", n_expert, 0), ("random", n_random, RANDOM_SEED_OFFSET)):
            returns, successes, lengths, timeouts = [], [], [], 0
            t0 = time.perf_counter()
            for i in range(n):
                policy = expert if label == "expert" else (random_policy or domain.random_policy(task, seed=offset + i))
                if label == "random" and random_policy is not None:
                    policy = genv.common.random_policy_for(env.spec, offset + i)
                try:
                    ep, _ = rollout(env, policy, seed=offset + i)
                except RuntimeError as e:  # BabyAI's BotError (incl. BotTimeout): a failed episode
                    if type(e).__name__ not in ("BotError", "BotTimeout"):
                        raise
                    timeouts += 1
                    returns.append(0.0)
                    successes.append(False)
                    lengths.append(0)
                    continue
                returns.append(ep.total_return)
                successes.append(bool(ep.metadata["success"]))
                lengths.append(len(ep))
            dt = time.perf_counter() - t0
            out[label] = {
                "episodes": n,
                "success_rate": float(np.mean(successes)) if has_success and n else None,
                "return_mean": float(np.mean(returns)) if n else math.nan,
                "return_std": float(np.std(returns)) if n else math.nan,
                "length_mean": float(np.mean(lengths)) if n else math.nan,
                "timeouts": timeouts,
                "episodes_per_s": n / dt if dt > 0 else math.nan,
                "steps_per_s": float(np.sum(lengths)) / dt if dt > 0 else math.nan,
            }
    env.close()
    return out


def _fmt(x, pct=False):
    if x is None:
        return "n/a"
    return f"{100 * x:.0f}%" if pct else f"{x:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", nargs="+", default=["classic", "babyai", "metaworld"])
    p.add_argument("--tasks", nargs="*", default=None, help="only these tasks")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--random-episodes", type=int, default=None, help="default: same as --episodes")
    p.add_argument("--include-excluded", action="store_true", help="BabyAI: also measure EXCLUDED_LEVELS and Debug levels")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    n_random = a.episodes if a.random_episodes is None else a.random_episodes

    work = []
    for name in a.domains:
        domain = genv.get_domain(name)
        tasks = domain.tasks()
        if name == "babyai" and a.include_excluded:
            tasks = genv.babyai.all_registered_levels()
        if a.tasks:
            tasks = [t for t in tasks if t in a.tasks]
        work += [(name, t, a.episodes, n_random) for t in tasks]

    t0 = time.time()
    rows = []
    ctx = mp.get_context("spawn")  # fresh interpreters: MuJoCo/EGL contexts do not survive fork
    with ctx.Pool(a.jobs, maxtasksperchild=4) as pool:
        for r in pool.imap(measure_task, work):
            rows.append(r)
            e, rn = r["expert"], r["random"]
            print(f"  {r['domain']}/{r['task']}: expert {_fmt(e['success_rate'], True)} return {e['return_mean']:.2f}, "
                  f"random {_fmt(rn['success_rate'], True)} return {rn['return_mean']:.2f}, {e['episodes_per_s']:.1f} eps/s",
                  file=sys.stderr, flush=True)

    print(f"\n{len(rows)} tasks, {a.episodes} expert / {n_random} random episodes each, {time.time() - t0:.0f} s\n")
    print("| domain | task | expert success | expert return | random success | random return | expert length | "
          "expert eps/s | expert steps/s | bot errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, rn = r["expert"], r["random"]
        print(f"| {r['domain']} | {r['task']} | {_fmt(e['success_rate'], True)} | "
              f"{e['return_mean']:.2f} ± {e['return_std']:.2f} | "
              f"{_fmt(rn['success_rate'], True)} | {rn['return_mean']:.2f} ± {rn['return_std']:.2f} | {e['length_mean']:.0f} | "
              f"{e['episodes_per_s']:.1f} | {e['steps_per_s']:.0f} | {e['timeouts']} |")
    for name in a.domains:
        sub = [r for r in rows if r["domain"] == name and r["expert"]["success_rate"] is not None]
        if sub:
            good = sum(r["expert"]["success_rate"] >= 0.9 for r in sub)
            print(f"\n{name}: {good}/{len(sub)} tasks with expert success >= 90%; "
                  f"mean expert success {100 * np.mean([r['expert']['success_rate'] for r in sub]):.1f}%")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
