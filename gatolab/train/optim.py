"""The optimiser and learning-rate schedule of Gato (GATO_SPEC §4, appendix D).

AdamW with beta = (0.9, 0.95), eps = 1e-8, weight decay 0.1; linear warm-up from 1e-7
to the peak over 15,000 steps, then cosine decay of the learning rate by 10x over the
rest of training. Gato does not clip gradients (NEKO added clipping); `clip_norm` is
available for ablations and off by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import optax


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    peak_lr: float = 1e-4  # GATO_SPEC §4 [appendix]
    init_lr: float = 1e-7  # warm-up start [appendix]
    warmup_steps: int = 15_000  # [appendix]
    decay_factor: float = 10.0  # cosine decay "by 10x" over training [appendix]
    total_steps: int = 1_000_000  # Gato §2.3: 1M steps
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float | None = None  # the paper does not clip gradients

    def __post_init__(self):
        if self.total_steps < 1:
            raise ValueError(f"OptimConfig.total_steps must be >= 1, got {self.total_steps}")
        if self.warmup_steps < 0 or self.warmup_steps > self.total_steps:
            raise ValueError(f"OptimConfig.warmup_steps must be in [0, total_steps={self.total_steps}], got {self.warmup_steps}")
        if not self.peak_lr > 0:
            raise ValueError(f"OptimConfig.peak_lr must be > 0, got {self.peak_lr}")


def learning_rate_schedule(cfg: OptimConfig) -> optax.Schedule:
    """Linear warm-up init_lr -> peak_lr, then cosine from peak_lr down to peak_lr / decay_factor."""
    decay_steps = max(1, cfg.total_steps - cfg.warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=cfg.init_lr,
        peak_value=cfg.peak_lr,
        warmup_steps=cfg.warmup_steps,
        decay_steps=cfg.warmup_steps + decay_steps,  # optax counts decay_steps from step 0
        end_value=cfg.peak_lr / cfg.decay_factor,
    )


def make_optimizer(cfg: OptimConfig, freeze: Sequence[str] = ()) -> optax.GradientTransformation:
    """AdamW per GATO_SPEC §4, optionally preceded by global-norm clipping.

    `freeze`: parameter path prefixes (`parameter_path`: "embed", "embed/patch",
    "transformer") held at their values, e.g. when fine-tuning (Gato §5.2 does not say which
    parts it trains; [open]): neither the update nor AdamW's weight decay moves them, and a
    clipping norm counts only the trained parameters.
    """
    tx = optax.adamw(learning_rate_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    if not freeze:
        return tx
    frozen = tuple(freeze)

    def labels(params):
        return jax.tree_util.tree_map_with_path(lambda p, _: "frozen" if is_frozen(parameter_path(p), frozen) else "train",
                                                params)

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def parameter_path(key_path) -> str:
    """A parameter's path as "embed/patch/conv1/kernel" (the dict keys of its key path)."""
    return "/".join(str(k.key) for k in key_path if isinstance(k, jax.tree_util.DictKey))


def is_frozen(path: str, freeze: Sequence[str]) -> bool:
    """Whether `path` lies under one of the `freeze` prefixes (whole path parts: "embed" is not "embedding")."""
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in freeze)
