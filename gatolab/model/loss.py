"""The masked training loss (Gato §2.3; GATO_SPEC §4).

Only text tokens and the agent's action tokens are targets; image and observation
targets are masked out. Token i is a target when `loss_mask[i]`, and is predicted from
the logits at position i - 1.

`loss_fn(..., max_targets=K)` projects only K gathered target positions per row onto the
vocabulary instead of all T: on control data ~10% of tokens are targets, and the
(T, D) x (D, V) output projection is a third of the network's FLOPs at 79M parameters.
`target_bucket(batch)` picks K on the host, so a batch with more targets than K is an
error, never a silent truncation.

Axis glossary: B batch, T tokens, N gathered targets, D embed, V vocab (padded).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from gatolab.batch import TokenBatch
from gatolab.model.gato import Gato, logits
from gatolab.specs import Modality

# Targets are reported per modality of the target token (Gato §2.3: text and actions).
LOSS_MODALITIES = {"text": Modality.TEXT, "discrete": Modality.DISCRETE, "continuous": Modality.CONTINUOUS}


def _most_targets(batch: TokenBatch) -> int:
    """The most targets any row has (host side): positions 1.. that are real and in the loss."""
    mask = np.asarray(batch.loss_mask, bool)[:, 1:] & np.asarray(batch.valid, bool)[:, 1:]
    return int(mask.sum(1).max(initial=0))


def target_bucket(batch: TokenBatch, multiple: int = 64) -> int:
    """The smallest multiple of `multiple` that holds every row's targets (host side).

    Pass it as `loss_fn(..., max_targets=...)`; bucketing keeps the number of distinct
    compiled shapes small.
    """
    return max(multiple, int(np.ceil(_most_targets(batch) / multiple)) * multiple)


def _targets(batch: TokenBatch) -> tuple[Int[Array, "B T"], Bool[Array, "B T"], Int[Array, "B T"]]:
    """Shifted targets: position t of the result is token t + 1 (the last position has none)."""
    ids = jnp.asarray(batch.ids)
    mask = jnp.asarray(batch.loss_mask, bool) & jnp.asarray(batch.valid, bool)
    pad = lambda a, v: jnp.concatenate([a[:, 1:], jnp.full_like(a[:, :1], v)], axis=1)
    return pad(ids, 0), pad(mask, False), pad(jnp.asarray(batch.modality).astype(jnp.int32), -1)


def cross_entropy(scores: Float[Array, "... V"], targets: Int[Array, "..."]) -> tuple[Float[Array, "..."], Bool[Array, "..."]]:
    """Per-position negative log-likelihood (float32) of `targets` under the logits `scores`,
    and whether the argmax is right."""
    scores = scores.astype(jnp.float32)
    lse = jax.nn.logsumexp(scores, axis=-1)
    picked = jnp.take_along_axis(scores, targets[..., None], axis=-1)[..., 0]
    return lse - picked, jnp.argmax(scores, -1) == targets


def loss_fn(model: Gato, batch: TokenBatch, *, train: bool = False, key: jax.Array | None = None,
            max_targets: int | None = None) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Masked next-token cross-entropy over text and action targets (Gato §2.3).

    Args:
      model: a `Gato`.
      batch: the `TokenBatch` (its `loss_mask` says which tokens are targets).
      train: sample patch positions and apply dropout (needs `key`).
      key: PRNG key for training.
      max_targets: None projects every position onto the vocabulary; an int K gathers at
        most K target positions per row first (use `target_bucket(batch)`).

    Returns:
      (loss, metrics): loss is the mean over all target tokens in the batch; metrics has
      `loss`, `accuracy`, `targets`, and per modality of the target token
      (`text`, `discrete`, `continuous`) `loss/<m>` and `targets/<m>` (a modality with no
      targets reports loss 0 and count 0), `dropped_targets` (always 0 when K comes
      from `target_bucket`), and per row (B,) `row_nll` (summed) and `row_targets`.

    Raises:
      ValueError: a concrete batch with more targets than K.
    """
    if max_targets is not None and not isinstance(batch.loss_mask, jax.core.Tracer):
        most = _most_targets(batch)
        if most > max_targets:
            raise ValueError(f"loss_fn: a row has {most} targets, more than max_targets={max_targets} "
                             f"(use target_bucket(batch))")
    h = model.hidden(batch, train=train, key=key)  # (B, T, D)
    targets, mask, tmod = _targets(batch)
    dropped = jnp.zeros((), jnp.int32)
    if max_targets is not None:
        counts = mask.sum(1)
        dropped = jnp.maximum(counts - max_targets, 0).sum()
        # Gather the K target positions of each row (stable order), pad with position 0.
        idx = jax.vmap(lambda m: jnp.nonzero(m, size=max_targets, fill_value=0)[0])(mask)  # (B, N)
        keep = jnp.arange(max_targets)[None, :] < counts[:, None]
        h = jnp.take_along_axis(h, idx[..., None], axis=1)  # (B, N, D)
        targets = jnp.take_along_axis(targets, idx, axis=1)
        tmod = jnp.take_along_axis(tmod, idx, axis=1)
        mask = keep
    nll, correct = cross_entropy(logits(model, h), targets)
    w = mask.astype(jnp.float32)
    n = w.sum()
    loss = (nll * w).sum() / jnp.maximum(n, 1.0)
    metrics = {"loss": loss, "accuracy": (correct * w).sum() / jnp.maximum(n, 1.0), "targets": n,
               "dropped_targets": dropped}
    for name, m in LOSS_MODALITIES.items():
        wm = w * (tmod == int(m))
        nm = wm.sum()
        metrics[f"loss/{name}"] = (nll * wm).sum() / jnp.maximum(nm, 1.0)
        metrics[f"targets/{name}"] = nm
    # Per row (B,): summed target NLL and target count, so callers can report the loss per
    # domain or task (the batch's `info.dataset_id`) without another pass.
    metrics["row_nll"] = (nll * w).sum(-1)
    metrics["row_targets"] = w.sum(-1)
    return loss, metrics
