"""Stage 5: logits -> actions. Deployment with a key/value cache (Gato §2.4; GATO_SPEC §5).

    prefill(prompt tokens) -> observe(observation tokens + '|') -> sample_action(ranges)
        -> (action ids, fed back on the next call) -> observe(...) -> ...

Gato used Transformer-XL-style memory at deployment: past keys and values are kept and
each new token attends to them, so a step costs only its own tokens. The cache has S =
context_len slots; because the network has no absolute positions (GATO_SPEC §3 [open]),
a slot's place in the buffer does not matter, only the order in which slots were
written (`transformer.slot_mask`). When new tokens would not fit, the oldest *whole
timesteps* are dropped, never part of one. Two readings of "dropped" (switch `overflow`):

  "memory"    (default, Transformer-XL): free the slots; the keys/values that remain
              were computed while the dropped tokens were visible. Costs nothing.
  "recompute" rebuild the cache from the remaining tokens, so decoding equals the
              training-time forward pass on that window exactly. Costs a prefill.

Sampling is restricted to the ids legal for the action spec (`action_token_ranges`):
a discrete action with n choices may only emit [offset, offset + n), a continuous
dimension only [32000, 33024); padded vocabulary rows are never candidates.
`temperature <= 0` means greedy (argmax).

Axis glossary: B batch (1 here), T chunk tokens, S cache slots, D embed, H heads,
K head size, W width of the legal id window, V vocab.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from gatolab.batch import TokenBatch
from gatolab.model.gato import Gato, logits
from gatolab.model.layers import compute_dtype
from gatolab.sequence import TokenSequence
from gatolab.specs import Modality
from gatolab.tokenizers import Vocabulary

Overflow = Literal["memory", "recompute"]

# Chunk lengths are padded up to one of these, so a session compiles a handful of shapes.
# Multiples of 8 up to 128 keep an observation chunk's padding under 8 tokens.
_BUCKETS = (1, 2, 4, *range(8, 129, 8), 160, 192, 256, 384, 512, 768, 1024)


def _bucket(n: int, capacity: int) -> int:
    for b in _BUCKETS:
        if b >= n:
            return min(b, max(capacity, n))
    return int(np.ceil(n / 256) * 256)


def restricted_logits(model: Gato, h: Float[Array, "D"], lo: Int[Array, ""], hi: Int[Array, ""],
                      width: int) -> tuple[Float[Array, "W"], Int[Array, ""]]:
    """Logits of ids [lo, hi) only, on a (W, D) slice of the output matrix (`heads.Unembed.window`).

    Projecting onto W <= 1024 rows instead of all 33k makes a decode step's output
    cost negligible. Returns (logits over ids start .. start + W - 1 with illegal ids
    at -inf, start).
    """
    return model.head.window(h, lo, hi, width)


def sample_restricted(window: Float[Array, "W"], temperature: Float[Array, ""], key: jax.Array) -> Int[Array, ""]:
    """Index of a sampled (temperature > 0, Gumbel-max) or greedy (temperature <= 0) entry of
    the logits `window`."""
    g = jax.random.gumbel(key, window.shape)
    sampled = jnp.argmax(window / jnp.maximum(temperature, 1e-6) + g)
    return jnp.where(temperature > 0, sampled, jnp.argmax(window))


@dataclasses.dataclass(frozen=True)
class _Tokens:
    """Tokens the decoder feeds or has fed, one entry per token, numbered by decoder timestep.

    The fields are `TokenBatch`'s, plus `timestep`, except that every token carries its own
    patch (zeros unless it is an IMAGE token): pieces then join and split by plain
    indexing, and `chunk` packs them into the `TokenBatch` the network reads.
    """

    ids: np.ndarray  # (N,) int32
    modality: np.ndarray  # (N,) int8
    local_position: np.ndarray  # (N,) int32
    is_action: np.ndarray  # (N,) bool
    timestep: np.ndarray  # (N,) int64: the decoder's timestep counter
    patches: np.ndarray  # (N, S, S, C) float32
    patch_row_interval: np.ndarray  # (N, 2) float32
    patch_col_interval: np.ndarray  # (N, 2) float32

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_sequence(cls, seq: TokenSequence, first_timestep: int) -> _Tokens:
        """`seq`'s tokens, its timesteps renumbered from `first_timestep`."""
        img = seq.patch_index >= 0
        per_token = {}
        for name in ("patches", "patch_row_interval", "patch_col_interval"):
            src = getattr(seq, name)
            per_token[name] = np.zeros((len(seq), *src.shape[1:]), np.float32)
            per_token[name][img] = src[seq.patch_index[img]]
        t = seq.timestep - (seq.timestep[0] if len(seq) else 0) + first_timestep
        return cls(seq.ids, seq.modality, seq.local_position, seq.is_action, t.astype(np.int64), **per_token)

    @classmethod
    def actions(cls, pending: list[tuple[int, int, int]], patch_size: int, channels: int) -> _Tokens:
        """Action tokens from (id, modality, timestep) triples."""
        n = len(pending)
        return cls(np.array([p[0] for p in pending], np.int32), np.array([p[1] for p in pending], np.int8),
                   np.full(n, -1, np.int32), np.ones(n, bool), np.array([p[2] for p in pending], np.int64),
                   np.zeros((n, patch_size, patch_size, channels), np.float32), np.zeros((n, 2), np.float32),
                   np.zeros((n, 2), np.float32))

    @classmethod
    def join(cls, parts: list[_Tokens]) -> _Tokens:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("Decoder: nothing to feed")
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)})

    def where(self, keep: np.ndarray) -> _Tokens:
        return _Tokens(**{f.name: getattr(self, f.name)[keep] for f in dataclasses.fields(self)})

    def chunk(self, length: int, patch_slots: int) -> TokenBatch:
        """A (1, length) `TokenBatch`: these tokens, then padding; only the image tokens'
        patches, in order, padded to `patch_slots` (0: no patch axis, the ResNet is skipped)."""
        n = len(self)
        is_img = self.modality == Modality.IMAGE
        n_img = int(is_img.sum())

        def pad(a, fill):
            out = np.full((length, *a.shape[1:]), fill, a.dtype)
            out[:n] = a
            return out[None]

        def pad_patches(a):
            out = np.zeros((patch_slots, *a.shape[1:]), np.float32)
            out[:n_img] = a[is_img]
            return out[None]

        return TokenBatch(ids=pad(self.ids, 0), modality=pad(self.modality, int(Modality.PAD)),
                          local_position=pad(self.local_position, -1), is_action=pad(self.is_action, False),
                          patch_index=pad(np.where(is_img, np.cumsum(is_img) - 1, -1).astype(np.int32), -1),
                          valid=pad(np.ones(n, bool), False), loss_mask=pad(np.zeros(n, bool), False),
                          patches=pad_patches(self.patches), patch_row_interval=pad_patches(self.patch_row_interval),
                          patch_col_interval=pad_patches(self.patch_col_interval))


