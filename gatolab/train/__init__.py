"""Training (Gato §2.3): optimiser, sharding, checkpoints, the loop, and a run from its config.

    gl.train.train("demo", out="runs/x", overrides=["model.num_layers=6"])   # a RunConfig end to end
    trainer = gl.train.Trainer(gl.train.TrainConfig.preset_config("tiny"), "runs/x", source)
    trainer.run()

Modules: `optim` (AdamW and the schedule, GATO_SPEC §4), `sharding` (logical axes -> mesh),
`checkpoint` (orbax, a SHA-256 per file checked on every load; a model rebuilt from its path),
`loop` (the Trainer), `run` (`train`: data + tokenizer + model + loop from a
`gl.configs.RunConfig`, and `gatolab train`), `cli` (`gatolab checkpoint verify`).
Names load on first use, as in `gl.data`: the loop and checkpoints sit below the run
configs (which name their TrainConfig), `run` above them.
"""

import importlib

_ATTRS = {
    "CheckpointDamaged": "checkpoint", "CheckpointError": "checkpoint", "Checkpointer": "checkpoint",
    "load_model": "checkpoint", "tokenizer_meta": "checkpoint", "verify_run": "checkpoint",
    "BatchSource": "loop", "Trainer": "loop", "TrainConfig": "loop", "TrainingDiverged": "loop",
    "measure_peak_flops": "loop", "read_events": "loop", "read_metrics": "loop", "train_flops_per_token": "loop",
    "OptimConfig": "optim", "learning_rate_schedule": "optim", "make_optimizer": "optim",
    "runtime_info": "runtime",
    "LOGICAL_RULES": "sharding", "activation_sharding": "sharding", "make_mesh": "sharding", "shard_batch": "sharding",
    "shard_model": "sharding",
    "train": "run",
}
_MODULES = ("checkpoint", "finetune", "loop", "optim", "run", "runtime", "sharding")


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"gatolab.train.{name}")
    if name in _ATTRS:
        return getattr(importlib.import_module(f"gatolab.train.{_ATTRS[name]}"), name)
    raise AttributeError(f"module 'gatolab.train' has no attribute {name!r}")


__all__ = sorted([*_ATTRS, *_MODULES])
