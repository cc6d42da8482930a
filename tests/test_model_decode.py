"""Cached incremental decoding (Gato §2.4): equivalence with the full forward pass,
restricted sampling, and dropping whole timesteps when the context is full."""

import jax
import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab.model import ModelConfig

V = gl.Vocabulary().size
# Float32 logits from the cache and from the full pass differ only by summation order
# (different matmul shapes); observed max |diff| ~3e-6 on logits of magnitude ~1.
ATOL = 1e-4


@pytest.fixture(scope="module")
def tok():
    return gl.testing.tiny_tokenizer()


@pytest.fixture(scope="module")
def spec():
    return gl.testing.multimodal_spec()


@pytest.fixture(scope="module")
def model():
    return gl.model.Gato(ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def full_logits(model):
    g, s = nnx.split(model)
    f = jax.jit(lambda s, b: nnx.merge(g, s)(b))

    def run(seq, length=256):
        return np.asarray(f(s, gl.batch.TokenBatch.stack([seq.to_arrays(length, 96)])))[0, : len(seq), :V]

    return run


def _obs_and_actions(seq, t):
    starts, ends = seq.timestep_bounds()
    step = seq.slice(starts[t], ends[t])
    n_act = int(step.is_action.sum())
    return step.slice(0, len(step) - n_act), step.ids[len(step) - n_act:]


def test_cached_decoding_equals_full_forward(model, tok, spec, full_logits):
    seq = tok.tokenize_episode(gl.testing.synthetic_episode(spec, 4, seed=3), spec)
    starts, ends = seq.timestep_bounds()
    dec = gl.model.Decoder(model)
    got = [dec.prefill(seq.slice(0, ends[1]), return_logits=True)]  # a 2-timestep prompt in one chunk
    for t in (2, 3):
        obs, acts = _obs_and_actions(seq, t)
        got.append(dec.observe(obs, return_logits=True))
        got.append(dec.feed_actions(acts[:1], return_logits=True))  # one token, then the rest
        got.append(dec.feed_actions(acts[1:], return_logits=True))
    got = np.concatenate([np.asarray(g)[:, :V] for g in got])
    want = full_logits(seq)
    assert got.shape == want.shape == (len(seq), V)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_greedy_sampling_matches_full_forward_argmax_and_stays_legal(model, tok, spec, full_logits):
    seq = tok.tokenize_episode(gl.testing.synthetic_episode(spec, 3, seed=4), spec)
    ranges = tok.action_token_ranges(spec)
    dec = gl.model.Decoder(model)
    dec.prefill(seq.slice(0, seq.timestep_bounds()[1][1]))
    obs, _ = _obs_and_actions(seq, 2)
    dec.observe(obs)
    ids = dec.sample_action(ranges, temperature=0.0)
    assert np.all((ids >= ranges[:, 0]) & (ids < ranges[:, 1]))
    # Rebuild the same tokens with the sampled action and run the full network once.
    acts = tok.decode_action(ids, spec)
    ep = gl.testing.synthetic_episode(spec, 3, seed=4)
    for k, v in acts.items():
        ep.actions[k][2] = v
    seq2 = tok.tokenize_episode(ep, spec)
    act_pos = np.flatnonzero(seq2.is_action)[-len(ranges):]
    np.testing.assert_array_equal(seq2.ids[act_pos], ids)  # decode -> re-encode is exact
    logits = full_logits(seq2)
    for j, p in enumerate(act_pos):
        lo, hi = ranges[j]
        assert ids[j] == lo + int(np.argmax(logits[p - 1, lo:hi])), j
    # Greedy is deterministic.
    dec2 = gl.model.Decoder(model)
    dec2.prefill(seq.slice(0, seq.timestep_bounds()[1][1]))
    dec2.observe(obs)
    np.testing.assert_array_equal(dec2.sample_action(ranges, temperature=0.0), ids)


def test_temperature_sampling_only_emits_legal_ids(model, tok, spec):
    seq = tok.tokenize_episode(gl.testing.synthetic_episode(spec, 2, seed=5), spec)
    dec = gl.model.Decoder(model)
    obs, _ = _obs_and_actions(seq, 0)
    dec.observe(obs)
    # A discrete action with 3 choices, then a continuous dimension.
    ranges = np.array([[0, 3], [32000, 33024]])
    firsts, seconds = [], []
    for i in range(12):
        d = gl.model.Decoder(model)
        d.observe(obs)
        ids = d.sample_action(ranges, temperature=5.0, rng=jax.random.key(i))
        firsts.append(ids[0])
        seconds.append(ids[1])
    assert set(firsts) <= {0, 1, 2} and len(set(firsts)) >= 2  # hot sampling explores, legally
    assert all(32000 <= s < 33024 for s in seconds) and len(set(seconds)) >= 6
    with pytest.raises(ValueError, match="needs rng"):
        dec.sample_action(ranges, temperature=1.0)
    with pytest.raises(ValueError, match=r"inside \[0, 33027\)"):
        dec.sample_action(np.array([[33000, 33100]]), temperature=0.0)  # would reach padded rows


def test_restricted_logits_never_reach_padded_rows(model):
    h = np.ones(model.config.embed_dim, np.float32)
    logits, start = gl.model.restricted_logits(model, h, 33020, 33027, 16)
    ids = int(start) + np.arange(16)
    legal = (ids >= 33020) & (ids < 33027)
    assert np.all(np.isfinite(np.asarray(logits)[legal])) and np.all(np.isneginf(np.asarray(logits)[~legal]))
    assert ids.max() < model.config.padded_vocab_size


@pytest.mark.parametrize("tie", [True, False])
def test_restricted_logits_are_a_window_of_the_full_projection(tie):
    # One output projection (heads.Unembed) serves the loss and the decoder, tied or not.
    m = gl.model.Gato(ModelConfig.preset("tiny", tie_embeddings=tie), rngs=nnx.Rngs(1))
    h = np.random.default_rng(0).normal(size=(1, 1, m.config.embed_dim)).astype(np.float32)
    full = np.asarray(gl.model.logits(m, h))[0, 0]
    window, start = gl.model.restricted_logits(m, h[0, 0], 32000, 32010, 16)
    ids = int(start) + np.arange(16)
    legal = (ids >= 32000) & (ids < 32010)
    np.testing.assert_allclose(np.asarray(window)[legal], full[ids[legal]], rtol=1e-5, atol=1e-6)
    assert np.all(np.isneginf(np.asarray(window)[~legal]))


def test_full_context_drops_whole_oldest_timesteps(model, tok, spec):
    seq = tok.tokenize_episode(gl.testing.synthetic_episode(spec, 12, seed=6), spec)
    per_step = len(seq) // 12  # 45 tokens per timestep
    dec = gl.model.Decoder(model, capacity=4 * per_step + 10)
    ranges = tok.action_token_ranges(spec)
    for t in range(12):
        obs, _ = _obs_and_actions(seq, t)
        dec.observe(obs)
        dec.sample_action(ranges, temperature=0.0)
        live = dec.slot_order[0, : dec.capacity] >= 0
        assert live.sum() <= dec.capacity
        ts, counts = np.unique(dec.slot_timestep[0, : dec.capacity][live], return_counts=True)
        # Every cached timestep is whole (the current one lacks only its pending last action token).
        assert np.all(counts[:-1] == per_step), (t, counts)
        assert counts[-1] == per_step - 1
        assert ts[-1] == t and np.all(np.diff(ts) == 1)  # the newest, contiguous
    assert dec.dropped_timesteps.tolist() == [12 - 4]
    with pytest.raises(ValueError, match="exceed the context"):
        gl.model.Decoder(model, capacity=20).observe(_obs_and_actions(seq, 0)[0])


def test_recompute_overflow_equals_full_forward_on_the_last_window(model, tok, spec, full_logits):
    seq = tok.tokenize_episode(gl.testing.synthetic_episode(spec, 6, seed=7), spec)
    per_step = len(seq) // 6
    cap = 3 * per_step
    dec = gl.model.Decoder(model, capacity=cap, overflow="recompute")
    for t in range(5):
        obs, acts = _obs_and_actions(seq, t)
        dec.observe(obs)
        dec.feed_actions(acts)
    obs, acts = _obs_and_actions(seq, 5)
    got = np.asarray(dec.observe(obs, return_logits=True))[:, :V]
    # The window the model now sees: timesteps 3, 4 and the observation of 5.
    starts, ends = seq.timestep_bounds()
    window = seq.slice(starts[3], starts[5] + len(obs))
    np.testing.assert_allclose(got, full_logits(window)[-len(obs):], atol=ATOL, rtol=0)
    # "memory" mode keeps stale keys/values instead, so it differs from the fresh window.
    mem = gl.model.Decoder(model, capacity=cap, overflow="memory")
    for t in range(5):
        o, a = _obs_and_actions(seq, t)
        mem.observe(o)
        mem.feed_actions(a)
    got_mem = np.asarray(mem.observe(obs, return_logits=True))[:, :V]
    assert np.abs(got_mem - got).max() > 1e-3


def test_decoder_argument_errors(model):
    with pytest.raises(ValueError, match="overflow must be"):
        gl.model.Decoder(model, overflow="wrap")
    with pytest.raises(ValueError, match="capacity must be in"):
        gl.model.Decoder(model, capacity=10_000)
    dec = gl.model.Decoder(model)
    with pytest.raises(ValueError, match="observe an observation first"):
        dec.sample_action(np.array([[0, 3]]), temperature=0.0)