class Decoder:
    """Cached incremental decoding for one environment (batch 1).

    Example:
        dec = gl.model.Decoder(model)
        dec.prefill(prompt_seq)                        # a demonstration, whole timesteps
        dec.observe(tokenizer.tokenize_observation(obs, spec, timestep=t))
        ids = dec.sample_action(tokenizer.action_token_ranges(spec), temperature=0.0, rng=key)
        action = tokenizer.decode_action(ids, spec)

    Args:
      model: a `Gato`; its parameters are read once (re-create the Decoder after training).
      capacity: cache slots S (default `context_len`, Gato's 1024).
      overflow: "memory" or "recompute" (see the module docstring).
      vocab: the id layout the tokenizer uses (tells continuous from discrete action ids).
      dtype: compute dtype of single-token steps (chunks of fewer than 8 tokens); None:
        float32 on CPU, else the model's `config.dtype`. Measured on this 2-core
        AVX512-BF16 CPU at the gato_79m shape: one cached token costs ~23 ms in float32
        but ~140 ms in bfloat16 (XLA's bfloat16 matrix-vector path is slow there).
      chunk_dtype: compute dtype of chunks of 8 or more tokens (observations, prompts);
        None: the model's `config.dtype` (a 40-token Atari-like chunk: ~90 ms in bfloat16
        vs ~110 ms in float32). The weights are stored once per dtype used.
    """

    def __init__(self, model: Gato, capacity: int | None = None, overflow: Overflow = "memory",
                 vocab: Vocabulary | None = None, dtype: str | None = None, chunk_dtype: str | None = None):
        if overflow not in ("memory", "recompute"):
            raise ValueError(f"Decoder.overflow must be 'memory' or 'recompute', got {overflow!r}")
        self.vocab = vocab or Vocabulary()
        if self.vocab.size != model.config.vocab_size:
            raise ValueError(f"Decoder: vocab has {self.vocab.size} ids but the model's vocab_size is {model.config.vocab_size}")
        if capacity is not None and not 1 <= capacity <= model.config.context_len:
            raise ValueError(f"Decoder.capacity must be in [1, context_len={model.config.context_len}], got {capacity}")
        self.config = model.config
        self.capacity = int(capacity or model.config.context_len)
        self.overflow = overflow
        on_cpu = jax.default_backend() == "cpu"
        dtype = dtype or ("float32" if on_cpu else model.config.dtype)
        chunk_dtype = chunk_dtype or model.config.dtype
        for name, value in (("dtype", dtype), ("chunk_dtype", chunk_dtype)):
            if value not in ("float32", "bfloat16"):
                raise ValueError(f"Decoder.{name} must be 'float32' or 'bfloat16', got {value!r}")
        self.dtype, self.chunk_dtype = dtype, chunk_dtype
        self.graphdef, self.state = _network(model, dtype)
        self.chunk_graphdef, self.chunk_state = (
            (self.graphdef, self.state) if chunk_dtype == dtype else _network(model, chunk_dtype))
        self._feed, self._sample = _steps(self.graphdef)
        self._chunk_feed = _steps(self.chunk_graphdef)[0]
        self.reset()

    # --- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Empties the cache and the token history (a new episode)."""
        s = self.capacity
        self.cache = nnx.merge(self.graphdef, self.state).init_cache(1, s + 1)  # last slot: scratch for padding
        self.slot_order = np.full(s + 1, -1, np.int32)
        self.slot_timestep = np.full(s + 1, -1, np.int64)
        self.counter = 0  # tokens fed so far (the order stamp of the next token)
        self.timestep = -1  # current timestep number
        self.pending: list[tuple[int, int, int]] = []  # sampled action tokens not fed yet: (id, modality, timestep)
        self.h_last = None  # hidden state of the last fed token
        self.history: list[_Tokens] = []  # fed tokens, for "recompute"
        self.dropped_timesteps = 0

    @property
    def num_cached(self) -> int:
        return int(np.sum(self.slot_order[: self.capacity] >= 0))

    # --- feeding tokens ------------------------------------------------------------------
    def _pending_tokens(self) -> _Tokens:
        return _Tokens.actions(self.pending, self.config.patch_size, self.config.image_channels)

    def _make_room(self, n: int) -> None:
        """Drops the oldest whole timesteps until n more tokens fit (never mid-timestep)."""
        if n > self.capacity:
            raise ValueError(f"Decoder: {n} new tokens exceed the context of {self.capacity}")
        live = self.slot_order[: self.capacity] >= 0
        if self.capacity - live.sum() >= n:
            return
        ts = self.slot_timestep[: self.capacity][live]
        newest = self.timestep
        for t in np.unique(ts):  # oldest first
            if self.capacity - np.sum(self.slot_order[: self.capacity] >= 0) >= n:
                break
            if t >= newest:
                raise ValueError(f"Decoder: the current timestep alone would exceed the context of {self.capacity} tokens")
            drop = self.slot_timestep[: self.capacity] == t
            self.slot_order[: self.capacity][drop] = -1
            self.slot_timestep[: self.capacity][drop] = -1
            self.dropped_timesteps += 1
        if self.capacity - np.sum(self.slot_order[: self.capacity] >= 0) < n:
            raise ValueError(f"Decoder: the current timestep alone would exceed the context of {self.capacity} tokens")
        if self.overflow == "recompute":
            keep_from = int(self.slot_timestep[self.slot_order >= 0].min()) if np.any(self.slot_order >= 0) else newest
            history = _Tokens.join(self.history) if self.history else None
            self._reset_cache_only()
            if history is not None:
                kept = history.where(history.timestep >= keep_from)
                if len(kept):
                    self._run(kept)

    def _reset_cache_only(self) -> None:
        s = self.capacity
        self.cache = [(jnp.zeros_like(k), jnp.zeros_like(v)) for k, v in self.cache]
        self.slot_order = np.full(s + 1, -1, np.int32)
        self.slot_timestep = np.full(s + 1, -1, np.int64)
        self.history = []

    def _run(self, tokens: _Tokens, lo: int = 0, hi: int = 1, width: int = 1, temperature: float = 0.0,
             key: jax.Array | None = None, all_logits: bool = False):
        """Writes `tokens` into free slots and runs the network on them."""
        n = len(tokens)
        if tokens.ids.min() < 0 or tokens.ids.max() >= self.config.vocab_size:
            raise ValueError(f"Decoder: token ids must lie in [0, {self.config.vocab_size})")
        if tokens.local_position.max() >= self.config.max_local_positions:
            raise ValueError(f"Decoder: an observation has {tokens.local_position.max() + 1} tokens, more than "
                             f"max_local_positions={self.config.max_local_positions}")
        free = np.flatnonzero(self.slot_order[: self.capacity] < 0)[:n]
        tb = _bucket(n, self.capacity)
        slots = np.full(tb, self.capacity, np.int32)  # padding goes to the scratch slot
        slots[:n] = free
        order = np.full(tb, -1, np.int32)
        order[:n] = self.counter + np.arange(n)
        self.slot_order[free] = order[:n]
        self.slot_timestep[free] = tokens.timestep
        self.counter += n
        if self.overflow == "recompute":
            self.history.append(tokens)
        n_img = int(np.sum(tokens.modality == Modality.IMAGE))
        chunk = tokens.chunk(tb, _bucket(n_img, self.capacity) if n_img else 0)
        key = jax.random.key(0) if key is None else key
        feed, state = (self._chunk_feed, self.chunk_state) if tb >= 8 else (self._feed, self.state)
        token, h_last, self.cache, full = feed(
            state, self.cache, chunk, slots, self.slot_order[None].copy(), order[None], np.int32(n - 1),
            np.int32(lo), np.int32(hi), np.float32(temperature), key, width=width, all_logits=all_logits)
        self.h_last = h_last
        return token, (None if full is None else full[:n])

    def _feed_tokens(self, new: _Tokens | None, **sample):
        parts = ([self._pending_tokens()] if self.pending else []) + ([new] if new is not None else [])
        tokens = _Tokens.join(parts)
        self.pending = []
        self._make_room(len(tokens))
        return self._run(tokens, **sample)

    def prefill(self, prompt: TokenSequence, *, return_logits: bool = False):
        """Feeds a prompt (e.g. a demonstration's last 1024 tokens, Gato §2.4), whole timesteps.

        Returns the (N, V) logits of the prompt's tokens when `return_logits` (for tests).
        """
        if len(prompt) == 0:
            raise ValueError("Decoder.prefill: empty prompt")
        tokens = _Tokens.from_sequence(prompt, self.timestep + 1)
        self.timestep = int(tokens.timestep[-1])
        _, full = self._feed_tokens(tokens, all_logits=return_logits)
        return full

    def observe(self, observation: TokenSequence, *, return_logits: bool = False):
        """Starts a new timestep with its observation tokens (ending in '|').

        The previous step's last action token, if pending, is fed first.
        """
        if len(observation) == 0:
            raise ValueError("Decoder.observe: no observation tokens")
        if observation.num_timesteps != 1 or observation.is_action.any():
            raise ValueError("Decoder.observe: expected the tokens of one observation (tokenize_observation), "
                             f"got {observation.num_timesteps} timesteps with {int(observation.is_action.sum())} action tokens")
        self.timestep += 1
        _, full = self._feed_tokens(_Tokens.from_sequence(observation, self.timestep), all_logits=return_logits)
        return full

    def feed_actions(self, ids: np.ndarray, *, return_logits: bool = False):
        """Feeds known action tokens of the current timestep (teacher forcing, e.g. replaying
        a demonstration); returns their (n, V) logits when `return_logits`."""
        ids = np.asarray(ids, np.int32).ravel()
        if len(ids) == 0:
            raise ValueError("Decoder.feed_actions: no action ids")
        if self.timestep < 0:
            raise ValueError("Decoder.feed_actions: observe an observation first")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(f"Decoder.feed_actions: ids must lie in [0, {self.config.vocab_size})")
        n_pending = len(self.pending)
        self.pending += [(int(i), int(self._action_modality(int(i))), self.timestep) for i in ids]
        _, full = self._feed_tokens(None, all_logits=return_logits)
        return None if full is None else full[n_pending:]

    def sample_action(self, ranges: np.ndarray, temperature: float = 1.0, rng: jax.Array | None = None) -> np.ndarray:
        """Samples one action's tokens, one at a time, each restricted to its legal ids.

        Args:
          ranges: (n_action_tokens, 2) half-open legal id ranges, from
            `GatoTokenizer.action_token_ranges(spec)`.
          temperature: softmax temperature; <= 0 means greedy.
          rng: PRNG key (required when temperature > 0).

        Returns:
          (n_action_tokens,) int32 ids; decode with `GatoTokenizer.decode_action`. All but
          the last are fed immediately; the last is fed with the next observation.
        """
        ranges = np.asarray(ranges, np.int64).reshape(-1, 2)
        if len(ranges) == 0:
            raise ValueError("Decoder.sample_action: the action spec has no action tokens")
        if np.any(ranges[:, 0] < 0) or np.any(ranges[:, 1] > self.config.vocab_size) or np.any(ranges[:, 1] <= ranges[:, 0]):
            raise ValueError(f"Decoder.sample_action: ranges must be non-empty and inside [0, {self.config.vocab_size}), got {ranges.tolist()}")
        if self.h_last is None:
            raise ValueError("Decoder.sample_action: observe an observation first")
        if temperature > 0 and rng is None:
            raise ValueError("Decoder.sample_action: temperature > 0 needs rng=jax.random.key(...)")
        width = int(min(self.config.padded_vocab_size, _round_up(int((ranges[:, 1] - ranges[:, 0]).max()), 8)))
        keys = jax.random.split(rng if rng is not None else jax.random.key(0), len(ranges))
        out = np.zeros(len(ranges), np.int32)
        model_view = functools.partial(self._restricted_sample_last, width=width)
        for j, (lo, hi) in enumerate(ranges):
            if j == 0:
                tok = model_view(lo, hi, temperature, keys[j])
            else:
                # Feed the previous action token and sample this one in the same call.
                tok, _ = self._feed_tokens(None, lo=int(lo), hi=int(hi), width=width, temperature=temperature, key=keys[j])
            out[j] = int(tok)
            self.pending.append((int(tok), int(self._action_modality(int(tok))), self.timestep))
        return out

    def _action_modality(self, token: int) -> Modality:
        lo = self.vocab.continuous_offset
        return Modality.CONTINUOUS if lo <= token < lo + self.vocab.continuous_bins else Modality.DISCRETE

    def _restricted_sample_last(self, lo, hi, temperature, key, *, width: int):
        return self._sample(self.state, self.h_last, np.int32(lo), np.int32(hi), np.float32(temperature), key, width=width)


