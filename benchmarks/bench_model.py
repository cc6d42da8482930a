"""Model speed and memory on this machine, in one run, printed as a table.

    .venv/bin/python benchmarks/bench_model.py            # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_model.py --quick    # tiny only

Measures:
  1. matmul peak (GFLOP/s) in float32 and bfloat16 (float32 accumulation);
  2. training step (AdamW, masked loss, output projection at targets only) for `tiny`
     and `gato_79m`: tokens/s, peak resident memory, model-FLOP utilisation;
  3. per-action decode latency at ~1000 tokens of context, with the key/value cache vs
     re-running the whole context for every action token, for a Meta-World-like step
     (39 continuous observations, 4 continuous action dims: 44 tokens/step) and an
     Atari-like step (84x84 RGB image -> 36 patches, 1 discrete action: 38 tokens/step).

Every measurement runs in its own subprocess so peak memory (ru_maxrss) is its own.
Memory columns: "step GB" is what XLA's memory analysis says the compiled training step
holds (arguments: parameters, AdamW state, batch; outputs not aliased to donated inputs;
temporaries); "peak RSS GB" is the whole process at its peak (Python, JAX runtime,
compilation, the model before donation).
FLOP conventions: training = 6 x (matmul parameters of the blocks) per token
+ 12 x layers x T x D per token for attention (PaLM's convention, no causal discount)
+ 6 x D x V per gathered target for the output projection (what the step computes);
MFU is against the measured matmul peak of the step's compute dtype.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


# ----------------------------------------------------------------------------------------
# workers (each runs in a fresh process)
# ----------------------------------------------------------------------------------------
def _peak(dtype: str) -> dict:
    import jax
    import jax.numpy as jnp

    dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    m, k, n = 2048, 768, 3072
    a, b = jnp.ones((m, k), dt), jnp.ones((k, n), dt)
    f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    f(a, b).block_until_ready()
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(5):
            f(a, b).block_until_ready()
        best = min(best, (time.perf_counter() - t) / 5)
    return {"gflops": 2 * m * k * n / best / 1e9}


def _rss_now_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    return float("nan")


def _metaworld_spec():
    import gatolab as gl

    return gl.EnvSpec("metaworld-like", {"state": gl.FieldSpec.continuous((39,))},
                      {"action": gl.FieldSpec.continuous((4,), -1.0, 1.0)})


def _atari_spec():
    import gatolab as gl

    return gl.EnvSpec("atari-like", {"frame": gl.FieldSpec.image(84, 84, 3)}, {"button": gl.FieldSpec.discrete(18)})


def _train(preset: str, dtype: str, batch: int, length: int, steps: int, remat: str) -> dict:
    import jax
    import optax
    from flax import nnx

    import gatolab as gl

    cfg = gl.model.ModelConfig.preset(preset, dtype=dtype, remat=remat, context_len=max(length, 256))
    model = gl.model.Gato(cfg, rngs=nnx.Rngs(0))
    spec = _metaworld_spec()
    tok = gl.GatoTokenizer()
    ep = gl.testing.synthetic_episode(spec, num_steps=4 * length // 44 + 8, seed=0)
    seq = tok.tokenize_episode(ep, spec)
    windows = list(seq.windows(length))[:batch]
    arrays = gl.batch.TokenBatch.stack([w.to_arrays(length, 1) for w in windows])
    max_targets = gl.model.target_bucket(arrays)
    opt = optax.adamw(1e-4, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1)  # GATO_SPEC §4
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = opt.init(params)

    def loss(params, rest, batch, key):
        m = nnx.merge(graphdef, params, rest)
        return gl.model.loss_fn(m, batch, train=True, key=key, max_targets=max_targets)

    @jax.jit
    def step(params, opt_state, rest, batch, key):
        (l, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, rest, batch, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, l

    step = jax.jit(step.__wrapped__, donate_argnums=(0, 1))
    batch_j = jax.device_put(arrays)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = step.lower(params, opt_state, rest, batch_j, key).compile()
    mem = compiled.memory_analysis()
    # What the step itself holds at its peak: its arguments (parameters, optimizer state,
    # batch), outputs not aliased to donated arguments, and XLA's temporary buffers.
    step_gb = (mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
               + mem.temp_size_in_bytes) / 1e9
    step = compiled
    params, opt_state, l = step(params, opt_state, rest, batch_j, key)
    l.block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(steps):
        t = time.perf_counter()
        params, opt_state, l = step(params, opt_state, rest, batch_j, jax.random.fold_in(key, i))
        l.block_until_ready()
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))
    tokens = batch * length
    blocks = cfg.num_layers * (4 * cfg.embed_dim * cfg.attention_dim + (3 if cfg.activation == "geglu" else 2) * cfg.embed_dim * cfg.ff_dim)
    flops = 6 * blocks * tokens + 12 * cfg.num_layers * length * cfg.attention_dim * tokens
    flops += 6 * cfg.embed_dim * cfg.padded_vocab_size * batch * max_targets
    return {"tokens_per_s": tokens / dt, "step_s": dt, "compile_s": compile_s, "loss": float(l),
            "tflop_per_step": flops / 1e12, "targets_per_row": max_targets, "step_gb": step_gb,
            "temp_gb": mem.temp_size_in_bytes / 1e9, "rss_now_gb": _rss_now_gb(),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def _decode(preset: str, dtype: str, env: str, steps: int, context: int, decode_dtype: str) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import gatolab as gl

    cfg = gl.model.ModelConfig.preset(preset, dtype=dtype, context_len=1024)
    model = gl.model.Gato(cfg, rngs=nnx.Rngs(0))
    spec = _metaworld_spec() if env == "metaworld" else _atari_spec()
    tok = gl.GatoTokenizer()
    per_step = len(tok.tokenize_episode(gl.testing.synthetic_episode(spec, 1, 0), spec))
    n_prompt = context // per_step
    ep = gl.testing.synthetic_episode(spec, num_steps=n_prompt + steps + 3, seed=1)
    seq = tok.tokenize_episode(ep, spec)
    ranges = tok.action_token_ranges(spec)
    obs = gl.testing.synthetic_episode(spec, num_steps=steps + 3, seed=2)

    def obs_tokens(t):
        o = {k: np.asarray(v[t]) for k, v in obs.observations.items()}
        return tok.tokenize_observation(o, spec, timestep=t)

    # With the cache.
    single, chunk = decode_dtype.split("/") if "/" in decode_dtype else (decode_dtype, decode_dtype)
    dec = gl.model.Decoder(model, dtype=single, chunk_dtype=chunk)
    prompt = seq.window(0, n_prompt * per_step)
    dec.prefill(prompt)
    key = jax.random.key(0)
    for t in range(2):  # warm-up compiles every chunk shape used below
        dec.observe(obs_tokens(t))
        dec.sample_action(ranges, temperature=1.0, rng=jax.random.fold_in(key, t))
    cached = []
    for t in range(2, steps + 2):
        t0 = time.perf_counter()
        dec.observe(obs_tokens(t))
        ids = dec.sample_action(ranges, temperature=1.0, rng=jax.random.fold_in(key, t))
        tok.decode_action(ids, spec)
        cached.append(time.perf_counter() - t0)
    context_tokens = int(dec.num_cached[0])  # the decoder's (B,) counts, B = 1

    # Without a cache: every action token re-runs the whole ~1000-token window
    # (what a policy without key/value memory does); logits only where needed.
    length = 1024
    window = seq.last_window(context)
    arrays = gl.batch.TokenBatch.stack([window.to_arrays(length, max(window.num_patches, 1))])
    n_act = len(ranges)

    @jax.jit
    def full(batch, pos):
        h = model.hidden(batch)  # (1, T, D)
        return gl.model.logits(model, jax.lax.dynamic_slice_in_dim(h, pos, 1, axis=1))[0, 0]  # (V,) at one position

    pos = len(window) - n_act - 1
    full(arrays, pos).block_until_ready()
    nocache = []
    for _ in range(max(2, steps // 4)):
        t0 = time.perf_counter()
        for j in range(n_act):
            lg = full(arrays, pos + j)
            lo, hi = ranges[j]
            int(jnp.argmax(lg[lo:hi]))
        nocache.append(time.perf_counter() - t0)
    return {"cached_ms": 1e3 * float(np.median(cached)), "cached_p90_ms": 1e3 * float(np.percentile(cached, 90)),
            "nocache_ms": 1e3 * float(np.median(nocache)), "tokens_per_step": per_step, "context_tokens": context_tokens,
            "window_tokens": len(window), "dropped_timesteps": int(np.asarray(dec.dropped_timesteps)[0]),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def _worker(args) -> None:
    kind = args.worker
    if kind == "peak":
        out = _peak(args.dtype)
    elif kind == "train":
        out = _train(args.preset, args.dtype, args.batch, args.length, args.steps, args.remat)
    else:
        out = _decode(args.preset, args.dtype, args.env, args.steps, args.context, args.decode_dtype)
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------
def _run(**kw) -> dict:
    cmd = [sys.executable, __file__]
    for k, v in kw.items():
        cmd += [f"--{k}", str(v)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark worker {kw} failed:\n{proc.stderr[-3000:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=["peak", "train", "decode"])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--remat", default="block", help="ModelConfig.remat for the training step")
    ap.add_argument("--env", default="metaworld")
    ap.add_argument("--context", type=int, default=1000)
    ap.add_argument("--decode_dtype", default="float32")
    ap.add_argument("--quick", action="store_true", help="tiny preset only")
    ap.add_argument("--presets", default=None, help="comma-separated presets (default: tiny,gato_79m)")
    ap.add_argument("--dtypes", default="bfloat16,float32", help="training dtypes to compare")
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0

    presets = (args.presets or ("tiny" if args.quick else "tiny,gato_79m")).split(",")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other processes on this machine slow every number below)\n")
    dtypes = args.dtypes.split(",")
    peak = {dt: _run(worker="peak", dtype=dt)["gflops"] for dt in ("float32", "bfloat16")}
    print(f"matmul peak (2048x768 @ 768x3072, float32 accumulation): float32 {peak['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s\n")
    print("training step: batch 2 x 1024 tokens (Meta-World-like data, 4 targets per 44 tokens), AdamW")
    print(f"{'preset':<10} {'dtype':<9} {'tokens/s':>9} {'step s':>7} {'TFLOP/step':>10} {'MFU':>6} {'step GB':>8} {'peak RSS GB':>11} {'compile s':>9}")
    for preset in presets:
        for dt in dtypes:
            r = _run(worker="train", preset=preset, dtype=dt, batch=2, length=1024, steps=5 if preset == "tiny" else 3)
            mfu = r["tflop_per_step"] * 1e3 / r["step_s"] / peak[dt]
            print(f"{preset:<10} {dt:<9} {r['tokens_per_s']:>9.0f} {r['step_s']:>7.2f} {r['tflop_per_step']:>10.2f} "
                  f"{mfu:>6.0%} {r['step_gb']:>8.2f} {r['peak_rss_gb']:>11.2f} {r['compile_s']:>9.1f}")
    print("\nper-action latency at ~1000 tokens of context: tokenize the observation, feed it, sample every action")
    print("token (restricted to legal ids), decode the action; median over steps. Model dtype bfloat16 (patch convs")
    print("in bfloat16); 'decode' is the transformer's dtype for single tokens / chunks of >= 8 tokens")
    print("(float32/bfloat16 is the Decoder's default on CPU). No-cache: re-run the ~1000-token window")
    print("once per action token.")
    print(f"{'preset':<10} {'decode':<17} {'env':<10} {'tok/step':>8} {'context':>7} {'cached ms':>9} {'p90 ms':>7} {'no-cache ms':>11} {'peak GB':>8}")
    for preset in presets:
        for env in ("metaworld", "atari"):
            for dt in ("float32/bfloat16", "float32", "bfloat16"):
                r = _run(worker="decode", preset=preset, dtype="bfloat16", env=env, steps=12, context=1000, decode_dtype=dt)
                print(f"{preset:<10} {dt:<17} {env:<10} {r['tokens_per_step']:>8} {r['context_tokens']:>7} {r['cached_ms']:>9.1f} "
                      f"{r['cached_p90_ms']:>7.1f} {r['nocache_ms']:>11.1f} {r['peak_rss_gb']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
