"""Stage 5: logits -> actions. Batched deployment with a key/value cache (Gato §2.4; GATO_SPEC §5).

    dec = Decoder(model, batch_size=B)                  # B rows: one environment each
    dec.reset(rows, seeds)                              # these rows start new episodes
    dec.prefill(prompts, rows=rows)                     # demonstrations, whole timesteps
    out = dec.act(observation_tokens, ranges, temperature, rows=rows)   # one env step
    out.ids (R, A), out.probs (R, A)  -> tokenizer.decode_action -> env.step -> act ...

The decoder is a sampler in gemma's sense: its state is a pytree (`DecodeState`: every
row's key/value cache slots, which slot holds which token, how many tokens each row has
fed, its last hidden state, its sampling seed) and each call is one jitted function over
static shapes: S cache slots per row, chunks padded to a few lengths T, and per-row masks.
Rows are independent: each has its own live-token count, drops its own oldest timesteps,
samples with its own key, and can be emptied and refilled with a new episode (`reset`)
while the other rows go on, without recompiling. Batch 1 is simply B = 1.

`act` is one environment step for R rows in ONE jitted call (one host round trip): the
chunk [the previous step's last action token, the new observation tokens, '|'] is fed,
then every action token is chosen from the restricted logits and fed back (a `lax.scan`
over the A action tokens), except the last, which is fed with the next observation. It
returns the chosen ids and their probabilities (after temperature), plus the whole
distribution of the first action token (the rollout widget draws it).

Gato used Transformer-XL-style memory at deployment: past keys and values are kept and
each new token attends to them, so a step costs only its own tokens. The cache has S =
context_len slots per row (+1 scratch slot where chunk padding is written); because the
network has no absolute positions (GATO_SPEC §3 [open]), a slot's place in the buffer
does not matter, only the order in which slots were written (`transformer.slot_mask`).
When a row's new tokens would not fit, its oldest *whole timesteps* are dropped, never
part of one (GATO_SPEC §5: the context is 1024 tokens), with one exception: a step whose
observation fills more than half the context (BabyAI's 155 tokens in a 256-token context)
leaves no room for the previous step, whose last action token is fed with it; that step's
cached tokens are dropped and its action token stays alone. An environment step reserves
room for all of its tokens up front (observation + A - 1 fed action tokens), so a drop
happens before the step's chunk, never between its action tokens. Two readings of
"dropped" (switch `overflow`):

  "memory"    (default, Transformer-XL): free the slots; the keys/values that remain
              were computed while the dropped tokens were visible. Costs nothing, and
              happens inside the jitted step, per row.
  "recompute" rebuild the row's cache from its remaining tokens, so decoding equals the
              training-time forward pass on that window exactly. The host keeps each
              row's tokens; a jitted `make_room` call first says which rows dropped
              timesteps, those rows alone are re-run (one row at a time), then the step
              runs. Costs a prefill per overflowing row, for any B.

Sampling is restricted to the ids legal for the action spec (`action_token_ranges`):
a discrete action with n choices may only emit [offset, offset + n), a continuous
dimension only [32000, 33024); padded vocabulary rows are never candidates.
`temperature <= 0` means greedy (argmax); probabilities are then reported at temperature 1.
A row's key at an environment step is fold_in(key(row seed), its timestep), split over
the A tokens: a row's samples depend on its seed and its own history only, not on
which other rows share the batch.

Axis glossary: B rows (environments), R rows in one call (a subset of B, padded up to a
bucket), T chunk tokens, S cache slots (S1 = S + 1 with the scratch slot), D embed,
H heads, K head size, A action tokens, W width of the legal id window, V vocab,
P patches.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jaxtyping import Array, Bool, Float, Int

from gatolab.batch import TokenBatch
from gatolab.model.config import ModelConfig
from gatolab.model.gato import Gato, logits
from gatolab.model.layers import compute_dtype
from gatolab.sequence import TokenSequence
from gatolab.specs import Modality
from gatolab.tokenizers import Vocabulary

Overflow = Literal["memory", "recompute"]

# Chunk lengths are padded up to one of these, so a session compiles a handful of shapes.
# Multiples of 8 up to 128 keep an observation chunk's padding under 8 tokens.
_BUCKETS = (1, 2, 4, *range(8, 129, 8), 160, 192, 256, 384, 512, 768, 1024)
# The rows of one call are padded up to one of these (or to B): when most rows of a batch
# have finished their episodes, the step runs on the few that have not, with few compiles.
_ROW_BUCKETS = (1, 4, 16, 64, 256, 1024)
_INT_MAX = np.iinfo(np.int32).max


def _bucket(n: int, capacity: int) -> int:
    for b in _BUCKETS:
        if b >= n:
            return min(b, max(capacity, n))
    return int(np.ceil(n / 256) * 256)


def _round_up(n: int, m: int) -> int:
    return int(np.ceil(n / m) * m)


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


# ---------------------------------------------------------------------------------------
# The sampler's state
# ---------------------------------------------------------------------------------------
@struct.dataclass
class DecodeState:
    """B rows of decoding state: the pytree every jitted step reads and returns.

    Attributes:
      cache: per layer (keys, values), each (B, S1, H, K); slot S is scratch (chunk padding).
      slot_order: (B, S1) the row's token counter when each slot was written; -1 free.
      slot_timestep: (B, S1) the decoder timestep of each slot's token; -1 free.
      counter: (B,) tokens each row has fed (the next order stamp).
      h_last: (B, D) final hidden state of each row's last fed token (float32).
      dropped: (B,) whole timesteps each row has dropped since its reset.
      seed: (B,) each row's sampling seed (its key is fold_in(key(seed), timestep)).
    """

    cache: list[tuple[Array, Array]]
    slot_order: Int[Array, "B S1"]
    slot_timestep: Int[Array, "B S1"]
    counter: Int[Array, "B"]
    h_last: Float[Array, "B D"]
    dropped: Int[Array, "B"]
    seed: Int[Array, "B"]

    @classmethod
    def empty(cls, model: Gato, rows: int, slots: int) -> DecodeState:
        """`rows` empty rows of `slots` slots each (plus the scratch slot)."""
        return cls(cache=model.init_cache(rows, slots + 1), slot_order=jnp.full((rows, slots + 1), -1, jnp.int32),
                   slot_timestep=jnp.full((rows, slots + 1), -1, jnp.int32), counter=jnp.zeros(rows, jnp.int32),
                   h_last=jnp.zeros((rows, model.config.embed_dim), jnp.float32), dropped=jnp.zeros(rows, jnp.int32),
                   seed=jnp.zeros(rows, jnp.int32))


class Sampled(NamedTuple):
    """What `Decoder.act` chose for R rows.

    ids: (R, A) chosen ids; probs: (R, A) the probability of each (after temperature;
    temperature 1 when greedy); first: (R, W) the distribution over the first action
    token's window of ids starting at `start` (R,) (illegal ids have probability 0).
    """

    ids: np.ndarray
    probs: np.ndarray
    first: np.ndarray
    start: np.ndarray

    def first_dist(self, i: int, lo: int, hi: int) -> np.ndarray:
        """Row i's first-token distribution over its legal ids [lo, hi) (float64, sums to 1)."""
        p = self.first[i, lo - self.start[i]: hi - self.start[i]].astype(np.float64)
        return p / p.sum()