def _network(model: Gato, dtype: str):
    """(graphdef, parameters stored in `dtype`) of `model` built to compute in `dtype`.

    Deployment reads every weight once per token, so a step is bound by memory traffic:
    the weights are cast once here instead of on every call. `dtype` is static in the
    graph, so a different dtype needs a graph built for it (same parameters); the patch
    convolutions keep the model's dtype (see `ModelConfig.patch_dtype`).
    """
    _, state = nnx.split(model)
    if dtype != model.config.dtype:
        config = dataclasses.replace(model.config, dtype=dtype, patch_dtype=model.config.patch_dtype or model.config.dtype)
        model = nnx.eval_shape(lambda: Gato(config, rngs=nnx.Rngs(0)))
    cast = compute_dtype(dtype)
    return nnx.graphdef(model), jax.tree.map(lambda x: x.astype(cast) if jnp.issubdtype(x.dtype, jnp.floating) else x, state)


def _round_up(n: int, m: int) -> int:
    return int(np.ceil(n / m) * m)


def _feed_impl(graphdef, state, cache, chunk, slots, slot_order, query_order, last, lo, hi, temperature, key, *,
               width: int, all_logits: bool):
    """Writes a chunk into the cache, runs it, samples the next token from its last hidden state."""
    model = nnx.merge(graphdef, state)
    h, cache = model.extend(chunk, cache, slots, slot_order, query_order)
    h_last = h[0, last]
    window, start = restricted_logits(model, h_last, lo, hi, width)
    token = start + sample_restricted(window, temperature, key)
    full = logits(model, h)[0] if all_logits else None
    return token, h_last, cache, full


def _sample_impl(graphdef, state, h, lo, hi, temperature, key, *, width: int):
    model = nnx.merge(graphdef, state)
    window, start = restricted_logits(model, h, lo, hi, width)
    return start + sample_restricted(window, temperature, key)


# Jitted steps per graph definition, shared by every Decoder of the same architecture
# (tests and evaluations create many). The graph definition is closed over rather than
# passed as a static argument: hashing it on every call cost ~1.5 ms per decoded token.
_STEPS: dict = {}


def _steps(graphdef):
    if graphdef not in _STEPS:
        feed = jax.jit(functools.partial(_feed_impl, graphdef), static_argnames=("width", "all_logits"),
                       donate_argnames=("cache",))
        sample = jax.jit(functools.partial(_sample_impl, graphdef), static_argnames=("width",))
        _STEPS[graphdef] = (feed, sample)
    return _STEPS[graphdef]
