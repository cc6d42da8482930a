"""Episode -> TokenSequence: Gato's token layout (Gato §2.1; GATO_SPEC §1).

    timestep = [text tokens] [image patches] [tensor tokens] '|' [action tokens]
    episode  = timestep_0 timestep_1 ...

`TokenSequence` is the typed, frozen result: one row per token (id, modality,
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
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from gatolab import tokenizers as tk
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality, flatten_fields
from gatolab.text import TextTokenizer

_PER_TOKEN = ("ids", "modality", "timestep", "local_position", "is_action", "loss_mask", "field", "value", "patch_index")
_DTYPES = {
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

    def __post_init__(self):
        n = None
        for name in _PER_TOKEN:
            arr = np.asarray(getattr(self, name), dtype=_DTYPES[name])
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
        if int(is_image.sum()) != p:
            raise ValueError(f"TokenSequence: {int(is_image.sum())} IMAGE tokens but {p} patches")
        if np.any(self.patch_index[~is_image] != -1) or not np.array_equal(self.patch_index[is_image], np.arange(p)):
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

    def timestep_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) token indices of each timestep, in order (half-open)."""
        if len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        change = np.flatnonzero(np.diff(self.timestep)) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(self)]])
        return starts, ends

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
        p0, p1 = (int(pidx[0]), int(pidx[-1]) + 1) if len(pidx) else (0, 0)
        per_token = {name: getattr(self, name)[start:stop] for name in _PER_TOKEN}
        per_token["patch_index"] = np.where(is_img, per_token["patch_index"] - p0, -1)
        return TokenSequence(
            **per_token,
            patches=self.patches[p0:p1],
            patch_row_interval=self.patch_row_interval[p0:p1],
            patch_col_interval=self.patch_col_interval[p0:p1],
            field_names=self.field_names,
            task=self.task,
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
        names: list[str] = []
        for p in parts:
            names += [n for n in p.field_names if n not in names]
        cols: dict[str, list[np.ndarray]] = {name: [] for name in _PER_TOKEN}
        patches, rows, cols_iv = [], [], []
        t_offset, p_offset = 0, 0
        for p in parts:
            remap = np.array([names.index(n) for n in p.field_names] + [-1], np.int16)
            for name in _PER_TOKEN:
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
        return TokenSequence(
            **{name: np.concatenate(v) for name, v in cols.items()},
            patches=np.concatenate(patches),
            patch_row_interval=np.concatenate(rows),
            patch_col_interval=np.concatenate(cols_iv),
            field_names=tuple(names),
            task=parts[-1].task,
        )

    # --- batching ------------------------------------------------------------------------
    def to_arrays(self, length: int, max_patches: int | None = None, pad_id: int = 0) -> dict[str, np.ndarray]:
        """Pads to fixed shapes for a batch: per-token arrays (L,), patches (P_max, S, S, C).

        Padding tokens have modality PAD, loss_mask False, patch_index -1, and
        `valid` False. `max_patches` defaults to `length`.
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
        for name in _PER_TOKEN:
            arr = np.full(length, fill[name], _DTYPES[name])
            arr[:n] = getattr(self, name)
            out[name] = arr
        out["valid"] = np.arange(length) < n
        s, c = self.patches.shape[1], self.patches.shape[3]
        out["patches"] = np.zeros((max_patches, s, s, c), np.float32)
        out["patches"][:p] = self.patches
        for name in ("patch_row_interval", "patch_col_interval"):
            out[name] = np.zeros((max_patches, 2), np.float32)
            out[name][:p] = getattr(self, name)
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


# ----------------------------------------------------------------------------------------
# The tokenizer: spec-driven, vectorised over time
# ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """All tokenization choices in one place (GATO_SPEC §1)."""

    vocab: tk.Vocabulary = tk.Vocabulary()
    patch_size: int = 16  # Gato §2.1
    image_channels: int = 3
    image_policy: tk.ImagePolicy = "pad"  # sides not a multiple of 16: see `tokenizers.patchify`
    mu: float = tk.MU  # Gato appendix B
    m: float = tk.M


@dataclasses.dataclass
class _Block:
    """One field's tokens over all T timesteps, flattened in time order (ragged)."""

    lengths: np.ndarray  # (T,) tokens per timestep
    ids: np.ndarray  # (sum(lengths),)
    modality: np.ndarray | int
    value: np.ndarray | float
    field: int
    is_action: bool
    loss: bool
    patch_src: np.ndarray | None = None  # IMAGE: index into the episode's stacked patches


class GatoTokenizer:
    """Turns episodes into `TokenSequence`s and action tokens back into actions."""

    def __init__(self, config: TokenizerConfig = TokenizerConfig(), text: TextTokenizer | None = None):
        self.config = config
        self.vocab = config.vocab
        self.text = text
        if text is not None and text.vocab_size > self.vocab.text_size:
            raise ValueError(f"text tokenizer has {text.vocab_size} pieces, more than vocab.text_size={self.vocab.text_size}")

    # --- per-field encoders (vectorised over T) ------------------------------------------
    def _check_shape(self, name: str, f: FieldSpec, x: np.ndarray, t: int) -> None:
        if x.shape != (t, *f.shape):
            raise ValueError(f"field {name!r}: expected shape (T={t}, {', '.join(map(str, f.shape))}) per the spec, got {x.shape}")

    def encode_discrete(self, name: str, f: FieldSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, *shape) ints -> ids (T, n), values (T, n). Gato §2.1: row-major, [0, 1024)."""
        x = np.asarray(x)
        if x.dtype.kind == "b":
            x = x.astype(np.int64)
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)):
                raise ValueError(f"field {name!r}: discrete values contain NaN or inf")
            if not np.all(x == np.round(x)):
                raise ValueError(f"field {name!r}: discrete values must be integers, got non-integral floats")
        elif x.dtype.kind not in "iu":
            raise ValueError(f"field {name!r}: discrete values must be integers, got dtype {x.dtype}")
        x = x.reshape(len(x), -1).astype(np.int64)
        bad = (x < 0) | (x >= f.num_values)
        if bad.any():
            if f.out_of_range == "clip":
                x = np.clip(x, 0, f.num_values - 1)
            else:
                raise ValueError(f"field {name!r}: discrete value {int(x[bad][0])} outside [0, {f.num_values})")
        return (x + self.vocab.discrete_offset).astype(np.int32), x.astype(np.float32)

    def encode_continuous(self, name: str, f: FieldSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, *shape) floats -> ids (T, n), values (T, n): mu-law (per field), 1024 bins, shift."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise ValueError(f"field {name!r}: continuous values must be numeric, got dtype {x.dtype}")
        x = x.reshape(len(x), -1).astype(np.float64)
        if not np.all(np.isfinite(x)):
            t, j = np.argwhere(~np.isfinite(x))[0]
            raise ValueError(f"field {name!r}: NaN or inf at timestep {t}, element {j}")
        if f.out_of_range == "clip":
            x = np.clip(x, f.low, f.high)
        elif np.any((x < f.low) | (x > f.high)):
            v = x[(x < f.low) | (x > f.high)][0]
            raise ValueError(f"field {name!r}: value {v:.6g} outside the declared bounds [{f.low}, {f.high}]")
        y = tk.mu_law_encode(x, self.config.mu, self.config.m) if f.uses_mu_law else x
        if np.any(np.abs(y) > 1.0):
            if f.out_of_range == "clip":
                y = np.clip(y, -1.0, 1.0)
            else:
                v = x[np.abs(y) > 1.0][0]
                why = f"beyond ±{self.config.m:g}, where mu-law leaves [-1, 1]" if f.uses_mu_law else "outside [-1, 1] and mu_law='never'"
                raise ValueError(f"field {name!r}: value {v:.6g} is {why}; set out_of_range='clip' on the field to saturate")
        bins = tk.discretize(y, self.vocab.continuous_bins)
        return (bins + self.vocab.continuous_offset).astype(np.int32), x.astype(np.float32)

    def decode_continuous(self, f: FieldSpec, ids: np.ndarray) -> np.ndarray:
        bins = np.asarray(ids, np.int64) - self.vocab.continuous_offset
        if np.any((bins < 0) | (bins >= self.vocab.continuous_bins)):
            raise ValueError(f"decode: ids {np.asarray(ids)} are not all continuous tokens")
        y = tk.bin_centers(bins, self.vocab.continuous_bins)
        return tk.mu_law_decode(y, self.config.mu, self.config.m) if f.uses_mu_law else y

    def decode_discrete(self, f: FieldSpec, ids: np.ndarray) -> np.ndarray:
        v = np.asarray(ids, np.int64) - self.vocab.discrete_offset
        if np.any((v < 0) | (v >= f.num_values)):
            raise ValueError(f"decode: ids {np.asarray(ids)} are not all discrete values in [0, {f.num_values})")
        return v

    # --- episodes ------------------------------------------------------------------------
    def tokenize_episode(self, episode: Episode, spec: EnvSpec, *, with_actions: bool = True) -> TokenSequence:
        """All timesteps of an episode: observation tokens, '|', action tokens (§2.1).

        With `with_actions=False` (deployment, §2.4) each timestep ends at '|' and the
        episode's actions are ignored.
        """
        obs = flatten_fields(episode.observations)
        self._check_fields("observation", obs, spec.observation)
        t = len(episode)
        actions = flatten_fields(episode.actions)
        if spec.action and with_actions:
            self._check_fields("action", actions, spec.action)
        names = tuple(spec.observation_order) + tuple(spec.action_order)

        blocks: list[_Block] = []
        patch_sets: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per image field: patches (T*P,...), rows, cols
        n_patches = 0
        for key in spec.observation_order:
            f = spec.observation[key]
            fi = names.index(key)
            loss = f.is_loss_target(is_action=False)
            if f.modality == Modality.TEXT:
                if self.text is None:
                    raise ValueError(f"field {key!r}: a TEXT field needs a text tokenizer (GatoTokenizer(text=...))")
                col = obs[key]
                if len(col) != t:
                    raise ValueError(f"field {key!r}: expected {t} strings, got {len(col)}")
                pieces = [self.text.encode(s) for s in col]
                lengths = np.array([len(p) for p in pieces], np.int64)
                ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
                blocks.append(_Block(lengths, ids, int(Modality.TEXT), np.nan, fi, False, loss))
            elif f.modality == Modality.IMAGE:
                x = np.asarray(obs[key])
                self._check_shape(key, f, x, t)
                per_t = [tk.patchify(x[i], self.config.patch_size, self.config.image_policy, self.config.image_channels, name=f"field {key!r}") for i in range(t)]
                p = per_t[0][0].shape[0] if per_t else 0
                patches = np.concatenate([pt[0] for pt in per_t]) if per_t else np.zeros((0, self.config.patch_size, self.config.patch_size, self.config.image_channels), np.float32)
                rows = np.tile(per_t[0][1], (t, 1)) if per_t else np.zeros((0, 2), np.float32)
                cols = np.tile(per_t[0][2], (t, 1)) if per_t else np.zeros((0, 2), np.float32)
                patch_sets.append((patches, rows, cols))
                blocks.append(_Block(np.full(t, p), np.full(t * p, self.vocab.image_id, np.int32), int(Modality.IMAGE),
                                     np.nan, fi, False, loss, patch_src=n_patches + np.arange(t * p)))
                n_patches += t * p
            else:
                x = np.asarray(obs[key])
                self._check_shape(key, f, x, t)
                enc = self.encode_discrete if f.modality == Modality.DISCRETE else self.encode_continuous
                ids, values = enc(key, f, x)
                blocks.append(_Block(np.full(t, ids.shape[1]), ids.ravel(), int(f.modality), values.ravel(), fi, False, loss))
        if spec.action:
            blocks.append(_Block(np.ones(t, np.int64), np.full(t, self.vocab.separator_id, np.int32), int(Modality.SEPARATOR), np.nan, -1, False, False))
            if with_actions:
                for key in spec.action_order:
                    f = spec.action[key]
                    x = np.asarray(actions[key])
                    self._check_shape(f"action {key}", f, x, t)
                    enc = self.encode_discrete if f.modality == Modality.DISCRETE else self.encode_continuous
                    ids, values = enc(key, f, x)
                    blocks.append(_Block(np.full(t, ids.shape[1]), ids.ravel(), int(f.modality), values.ravel(),
                                         names.index(key), True, f.is_loss_target(is_action=True)))
        return self._assemble(blocks, patch_sets, t, names, episode.task)

    def tokenize_observation(self, observation: Mapping[str, Any], spec: EnvSpec, timestep: int = 0, task: str = "") -> TokenSequence:
        """One observation (deployment, §2.4): its tokens then '|' if the spec has actions."""
        obs = flatten_fields(observation)
        cols = {k: [v] if spec.observation.get(k) is not None and spec.observation[k].modality == Modality.TEXT else np.asarray(v)[None] for k, v in obs.items()}
        seq = self.tokenize_episode(Episode(task or spec.name, cols), spec, with_actions=False)
        return dataclasses.replace(seq, timestep=seq.timestep + timestep)

    def tokenize_action(self, action: Mapping[str, Any], spec: EnvSpec, timestep: int = 0) -> np.ndarray:
        """An action -> its token ids (n_action_tokens,), in the order they are generated."""
        action = flatten_fields(action)
        self._check_fields("action", action, spec.action)
        out = []
        for key in spec.action_order:
            f = spec.action[key]
            x = np.asarray(action[key])[None]
            self._check_shape(f"action {key}", f, x, 1)
            enc = self.encode_discrete if f.modality == Modality.DISCRETE else self.encode_continuous
            out.append(enc(key, f, x)[0].ravel())
        return np.concatenate(out).astype(np.int32)

    def decode_action(self, ids: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
        """Inverts the tokenizer for an action (§2.4): bin centre -> inverse mu-law; discrete -> int."""
        ids = np.asarray(ids).ravel()
        if len(ids) != spec.num_action_tokens:
            raise ValueError(f"decode_action: spec {spec.name!r} needs {spec.num_action_tokens} action tokens, got {len(ids)}")
        out, i = {}, 0
        for key in spec.action_order:
            f = spec.action[key]
            chunk = ids[i : i + f.size]
            i += f.size
            v = self.decode_discrete(f, chunk) if f.modality == Modality.DISCRETE else self.decode_continuous(f, chunk)
            if f.modality == Modality.CONTINUOUS:
                v = np.clip(v, f.low, f.high).astype(np.float32)
            out[key] = v.reshape(f.shape)
        return out

    def action_token_ranges(self, spec: EnvSpec) -> np.ndarray:
        """(n_action_tokens, 2) half-open id ranges legal at each action position (§2.4)."""
        rows = []
        for key in spec.action_order:
            f = spec.action[key]
            if f.modality == Modality.DISCRETE:
                lo = self.vocab.discrete_offset
                rows += [(lo, lo + f.num_values)] * f.size
            else:
                lo = self.vocab.continuous_offset
                rows += [(lo, lo + self.vocab.continuous_bins)] * f.size
        return np.asarray(rows, np.int32).reshape(-1, 2)

    # --- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _check_fields(kind: str, got: Mapping[str, Any], want: Mapping[str, FieldSpec]) -> None:
        unknown = sorted(set(got) - set(want))
        missing = sorted(set(want) - set(got))
        if unknown:
            raise ValueError(f"{kind} field {unknown[0]!r} is not in the spec (expected fields: {sorted(want)})")
        if missing:
            raise ValueError(f"{kind} field {missing[0]!r} is missing (expected fields: {sorted(want)})")

    def _assemble(self, blocks: list[_Block], patch_sets, t: int, names: tuple[str, ...], task: str) -> TokenSequence:
        """Interleaves per-field blocks into timestep order with vectorised scatters."""
        lengths = np.stack([b.lengths for b in blocks], axis=1).astype(np.int64)  # (T, F)
        flat = lengths.ravel()
        starts = (np.cumsum(flat) - flat).reshape(lengths.shape)  # (T, F) first token of block f at t
        n = int(flat.sum())
        out = {name: np.zeros(n, _DTYPES[name]) for name in _PER_TOKEN}
        patch_src = np.full(n, -1, np.int64)
        for fi, b in enumerate(blocks):
            m = int(b.lengths.sum())
            if m == 0:
                continue
            within = np.arange(m) - np.repeat(np.cumsum(b.lengths) - b.lengths, b.lengths)
            pos = np.repeat(starts[:, fi], b.lengths) + within
            out["ids"][pos] = b.ids
            out["modality"][pos] = b.modality
            out["value"][pos] = b.value
            out["field"][pos] = b.field
            out["is_action"][pos] = b.is_action
            out["loss_mask"][pos] = b.loss
            if b.patch_src is not None:
                patch_src[pos] = b.patch_src
        per_t = lengths.sum(1)
        out["timestep"] = np.repeat(np.arange(t), per_t).astype(np.int32)
        is_obs = (out["modality"] != Modality.SEPARATOR) & ~out["is_action"]
        t_start = np.repeat(np.cumsum(per_t) - per_t, per_t)
        # Observation tokens come first in each timestep, so their index within the
        # timestep is their local position (Gato §C.3).
        out["local_position"] = np.where(is_obs, np.arange(n) - t_start, -1).astype(np.int32)
        img = out["modality"] == Modality.IMAGE
        out["patch_index"] = np.where(img, np.cumsum(img) - 1, -1).astype(np.int32)
        s, c = self.config.patch_size, self.config.image_channels
        if patch_sets:
            all_p = np.concatenate([p[0] for p in patch_sets])
            all_r = np.concatenate([p[1] for p in patch_sets])
            all_c = np.concatenate([p[2] for p in patch_sets])
            src = patch_src[img]
            patches, rows, cols = all_p[src], all_r[src], all_c[src]
        else:
            patches, rows, cols = np.zeros((0, s, s, c), np.float32), np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        out["value"][~np.isin(out["modality"], (Modality.DISCRETE, Modality.CONTINUOUS))] = np.nan
        return TokenSequence(**out, patches=patches, patch_row_interval=rows, patch_col_interval=cols, field_names=names, task=task)


def stack_arrays(items: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stacks `TokenSequence.to_arrays` outputs into a batch with a leading B axis."""
    if not items:
        raise ValueError("stack_arrays: empty batch")
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def roundtrip_error(tokenizer: GatoTokenizer, spec: EnvSpec, action: Mapping[str, Any]) -> dict[str, float]:
    """max |decode(encode(a)) - a| per action field (for notebooks and tests)."""
    decoded = tokenizer.decode_action(tokenizer.tokenize_action(action, spec), spec)
    flat = flatten_fields(action)
    return {k: float(np.max(np.abs(np.asarray(flat[k], np.float64) - decoded[k]), initial=0.0)) for k in decoded}