# ---------------------------------------------------------------------------------------
# Per-row pieces (vmapped over rows inside the jitted steps)
# ---------------------------------------------------------------------------------------
def _make_room(order: Int[Array, "S1"], stamp: Int[Array, "S1"], counter: Int[Array, ""], need: Int[Array, ""],
               oldest_new: Int[Array, ""], newest_new: Int[Array, ""]):
    """One row: drops its oldest whole timesteps until `need` more tokens fit.

    The row's live tokens are always its newest ones, stamps [counter - L, counter) (tokens
    are written in order and dropped oldest first), and their timesteps are contiguous. To
    keep at most K = S - need of them, the token stamped counter - K - 1 must go, and with
    it every token of its timestep or older. Timesteps at or after `oldest_new` (those the
    new tokens belong to) are never dropped, unless the new tokens would not fit even then:
    a chunk [last action token of step t-1, observation of step t] whose observation is
    more than half the context leaves no room for step t-1's cached tokens, so those go
    (only timesteps before `newest_new` are ever dropped) and the action token is written
    after them, the one token of step t-1 the row keeps.

    Returns (order, stamp, timesteps dropped, fits, oldest timestep kept).
    """
    s = order.shape[0] - 1
    live = order[:s] >= 0
    ts = stamp[:s]
    n_live = jnp.sum(live, dtype=jnp.int32)
    keep = s - need
    oldest = stamp[(counter - n_live) % s]
    want = jnp.where(n_live > keep, stamp[(counter - keep - 1) % s] + 1, oldest)  # drop timesteps < want

    def up_to(bound):
        cut = jnp.where(n_live > 0, jnp.minimum(want, bound), bound)
        drop = live & (ts < cut)
        return cut, drop, n_live - jnp.sum(drop, dtype=jnp.int32) + need <= s

    cut, drop, fits = up_to(oldest_new)
    cut2, drop2, fits2 = up_to(newest_new)
    cut, drop, fits = jnp.where(fits, cut, cut2), jnp.where(fits, drop, drop2), fits | fits2
    n_steps = jnp.where(drop.any(), cut - oldest, 0)
    order = order.at[:s].set(jnp.where(drop, -1, order[:s]))
    stamp = stamp.at[:s].set(jnp.where(drop, -1, ts))
    return order, stamp, n_steps, fits, cut


def _place(order: Int[Array, "S1"], stamp: Int[Array, "S1"], counter: Int[Array, ""], n: Int[Array, ""],
           tok_ts: Int[Array, "T"]):
    """One row: writes n new tokens into the slots of a ring (stamp c -> slot c mod S), padding
    into the scratch slot S. After `_make_room` those slots hold only dropped tokens.

    Returns (order, stamp, counter, slots (T,), query order (T,), -1 for padding).
    """
    s = order.shape[0] - 1
    t = tok_ts.shape[0]
    real = jnp.arange(t) < n
    stamps = counter + jnp.arange(t, dtype=jnp.int32)
    slots = jnp.where(real, stamps % s, s)
    query = jnp.where(real, stamps, -1)
    order = order.at[slots].set(query)  # padding writes -1 into the scratch slot
    stamp = stamp.at[slots].set(jnp.where(real, tok_ts, -1))
    return order, stamp, counter + n, slots, query


def _extend(model: Gato, cache, chunk: TokenBatch, slots: Int[Array, "R T"], order: Int[Array, "R S1"],
            query: Int[Array, "R T"]):
    """Runs R rows' chunks against their own caches: `Gato.extend` of one row, vmapped over rows.

    Each row writes its own slots, so the batch axis is vmapped rather than shared; the
    matmuls still see R x T tokens at once. One row calls `Gato.extend` directly (the
    vmapped one-token cache write would become a select over the whole cache on XLA:CPU).
    """
    if chunk.ids.shape[0] == 1:
        return model.extend(chunk, cache, slots[0], order, query)

    def one(cache_row, chunk_row, slots_row, order_row, query_row):
        c1 = [(k[None], v[None]) for k, v in cache_row]
        h, c1 = model.extend(jax.tree.map(lambda x: x[None], chunk_row), c1, slots_row, order_row[None], query_row[None])
        return h[0], [(k[0], v[0]) for k, v in c1]

    return jax.vmap(one)(cache, chunk, slots, order, query)


def _choose(model: Gato, h: Float[Array, "D"], lo, hi, temperature, key, width: int):
    """One row, one action token: (id, its probability, the window's distribution (W,), window start)."""
    window, start = restricted_logits(model, h, lo, hi, width)
    window = window.astype(jnp.float32)
    t = jnp.where(temperature > 0, temperature, 1.0)
    logp = jax.nn.log_softmax(window / t)
    k = sample_restricted(window, temperature, key)
    return start + k, jnp.exp(logp[k]), jnp.exp(logp), start


