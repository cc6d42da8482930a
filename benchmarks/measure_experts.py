"""Expert vs random policy, per task, for every control domain: the numbers for the data cards.

For each task: expert success rate, mean return (± std) and mean episode length over
N seeded episodes, the same for a uniform random policy (Gato §6's 0% reference), and
the expert's generation speed (episodes/s, one process, no rendering).

    .venv/bin/python benchmarks/measure_experts.py                       # all control domains, 20 episodes
    .venv/bin/python benchmarks/measure_experts.py --domains babyai --domain-option include_excluded=True
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

import gatolab as gl  # noqa: E402
from gatolab.domains.base import ExpertError, rollout  # noqa: E402
from gatolab.train.run import parse_overrides  # noqa: E402

RANDOM_SEED_OFFSET = 10_000


def measure_task(args: tuple[str, dict, str, int, int]) -> dict:
    domain_name, options, task, n_expert, n_random = args
    domain = gl.domains.get(domain_name, **options)
    env, expert, has_success = domain.make(task), domain.expert(task), domain.defines_success(task)
    out = {"domain": domain_name, "task": task, "has_success": has_success}
    with contextlib.redirect_stdout(io.StringIO()):  # minigrid prints "Sampling rejected" lines
        for label, n, offset in (("expert", n_expert, 0), ("random", n_random, RANDOM_SEED_OFFSET)):
            returns, successes, lengths, timeouts = [], [], [], 0
            t0 = time.perf_counter()
            for i in range(n):
                policy = expert if label == "expert" else domain.random_policy(task, seed=offset + i)
                try:
                    ep = rollout(env, policy, seed=offset + i).episode
                except ExpertError:  # e.g. BabyAI's bot over its budget: a failed episode
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
    p.add_argument("--domains", nargs="+", default=None, help="default: every control domain")
    p.add_argument("--tasks", nargs="*", default=None, help="only these tasks")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--random-episodes", type=int, default=None, help="default: same as --episodes")
    p.add_argument("--domain-option", nargs="*", default=[], metavar="KEY=VALUE",
                   help="keyword options for the domains' constructors, e.g. include_excluded=True (BabyAI's left-out levels)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    n_random = a.episodes if a.random_episodes is None else a.random_episodes
    a.domains = a.domains or gl.domains.control_names()
    options = parse_overrides(a.domain_option)

    work = []
    for name in a.domains:
        tasks = gl.domains.get(name, **options).tasks()
        if a.tasks:
            tasks = [t for t in tasks if t in a.tasks]
        work += [(name, options, t, a.episodes, n_random) for t in tasks]

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
