"""Batched deployment speed on this machine (issue 14), in one run, printed as tables.

    .venv/bin/python benchmarks/bench_eval.py                     # everything, small sizes (SIZES["default"])
    .venv/bin/python benchmarks/bench_eval.py --full              # the sizes of issue 14's tables
    .venv/bin/python benchmarks/bench_eval.py --parts latency,accuracy   # gato_79m only
    .venv/bin/python benchmarks/bench_eval.py --episodes 8 --max_steps 10 --tasks CartPole-v1,reach-v3 \\
        --batches 1,8 --steps 6 --accuracy_steps 50               # a small run

Measures, each figure against its baseline measured in the same run:
  1. evaluation throughput, episodes per second, on the demo's control tasks (the `demo`
     config's datasets: 5 classic control, 3 BabyAI, 2 Meta-World) with a stand-in of
     the demo checkpoint: the `demo` config's model (`gl.configs.get("demo")`, the tiny
     preset, 256-token context) with RANDOM weights (speed does not depend on the
     weights; episode lengths do, so the episodes are capped at `--max_steps`). Prompts
     are the domains' expert demonstrations (`AgentConfig(prompt="start")`, the demo's).
     "sequential" is what evaluation did before batching: one environment, one episode
     after another (`run_episode` per seed); "B = b" is `run_episodes` on b copies of the
     environment (what `gl.evaluate.evaluate_task(batch=b)` runs). Each configuration
     plays every task once untimed first, so compilation is left out of the timed pass.
     Times include the environments' own steps (the same work in every row).
  2. per-action latency at gato_79m (`ModelConfig.preset("gato_79m")`, random weights),
     B = 1, ~1000 tokens of context (a prompt of whole Meta-World-like timesteps), a
     Meta-World-like step: 39 continuous observations, '|', a 4-dim continuous action
     (44 tokens per timestep): tokenize the observation, one `Decoder.act` call (feed
     the chunk, choose the 4 action tokens), decode the action; median over steps. Per
     decoder setting (`dtype` for single tokens / `chunk_dtype` for chunks / `cache_dtype`),
     and at B = 16: the step time divided by 16 against B = 1's.
  3. the accuracy cost of bfloat16 decoding at gato_79m: per decoder setting, over
     `--accuracy_steps` teacher-forced random steps (random observations and actions
     fed to both decoders), the largest |logit difference| against float32 over the
     legal ids of every action token, and how often the greedy action id differs.

On this machine (AMD EPYC Zen 3, 2 cores, AVX2, no AVX-512/bfloat16 instructions) bfloat16
decoding is slower than float32: XLA converts bfloat16 weights to float32 around every
matrix product, so storing them in bfloat16 does not halve what a step reads.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


# ----------------------------------------------------------------------------------------
# 1. evaluation throughput (demo-shaped)
# ----------------------------------------------------------------------------------------
def _demo_tasks() -> list[tuple[str, str]]:
    import gatolab as gl
    from gatolab.domains import registry

    cfg = gl.configs.get("demo")
    out = []
    for ds in cfg.data.datasets.values():
        if registry.entry(ds.domain).kind != "control":
            continue
        for task in ds.tasks or registry.get(ds.domain).tasks():
            out.append((ds.domain, task))
    return out


def _throughput(args) -> dict:
    import gatolab as gl
    from flax import nnx

    from gatolab.agent import EVAL_SEED, AgentConfig, GatoAgent, PromptBank, run_episode, run_episodes
    from gatolab.domains import registry

    cfg = gl.configs.get("demo")
    model = gl.model.Gato(cfg.model_config(), rngs=nnx.Rngs(0))  # random weights, the demo's shape and vocabulary
    from gatolab.train.run import tokenizer_for

    tokenizer = tokenizer_for(cfg)  # the demo's id layout and text model
    tasks = _demo_tasks()
    if args.tasks:
        keep = args.tasks.split(",")
        tasks = [t for t in tasks if t[1] in keep]
    bank = PromptBank()
    agent_cfg = AgentConfig(prompt="start", temperature=1.0)
    seeds = [EVAL_SEED + i for i in range(args.episodes)]

    def play(domain: str, task: str, b: int | None) -> tuple[float, int]:
        dom = registry.get(domain)
        agent = GatoAgent(model, tokenizer, agent_cfg, prompts=bank)
        envs = [dom.make(task, seed=EVAL_SEED) for _ in range(1 if b is None else min(b, len(seeds)))]
        try:
            t0 = time.perf_counter()
            if b is None:  # before batching: one episode after another
                traces = [run_episode(agent, envs[0], seed=s, max_steps=args.max_steps) for s in seeds]
            else:
                traces = run_episodes(agent, envs, seeds, max_steps=args.max_steps)
            return time.perf_counter() - t0, int(sum(t.length for t in traces))
        finally:
            for e in envs:
                e.close()

    for domain, task in tasks:  # demonstrations made once, outside every timing
        bank.episode(task, seed=0)
        for s in seeds:
            bank.episode(task, seed=s)
    configs = [("sequential", None)] + [(f"B = {b}", b) for b in args.batches]
    rows = {}
    for name, b in configs:
        for domain, task in tasks:  # untimed pass: compiles every shape this configuration meets
            play(domain, task, b)
        per_task, steps = {}, 0
        for domain, task in tasks:
            sec, n = play(domain, task, b)
            per_task[task] = sec
            steps += n
        rows[name] = {"seconds": sum(per_task.values()), "per_task": per_task, "env_steps": steps}
        print(f"  ... {name}: {rows[name]['seconds']:.1f} s", file=sys.stderr, flush=True)
    return {"tasks": [t for _, t in tasks], "episodes": args.episodes, "rows": rows}


# ----------------------------------------------------------------------------------------
# 2./3. gato_79m latency and accuracy
# ----------------------------------------------------------------------------------------
def _mw_spec(action_dims: int = 4):
    import gatolab as gl

    return gl.EnvSpec("metaworld-like", {"state": gl.FieldSpec.continuous((39,))},
                      {"action": gl.FieldSpec.continuous((action_dims,), -1.0, 1.0)})


def _model_79m():
    from flax import nnx

    import gatolab as gl

    return gl.model.Gato(gl.model.ModelConfig.preset("gato_79m", context_len=1024), rngs=nnx.Rngs(0))


def _setting(s: str) -> dict:
    """"float32" or "dtype/chunk_dtype[/cache_dtype]" -> Decoder keyword arguments."""
    parts = s.split("/")
    out = {"dtype": parts[0], "chunk_dtype": parts[1] if len(parts) > 1 else parts[0]}
    if len(parts) > 2:
        out["cache_dtype"] = parts[2]
    return out


def _latency(args) -> dict:
    import gatolab as gl

    model = _model_79m()
    spec = _mw_spec()
    tok = gl.GatoTokenizer()
    per_step = len(tok.tokenize_episode(gl.testing.synthetic_episode(spec, 1, 0), spec))
    n_prompt = args.context // per_step
    prompt = tok.tokenize_episode(gl.testing.synthetic_episode(spec, n_prompt, seed=1), spec)
    obs = gl.testing.synthetic_episode(spec, num_steps=args.steps + 3, seed=2)
    ranges = tok.action_token_ranges(spec)

    def obs_tokens(t):
        return tok.tokenize_observation({k: np.asarray(v[t]) for k, v in obs.observations.items()}, spec, timestep=t)

    out = {}
    for setting in args.settings.split(","):
        for b in (1, args.batch):
            dec = gl.model.Decoder(model, batch_size=b, **_setting(setting))
            dec.reset(seeds=range(b))
            dec.prefill([prompt] * b)
            times = []
            for t in range(args.steps + 2):  # the first two compile
                t0 = time.perf_counter()
                res = dec.act([obs_tokens(t)] * b, ranges, 1.0)
                for i in range(b):
                    tok.decode_action(res.ids[i], spec)
                times.append(time.perf_counter() - t0)
            out[f"{setting}|{b}"] = {"ms": 1e3 * float(np.median(times[2:])), "p90_ms": 1e3 * float(np.percentile(times[2:], 90)),
                                     "context": int(dec.num_cached[0]), "tokens_per_step": per_step}
            print(f"  ... {setting} B={b}: {out[f'{setting}|{b}']['ms']:.1f} ms", file=sys.stderr, flush=True)
    return out


def _accuracy(args) -> dict:
    import gatolab as gl

    model = _model_79m()
    spec = _mw_spec()
    tok = gl.GatoTokenizer()
    ranges = tok.action_token_ranges(spec)
    per_step = len(tok.tokenize_episode(gl.testing.synthetic_episode(spec, 1, 0), spec))
    # One long random episode, fed to every decoder the same way: observation, then its
    # (random) action tokens one by one; the logits of every action token are compared.
    ep = gl.testing.synthetic_episode(spec, num_steps=args.accuracy_steps, seed=3)
    seq = tok.tokenize_episode(ep, spec)
    starts, ends = seq.timestep_bounds()

    def run(setting: str) -> np.ndarray:
        dec = gl.model.Decoder(model, **_setting(setting))
        per_token = []
        for t in range(args.accuracy_steps):
            step = seq.slice(int(starts[t]), int(ends[t]))
            action_ids = np.asarray(step.ids)[np.asarray(step.is_action)]
            obs = tok.tokenize_observation({k: np.asarray(v[t]) for k, v in ep.observations.items()}, spec, timestep=t)
            lg = [dec.observe(obs, return_logits=True)[-1]]  # predicts action token 0 (a chunk)
            for j in range(len(ranges) - 1):  # each fed alone, as `act` feeds them (single-token steps)
                lg.append(dec.feed_actions(action_ids[j: j + 1], return_logits=True)[0])
            dec.feed_actions(action_ids[-1:])
            per_token.append(np.stack([lg[j][lo:hi] for j, (lo, hi) in enumerate(ranges)]))
        return np.stack(per_token).astype(np.float64)  # (steps, A, W)

    ref = run("float32")
    out = {"steps": args.accuracy_steps, "action_tokens": int(ref.shape[0] * ref.shape[1]), "tokens_per_step": per_step}
    for setting in args.settings.split(","):
        if setting == "float32":
            continue
        got = run(setting)
        diff = np.abs(got - ref)
        out[setting] = {"max_abs_dlogit": float(diff.max()), "mean_abs_dlogit": float(diff.mean()),
                        "logit_std": float(ref.std()),
                        "argmax_differs": float(np.mean(got.argmax(-1) != ref.argmax(-1)))}
        print(f"  ... accuracy {setting}: {out[setting]}", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------
def _run(part: str, argv: list[str]) -> dict:
    """Runs one part in a fresh process (its own compile caches and memory)."""
    cmd = [sys.executable, __file__, "--worker", part, *argv]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark part {part} failed (exit {proc.returncode}); its stderr is above")


# Unset flags take these. "default" is a few minutes on 2 quiet cores; "full" (--full) is
# the run quoted in issue 14 (~45 min on 2 cores shared with other work, load average 7).
SIZES = {
    "default": dict(episodes=50, max_steps=4, batches=[1, 8, 20, 50], steps=5, settings="float32,bfloat16/float32",
                    accuracy_steps=25),
    "full": dict(episodes=50, max_steps=12, batches=[1, 8, 20, 50], steps=10,
                 settings="float32,bfloat16/float32,bfloat16/bfloat16/bfloat16", accuracy_steps=60),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["throughput", "latency", "accuracy"])
    ap.add_argument("--parts", default="throughput,latency,accuracy")
    ap.add_argument("--full", action="store_true", help="the sizes of the run quoted in issue 14 (see SIZES)")
    ap.add_argument("--tasks", default=None, help="comma-separated demo tasks (default: all 10)")
    ap.add_argument("--episodes", type=int, help="episodes per task (the demo evaluates 50)")
    ap.add_argument("--max_steps", type=int, help="steps per episode at most (random weights)")
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--steps", type=int, help="timed steps per latency setting")
    ap.add_argument("--context", type=int, default=1000, help="tokens of context for the latency part")
    ap.add_argument("--batch", type=int, default=16, help="the batched latency row's B")
    ap.add_argument("--settings", help="decoder settings dtype/chunk_dtype[/cache_dtype]; the first is the baseline")
    ap.add_argument("--accuracy_steps", type=int, help="teacher-forced steps of the accuracy part")
    args, _ = ap.parse_known_args(argv)
    for name, value in SIZES["full" if args.full else "default"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.worker:
        fn = {"throughput": _throughput, "latency": _latency, "accuracy": _accuracy}[args.worker]
        print("RESULT " + json.dumps(fn(args)), flush=True)
        return 0
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--parts")]
    parts = args.parts.split(",")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other processes on this machine slow every number below; compare within a table)\n")

    if "throughput" in parts:
        r = _run("throughput", passthrough)
        base = r["rows"]["sequential"]["seconds"]
        eps = r["episodes"] * len(r["tasks"])
        print(f"evaluation throughput: demo-shaped model (tiny preset, 256-token context, RANDOM weights), "
              f"{len(r['tasks'])} tasks x {r['episodes']} episodes, at most {args.max_steps} steps each, prompted")
        print(f"{'config':<12} {'seconds':>8} {'episodes/s':>10} {'env steps/s':>11} {'vs sequential':>13}")
        for name, row in r["rows"].items():
            print(f"{name:<12} {row['seconds']:>8.1f} {eps / row['seconds']:>10.2f} {row['env_steps'] / row['seconds']:>11.0f} "
                  f"{base / row['seconds']:>12.2f}x")
        print("per task, seconds: " + "; ".join(
            f"{t}: " + "/".join(f"{row['per_task'][t]:.1f}" for row in r["rows"].values()) for t in r["tasks"]))
        print(f"  (in the order {', '.join(r['rows'])})\n")

    settings = args.settings.split(",")
    if "latency" in parts:
        r = _run("latency", passthrough)
        base = r[f"{settings[0]}|1"]["ms"]
        any_row = next(iter(r.values()))
        print(f"per-action latency at gato_79m (random weights): {any_row['tokens_per_step']} tokens per Meta-World-like "
              f"step, ~{any_row['context']} tokens of context; median of {args.steps} steps")
        print("setting = single-token dtype / chunk dtype / cache dtype")
        print(f"{'setting':<30} {'B=1 ms':>8} {'p90':>7} {'vs ' + settings[0]:>12} {f'B={args.batch} ms':>9} "
              f"{f'ms/env @{args.batch}':>10} {'per-env vs B=1':>14}")
        for s in settings:
            one, many = r[f"{s}|1"], r[f"{s}|{args.batch}"]
            full = "/".join([*s.split("/"), *["float32"] * (3 - len(s.split("/")))][:3]) if "/" in s else f"{s}/{s}/float32"
            print(f"{full:<30} {one['ms']:>8.1f} {one['p90_ms']:>7.1f} {base / one['ms']:>11.2f}x {many['ms']:>9.1f} "
                  f"{many['ms'] / args.batch:>10.1f} {one['ms'] / (many['ms'] / args.batch):>13.1f}x")
        print()

    if "accuracy" in parts:
        r = _run("accuracy", passthrough)
        print(f"accuracy against float32 decoding at gato_79m (random weights): {r['steps']} teacher-forced random "
              f"Meta-World-like steps, {r['action_tokens']} action tokens, logits over each token's legal ids")
        print(f"{'setting':<30} {'max |dlogit|':>12} {'mean |dlogit|':>13} {'logit std':>9} {'greedy id differs':>17}")
        for s in settings[1:]:
            a = r[s]
            print(f"{s:<30} {a['max_abs_dlogit']:>12.4f} {a['mean_abs_dlogit']:>13.5f} {a['logit_std']:>9.3f} "
                  f"{a['argmax_differs']:>16.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