def _action_chunk(ids: Int[Array, "R"], active: Bool[Array, "R"], vocab: Vocabulary, config: ModelConfig) -> TokenBatch:
    """The (R, 1) chunk of one action token per row (continuous or discrete by its id)."""
    r, s, c = ids.shape[0], config.patch_size, config.image_channels
    lo = vocab.continuous_offset
    cont = (ids >= lo) & (ids < lo + vocab.continuous_bins)
    modality = jnp.where(cont, int(Modality.CONTINUOUS), int(Modality.DISCRETE)).astype(jnp.int8)
    fields = ({} if config.obs_encoding == "tokens" else
              {"field_width": jnp.zeros((r, 1), jnp.int32), "field_values": jnp.zeros((r, 1, config.field_width), jnp.float32)})
    return TokenBatch(ids=ids[:, None].astype(jnp.int32), modality=modality[:, None],
                      local_position=jnp.full((r, 1), -1, jnp.int32), is_action=jnp.ones((r, 1), bool),
                      patch_index=jnp.full((r, 1), -1, jnp.int32), valid=active[:, None], loss_mask=jnp.zeros((r, 1), bool),
                      patches=jnp.zeros((r, 0, s, s, c), jnp.float32),
                      patch_row_interval=jnp.zeros((r, 0, 2), jnp.float32), patch_col_interval=jnp.zeros((r, 0, 2), jnp.float32),
                      **fields)


# ---------------------------------------------------------------------------------------
# The jitted steps (pure functions of the state)
# ---------------------------------------------------------------------------------------
def _gather(state: DecodeState, rows) -> DecodeState:
    return state if rows is None else jax.tree.map(lambda x: x[rows], state)


def _scatter(state: DecodeState, rows, sub: DecodeState) -> DecodeState:
    return sub if rows is None else jax.tree.map(lambda x, y: x.at[rows].set(y), state, sub)


def _room(sub: DecodeState, need, oldest, newest):
    order, stamp, n_steps, fits, keep_from = jax.vmap(_make_room)(sub.slot_order, sub.slot_timestep, sub.counter, need,
                                                                  oldest, newest)
    return sub.replace(slot_order=order, slot_timestep=stamp, dropped=sub.dropped + n_steps), n_steps, fits, keep_from


def _run_chunk(model: Gato, sub: DecodeState, chunk: TokenBatch, n_new, tok_ts):
    """Places and runs R rows' chunks (n_new (R,) real tokens each); returns (state, h (R, T, D))."""
    order, stamp, counter, slots, query = jax.vmap(_place)(sub.slot_order, sub.slot_timestep, sub.counter, n_new, tok_ts)
    h, cache = _extend(model, sub.cache, chunk, slots, order, query)
    last = h[jnp.arange(h.shape[0]), jnp.maximum(n_new - 1, 0)].astype(jnp.float32)
    h_last = jnp.where((n_new > 0)[:, None], last, sub.h_last)
    return sub.replace(cache=cache, slot_order=order, slot_timestep=stamp, counter=counter, h_last=h_last), h


def _oldest(tok_ts, n_new, fallback):
    real = jnp.arange(tok_ts.shape[1])[None] < n_new[:, None]
    return jnp.where(n_new > 0, jnp.min(jnp.where(real, tok_ts, _INT_MAX), axis=1), fallback)


def _newest(tok_ts, n_new, fallback):
    real = jnp.arange(tok_ts.shape[1])[None] < n_new[:, None]
    return jnp.where(n_new > 0, jnp.max(jnp.where(real, tok_ts, -1), axis=1), fallback)


def _feed_impl(graphdef, params, state, rows, chunk, n_new, tok_ts, *, all_logits: bool):
    """Feeds chunks to R rows (dropping their oldest timesteps first where needed)."""
    model = nnx.merge(graphdef, params)
    sub = _gather(state, rows)
    sub, _, fits, _ = _room(sub, n_new, _oldest(tok_ts, n_new, 0), _newest(tok_ts, n_new, 0))
    sub, h = _run_chunk(model, sub, chunk, n_new, tok_ts)
    full = logits(model, h) if all_logits else None
    return _scatter(state, rows, sub), fits, full


def _make_room_impl(state, rows, need, oldest, newest):
    sub, n_steps, fits, keep_from = _room(_gather(state, rows), need, oldest, newest)
    return _scatter(state, rows, sub), n_steps, fits, keep_from


def _clear_impl(state, clear, seed):
    """Empties the rows where `clear` (B,) is set: a new episode (sampling seed `seed` (B,))."""
    c = clear[:, None]
    return state.replace(slot_order=jnp.where(c, -1, state.slot_order), slot_timestep=jnp.where(c, -1, state.slot_timestep),
                         counter=jnp.where(clear, 0, state.counter), h_last=jnp.where(c, 0.0, state.h_last),
                         dropped=jnp.where(clear, 0, state.dropped), seed=jnp.where(clear, seed, state.seed))


def _act_impl(chunk_graphdef, token_graphdef, vocab, chunk_params, token_params, state, rows, active, chunk, n_new, tok_ts,
              act_ts, ranges, temperature, keys, *, width: int, n_act: int):
    """One environment step for R rows: feed the chunk, then choose (and feed) the A action tokens.

    Args:
      active: (R,) rows that act (the others, padding of the row bucket, are left as they are).
      chunk, n_new, tok_ts: the (R, T) chunk, its real tokens per row, their timesteps; None:
        the rows have been fed already (`Decoder.sample_action`).
      act_ts: (R,) the timestep the action tokens belong to.
      ranges: (R, A, 2) legal id ranges; temperature: () float; keys: (R,) keys, or None to
        use fold_in(key(row seed), act_ts).
    """
    token_model = nnx.merge(token_graphdef, token_params)
    sub = _gather(state, rows)
    n_chunk = jnp.zeros_like(act_ts) if chunk is None else n_new
    need = jnp.where(active, n_chunk + n_act - 1, 0)
    oldest = jnp.minimum(_oldest(tok_ts, n_chunk, act_ts), act_ts) if chunk is not None else act_ts
    sub, _, fits, _ = _room(sub, need, oldest, act_ts)
    if chunk is not None:
        sub, _ = _run_chunk(nnx.merge(chunk_graphdef, chunk_params), sub, chunk, n_chunk, tok_ts)
    if keys is None:
        keys = jax.vmap(lambda s, t: jax.random.fold_in(jax.random.key(s), t))(sub.seed, act_ts)
    keys = jax.vmap(lambda k: jax.random.split(k, n_act))(keys)  # (R, A)
    choose = jax.vmap(functools.partial(_choose, token_model, width=width), in_axes=(0, 0, 0, None, 0))
    first_id, first_p, first, start = choose(sub.h_last, ranges[:, 0, 0], ranges[:, 0, 1], temperature, keys[:, 0])
    cfg = token_model.config

    def body(carry, xs):
        sub, prev = carry
        rng, key = xs
        tokens = _action_chunk(prev, active, vocab, cfg)
        sub, _ = _run_chunk(token_model, sub, tokens, active.astype(jnp.int32), act_ts[:, None])
        tok, p, _, _ = choose(sub.h_last, rng[:, 0], rng[:, 1], temperature, key)
        return (sub, tok), (tok, p)

    ids, probs = first_id[:, None], first_p[:, None]
    if n_act > 1:
        (sub, _), (rest, rest_p) = jax.lax.scan(body, (sub, first_id), (ranges[:, 1:].swapaxes(0, 1), keys[:, 1:].swapaxes(0, 1)))
        ids, probs = jnp.concatenate([ids, rest.T], axis=1), jnp.concatenate([probs, rest_p.T], axis=1)
    return _scatter(state, rows, sub), fits, ids, probs, first, start


