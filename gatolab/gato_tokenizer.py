"""Episode -> tokens: the Gato tokenizer, spec-driven and vectorised over time (Gato §2.1; GATO_SPEC §1).

    tokenizer = GatoTokenizer(TokenizerConfig(), text=gl.default_text_tokenizer())
    seq = tokenizer.tokenize_episode(episode, spec)          # -> gatolab.sequence.TokenSequence
    action = tokenizer.decode_action(action_ids, spec)       # bin centre -> inverse mu-law

Each modality's rule lives in `gatolab.tokenizers` (mu-law, bins, patches, the id
layout); this module applies them field by field in the order an `EnvSpec` gives and
assembles the typed `TokenSequence`.

Axis names used in comments: N tokens, T timesteps, P patches, S patch side (16), C channels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from gatolab import tokenizers as tk
from gatolab.episode import Episode
from gatolab.sequence import PER_TOKEN_DTYPES, PER_TOKEN_FIELDS, ObsEncoding, TokenSequence
from gatolab.specs import EnvSpec, FieldSpec, Modality, flatten_fields
from gatolab.text import TextTokenizer

# The tokenizer: spec-driven, vectorised over time
@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """All tokenization choices in one place (GATO_SPEC §1).

    `mu_law` [open] (GATO_SPEC §1: mu-law "if not already in [-1, 1]"): "per_field" applies each
    continuous field's own static rule (`FieldSpec.mu_law`, "auto" by default: only fields whose
    declared bounds leave [-1, 1]); "always" mu-law encodes every continuous value, actions
    in [-1, 1] too (an ablation switch; the same data serves both, decoding follows the rule).

    `obs_encoding` (issue 18; not in the paper, which tokenizes every element, Gato §2.1):
    "tokens" (default, Gato's): every observation element is a token (continuous bins,
    discrete values, 16x16 patches). "field": every non-text observation field of a
    timestep is one token that carries its whole vector, so a timestep is
    `text pieces, fields…, '|', actions`; the network embeds it in one piece
    (`gatolab.model.embed.FieldEmbedder`). Continuous fields carry their values after the
    mu-law rule and clipping, in [-1, 1] (what Gato discretizes), discrete fields their
    integer values, image fields their patches (one token for all of an image's patches).
    Actions, the separator and text stay Gato's tokens, so targets, decoding and data are
    unchanged. `field_width` is the longest field vector a token carries (the BabyAI grid's
    147 values, Meta-World's 39); a wider field is an error naming it.
    """

    vocab: tk.Vocabulary = tk.Vocabulary()
    patch_size: int = 16  # Gato §2.1
    image_channels: int = 3
    image_policy: tk.ImagePolicy = "pad"  # sides not a multiple of 16: see `tokenizers.patchify`
    mu: float = tk.MU  # Gato appendix B
    m: float = tk.M
    mu_law: Literal["per_field", "always"] = "per_field"
    obs_encoding: ObsEncoding = "tokens"
    field_width: int = 256

    def __post_init__(self):
        if self.mu_law not in ("per_field", "always"):
            raise ValueError(f"TokenizerConfig.mu_law must be 'per_field' or 'always', got {self.mu_law!r}")
        if self.obs_encoding not in ("tokens", "field"):
            raise ValueError(f"TokenizerConfig.obs_encoding must be 'tokens' or 'field', got {self.obs_encoding!r}")
        if int(self.field_width) < 1:
            raise ValueError(f"TokenizerConfig.field_width must be >= 1, got {self.field_width}")

    def uses_mu_law(self, f: FieldSpec) -> bool:
        """Whether continuous field `f` is mu-law encoded under this config."""
        return True if self.mu_law == "always" else f.uses_mu_law


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
    patch_src: np.ndarray | None = None  # IMAGE: index into the episode's stacked patches (the first, if several)
    width: np.ndarray | None = None  # obs_encoding="field": elements (values or patches) each token carries
    vector: np.ndarray | None = None  # obs_encoding="field": (sum(lengths), field_width) values, zero-padded


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
        y, x = self.continuous_unit(name, f, x)
        bins = tk.discretize(y, self.vocab.continuous_bins)
        return (bins + self.vocab.continuous_offset).astype(np.int32), x.astype(np.float32)

    def continuous_unit(self, name: str, f: FieldSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, *shape) floats -> (y, x), both (T, n) float64: y in [-1, 1] after the field's mu-law
        rule (what Gato discretizes into bins), x the checked (and, for 'clip' fields, clipped) values."""
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
        y = tk.mu_law_encode(x, self.config.mu, self.config.m) if self.config.uses_mu_law(f) else x
        if np.any(np.abs(y) > 1.0):
            if f.out_of_range == "clip":
                y = np.clip(y, -1.0, 1.0)
            else:
                v = x[np.abs(y) > 1.0][0]
                why = f"beyond ±{self.config.m:g}, where mu-law leaves [-1, 1]" if self.config.uses_mu_law(f) else "outside [-1, 1] and mu_law='never'"
                raise ValueError(f"field {name!r}: value {v:.6g} is {why}; set out_of_range='clip' on the field to saturate")
        return y, x

    def decode_continuous(self, f: FieldSpec, ids: np.ndarray, name: str | None = None) -> np.ndarray:
        """Continuous-token ids -> values (bin centre, inverse mu-law per the field's rule)."""
        ids = np.asarray(ids, np.int64)
        lo = self.vocab.continuous_offset
        _check_ids(name, "continuous", ids, lo, lo + self.vocab.continuous_bins)
        y = tk.bin_centers(ids - lo, self.vocab.continuous_bins)
        return tk.mu_law_decode(y, self.config.mu, self.config.m) if self.config.uses_mu_law(f) else y

    def decode_discrete(self, f: FieldSpec, ids: np.ndarray, name: str | None = None) -> np.ndarray:
        """Discrete-token ids -> integer values in [0, num_values)."""
        ids = np.asarray(ids, np.int64)
        lo = self.vocab.discrete_offset
        _check_ids(name, f"discrete (values in [0, {f.num_values}))", ids, lo, lo + f.num_values)
        return ids - lo

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

        field_mode = self.config.obs_encoding == "field"
        if field_mode:
            for key in spec.observation_order:
                f = spec.observation[key]
                if f.modality != Modality.TEXT and f.is_loss_target(is_action=False):
                    raise ValueError(f"field {key!r}: a loss-target observation field cannot be encoded as one token "
                                     f"(tokenizer.obs_encoding='field'); use obs_encoding='tokens' or loss=False")
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
                _check_text_column(key, col, t)
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
                if field_mode:  # one token per image, carrying its p patches
                    blocks.append(_Block(np.ones(t, np.int64), np.full(t, self.vocab.image_id, np.int32), int(Modality.IMAGE),
                                         np.nan, fi, False, loss, patch_src=n_patches + p * np.arange(t),
                                         width=np.full(t, p, np.int32)))
                else:
                    blocks.append(_Block(np.full(t, p), np.full(t * p, self.vocab.image_id, np.int32), int(Modality.IMAGE),
                                         np.nan, fi, False, loss, patch_src=n_patches + np.arange(t * p)))
                n_patches += t * p
            elif field_mode:
                x = np.asarray(obs[key])
                self._check_shape(key, f, x, t)
                blocks.append(self._field_block(key, f, x, fi, loss))
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

    def _field_block(self, key: str, f: FieldSpec, x: np.ndarray, fi: int, loss: bool) -> _Block:
        """obs_encoding="field": one token per timestep carrying the field's vector (T, field_width).

        Continuous: the values in [-1, 1] after the mu-law rule (`continuous_unit`); discrete:
        the integer values (checked as `encode_discrete` checks them).
        """
        t, width = len(x), self.config.field_width
        if f.modality == Modality.DISCRETE:
            _, values = self.encode_discrete(key, f, x)
        else:
            values, _ = self.continuous_unit(key, f, x)
            values = values.reshape(t, -1)
        n = values.shape[1]
        if n > width:
            raise ValueError(f"field {key!r}: {n} elements do not fit tokenizer.field_width={width} "
                             f"(obs_encoding='field' carries a field in one token); raise tokenizer.field_width")
        vector = np.zeros((t, width), np.float32)
        vector[:, :n] = values
        return _Block(np.ones(t, np.int64), np.full(t, self.vocab.pad_id, np.int32), int(f.modality), np.nan, fi,
                      False, loss, width=np.full(t, n, np.int32), vector=vector)

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
            decode = self.decode_discrete if f.modality == Modality.DISCRETE else self.decode_continuous
            v = decode(f, chunk, name=f"action field {key!r}")
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
        out = {name: np.zeros(n, PER_TOKEN_DTYPES[name]) for name in PER_TOKEN_FIELDS}
        patch_src = np.full(n, -1, np.int64)
        field_mode = self.config.obs_encoding == "field"
        width = np.zeros(n, np.int32) if field_mode else None
        vector = np.zeros((n, self.config.field_width), np.float32) if field_mode else None
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
            if b.width is not None:
                width[pos] = b.width
            if b.vector is not None:
                vector[pos] = b.vector
        per_t = lengths.sum(1)
        out["timestep"] = np.repeat(np.arange(t), per_t).astype(np.int32)
        is_obs = (out["modality"] != Modality.SEPARATOR) & ~out["is_action"]
        t_start = np.repeat(np.cumsum(per_t) - per_t, per_t)
        # Observation tokens come first in each timestep, so their index within the
        # timestep is their local position (Gato §C.3).
        out["local_position"] = np.where(is_obs, np.arange(n) - t_start, -1).astype(np.int32)
        img = out["modality"] == Modality.IMAGE
        # Patches each IMAGE token embeds: one ("tokens"), or all of its image's ("field").
        count = (width if field_mode else np.ones(n, np.int32)) * img
        first = np.cumsum(count) - count
        out["patch_index"] = np.where(img, first, -1).astype(np.int32)
        s, c = self.config.patch_size, self.config.image_channels
        if patch_sets:
            all_p = np.concatenate([p[0] for p in patch_sets])
            all_r = np.concatenate([p[1] for p in patch_sets])
            all_c = np.concatenate([p[2] for p in patch_sets])
            k = count[img]
            src = np.repeat(patch_src[img], k) + np.arange(int(k.sum())) - np.repeat(first[img], k)
            patches, rows, cols = all_p[src], all_r[src], all_c[src]
        else:
            patches, rows, cols = np.zeros((0, s, s, c), np.float32), np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        out["value"][~np.isin(out["modality"], (Modality.DISCRETE, Modality.CONTINUOUS))] = np.nan
        return TokenSequence(**out, patches=patches, patch_row_interval=rows, patch_col_interval=cols, field_names=names, task=task,
                             field_width=width, field_values=vector)


def _check_ids(name: str | None, kind: str, ids: np.ndarray, lo: int, hi: int) -> None:
    """Every id in [lo, hi), or a ValueError naming the field, the first bad position and id."""
    bad = np.flatnonzero((ids < lo) | (ids >= hi))
    if bad.size:
        where = name or "decode"
        raise ValueError(f"{where}: id {int(ids.ravel()[bad[0]])} at position {int(bad[0])} of {ids.size} is not a {kind} "
                         f"token (expected ids in [{lo}, {hi})); got ids {ids.tolist()}")


def _check_text_column(key: str, col: Any, t: int) -> None:
    """A TEXT field holds one str per timestep; say which field and timestep does not."""
    if isinstance(col, (str, bytes)) or (not isinstance(col, (list, tuple)) and np.ndim(col) == 0):
        raise ValueError(f"field {key!r}: expected a list of {t} str (one per timestep; a TEXT field), "
                         f"got a single {type(col).__name__} {_short(col)}")
    if len(col) != t:
        raise ValueError(f"field {key!r}: expected {t} strings (one per timestep), got {len(col)}")
    for i, s in enumerate(col):
        if not isinstance(s, str):
            hint = "; decode bytes to str first" if isinstance(s, (bytes, np.bytes_)) else ""
            raise ValueError(f"field {key!r}: expected a str at each timestep (a TEXT field), got "
                             f"{type(s).__name__} {_short(s)} at timestep {i}{hint}")


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def roundtrip_error(tokenizer: GatoTokenizer, spec: EnvSpec, action: Mapping[str, Any]) -> dict[str, float]:
    """max |decode(encode(a)) - a| per action field (for notebooks and tests)."""
    decoded = tokenizer.decode_action(tokenizer.tokenize_action(action, spec), spec)
    flat = flatten_fields(action)
    return {k: float(np.max(np.abs(np.asarray(flat[k], np.float64) - decoded[k]), initial=0.0)) for k in decoded}
