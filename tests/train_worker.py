"""A training process the tests start in a subprocess (multi-device, multi-host, SIGKILL).

    python tests/train_worker.py OUT_DIR '{"steps": 6, ...}' [--kill-at STEP] [--report FILE] [--lowered FILE]

Writes `report` JSON: per-step losses and a checksum of the final parameters; `lowered`:
the train step of one more batch lowered to StableHLO text (its sharding annotations).
"""

import argparse
import json
import os
import signal
import sys

import jax
import numpy as np
from flax import nnx

import gatolab as gl
from gatolab.train import Trainer, TrainConfig
from gatolab.train.checkpoint import tokenizer_meta


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("overrides")
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--report", default=None)
    ap.add_argument("--lowered", default=None)
    ap.add_argument("--coordinator", default=None)
    ap.add_argument("--process-id", type=int, default=None)
    ap.add_argument("--num-processes", type=int, default=None)
    args = ap.parse_args()
    if args.coordinator:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    over = json.loads(args.overrides)
    if "mesh_shape" in over:
        over["mesh_shape"] = tuple(over["mesh_shape"])
    cfg = TrainConfig.preset_config("tiny", batch_size=8, seq_len=64, max_patches=32, log_every=1, peak_flops=1e11)
    cfg = cfg.replace(**over)
    src = gl.testing.SyntheticBatches(cfg.batch_size, cfg.sequence_length, cfg.max_patches, seed=cfg.seed,
                                      shard_index=jax.process_index(), shard_count=jax.process_count())
    trainer = Trainer(cfg, args.out, src, extra_meta=tokenizer_meta(src.tokenizer))
    losses = {}

    def on_metrics(m):
        losses[m["step"]] = m["loss"]
        if args.kill_at is not None and m["step"] == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit: a real crash

    trainer.run(progress=False, on_metrics=on_metrics)
    live = jax.tree.leaves(nnx.state(nnx.merge(trainer.graphdef, trainer.state)[0], nnx.Param))
    # fraction of parameter elements that are split across devices (FSDP / tensor parallel)
    split = sum(p.size for p in live if not p.sharding.is_fully_replicated) / sum(p.size for p in live)
    params = jax.tree.leaves(nnx.to_pure_dict(nnx.state(nnx.merge(trainer.graphdef, trainer.state)[0], nnx.Param)))
    checksum = float(sum(np.abs(np.asarray(p, np.float64)).sum() for p in params))
    if args.lowered and jax.process_index() == 0:
        with open(args.lowered, "w") as f:
            f.write(trainer.lower_step(next(src)).as_text())
    if args.report and jax.process_index() == 0:
        with open(args.report, "w") as f:
            json.dump({"losses": losses, "param_abs_sum": checksum, "devices": jax.device_count(), "sharded_fraction": split,
                       "processes": jax.process_count()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