# Jitted steps per graph definition, shared by every Decoder of the same architecture
# (tests and evaluations create many). The graph definitions are closed over rather than
# passed as static arguments: hashing one on every call cost ~1.5 ms per decoded token.
_STEPS: dict = {}


def _steps(graphdef, token_graphdef, vocab: Vocabulary):
    key = (graphdef, token_graphdef, vocab)
    if key not in _STEPS:
        _STEPS[key] = {
            "feed": jax.jit(functools.partial(_feed_impl, graphdef), static_argnames=("all_logits",), donate_argnums=(1,)),
            "token_feed": jax.jit(functools.partial(_feed_impl, token_graphdef), static_argnames=("all_logits",),
                                  donate_argnums=(1,)),
            "act": jax.jit(functools.partial(_act_impl, graphdef, token_graphdef, vocab), static_argnames=("width", "n_act"),
                           donate_argnums=(2,)),
            "room": jax.jit(_make_room_impl, donate_argnums=(0,)),
            "clear": jax.jit(_clear_impl, donate_argnums=(0,)),
        }
    return _STEPS[key]


# ---------------------------------------------------------------------------------------
# Host-side tokens
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Tokens:
    """Tokens the decoder feeds or has fed to one row, one entry per token, numbered by decoder timestep.

    The per-token fields are `TokenBatch`'s, plus `timestep` and `patch_count` (the patches a
    token embeds: 1 per IMAGE token with Gato's tokens, a whole image with
    `obs_encoding="field"`); the patches of the image tokens follow in token order, so
    pieces join and split by plain indexing, and `chunk` packs them into the `TokenBatch`
    row the network reads.
    """

    ids: np.ndarray  # (N,) int32
    modality: np.ndarray  # (N,) int8
    local_position: np.ndarray  # (N,) int32
    is_action: np.ndarray  # (N,) bool
    timestep: np.ndarray  # (N,) int64: the decoder's timestep counter
    patch_count: np.ndarray  # (N,) int64
    patches: np.ndarray  # (P, S, S, C) float32, P = patch_count.sum()
    patch_row_interval: np.ndarray  # (P, 2) float32
    patch_col_interval: np.ndarray  # (P, 2) float32
    field_width: np.ndarray | None = None  # (N,) int32, obs_encoding="field" only
    field_values: np.ndarray | None = None  # (N, F) float32, obs_encoding="field" only

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_sequence(cls, seq: TokenSequence, first_timestep: int) -> _Tokens:
        """`seq`'s tokens, its timesteps renumbered from `first_timestep`."""
        t = seq.timestep - (seq.timestep[0] if len(seq) else 0) + first_timestep
        return cls(seq.ids, seq.modality, seq.local_position, seq.is_action, t.astype(np.int64), seq.patch_counts(),
                   seq.patches, seq.patch_row_interval, seq.patch_col_interval, seq.field_width, seq.field_values)

    @classmethod
    def actions(cls, pending: list[tuple[int, int, int]], config: ModelConfig) -> _Tokens:
        """Action tokens from (id, modality, timestep) triples."""
        n, s, c = len(pending), config.patch_size, config.image_channels
        fields = ({} if config.obs_encoding == "tokens" else
                  {"field_width": np.zeros(n, np.int32), "field_values": np.zeros((n, config.field_width), np.float32)})
        return cls(np.array([p[0] for p in pending], np.int32), np.array([p[1] for p in pending], np.int8),
                   np.full(n, -1, np.int32), np.ones(n, bool), np.array([p[2] for p in pending], np.int64),
                   np.zeros(n, np.int64), np.zeros((0, s, s, c), np.float32), np.zeros((0, 2), np.float32),
                   np.zeros((0, 2), np.float32), **fields)

    @classmethod
    def join(cls, parts: list[_Tokens]) -> _Tokens | None:
        parts = [p for p in parts if len(p)]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return cls(**{f.name: None if getattr(parts[0], f.name) is None else
                      np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)})

    def where(self, keep: np.ndarray) -> _Tokens:
        per_patch = np.repeat(keep, self.patch_count)
        return _Tokens(**{f.name: None if getattr(self, f.name) is None else
                          getattr(self, f.name)[per_patch if f.name in _PER_PATCH else keep] for f in dataclasses.fields(self)})

    @property
    def num_patches(self) -> int:
        return int(self.patch_count.sum())

    def chunk(self, length: int, patch_slots: int) -> dict[str, np.ndarray]:
        """One row of a `TokenBatch` (fields without the B axis): these tokens, then padding;
        the image tokens' patches, in order, padded to `patch_slots` (0: no patch axis)."""
        n = len(self)
        is_img = self.modality == Modality.IMAGE

        def pad(a, fill):
            out = np.full((length, *a.shape[1:]), fill, a.dtype)
            out[:n] = a
            return out

        def pad_patches(a):
            out = np.zeros((patch_slots, *a.shape[1:]), np.float32)
            out[: len(a)] = a[:patch_slots]
            return out

        first = np.cumsum(self.patch_count) - self.patch_count
        out = dict(ids=pad(self.ids, 0), modality=pad(self.modality, int(Modality.PAD)),
                   local_position=pad(self.local_position, -1), is_action=pad(self.is_action, False),
                   patch_index=pad(np.where(is_img, first, -1).astype(np.int32), -1),
                   valid=pad(np.ones(n, bool), False), loss_mask=pad(np.zeros(n, bool), False),
                   patches=pad_patches(self.patches), patch_row_interval=pad_patches(self.patch_row_interval),
                   patch_col_interval=pad_patches(self.patch_col_interval))
        if self.field_width is not None:
            out.update(field_width=pad(self.field_width, 0), field_values=pad(self.field_values, 0.0))
        return out


