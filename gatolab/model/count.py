"""Parameter counts of the presets next to the paper's (Gato Table 5; GATO_SPEC §3).

The counting convention is `config.PARAM_CONVENTION`: every trainable parameter of the
model as built, compared with the paper's sizes read with binary prefixes. Decimal
numbers are always reported alongside.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx

from gatolab.model.config import PAPER_PARAMS, ModelConfig, block_param_count


def count_params(model: nnx.Module) -> int:
    """Number of scalar parameters (`nnx.Param` leaves) in a model or abstract model."""
    state = nnx.state(model, nnx.Param)
    return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree.leaves(state)))


def count_by_part(model: nnx.Module) -> dict[str, int]:
    """Parameters per top-level part and a few named sub-parts (token table, ResNet, blocks)."""
    out = {
        "token_table": int(np.prod(model.embed.table.shape)),
        "patch_resnet": count_params(model.embed.patch),
        "position_tables": count_params(model.embed) - int(np.prod(model.embed.table.shape)) - count_params(model.embed.patch),
        "blocks": count_params(model.transformer),
    }
    if not model.config.tie_embeddings:
        out["unembed"] = int(np.prod(model.unembed.shape))
    out["total"] = count_params(model)
    return out


def abstract_model(config: ModelConfig):
    """The model's structure with ShapeDtypeStructs instead of arrays (allocates nothing)."""
    from gatolab.model.gato import Gato

    return nnx.eval_shape(lambda: Gato(config, rngs=nnx.Rngs(0)))


def paper_param_table(**overrides: Any) -> list[dict[str, Any]]:
    """One row per paper preset: Table 5 shape, our counts, the paper's, and the gaps.

    Counts use the real vocabulary (33,027 rows), not the table padded to a multiple of
    128 for speed: padded rows are never used. Returns rows with `layers`, `width`,
    `heads`, `head_size`, `ff`, `blocks`, `embedding`, `total`, `paper`, `total_binary`
    (total / 2**20 or 2**30 in the paper's unit), `gap_decimal`, `gap_binary`.
    """
    rows = []
    for name, paper in PAPER_PARAMS.items():
        cfg = ModelConfig.preset(name, **overrides)
        parts = count_by_part(abstract_model(cfg))
        padding_rows = (cfg.padded_vocab_size - cfg.vocab_size) * cfg.embed_dim
        total = parts["total"] - padding_rows * (1 if cfg.tie_embeddings else 2)
        unit, scale = ("B", 2**30) if paper >= 1e9 else ("M", 2**20)
        dec = paper / (1e9 if unit == "B" else 1e6)
        rows.append({
            "preset": name, "layers": cfg.num_layers, "width": cfg.embed_dim, "heads": cfg.num_heads,
            "head_size": cfg.head_dim, "ff": cfg.ff_dim, "blocks": parts["blocks"],
            "blocks_analytic": block_param_count(cfg),
            "embedding": parts["token_table"] - padding_rows, "patch_resnet": parts["patch_resnet"],
            "total": total, "paper": paper, "paper_label": f"{dec:g}{unit}",
            "total_binary": total / scale, "unit": unit,
            "gap_decimal": total / paper - 1.0, "gap_binary": total / scale / dec - 1.0,
        })
    return rows
