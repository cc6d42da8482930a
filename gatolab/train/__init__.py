"""Training (Gato §2.3): optimiser, sharding, checkpoints and the loop.

    trainer = gl.train.Trainer(gl.train.TrainConfig.preset_config("tiny"), "runs/x", source)
    trainer.run()
"""

from gatolab.train.checkpoint import CheckpointError, Checkpointer
from gatolab.train.loop import (BatchSource, Trainer, TrainConfig, TrainingDiverged, measure_peak_flops, read_metrics,
                                train_flops_per_token)
from gatolab.train.run import train
from gatolab.train.checkpoint import load_model, tokenizer_meta
from gatolab.train.optim import OptimConfig, learning_rate_schedule, make_optimizer
from gatolab.train.runtime import runtime_info
from gatolab.train.sharding import LOGICAL_RULES, activation_sharding, make_mesh, shard_batch, shard_model

__all__ = [
    "LOGICAL_RULES", "BatchSource", "CheckpointError", "Checkpointer", "OptimConfig", "TrainConfig", "Trainer",
    "TrainingDiverged", "activation_sharding", "learning_rate_schedule", "make_mesh", "make_optimizer", "measure_peak_flops",
    "read_metrics", "shard_batch", "shard_model", "train_flops_per_token", "train", "load_model", "tokenizer_meta",
    "runtime_info",
]