_PER_PATCH = ("patches", "patch_row_interval", "patch_col_interval")


# ---------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------
class Decoder:
    """Cached incremental decoding for B environments at once (B = 1: one environment).

    Example (one environment, the batch-1 calls):
        dec = gl.model.Decoder(model)
        dec.prefill(prompt_seq)                        # a demonstration, whole timesteps
        dec.observe(tokenizer.tokenize_observation(obs, spec, timestep=t))
        ids = dec.sample_action(tokenizer.action_token_ranges(spec), temperature=0.0, rng=key)
        action = tokenizer.decode_action(ids, spec)

    Example (B environments, one jitted call per step):
        dec = gl.model.Decoder(model, batch_size=B)
        dec.reset(seeds=seeds)
        dec.prefill(prompts)                           # one TokenSequence (or None) per row
        out = dec.act(observations, ranges, temperature=1.0)   # out.ids (B, A), out.probs (B, A)

    Every method takes `rows` (default: all rows, or row 0 when given one sequence): the
    rows it feeds, in the order of its per-row arguments; other rows are untouched.

    Args:
      model: a `Gato`; its parameters are read once (re-create the Decoder after training).
      capacity: cache slots S per row (default `context_len`, Gato's 1024).
      overflow: "memory" or "recompute" (see the module docstring).
      vocab: the id layout the tokenizer uses (tells continuous from discrete action ids).
      dtype: compute dtype of single-token steps (the fed action tokens, chunks of fewer
        than 8 tokens); None: float32 on CPU, else the model's `config.dtype`. XLA's CPU
        bfloat16 matrix-vector path is several times slower than float32's.
      chunk_dtype: compute dtype of chunks of 8 or more tokens (observations, prompts);
        None: the model's `config.dtype`. The weights are stored once per dtype used.
      batch_size: B, the rows (environments) decoded together.
      cache_dtype: dtype of the stored keys/values ("float32" or "bfloat16"; None: float32).
    """

    def __init__(self, model: Gato, capacity: int | None = None, overflow: Overflow = "memory",
                 vocab: Vocabulary | None = None, dtype: str | None = None, chunk_dtype: str | None = None, *,
                 batch_size: int = 1, cache_dtype: str | None = None):
        if overflow not in ("memory", "recompute"):
            raise ValueError(f"Decoder.overflow must be 'memory' or 'recompute', got {overflow!r}")
        self.vocab = vocab or Vocabulary()
        if self.vocab.size != model.config.vocab_size:
            raise ValueError(f"Decoder: vocab has {self.vocab.size} ids but the model's vocab_size is {model.config.vocab_size}")
        if capacity is not None and not 1 <= capacity <= model.config.context_len:
            raise ValueError(f"Decoder.capacity must be in [1, context_len={model.config.context_len}], got {capacity}")
        if batch_size < 1:
            raise ValueError(f"Decoder.batch_size must be >= 1, got {batch_size}")
        self.config = model.config
        self.capacity = int(capacity or model.config.context_len)
        self.batch_size = int(batch_size)
        self.overflow = overflow
        on_cpu = jax.default_backend() == "cpu"
        dtype = dtype or ("float32" if on_cpu else model.config.dtype)
        chunk_dtype = chunk_dtype or model.config.dtype
        cache_dtype = cache_dtype or "float32"
        for name, value in (("dtype", dtype), ("chunk_dtype", chunk_dtype), ("cache_dtype", cache_dtype)):
            if value not in ("float32", "bfloat16"):
                raise ValueError(f"Decoder.{name} must be 'float32' or 'bfloat16', got {value!r}")
        self.dtype, self.chunk_dtype, self.cache_dtype = dtype, chunk_dtype, cache_dtype
        self.graphdef, self.params = _network(model, dtype)
        self.chunk_graphdef, self.chunk_params = (
            (self.graphdef, self.params) if chunk_dtype == dtype else _network(model, chunk_dtype))
        self._steps = _steps(self.chunk_graphdef, self.graphdef, self.vocab)
        self._model = model
        self.state = self._empty_state()
        self._timestep = np.full(self.batch_size, -1, np.int64)
        self._pending: list[list[tuple[int, int, int]]] = [[] for _ in range(self.batch_size)]
        self._history: list[list[_Tokens]] = [[] for _ in range(self.batch_size)]
        self._fed = np.zeros(self.batch_size, bool)

    def _empty_state(self) -> DecodeState:
        st = DecodeState.empty(nnx.merge(self.graphdef, self.params), self.batch_size, self.capacity)
        dt = compute_dtype(self.cache_dtype)
        return st.replace(cache=[(k.astype(dt), v.astype(dt)) for k, v in st.cache])

    # --- state ---------------------------------------------------------------------------
    def reset(self, rows: Sequence[int] | None = None, seeds: Sequence[int] | None = None) -> None:
        """Empties rows (default all) for new episodes; `seeds` sets their sampling seeds (default 0)."""
        rows = self._rows(rows)
        seeds = np.zeros(len(rows), np.int64) if seeds is None else np.asarray(seeds, np.int64).ravel()
        if len(seeds) != len(rows):
            raise ValueError(f"Decoder.reset: {len(seeds)} seeds for {len(rows)} rows")
        clear = np.zeros(self.batch_size, bool)
        clear[rows] = True
        seed = np.zeros(self.batch_size, np.int32)
        seed[rows] = (seeds % (2**31)).astype(np.int32)
        self.state = self._steps["clear"](self.state, clear, seed)
        for r in rows:
            self._timestep[r] = -1
            self._pending[r] = []
            self._history[r] = []
            self._fed[r] = False

    @property
    def slot_order(self) -> np.ndarray:
        """(B, S1) each slot's order stamp (-1 free; slot S is scratch)."""
        return np.asarray(self.state.slot_order)

    @property
    def slot_timestep(self) -> np.ndarray:
        """(B, S1) each slot's decoder timestep (-1 free)."""
        return np.asarray(self.state.slot_timestep)

    @property
    def num_cached(self) -> np.ndarray:
        """(B,) live tokens per row."""
        return np.sum(self.slot_order[:, : self.capacity] >= 0, axis=1)

    @property
    def dropped_timesteps(self) -> np.ndarray:
        """(B,) whole timesteps each row has dropped since its reset."""
        return np.asarray(self.state.dropped)

    def _rows(self, rows: Sequence[int] | None, n: int | None = None) -> list[int]:
        if rows is None:
            rows = list(range(self.batch_size)) if n is None or n == self.batch_size else list(range(n))
        rows = [int(r) for r in rows]
        if any(not 0 <= r < self.batch_size for r in rows) or len(set(rows)) != len(rows):
            raise ValueError(f"Decoder: rows must be distinct and in [0, {self.batch_size}), got {rows}")
        if n is not None and n != len(rows):
            raise ValueError(f"Decoder: {n} inputs for {len(rows)} rows")
        return rows

    def _call_rows(self, rows: list[int]) -> tuple[np.ndarray | None, list[int]]:
        """The rows one call runs on: `rows` padded up to a row bucket with other rows (which
        stay as they are). Returns (index array, or None for all B rows in order (no gather);
        the rows in call order)."""
        b = self.batch_size
        size = next((x for x in _ROW_BUCKETS if x >= len(rows)), b)
        if size >= b:
            return None, list(range(b))
        chosen = set(rows)
        padded = rows + [r for r in range(b) if r not in chosen][: size - len(rows)]
        return np.asarray(padded, np.int32), padded

    # --- feeding tokens ------------------------------------------------------------------
    def _pending_tokens(self, r: int) -> _Tokens:
        return _Tokens.actions(self._pending[r], self.config)

    def _check_tokens(self, tokens: _Tokens) -> None:
        encoding = "tokens" if tokens.field_width is None else "field"
        if encoding != self.config.obs_encoding:
            raise ValueError(f"Decoder: tokens encoded with obs_encoding={encoding!r} but the model expects "
                             f"{self.config.obs_encoding!r}; tokenize with the checkpoint's tokenizer")
        if len(tokens) > self.capacity:
            raise ValueError(f"Decoder: {len(tokens)} new tokens exceed the context of {self.capacity}")
        if tokens.ids.min() < 0 or tokens.ids.max() >= self.config.vocab_size:
            raise ValueError(f"Decoder: token ids must lie in [0, {self.config.vocab_size})")
        if tokens.local_position.max() >= self.config.max_local_positions:
            raise ValueError(f"Decoder: an observation has {tokens.local_position.max() + 1} tokens, more than "
                             f"max_local_positions={self.config.max_local_positions}")

    def _chunk(self, per_row: list[_Tokens | None], min_tokens: int = 0) -> tuple[TokenBatch, np.ndarray, np.ndarray]:
        """(R, T) chunk of per-row tokens (None: no tokens), T the bucket of the longest (at least `min_tokens`)."""
        n = np.array([0 if t is None else len(t) for t in per_row], np.int32)
        length = _bucket(max(int(n.max()), min_tokens), self.capacity)
        n_img = max((t.num_patches for t in per_row if t is not None), default=0)
        slots = _bucket(n_img, self.capacity) if n_img else 0
        empty = _Tokens.actions([], self.config)
        rows = [(empty if t is None else t).chunk(length, slots) for t in per_row]
        chunk = TokenBatch(**{k: np.stack([r[k] for r in rows]) for k in rows[0]})
        ts = np.zeros((len(per_row), length), np.int32)
        for i, t in enumerate(per_row):
            if t is not None:
                ts[i, : len(t)] = t.timestep
        return chunk, n, ts

    def _recompute_before(self, rows: list[int], need: np.ndarray, oldest: np.ndarray, newest: np.ndarray) -> None:
        """'recompute': makes room for `need` tokens per row; rows that dropped timesteps are
        rebuilt from their remaining tokens (one row at a time)."""
        index, padded = self._call_rows(rows)
        pos = [padded.index(r) for r in rows]
        need_p = np.zeros(len(padded), np.int32)
        oldest_p = np.zeros(len(padded), np.int32)
        newest_p = np.zeros(len(padded), np.int32)
        need_p[pos], oldest_p[pos], newest_p[pos] = need, oldest, newest
        self.state, n_steps, fits, keep_from = self._steps["room"](self.state, index, need_p, oldest_p, newest_p)
        n_steps, keep_from = np.asarray(n_steps)[pos], np.asarray(keep_from)[pos]
        for i, r in enumerate(rows):
            if n_steps[i] == 0:
                continue
            history = _Tokens.join(self._history[r])
            clear = np.zeros(self.batch_size, bool)
            clear[r] = True
            counter_seed = np.asarray(self.state.seed)
            dropped = np.asarray(self.state.dropped)[r]
            self.state = self._steps["clear"](self.state, clear, counter_seed)
            self.state = self.state.replace(dropped=self.state.dropped.at[r].set(dropped))
            self._history[r] = []
            if history is not None:
                kept = history.where(history.timestep >= keep_from[i])
                if len(kept):
                    self._feed_rows([r], [kept], recompute=False)

    def _feed_rows(self, rows: list[int], per_row: list[_Tokens | None], return_logits: bool = False,
                   recompute: bool = True):
        """Feeds tokens to rows (one jitted call); returns per-row (n, V) logits when asked."""
        for t in per_row:
            if t is not None:
                self._check_tokens(t)
        if self.overflow == "recompute" and recompute:
            n = np.array([0 if t is None else len(t) for t in per_row], np.int32)
            oldest = np.array([0 if t is None else int(t.timestep.min()) for t in per_row], np.int32)
            newest = np.array([0 if t is None else int(t.timestep.max()) for t in per_row], np.int32)
            self._recompute_before(rows, n, oldest, newest)
        index, padded = self._call_rows(rows)
        pos = [padded.index(r) for r in rows]
        by_row = dict(zip(rows, per_row))
        chunk, n_new, ts = self._chunk([by_row.get(r) for r in padded])
        step = self._steps["feed"] if chunk.ids.shape[1] >= 8 else self._steps["token_feed"]
        params = self.chunk_params if chunk.ids.shape[1] >= 8 else self.params
        self.state, fits, full = step(params, self.state, index, chunk, n_new, ts, all_logits=return_logits)
        self._after_feed(rows, per_row, np.asarray(fits)[pos])
        if not return_logits:
            return None
        full = np.asarray(full)
        return [None if t is None else full[p, : len(t)] for p, t in zip(pos, per_row)]

    def _after_feed(self, rows: list[int], per_row: list[_Tokens | None], fits: np.ndarray) -> None:
        for i, r in enumerate(rows):
            if per_row[i] is not None:
                self._fed[r] = True
                if self.overflow == "recompute":
                    self._history[r].append(per_row[i])
            if not fits[i]:
                raise ValueError(f"Decoder: the current timestep alone would exceed the context of {self.capacity} "
                                 f"tokens (row {r}); reset the row")

    def _as_rows(self, seqs, rows, what: str):
        single = seqs is None or isinstance(seqs, TokenSequence)
        seqs = [seqs] if single else list(seqs)
        return single, seqs, self._rows(rows if rows is not None or not single else [0], len(seqs))

    def prefill(self, prompt: TokenSequence | Sequence[TokenSequence | None], *, rows: Sequence[int] | None = None,
                return_logits: bool = False):
        """Feeds prompts (e.g. a demonstration's first 1024 tokens, Gato §2.4), whole timesteps.

        Args:
          prompt: one `TokenSequence` (row 0, or `rows[0]`), or one per row (None: nothing for that row).
          rows: the rows fed (default: row 0 for one sequence, else rows 0..n-1).
          return_logits: also return the (N, V) logits of each prompt's tokens (for tests).
        """
        single, seqs, rows = self._as_rows(prompt, rows, "prefill")
        per_row = []
        for r, seq in zip(rows, seqs):
            if seq is None:
                per_row.append(None)
                continue
            if len(seq) == 0:
                raise ValueError("Decoder.prefill: empty prompt")
            tokens = _Tokens.from_sequence(seq, int(self._timestep[r]) + 1)
            self._timestep[r] = int(tokens.timestep[-1])
            per_row.append(_Tokens.join([self._pending_tokens(r), tokens]))
            self._pending[r] = []
        full = self._feed_rows(rows, per_row, return_logits)
        if full is None:
            return None
        return full[0] if single else full

    def observe(self, observation: TokenSequence | Sequence[TokenSequence], *, rows: Sequence[int] | None = None,
                return_logits: bool = False):
        """Starts a new timestep with each row's observation tokens (ending in '|').

        The previous step's last action token, if pending, is fed first.
        """
        single, seqs, rows = self._as_rows(observation, rows, "observe")
        per_row = [_Tokens.join([self._pending_tokens(r), self._observation(r, seq)]) for r, seq in zip(rows, seqs)]
        for r in rows:
            self._pending[r] = []
        full = self._feed_rows(rows, per_row, return_logits)
        if full is None:
            return None
        return full[0] if single else full

    def _observation(self, r: int, seq: TokenSequence) -> _Tokens:
        if len(seq) == 0:
            raise ValueError("Decoder.observe: no observation tokens")
        if seq.num_timesteps != 1 or seq.is_action.any():
            raise ValueError("Decoder.observe: expected the tokens of one observation (tokenize_observation), "
                             f"got {seq.num_timesteps} timesteps with {int(seq.is_action.sum())} action tokens")
        self._timestep[r] += 1
        return _Tokens.from_sequence(seq, int(self._timestep[r]))

    def feed_actions(self, ids: np.ndarray, *, rows: Sequence[int] | None = None, return_logits: bool = False):
        """Feeds known action tokens of the current timestep (teacher forcing, e.g. replaying
        a demonstration); returns their (n, V) logits when `return_logits`.

        `ids`: (n,) ids for row 0 (or `rows[0]`), or (R, n) for R rows.
        """
        ids = np.asarray(ids, np.int32)
        single = ids.ndim <= 1
        ids = ids.reshape(1, -1) if single else ids
        rows = self._rows(rows if rows is not None or not single else [0], len(ids))
        if ids.shape[1] == 0:
            raise ValueError("Decoder.feed_actions: no action ids")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(f"Decoder.feed_actions: ids must lie in [0, {self.config.vocab_size})")
        per_row, n_pending = [], []
        for r, row_ids in zip(rows, ids):
            if self._timestep[r] < 0:
                raise ValueError("Decoder.feed_actions: observe an observation first")
            n_pending.append(len(self._pending[r]))
            self._pending[r] += [(int(i), int(self._action_modality(int(i))), int(self._timestep[r])) for i in row_ids]
            per_row.append(self._pending_tokens(r))
            self._pending[r] = []
        full = self._feed_rows(rows, per_row, return_logits)
        if full is None:
            return None
        full = [f[k:] for f, k in zip(full, n_pending)]
        return full[0] if single else full

    def _ranges(self, ranges: np.ndarray, n_rows: int) -> np.ndarray:
        """(R, A, 2) legal id ranges from (A, 2) (shared by the rows) or (R, A, 2)."""
        ranges = np.asarray(ranges, np.int64)
        ranges = np.broadcast_to(ranges.reshape(-1, 2), (n_rows, *ranges.reshape(-1, 2).shape)) if ranges.ndim <= 2 else ranges
        if ranges.shape[0] != n_rows or ranges.shape[1] == 0:
            raise ValueError("Decoder: the action spec has no action tokens" if ranges.shape[1] == 0 else
                             f"Decoder: ranges for {ranges.shape[0]} rows, expected {n_rows}")
        if np.any(ranges[..., 0] < 0) or np.any(ranges[..., 1] > self.config.vocab_size) or np.any(ranges[..., 1] <= ranges[..., 0]):
            raise ValueError(f"Decoder.sample_action: ranges must be non-empty and inside [0, {self.config.vocab_size}), "
                             f"got {np.unique(ranges.reshape(-1, 2), axis=0).tolist()}")
        return ranges

    def _width(self, ranges: np.ndarray) -> int:
        widest = int((ranges[..., 1] - ranges[..., 0]).max())
        return int(min(self.config.padded_vocab_size, max(8, 1 << (widest - 1).bit_length())))

    def act(self, observation: TokenSequence | Sequence[TokenSequence] | None, ranges: np.ndarray,
            temperature: float = 1.0, *, rows: Sequence[int] | None = None, rng: jax.Array | None = None) -> Sampled:
        """One environment step for each row: feed its observation, choose its action tokens.

        One jitted call: the chunk [pending action token, observation, '|'] is fed, then the
        A action tokens are chosen one at a time, each restricted to its legal ids and fed
        back (the last one is fed with the next observation).

        Args:
          observation: one `TokenSequence` per row (`tokenize_observation`); None: the rows
            were fed already (`observe`).
          ranges: (A, 2) half-open legal id ranges shared by the rows, or (R, A, 2) per row.
          temperature: softmax temperature; <= 0 means greedy.
          rows: the rows that act (default: all rows, or row 0 for one sequence).
          rng: (R,) keys (or one key for one row) instead of the rows' seeds.

        Returns:
          `Sampled` with (R, A) ids (decode with `GatoTokenizer.decode_action`) and probabilities.
        """
        n_rows = (1 if isinstance(observation, TokenSequence) else len(observation)) if observation is not None else (
            len(rows) if rows is not None else self.batch_size)
        ranges = self._ranges(ranges, n_rows)
        if observation is None:
            rows = self._rows(rows if rows is not None else ([0] if self.batch_size == 1 else None))
            per_row = [self._pending_tokens(r) if self._pending[r] else None for r in rows]
            for r in rows:
                if not self._fed[r] and not self._pending[r]:
                    raise ValueError("Decoder.sample_action: observe an observation first")
            min_tokens = 0
        else:
            _, seqs, rows = self._as_rows(observation, rows, "act")
            obs = [self._observation(r, seq) for r, seq in zip(rows, seqs)]
            per_row = [_Tokens.join([self._pending_tokens(r), o]) for r, o in zip(rows, obs)]
            # T = the bucket of observation + pending token, whether a row has one pending or
            # not (its first step), so every step of a task runs one compiled shape.
            min_tokens = max(len(o) for o in obs) + 1
        for t in per_row:
            if t is not None:
                self._check_tokens(t)
        n_act = ranges.shape[1]
        if self.overflow == "recompute":
            need = np.array([(0 if t is None else len(t)) + n_act - 1 for t in per_row], np.int32)
            oldest = np.array([int(self._timestep[r]) if t is None else int(t.timestep.min()) for r, t in zip(rows, per_row)],
                              np.int32)
            self._recompute_before(rows, need, oldest, self._timestep[rows].astype(np.int32))
        index, padded = self._call_rows(rows)
        pos = [padded.index(r) for r in rows]
        by_row = dict(zip(rows, per_row))
        active = np.zeros(len(padded), bool)
        active[pos] = True
        act_ts = np.zeros(len(padded), np.int32)
        act_ts[pos] = self._timestep[rows]
        ranges_p = np.broadcast_to(ranges[:1], (len(padded), *ranges.shape[1:])).copy()
        ranges_p[pos] = ranges
        keys = None
        if rng is not None:
            keys = jnp.reshape(rng, (-1,))
            if keys.shape[0] != len(rows):
                raise ValueError(f"Decoder.act: {keys.shape[0]} keys for {len(rows)} rows")
            keys = jnp.broadcast_to(keys[:1], (len(padded),)).at[np.asarray(pos)].set(keys)
        if any(t is not None for t in per_row):
            chunk, n_new, ts = self._chunk([by_row.get(r) for r in padded], min_tokens)
        else:
            chunk = n_new = ts = None
        self.state, fits, ids, probs, first, start = self._steps["act"](
            self.chunk_params, self.params, self.state, index, active, chunk, n_new, ts, act_ts, ranges_p.astype(np.int32),
            np.float32(temperature), keys, width=self._width(ranges), n_act=n_act)
        ids, probs, first, start = (np.asarray(x)[pos] for x in (ids, probs, first, start))
        self._after_feed(rows, per_row, np.asarray(fits)[pos])
        for i, r in enumerate(rows):
            self._fed[r] = True
            acts = [(int(k), int(self._action_modality(int(k))), int(self._timestep[r])) for k in ids[i]]
            if self.overflow == "recompute" and len(acts) > 1:
                self._history[r].append(_Tokens.actions(acts[:-1], self.config))
            self._pending[r] = acts[-1:]
        return Sampled(ids, probs, first, start)

    def sample_action(self, ranges: np.ndarray, temperature: float = 1.0, rng: jax.Array | None = None, *,
                      rows: Sequence[int] | None = None) -> np.ndarray:
        """Samples one action's tokens for rows already fed their observation (`observe`).

        Args:
          ranges: (n_action_tokens, 2) half-open legal id ranges, from
            `GatoTokenizer.action_token_ranges(spec)` (or (R, A, 2) per row).
          temperature: softmax temperature; <= 0 means greedy.
          rng: PRNG key (required when temperature > 0; one per row for several rows).

        Returns:
          (n_action_tokens,) int32 ids for one row (or (R, A) for several); decode with
          `GatoTokenizer.decode_action`. All but the last are fed immediately; the last is
          fed with the next observation.
        """
        if temperature > 0 and rng is None:
            raise ValueError("Decoder.sample_action: temperature > 0 needs rng=jax.random.key(...)")
        if rows is None and self.batch_size > 1:
            rows = list(range(self.batch_size))
        n = 1 if rows is None else len(rows)
        self._ranges(ranges if np.ndim(ranges) <= 2 else np.asarray(ranges), n)  # errors before any state changes
        if rng is None:
            rng = jax.random.split(jax.random.key(0), n)
        out = self.act(None, ranges, temperature, rows=rows, rng=rng)
        return out.ids[0] if rows is None else out.ids

    def _action_modality(self, token: int) -> Modality:
        lo = self.vocab.continuous_offset
        return Modality.CONTINUOUS if lo <= token < lo + self.vocab.continuous_bins else Modality.DISCRETE


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
