"""Forward-pass speed of the NNX network and its Haiku twin, in one run, on this machine.

    .venv/bin/python benchmarks/bench_haiku.py                    # gato_79m, 1024 tokens, batch 1 and 2
    .venv/bin/python benchmarks/bench_haiku.py --preset tiny --batch 2

Both compute (B, T, V) float32 logits in evaluation mode from the same parameters and the
same multi-modal rows (synthetic text, image, discrete, continuous and action tokens packed
to T tokens), each under `jax.jit`, timed after compilation: the median of `--runs` calls,
the two implementations alternating call by call so a noisy machine slows both alike. The
NNX model runs twice, with its default `lax.scan` over layers and with the unrolled loop
the Haiku twin uses. The largest logit difference on the benchmark input is printed too.
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
    hk_forward = jax.jit(gh.transform(config).forward.apply)
    nnx_forwards = {}
    for name, scan in (("nnx (scan)", True), ("nnx (unrolled)", False)):
        graphdef, state = nnx.split(gh.to_nnx(params, dataclasses.replace(config, scan_layers=scan)))
        f = jax.jit(lambda s, b, g=graphdef: nnx.merge(g, s)(b))
        nnx_forwards[name] = (lambda b, f=f, s=state: f(s, b))
    print(f"{args.preset}, float32, {args.tokens} tokens, {jax.device_count()} {jax.devices()[0].platform} device(s), "
          f"median of {args.runs} calls after compilation")
    for batch_size in args.batch:
        batch = jax.device_put(rows(config, batch_size, args.tokens))
        fns = {"haiku": lambda b: hk_forward(params, None, b), **nnx_forwards}
        outs = {name: f(batch).block_until_ready() for name, f in fns.items()}  # compile
        ref = np.asarray(outs["nnx (scan)"])
        finite = np.isfinite(ref)
        diff = max(float(np.abs(np.asarray(o)[finite] - ref[finite]).max()) for o in outs.values())
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(args.runs):
            for name, f in fns.items():
                t = time.perf_counter()
                f(batch).block_until_ready()
                times[name].append(time.perf_counter() - t)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        print(f"batch {batch_size} ({int(batch.patches.shape[1])} patches/row): " + ", ".join(
            f"{name} {1e3 * t:.0f} ms" for name, t in med.items())
            + f"; haiku / nnx (scan) = {med['haiku'] / med['nnx (scan)']:.3f}, "
              f"haiku / nnx (unrolled) = {med['haiku'] / med['nnx (unrolled)']:.3f}; max |logit difference| {diff:.3g}")


if __name__ == "__main__":
    main()
