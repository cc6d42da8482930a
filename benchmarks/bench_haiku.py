"""Forward-pass speed of the NNX network and its Haiku twin, in one run, on this machine.

    .venv/bin/python benchmarks/bench_haiku.py                    # gato_79m, 1024 tokens, batch 1 and 2
    .venv/bin/python benchmarks/bench_haiku.py --preset tiny --batch 2

Both compute (B, T, V) float32 logits in evaluation mode from the same parameters and the
same multi-modal rows (synthetic text, image, discrete, continuous and action tokens packed
to T tokens), each under `jax.jit`, timed after compilation: the median of `--runs` calls,
the two implementations alternating call by call so a noisy machine slows both alike. The
NNX model runs twice, with its default `lax.scan` over layers and with the unrolled loop
the Haiku twin uses. Printed too: XLA's cost analysis of each compiled program (its FLOPs;
a `lax.scan` body may be counted once rather than once per layer) and the largest logit
difference on the benchmark input.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import jax
import numpy as np
from flax import nnx

import gatolab as gl
from gatolab.data.synthetic import multimodal_spec, small_text_tokenizer, synthetic_episode
from gatolab.model import haiku as gh


def rows(config: gl.model.ModelConfig, batch_size: int, tokens: int) -> gl.batch.TokenBatch:
    """`batch_size` rows of exactly `tokens` tokens: synthetic multi-modal episodes, cut to length."""
    tok = gl.GatoTokenizer(text=small_text_tokenizer())
    spec = multimodal_spec()
    seqs = [tok.tokenize_episode(synthetic_episode(spec, num_steps=tokens // 30 + 2, seed=b), spec).slice(0, tokens)
            for b in range(batch_size)]
    patches = max(s.num_patches for s in seqs)
    return gl.batch.TokenBatch.stack([s.to_arrays(tokens, patches) for s in seqs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="gato_79m")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    config = gl.model.ModelConfig.preset(args.preset, dtype="float32")
    params = jax.jit(gh.transform(config).forward.init)(jax.random.key(0), gh.example_batch(config))
    # Each forward pass as a pure function of (its parameters, batch): Haiku's params dict or NNX's state.
    forwards = {"haiku": (jax.jit(gh.transform(config).forward.apply), lambda b: (params, None, b))}
    for name, scan in (("nnx (scan)", True), ("nnx (unrolled)", False)):
        graphdef, state = nnx.split(gh.to_nnx(params, dataclasses.replace(config, scan_layers=scan)))
        forwards[name] = (jax.jit(lambda s, b, g=graphdef: nnx.merge(g, s)(b)), lambda b, s=state: (s, b))
    print(f"{args.preset}, float32, {args.tokens} tokens, {jax.device_count()} {jax.devices()[0].platform} device(s), "
          f"median of {args.runs} calls after compilation, the implementations alternating")
    for batch_size in args.batch:
        batch = jax.device_put(rows(config, batch_size, args.tokens))
        compiled, flops, outs = {}, {}, {}
        for name, (f, inputs) in forwards.items():
            compiled[name] = f.lower(*inputs(batch)).compile()
            flops[name] = compiled[name].cost_analysis().get("flops", float("nan"))
            outs[name] = np.asarray(compiled[name](*inputs(batch)))
        finite = np.isfinite(outs["nnx (scan)"])
        diff = max(float(np.abs(o[finite] - outs["nnx (scan)"][finite]).max()) for o in outs.values())
        times: dict[str, list[float]] = {name: [] for name in forwards}
        for _ in range(args.runs):
            for name, (_, inputs) in forwards.items():
                args_ = inputs(batch)
                t = time.perf_counter()
                compiled[name](*args_).block_until_ready()
                times[name].append(time.perf_counter() - t)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        print(f"batch {batch_size} ({int(batch.patches.shape[1])} patches/row):")
        for name, t in med.items():
            print(f"  {name:15s} {1e3 * t:8.0f} ms  (min {1e3 * min(times[name]):.0f}, max {1e3 * max(times[name]):.0f}; "
                  f"XLA cost analysis {flops[name] / 1e9:.1f} GFLOP)")
        print(f"  haiku / nnx (scan) = {med['haiku'] / med['nnx (scan)']:.3f}, "
              f"haiku / nnx (unrolled) = {med['haiku'] / med['nnx (unrolled)']:.3f}; max |logit difference| {diff:.3g}")

if __name__ == "__main__":
    main()
