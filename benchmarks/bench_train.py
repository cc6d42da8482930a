"""End-to-end training throughput (data pipeline included) vs the model-only step.

    .venv/bin/python benchmarks/bench_train.py             # tiny and gato_79m (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_train.py --quick     # tiny only

For each preset, in its own subprocess (so peak memory is its own): generates a small
real dataset once (classic control + BabyAI experts), builds the grain mixture (Table-1
weights, filtering, prompts; batch 2 x 1024 like the model benchmark), then times
  model-only: N batches prepared beforehand and held in memory (no input pipeline);
  end-to-end: N steps each pulling a fresh batch from the mixture iterator
              (grain worker processes prepare rows while the step runs).
Reports tokens/s (real tokens, padding excluded), MFU against the measured float32
matmul peak, peak resident memory, and the ratio end-to-end / model-only. Target on
this CPU: >= 0.90 (the input pipeline must not be the bottleneck).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _worker(preset: str, data_root: str, steps: int, workers: int) -> dict:
    import jax
    import numpy as np

    import gatolab as gl
    from gatolab.data.mixture import Mixture, MixtureConfig
    from gatolab.train import Trainer, TrainConfig, measure_peak_flops, train_flops_per_token

    tok = gl.GatoTokenizer(text=gl.default_text_tokenizer(512, max_chars=100_000))  # the tests' tiny text model
    cfg = TrainConfig.preset_config("tiny", preset=preset, batch_size=2, seq_len=1024, max_patches=None, steps=10**9,
                                    ckpt_every=10**9, log_every=10**9)
    cfg = cfg.replace(**{"model.context_len": 1024, "model.dropout": 0.1 if preset != "tiny" else 0.0})
    mix = Mixture(MixtureConfig(sequence_length=1024), [os.path.join(data_root, d) for d in ("classic", "babyai")], tok)
    it = mix.iterator(2, workers=workers)
    trainer = Trainer(cfg, tempfile.mkdtemp(), it)
    peak = measure_peak_flops()
    warm = [next(it) for _ in range(12)]
    for b in warm:  # compile the target buckets (powers of two) the batches need
        trainer.train_step(b)

    def run(batches):
        t = time.perf_counter()
        tokens, targets = 0, 0.0
        for b in batches:
            m = trainer.train_step(b)
            tokens += int(np.asarray(b.tokens.valid).sum())
            targets += m["targets"]
        jax.block_until_ready(trainer.state)
        return tokens / (time.perf_counter() - t), targets / tokens

    # model-only: N batches already in memory; end-to-end: N fresh batches from the
    # iterator. Same distribution of domains and target counts, so the same compute.
    in_memory = [next(it) for _ in range(steps)]
    model_tps, frac = run(in_memory)
    e2e_tps, frac_e2e = run(next(it) for _ in range(steps))
    mc = trainer.model_config
    flops = train_flops_per_token(mc, 1024, frac_e2e)
    return {
        "preset": preset, "params": gl.model.count_params(trainer.model), "peak_gflops": peak / 1e9,
        "model_only_tokens_per_s": model_tps, "e2e_tokens_per_s": e2e_tps, "ratio": e2e_tps / model_tps,
        "mfu_e2e": e2e_tps * flops / peak, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "workers": workers, "steps": steps,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--worker", nargs=2, metavar=("PRESET", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker[0], args.worker[1], args.steps, args.workers)))
        return 0
    import gatolab as gl

    root = tempfile.mkdtemp(prefix="gatolab-bench-train-")
    gl.data.generate("classic", root, episodes=10, progress=False)
    gl.data.generate("babyai", root, episodes=10, tasks=["BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToObj-v0",
                                                          "BabyAI-OpenDoor-v0"], progress=False)
    rows = []
    for preset in ["tiny"] + ([] if args.quick else ["gato_79m"]):
        steps = args.steps or (40 if preset == "tiny" else 6)
        out = subprocess.run([sys.executable, __file__, "--worker", preset, root, "--steps", str(steps), "--workers",
                              str(args.workers)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nEnd-to-end training on this machine (batch 2 x 1024, float32, grain workers={args.workers})")
    print(f"{'preset':<10} {'params':>10} {'model-only tok/s':>17} {'end-to-end tok/s':>17} {'ratio':>6} {'MFU':>6} {'peak RSS':>9}")
    for r in rows:
        print(f"{r['preset']:<10} {r['params']/1e6:>9.1f}M {r['model_only_tokens_per_s']:>17.0f} {r['e2e_tokens_per_s']:>17.0f} "
              f"{r['ratio']:>6.2f} {r['mfu_e2e']:>6.1%} {r['peak_rss_gb']:>7.1f}GB")
    print(f"matmul peak used for MFU: {rows[0]['peak_gflops']:.0f} GFLOP/s (float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
