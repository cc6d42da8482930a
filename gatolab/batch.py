"""The batch, typed: what rows of `TokenSequence.to_arrays` become when stacked (Gato §2.1–2.3).

    rows: TokenSequence.to_arrays(L, P) (+ the mixture's per-row keys)
      -> Batch.stack(rows) = Batch(tokens: TokenBatch  -> the device: embed, transformer, loss
                                   info:   BatchInfo   -> stays on the host: plots, tests, per-domain loss)

`TokenBatch` is the one list of what the network reads. It is a `flax.struct.dataclass`,
so it is a pytree: it goes through `jax.jit`, `jax.device_put` and sharding as one
object, and pickles across grain's worker processes. Its fields hold NumPy arrays on the
host and `jax.Array`s on the device, with the same shapes and dtypes; the shapes are
the ones written in the annotations, and `TokenBatch.validate` checks exactly those.

`BatchInfo` is what the network never reads: the per-token facts a `TokenSequence` keeps
for display (timestep, field, value), which tokens came from a prompt, and where each row
came from (dataset, task, episode, prompt kind, ...; only the mixture knows these).
Nothing sends it to the device: the training loop shards `batch.tokens` alone.

Axis glossary: B batch, T tokens, P patches, S patch side (16), C channels.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Protocol

import jax
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int

Row = Mapping[str, np.ndarray]  # one row: `TokenSequence.to_arrays` output, plus the mixture's keys


class BatchLimits(Protocol):
    """What a batch must fit; a `gatolab.model.ModelConfig` is one."""

    @property
    def context_len(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def max_local_positions(self) -> int: ...
    @property
    def patch_size(self) -> int: ...
    @property
    def image_channels(self) -> int: ...
    @property
    def obs_encoding(self) -> str: ...
    @property
    def field_width(self) -> int: ...


@struct.dataclass
class TokenBatch:
    """B rows of T tokens and P image patches: everything the network and its loss read.

    Attributes:
      ids: token ids in the `Vocabulary`; IMAGE tokens hold a placeholder id, padding `pad_id`.
      modality: `Modality` code per token (PAD for padding).
      local_position: index among its timestep's observation tokens (Gato appendix C.3);
        -1 for the separator, action tokens and padding.
      is_action: True for action tokens.
      patch_index: which of the row's patches an IMAGE token embeds; -1 otherwise.
      valid: True for real tokens, False for padding.
      loss_mask: True where the token is a training target (text and actions, Gato §2.3).
      patches: pixels in [-1, 1] / sqrt(S), rows padded with zeros past their own patches.
      patch_row_interval, patch_col_interval: each patch's normalised [start, end) (C.3).
      field_width, field_values: only with `obs_encoding="field"` (None with Gato's tokens):
        elements each observation token carries (values, or an IMAGE token's patches from
        its `patch_index` on) and the zero-padded values (F = the config's `field_width`).
    """

    ids: Int[Array, "B T"]
    modality: Int[Array, "B T"]
    local_position: Int[Array, "B T"]
    is_action: Bool[Array, "B T"]
    patch_index: Int[Array, "B T"]
    valid: Bool[Array, "B T"]
    loss_mask: Bool[Array, "B T"]
    patches: Float[Array, "B P S S C"]
    patch_row_interval: Float[Array, "B P 2"]
    patch_col_interval: Float[Array, "B P 2"]
    field_width: Int[Array, "B T"] | None = None
    field_values: Float[Array, "B T F"] | None = None

    @property
    def obs_encoding(self) -> str:
        return "tokens" if self.field_width is None else "field"

    @classmethod
    def stack(cls, rows: Sequence[Row]) -> TokenBatch:
        """Stacks `TokenSequence.to_arrays` rows along a new leading B axis (other keys are left out)."""
        return cls(**_stack_fields(cls, rows))

    def validate(self, limits: BatchLimits) -> None:
        """Raises ValueError if the batch does not fit `limits` (a `ModelConfig`).

        Shapes: each field's annotated shape, its named axes (B, T, P) agreeing across
        fields, S and C those of the model, T <= context_len. Values, on concrete arrays
        only (skipped inside a trace): ids in [0, vocab_size), local positions inside the
        position table, patch indices inside the patch axis.
        """
        encoding = limits.obs_encoding
        if self.obs_encoding != encoding or (self.field_width is None) != (self.field_values is None):
            raise ValueError(f"batch: observations are encoded as {self.obs_encoding!r} (batch.field_width "
                             f"{'absent' if self.field_width is None else 'present'}) but the model expects "
                             f"obs_encoding={encoding!r}; tokenize with the model's TokenizerConfig.obs_encoding")
        size = {"S": limits.patch_size, "C": limits.image_channels, "F": limits.field_width}
        source: dict[str, str] = {}  # axis name -> the field that fixed its size
        for name, axes in _TOKEN_BATCH_AXES.items():
            if getattr(self, name) is None:
                continue
            got = tuple(np.shape(getattr(self, name)))
            want = tuple(int(a) if a.isdigit() else size.get(a, a) for a in axes)
            if len(got) != len(want) or any(isinstance(w, int) and w != g for w, g in zip(want, got)):
                like = sorted({source[a] for a in axes if a in source})
                hint = f" like {', '.join(f'batch.{f}' for f in like)}" if like else ""
                if name == "field_values":
                    hint += f" (F = the model's field_width, {size['F']}, which must equal tokenizer.field_width)"
                raise ValueError(f"batch.{name}: expected shape ({', '.join(map(str, want))}){hint}, got {got}")
            for a, g in zip(axes, got):
                if not a.isdigit() and a not in size:
                    size[a], source[a] = g, name
        if size["T"] > limits.context_len:
            raise ValueError(f"batch.ids: {size['T']} tokens exceed context_len={limits.context_len}")
        if any(isinstance(x, jax.core.Tracer) for x in (self.ids, self.local_position, self.patch_index, self.field_width)):
            return  # values are only checkable on concrete arrays
        ids = np.asarray(self.ids)
        if ids.size and (ids.min() < 0 or ids.max() >= limits.vocab_size):
            raise ValueError(f"batch.ids: ids must lie in [0, {limits.vocab_size}), got [{ids.min()}, {ids.max()}]")
        lp = np.asarray(self.local_position)
        if lp.size and lp.max() >= limits.max_local_positions:
            raise ValueError(f"batch.local_position: {lp.max()} >= max_local_positions={limits.max_local_positions} "
                             f"(a timestep has more observation tokens than the position table)")
        pi = np.asarray(self.patch_index)
        if pi.size and pi.max() >= size["P"]:
            raise ValueError(f"batch.patch_index: {pi.max()} points past the {size['P']} patches")
        if self.field_width is not None and pi.size:
            end = np.where(pi >= 0, pi + np.asarray(self.field_width), 0)  # a field-encoded image: its patches
            if end.max() > size["P"]:
                raise ValueError(f"batch.field_width: an image token's patches end at {end.max()}, past the "
                                 f"{size['P']} patches of batch.patches")

    def truncate_patches(self, num: int) -> TokenBatch:
        """The first `num` patch slots of every row (P -> num).

        Rows index their own patches from 0, so when `num` covers every token's patches
        (`patch_index`, plus `field_width` - 1 for a field-encoded image) the slots dropped
        are padding and the network computes the same thing.
        """
        return self.replace(patches=self.patches[:, :num], patch_row_interval=self.patch_row_interval[:, :num],
                            patch_col_interval=self.patch_col_interval[:, :num])


@struct.dataclass
class BatchInfo:
    """The host-side facts of a batch, never sent to the device.

    Per token (B, T), as `TokenSequence` keeps them for display: `timestep` (-1 padding),
    `field` (index into the row's field names, -1 none), `value` (the raw number a
    DISCRETE/CONTINUOUS token encodes, NaN otherwise).

    From the mixture only (None for other sources): `prompt_mask` (B, T), the tokens that
    come from a prompt (Gato §2.3); per row (B,): `dataset_id`, `task_id`, `episode_id` (the
    row's first episode), `prompt_kind` (0 none, 1 from an episode's end, 2 uniform),
    `prompt_episode_id` (-1 none), `start_timestep` (of the episode window), `index` (the
    row's position in the stream), `num_episodes` (episodes packed into the row).
    """

    timestep: Int[Array, "B T"]
    field: Int[Array, "B T"]
    value: Float[Array, "B T"]
    prompt_mask: Bool[Array, "B T"] | None = None
    dataset_id: Int[Array, "B"] | None = None
    task_id: Int[Array, "B"] | None = None
    episode_id: Int[Array, "B"] | None = None
    prompt_kind: Int[Array, "B"] | None = None
    prompt_episode_id: Int[Array, "B"] | None = None
    start_timestep: Int[Array, "B"] | None = None
    index: Int[Array, "B"] | None = None
    num_episodes: Int[Array, "B"] | None = None

    @classmethod
    def stack(cls, rows: Sequence[Row]) -> BatchInfo:
        """Stacks the rows' host-side keys; a key no row has is None (other keys are left out)."""
        return cls(**_stack_fields(cls, rows))


@struct.dataclass
class Batch:
    """One batch of a data stream: `tokens` go to the device, `info` stays on the host."""

    tokens: TokenBatch
    info: BatchInfo

    @classmethod
    def stack(cls, rows: Sequence[Row]) -> Batch:
        """Stacks rows (`TokenSequence.to_arrays`, optionally with the mixture's keys) into a batch.

        Raises:
          ValueError: no rows, a row lacks a required key or has one neither type knows.
        """
        known = {f.name for t in (TokenBatch, BatchInfo) for f in dataclasses.fields(t)}
        unknown = sorted({k for r in rows for k in r} - known)
        if unknown:
            raise ValueError(f"batch: unknown key {unknown[0]!r} (a field of TokenBatch or BatchInfo is expected)")
        return cls(TokenBatch.stack(rows), BatchInfo.stack(rows))


def _stack_fields(cls, rows: Sequence[Row]) -> dict[str, np.ndarray | None]:
    """`cls`'s fields stacked over `rows`; a field with a default is None when no row has it."""
    if not rows:
        raise ValueError(f"{cls.__name__}.stack: empty batch")
    out = {}
    for f in dataclasses.fields(cls):
        have = [f.name in r for r in rows]
        if not any(have) and f.default is not dataclasses.MISSING:
            out[f.name] = None
        elif not all(have):
            names = tuple(g.name for g in dataclasses.fields(cls) if g.default is dataclasses.MISSING)
            raise ValueError(f"batch: missing key {f.name!r} in row {have.index(False)} (expected {names}; "
                             f"build rows with TokenSequence.to_arrays)")
        else:
            out[f.name] = np.stack([r[f.name] for r in rows])
    return out


# Each TokenBatch field's axis names, read from its annotation ("B T" -> ("B", "T")): the
# shapes written above are the shapes `validate` checks. Order matters: `ids` fixes B and T.
def _dims(hint) -> tuple[str, ...]:
    """"B T" -> ("B", "T"), also through `X | None`."""
    if not hasattr(hint, "dim_str"):
        hint = next(h for h in typing.get_args(hint) if hasattr(h, "dim_str"))
    return tuple(hint.dim_str.split())


_TOKEN_BATCH_AXES = {name: _dims(hint) for name, hint in typing.get_type_hints(TokenBatch).items()}
