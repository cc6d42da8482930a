"""The data stage: expert episodes on disk, data cards, and the training mixture.

    import gatolab as gl
    gl.data.generate("classic", "data", episodes=100, workers=2)   # -> data/classic (Minari shards)
    gl.data.write_card("data/classic", "data_cards")                # -> data_cards/classic.{md,json}
    mix = gl.data.Mixture(gl.data.MixtureConfig(), ["data/classic", "data/babyai"], tokenizer)
    batch = next(iter(mix.iterator(batch_size=8)))                  # a gl.batch.Batch: .tokens (B, L, ...), .info

Modules: `storage` (Minari shards, checksums), `generation` (resumable, parallel
generation), `cards` (measured data cards, Table-1 summary), `mixture` (the grain
pipeline: weights, filtering, prompts; Gato §2.3 / GATO_SPEC §4), `importers` (Minari and
JAT files you already have), `synthetic` (random multimodal episodes and batches for smoke runs).
"""

import importlib

_ATTRS = {
    "EpisodeDataset": "storage", "read_shard": "storage", "write_shard": "storage", "verify_shard": "storage",
    "generate": "generation",
    "write_card": "cards", "write_summary": "cards", "measure_returns": "cards",
    "Mixture": "mixture", "MixtureConfig": "mixture", "default_weight_share": "mixture", "filter_episodes": "mixture",
    "expert_return": "mixture",
}
_MODULES = ("storage", "generation", "cards", "mixture", "synthetic", "cli", "importers")


def __getattr__(name):
    if name in _MODULES:
        return importlib.import_module(f"gatolab.data.{name}")
    if name in _ATTRS:
        return getattr(importlib.import_module(f"gatolab.data.{_ATTRS[name]}"), name)
    raise AttributeError(f"module 'gatolab.data' has no attribute {name!r}")


__all__ = sorted([*_ATTRS, *_MODULES])
