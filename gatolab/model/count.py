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

from gatolab.model.config import PAPER_PARAMS, PARAM_CONVENTION, ModelConfig, block_param_count
from gatolab.model.gato import Gato


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
    return nnx.eval_shape(lambda: Gato(config, rngs=nnx.Rngs(0)))


def paper_param_table(**overrides: Any) -> list[dict[str, Any]]:
    """One row per paper preset: Table 5 shape, our counts, the paper's, and the gaps.

    Counts use the real vocabulary (33,027 rows), not the table padded to a multiple of
    128 for speed: padded rows are never used. Returns rows with `layers`, `width`,
    `heads`, `head_size`, `ff`, `blocks`, `embedding`, `total`, `paper`, `total_binary`
    (total / 2**20 or 2**30 in the paper's unit), `unit_binary` ("Mi" or "Gi"), `gap_decimal`,
    `gap_binary`.
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
            "total_binary": total / scale, "unit": unit, "unit_binary": "Gi" if unit == "B" else "Mi",
            "gap_decimal": total / paper - 1.0, "gap_binary": total / scale / dec - 1.0,
        })
    return rows


def format_param_table(rows: list[dict[str, Any]] | None = None) -> str:
    """The presets' parameter counts next to the paper's, as a text table."""
    rows = rows if rows is not None else paper_param_table()
    lines = [f"counting convention: {PARAM_CONVENTION}",
             f"{'preset':<11} {'L':>2} {'D':>5} {'H x K':>8} {'F':>5} {'blocks':>14} {'token table':>12} {'total':>14} "
             f"{'paper':>6} {'gap (decimal)':>13} {'total (binary)':>15} {'gap (binary)':>12}"]
    for r in rows:
        lines.append(f"{r['preset']:<11} {r['layers']:>2} {r['width']:>5} {r['heads']:>3} x {r['head_size']:<3} {r['ff']:>5} "
                     f"{r['blocks']:>14,} {r['embedding']:>12,} {r['total']:>14,} {r['paper_label']:>6} "
                     f"{r['gap_decimal']:>+13.1%} {r['total_binary']:>13.4g}{r['unit_binary']} {r['gap_binary']:>+12.1%}")
    return "\n".join(lines)
