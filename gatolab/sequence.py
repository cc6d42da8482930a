"""The token sequence: Gato's token layout as a typed object (Gato §2.1; GATO_SPEC §1).

    timestep = [text tokens] [image patches] [tensor tokens] '|' [action tokens]
    episode  = timestep_0 timestep_1 ...

`TokenSequence` is what `gatolab.gato_tokenizer.GatoTokenizer` makes of an episode: one row per token (id, modality,
timestep, local position, is-action, loss mask, ...), plus the image patches the
IMAGE tokens point at. It checks its own shapes, cuts windows at timestep
boundaries, pads itself into fixed-size arrays for a batch, and draws itself in a
notebook.

Axis names used in comments: N tokens, T timesteps, P patches, S patch side (16),
C channels, L a fixed window length.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from gatolab.specs import Modality
from gatolab.text import TextTokenizer

ObsEncoding = Literal["tokens", "field"]  # how observations become tokens: `TokenizerConfig.obs_encoding`

PER_TOKEN_FIELDS = ("ids", "modality", "timestep", "local_position", "is_action", "loss_mask", "field", "value", "patch_index")
PER_TOKEN_DTYPES = {
    "ids": np.int32,
    "modality": np.int8,
    "timestep": np.int32,
    "local_position": np.int32,
    "is_action": np.bool_,
    "loss_mask": np.bool_,
    "field": np.int16,
    "value": np.float32,
    "patch_index": np.int32,
}


@dataclasses.dataclass(frozen=True, eq=False)
class TokenSequence:
    """Tokens of one episode (or a window of one), in order.

    Per-token arrays, all of shape (N,):
      ids: token id in the `Vocabulary`; IMAGE tokens hold `vocab.image_id`.
      modality: `Modality` code.
      timestep: which timestep of the episode the token belongs to.
      local_position: index among the observation tokens of its timestep
        (0 ... n_obs - 1, Gato §C.3); -1 for the separator and action tokens.
      is_action: True for action tokens.
      loss_mask: True where the token is a training target (text and actions, §2.3).
        Position i is predicted from the logits at position i - 1.
      field: index into `field_names` (-1 for the separator).
      value: the raw value a DISCRETE/CONTINUOUS token encodes (NaN otherwise); for display.
      patch_index: index into `patches` for IMAGE tokens, -1 otherwise.
    Patch arrays:
      patches: (P, S, S, C) float32, pixels in [-1, 1] / sqrt(S).
      patch_row_interval, patch_col_interval: (P, 2) float32 normalised [start, end).
    Field encoding (`TokenizerConfig.obs_encoding="field"` only; None for Gato's tokens):
      field_width: (N,) int32, how many elements an observation token carries: a
        continuous/discrete field's values, or an IMAGE token's patches (which start at
        its `patch_index`); 0 for text, separator and action tokens.
      field_values: (N, F) float32, the values (zero-padded to F = `field_width` of the config).
    """

    ids: np.ndarray
    modality: np.ndarray
    timestep: np.ndarray
    local_position: np.ndarray
    is_action: np.ndarray
    loss_mask: np.ndarray
    field: np.ndarray
    value: np.ndarray
    patch_index: np.ndarray
    patches: np.ndarray
    patch_row_interval: np.ndarray
    patch_col_interval: np.ndarray
    field_names: tuple[str, ...] = ()
    task: str = ""
    field_width: np.ndarray | None = None
    field_values: np.ndarray | None = None

    def __post_init__(self):
        n = None
        for name in PER_TOKEN_FIELDS:
            arr = np.asarray(getattr(self, name), dtype=PER_TOKEN_DTYPES[name])
            if arr.ndim != 1:
                raise ValueError(f"TokenSequence.{name}: expected shape (N,), got {arr.shape}")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(f"TokenSequence.{name}: expected {n} tokens, got {arr.shape[0]}")
            object.__setattr__(self, name, arr)
        patches = np.asarray(self.patches, np.float32)
        if patches.ndim != 4 or patches.shape[1] != patches.shape[2]:
            raise ValueError(f"TokenSequence.patches: expected (P, S, S, C), got {patches.shape}")
        p = patches.shape[0]
        for name in ("patch_row_interval", "patch_col_interval"):
            arr = np.asarray(getattr(self, name), np.float32)
            if arr.shape != (p, 2):
                raise ValueError(f"TokenSequence.{name}: expected ({p}, 2), got {arr.shape}")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "patches", patches)
        object.__setattr__(self, "field_names", tuple(self.field_names))
        is_image = self.modality == Modality.IMAGE
        if (self.field_width is None) != (self.field_values is None):
            raise ValueError("TokenSequence: field_width and field_values come together (obs_encoding='field') or not at all")
        if self.field_width is not None:
            width = np.asarray(self.field_width, np.int32)
            values = np.asarray(self.field_values, np.float32)
            if width.shape != (n,) or values.ndim != 2 or values.shape[0] != n:
                raise ValueError(f"TokenSequence.field_width / field_values: expected ({n},) and ({n}, F), "
                                 f"got {width.shape} and {values.shape}")
            if np.any(width[is_image] < 1) or np.any(width[~is_image] > values.shape[1]):
                raise ValueError("TokenSequence.field_width: IMAGE tokens carry >= 1 patch, other tokens at most F values")
            object.__setattr__(self, "field_width", width)
            object.__setattr__(self, "field_values", values)
        counts = self.patch_counts()[is_image]
        if int(counts.sum()) != p:
            raise ValueError(f"TokenSequence: {int(is_image.sum())} IMAGE tokens cover {int(counts.sum())} patches, but there are {p}")
        if np.any(self.patch_index[~is_image] != -1) or not np.array_equal(self.patch_index[is_image], np.cumsum(counts) - counts):
            raise ValueError("TokenSequence.patch_index: IMAGE tokens must point at patches 0..P-1 in order, others at -1")
        if n and np.any(np.diff(self.timestep) < 0):
            raise ValueError("TokenSequence.timestep: must be non-decreasing")
        if np.any(self.field >= len(self.field_names)):
            raise ValueError("TokenSequence.field: index past field_names")

    # --- basic facts ----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_patches(self) -> int:
        return int(self.patches.shape[0])

    @property
    def obs_encoding(self) -> ObsEncoding:
        return "tokens" if self.field_width is None else "field"

    def patch_counts(self) -> np.ndarray:
        """(N,) patches each token embeds: 1 per IMAGE token with Gato's tokens, its image's with fields."""
        is_image = self.modality == Modality.IMAGE
        return (is_image if self.field_width is None else np.where(is_image, self.field_width, 0)).astype(np.int64)

    def timestep_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) token indices of each timestep, in order (half-open)."""
        if len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        change = np.flatnonzero(np.diff(self.timestep)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(self)]])
        return starts, ends

    def tokens_within_patches(self, room: int) -> int:
        """How many leading tokens embed at most `room` patches (where to cut before the patch axis overflows)."""
        over = np.flatnonzero(np.cumsum(self.patch_counts()) > room)
        return int(over[0]) if len(over) else len(self)

    @property
    def num_timesteps(self) -> int:
        return len(self.timestep_bounds()[0])

    def counts(self) -> dict[str, int]:
        """Tokens per modality, plus actions and loss targets."""
        out = {m.name.lower(): int(np.sum(self.modality == m)) for m in Modality}
        out["action"] = int(self.is_action.sum())
        out["target"] = int(self.loss_mask.sum())
        out["total"] = len(self)
        return out

    # --- cutting and joining ------------------------------------------------------------
    def slice(self, start: int, stop: int) -> TokenSequence:
        """Tokens [start, stop), with their patches re-indexed."""
        start, stop, _ = slice(start, stop).indices(len(self))
        is_img = self.modality[start:stop] == Modality.IMAGE
        pidx = self.patch_index[start:stop][is_img]
        if len(pidx):  # the last image token's patches end the slice's patches
            last = 1 if self.field_width is None else int(self.field_width[start:stop][is_img][-1])
            p0, p1 = int(pidx[0]), int(pidx[-1]) + last
        else:
            p0, p1 = 0, 0
        per_token = {name: getattr(self, name)[start:stop] for name in PER_TOKEN_FIELDS}
        per_token["patch_index"] = np.where(is_img, per_token["patch_index"] - p0, -1)
        fields = {} if self.field_width is None else {"field_width": self.field_width[start:stop],
                                                      "field_values": self.field_values[start:stop]}
        return TokenSequence(
            **per_token,
            patches=self.patches[p0:p1],
            patch_row_interval=self.patch_row_interval[p0:p1],
            patch_col_interval=self.patch_col_interval[p0:p1],
            field_names=self.field_names,
            task=self.task,
            **fields,
        )

    def window(self, start_timestep: int, max_len: int = 1024) -> TokenSequence:
        """Whole timesteps from the `start_timestep`-th on, as many as fit in `max_len` tokens.

        Windows always start and end at timestep boundaries. A single timestep longer
        than `max_len` is an error (it can never be fed whole).
        """
        starts, ends = self.timestep_bounds()
        if not 0 <= start_timestep < len(starts):
            raise ValueError(f"window: start_timestep {start_timestep} outside [0, {len(starts)})")
        begin = starts[start_timestep]
        fits = np.flatnonzero(ends[start_timestep:] - begin <= max_len)
        if len(fits) == 0:
            raise ValueError(
                f"window: timestep {start_timestep} alone has {ends[start_timestep] - begin} tokens, more than max_len={max_len}"
            )
        return self.slice(begin, ends[start_timestep + fits[-1]])

    def last_window(self, max_len: int = 1024) -> TokenSequence:
        """The latest whole timesteps that fit in `max_len` (drops the oldest first)."""
        starts, ends = self.timestep_bounds()
        if len(starts) == 0:
            return self
        fits = np.flatnonzero(ends[-1] - starts <= max_len)
        if len(fits) == 0:
            raise ValueError(f"last_window: the last timestep alone has {ends[-1] - starts[-1]} tokens, more than max_len={max_len}")
        return self.slice(starts[fits[0]], len(self))

    def windows(self, max_len: int = 1024) -> Iterator[TokenSequence]:
        """Consecutive non-overlapping windows covering the whole sequence."""
        starts, _ = self.timestep_bounds()
        t = 0
        while t < len(starts):
            w = self.window(t, max_len)
            yield w
            t += w.num_timesteps

    @staticmethod
    def concatenate(parts: Sequence[TokenSequence]) -> TokenSequence:
        """Joins sequences in order (e.g. a prompt, then an episode window).

        Timesteps are renumbered so that each part follows the previous one; field
        names are merged.
        """
        if not parts:
            raise ValueError("concatenate: nothing to join")
        encodings = {p.obs_encoding for p in parts}
        if len(encodings) > 1 or len({p.field_values.shape[1] for p in parts if p.field_values is not None}) > 1:
            raise ValueError(f"concatenate: parts tokenized with different obs_encoding / field_width ({sorted(encodings)})")
        names: list[str] = []
        for p in parts:
            names += [n for n in p.field_names if n not in names]
        cols: dict[str, list[np.ndarray]] = {name: [] for name in PER_TOKEN_FIELDS}
        patches, rows, cols_iv = [], [], []
        t_offset, p_offset = 0, 0
        for p in parts:
            remap = np.array([names.index(n) for n in p.field_names] + [-1], np.int16)
            for name in PER_TOKEN_FIELDS:
                cols[name].append(getattr(p, name))
            cols["timestep"][-1] = p.timestep - (p.timestep[0] if len(p) else 0) + t_offset
            cols["field"][-1] = remap[p.field]  # -1 indexes the trailing -1
            cols["patch_index"][-1] = np.where(p.patch_index >= 0, p.patch_index + p_offset, -1)
            if len(p):
                t_offset = int(cols["timestep"][-1][-1]) + 1
            p_offset += p.num_patches
            patches.append(p.patches)
            rows.append(p.patch_row_interval)
            cols_iv.append(p.patch_col_interval)
        fields = {} if parts[0].field_width is None else {
            "field_width": np.concatenate([p.field_width for p in parts]),
            "field_values": np.concatenate([p.field_values for p in parts])}
        return TokenSequence(
            **{name: np.concatenate(v) for name, v in cols.items()},
            patches=np.concatenate(patches),
            patch_row_interval=np.concatenate(rows),
            patch_col_interval=np.concatenate(cols_iv),
            field_names=tuple(names),
            task=parts[-1].task,
            **fields,
        )

    # --- batching ------------------------------------------------------------------------
    def to_arrays(self, length: int, max_patches: int | None = None, pad_id: int = 0) -> dict[str, np.ndarray]:
        """Pads to fixed shapes for a batch: per-token arrays (L,), patches (P_max, S, S, C).

        Padding tokens have modality PAD, loss_mask False, patch_index -1, and
        `valid` False. `max_patches` defaults to `length`. Field-encoded sequences add
        `field_width` (L,) and `field_values` (L, F), zero for padding.
        """
        max_patches = length if max_patches is None else max_patches
        n, p = len(self), self.num_patches
        if n > length:
            raise ValueError(f"to_arrays: {n} tokens do not fit in length {length}")
        if p > max_patches:
            raise ValueError(f"to_arrays: {p} patches do not fit in max_patches {max_patches}")
        fill = {"ids": pad_id, "modality": int(Modality.PAD), "timestep": -1, "local_position": -1, "field": -1,
                "value": np.nan, "patch_index": -1, "is_action": False, "loss_mask": False}
        out: dict[str, np.ndarray] = {}
        for name in PER_TOKEN_FIELDS:
            arr = np.full(length, fill[name], PER_TOKEN_DTYPES[name])
            arr[:n] = getattr(self, name)
            out[name] = arr
        out["valid"] = np.arange(length) < n
        s, c = self.patches.shape[1], self.patches.shape[3]
        out["patches"] = np.zeros((max_patches, s, s, c), np.float32)
        out["patches"][:p] = self.patches
        for name in ("patch_row_interval", "patch_col_interval"):
            out[name] = np.zeros((max_patches, 2), np.float32)
            out[name][:p] = getattr(self, name)
        if self.field_width is not None:
            out["field_width"] = np.zeros(length, np.int32)
            out["field_width"][:n] = self.field_width
            out["field_values"] = np.zeros((length, self.field_values.shape[1]), np.float32)
            out["field_values"][:n] = self.field_values
        return out

    # --- display ----------------------------------------------------------------------------
    def token_table(self, text: TextTokenizer | None = None) -> list[dict[str, Any]]:
        """One dict per token (for tables and hover text)."""
        rows = []
        for i in range(len(self)):
            f = int(self.field[i])
            m = Modality(int(self.modality[i]))
            label = m.name.lower()
            if m == Modality.TEXT and text is not None:
                label = repr(text.piece(int(self.ids[i])))
            elif self.field_width is not None and self.field_width[i] and m != Modality.TEXT:
                label = f"{m.name.lower()} field ({int(self.field_width[i])} {'patches' if m == Modality.IMAGE else 'values'})"
            elif m in (Modality.DISCRETE, Modality.CONTINUOUS):
                label = f"{self.value[i]:.4g}"
            elif m == Modality.SEPARATOR:
                label = "|"
            rows.append({
                "index": i, "id": int(self.ids[i]), "modality": m.name, "timestep": int(self.timestep[i]),
                "local_position": int(self.local_position[i]), "is_action": bool(self.is_action[i]),
                "target": bool(self.loss_mask[i]), "field": self.field_names[f] if f >= 0 else "", "label": label,
            })
        return rows

    def __repr__(self) -> str:
        c = self.counts()
        parts = ", ".join(f"{k}={v}" for k, v in c.items() if v and k not in ("total",))
        return f"TokenSequence(task={self.task!r}, tokens={len(self)}, timesteps={self.num_timesteps}, {parts})"

    def _repr_html_(self, max_tokens: int = 400) -> str:
        """A coloured token strip; hover a token for its modality, id, value and target flag."""
        colors = {Modality.TEXT: "#4C78A8", Modality.IMAGE: "#F58518", Modality.DISCRETE: "#54A24B",
                  Modality.CONTINUOUS: "#B279A2", Modality.SEPARATOR: "#333333", Modality.PAD: "#DDDDDD"}
        cells = []
        for row in self.token_table()[:max_tokens]:
            m = Modality[row["modality"]]
            border = "2px solid #E45756" if row["target"] else "1px solid white"
            tip = html.escape(
                f"#{row['index']} {row['modality']} id={row['id']} t={row['timestep']} pos={row['local_position']} "
                f"field={row['field']} value={row['label']} action={row['is_action']} target={row['target']}"
            )
            cells.append(
                f'<span title="{tip}" style="display:inline-block;width:9px;height:16px;margin:0;'
                f'background:{colors[m]};border:{border};box-sizing:border-box"></span>'
            )
        more = f" … {len(self) - max_tokens} more" if len(self) > max_tokens else ""
        legend = " ".join(f'<span style="color:{c}">■ {m.name.lower()}</span>' for m, c in colors.items() if m != Modality.PAD)
        return (f"<div><code>{html.escape(repr(self))}</code><br>{legend} <span style='color:#E45756'>□ loss target</span>"
                f"<div style='line-height:0'>{''.join(cells)}{more}</div></div>")
