"""Input-pipeline throughput: real tokens per second per worker, per domain (gatolab.data.mixture).

    .venv/bin/python benchmarks/bench_data.py [--data runs/data] [--rows 1024] [--workers 2]

For each domain's dataset (generated with `gatolab data generate ... --out runs/data`;
missing ones are generated small here), one grain pipeline over that dataset alone
with L = 1024 and Gato's 25% prompts runs in this process (workers=0: the figure is
one worker's rate). Throughput counts real (non-padding) tokens after the per-process
episode cache is warm; "cold s" is what the warm-up batches cost (reading shards,
tokenizing whole episodes). "workers for 1M tok/s" is how many such workers would
feed `gato_79m` at 1M tokens/s, a rough figure for one H100. The last rows run the
whole default mixture with 0 and `--workers` grain worker processes, after
`--mixture-warmup` batches (the mixture touches many more episodes, so its caches take
longer to fill; "cold s" is that warm-up).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

DOMAINS = ("classic", "babyai", "metaworld", "text", "vision_language")
TARGET = 1_000_000  # tokens/s for gato_79m on one H100 (rough)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--rows", type=int, default=1024, help="rows timed per measurement (after warm-up)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=5, help="episodes per task if a dataset must be generated")
    ap.add_argument("--text-vocab", type=int, default=32_000)
    ap.add_argument("--mixture-warmup", type=int, default=64, help="batches before timing the mixture (fills each worker's cache)")
    args = ap.parse_args()

    import gatolab as gl
    from gatolab.data import mixture as mx

    root = Path(args.data)
    for d in DOMAINS:
        if not (root / d / "manifest.json").exists():
            print(f"generating {d} ({args.episodes} episodes per task) into {root} ...")
            gl.data.generate(d, root, episodes=args.episodes, workers=max(1, args.workers))
    tokenizer = gl.GatoTokenizer(gl.TokenizerConfig(), text=gl.default_text_tokenizer(args.text_vocab))
    print(f"\ninput pipeline, L=1024, prompts 25%, {os.cpu_count()} CPUs, rows timed: {args.rows}, batch {args.batch}\n")
    header = f"{'dataset':<18}{'workers':>8}{'tokens/s':>12}{'rows/s':>10}{'fill':>7}{'cold s':>8}{'workers for 1M tok/s':>22}"
    print(header)
    print("-" * len(header))
    for d in DOMAINS:
        mix = mx.Mixture(mx.MixtureConfig(weights={d: 1.0}), [root / d], tokenizer)
        r = mx.throughput(mix, num_rows=args.rows, batch_size=args.batch, workers=0, warmup_batches=4)
        print(f"{d:<18}{0:>8}{r['tokens_per_s']:>12,.0f}{r['rows_per_s']:>10,.0f}{r['fill']:>7.0%}{r['cold_seconds']:>8.1f}"
              f"{math.ceil(TARGET / r['tokens_per_s']):>22}")
    mix = mx.Mixture(mx.MixtureConfig(), [root / d for d in DOMAINS], tokenizer)
    for w in (0, args.workers):
        t0 = time.perf_counter()
        r = mx.throughput(mix, num_rows=args.rows, batch_size=args.batch, workers=w, warmup_batches=args.mixture_warmup)
        per = r["tokens_per_s"] / max(1, w)
        print(f"{'mixture (default)':<18}{w:>8}{r['tokens_per_s']:>12,.0f}{r['rows_per_s']:>10,.0f}{r['fill']:>7.0%}"
              f"{r['cold_seconds']:>8.1f}{math.ceil(TARGET / per):>22}   ({time.perf_counter() - t0:.0f} s)")
    print("\nworkers=0: rows made in this process (= one worker). The mixture's weights are Table-1 proportions.")


if __name__ == "__main__":
    main()
