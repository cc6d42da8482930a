"""The batched decoder (Gato §2.4, GATO_SPEC §5): B rows equal B batch-1 runs, greedy and
sampled, with a row that overflows its context while its neighbours do not, rows that stop
and rows that are refilled with a new episode (no recompilation), and the "recompute"
overflow per row."""

import jax
import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab.model import ModelConfig

V = gl.Vocabulary().size
ATOL = 1e-4  # float32 cached vs full-pass logits: summation order only (see test_model_decode)
CAP = 100  # cache slots per row: 10 timesteps of SPEC
SPEC = gl.EnvSpec("batch-test", {"state": gl.FieldSpec.continuous((6,), -1.0, 1.0)},
                  {"a": gl.FieldSpec.discrete(3), "b": gl.FieldSpec.continuous((2,), -1.0, 1.0)})  # 6 + '|' + 3 = 10 tokens


@pytest.fixture(scope="module")
def model():
    return gl.model.Gato(ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def tok():
    return gl.testing.tiny_tokenizer()


def _prompt(tok, timesteps, seed):
    if timesteps == 0:
        return None
    return tok.tokenize_episode(gl.testing.synthetic_episode(SPEC, timesteps, seed=seed), SPEC)


def _observations(tok, steps, seed):
    ep = gl.testing.synthetic_episode(SPEC, steps, seed=seed)
    return [tok.tokenize_observation({k: np.asarray(v[t]) for k, v in ep.observations.items()}, SPEC, timestep=t)
            for t in range(steps)]


def _single(model, tok, prompt, obs, seed, temperature):
    dec = gl.model.Decoder(model, capacity=CAP)
    dec.reset(seeds=[seed])
    if prompt is not None:
        dec.prefill(prompt)
    ranges = tok.action_token_ranges(SPEC)
    out = [dec.act(o, ranges, temperature) for o in obs]
    return np.stack([o.ids[0] for o in out]), np.stack([o.probs[0] for o in out]), int(dec.dropped_timesteps[0])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rows_equal_batch_1_runs(model, tok, temperature):
    """5 rows: row 0's long prompt overflows its 100 slots, the others never fill theirs;
    rows 1 and 4 stop after 3 steps (then 3 rows act: a gathered call), then row 0 acts alone."""
    prompt_steps, seeds = [8, 1, 0, 2, 3], [11, 12, 13, 14, 15]
    steps = [6, 3, 5, 5, 3]
    prompts = [_prompt(tok, n, seed=100 + i) for i, n in enumerate(prompt_steps)]
    obs = [_observations(tok, 6, seed=200 + i) for i in range(5)]
    ranges = tok.action_token_ranges(SPEC)

    dec = gl.model.Decoder(model, capacity=CAP, batch_size=5)
    dec.reset(seeds=seeds)
    dec.prefill(prompts)
    ids = {r: [] for r in range(5)}
    probs = {r: [] for r in range(5)}
    for t in range(6):
        rows = [r for r in range(5) if t < steps[r]]
        out = dec.act([obs[r][t] for r in rows], ranges, temperature, rows=rows)
        for i, r in enumerate(rows):
            ids[r].append(out.ids[i])
            probs[r].append(out.probs[i])
        assert np.all((out.ids >= ranges[:, 0]) & (out.ids < ranges[:, 1]))
    dropped = dec.dropped_timesteps
    assert dropped[0] > 0 and np.all(dropped[1:] == 0)  # only row 0 overflowed

    for r in range(5):
        want_ids, want_probs, want_dropped = _single(model, tok, prompts[r], obs[r][: steps[r]], seeds[r], temperature)
        np.testing.assert_array_equal(np.stack(ids[r]), want_ids, err_msg=f"row {r}")
        np.testing.assert_allclose(np.stack(probs[r]), want_probs, rtol=1e-4, atol=1e-6)
        assert dropped[r] == want_dropped


def test_refilled_row_starts_fresh_without_recompiling(model, tok):
    ranges = tok.action_token_ranges(SPEC)
    obs = [_observations(tok, 6, seed=300 + i) for i in range(3)]
    dec = gl.model.Decoder(model, capacity=CAP, batch_size=2)
    dec.reset(seeds=[1, 2])
    dec.prefill([_prompt(tok, 2, seed=1), None])
    got = {0: [], 1: []}
    for t in range(3):
        out = dec.act([obs[0][t], obs[1][t]], ranges, 1.0)
        got[0].append(out.ids[0])
        got[1].append(out.ids[1])
    compiled = dec._steps["act"]._cache_size()
    dec.reset([1], seeds=[3])  # row 1's episode is over: a new one, new prompt, new seed
    dec.prefill([_prompt(tok, 1, seed=3)], rows=[1])
    new = []
    for t in range(3, 6):
        out = dec.act([obs[0][t], obs[2][t - 3]], ranges, 1.0)
        got[0].append(out.ids[0])
        new.append(out.ids[1])
    assert dec._steps["act"]._cache_size() == compiled
    np.testing.assert_array_equal(np.stack(got[0]), _single(model, tok, _prompt(tok, 2, seed=1), obs[0], 1, 1.0)[0])
    np.testing.assert_array_equal(np.stack(got[1]), _single(model, tok, None, obs[1][:3], 2, 1.0)[0])
    np.testing.assert_array_equal(np.stack(new), _single(model, tok, _prompt(tok, 1, seed=3), obs[2][:3], 3, 1.0)[0])


@pytest.fixture(scope="module")
def full_logits(model):
    g, s = nnx.split(model)
    f = jax.jit(lambda s, b: nnx.merge(g, s)(b))

    def run(seq, length=256):
        return np.asarray(f(s, gl.batch.TokenBatch.stack([seq.to_arrays(length, 96)])))[0, : len(seq), :V]

    return run


def test_batched_logits_equal_full_forward_per_row_with_images(model, tok, full_logits):
    """Rows of different lengths with image patches in one chunk: each row's cached logits are its own full pass."""
    spec = gl.testing.multimodal_spec()
    seqs = [tok.tokenize_episode(gl.testing.synthetic_episode(spec, n, seed=20 + n), spec) for n in (2, 1)]
    dec = gl.model.Decoder(model, batch_size=2)
    got = dec.prefill(seqs, return_logits=True)
    for r, seq in enumerate(seqs):
        np.testing.assert_allclose(np.asarray(got[r])[:, :V], full_logits(seq), atol=ATOL, rtol=0)


def test_recompute_overflow_per_row(model, tok, full_logits):
    """'recompute': the row that overflows sees exactly its remaining window; its neighbour is untouched."""
    seqs = [tok.tokenize_episode(gl.testing.synthetic_episode(SPEC, n, seed=40 + n), SPEC) for n in (12, 4)]
    dec = gl.model.Decoder(model, capacity=CAP, overflow="recompute", batch_size=2)
    starts, _ = zip(*(s.timestep_bounds() for s in seqs))
    obs_len = 7  # 6 state tokens + '|'
    seen = {}
    for t in range(12):
        rows = [r for r in range(2) if t < seqs[r].num_timesteps]
        step = [seqs[r].slice(starts[r][t], starts[r][t] + obs_len) for r in rows]
        for r, lg in zip(rows, dec.observe(step, rows=rows, return_logits=True)):
            seen[r, t] = np.asarray(lg)[:, :V]
        dec.feed_actions(np.stack([seqs[r].ids[starts[r][t] + obs_len: starts[r][t] + 10] for r in rows]), rows=rows)
    assert dec.dropped_timesteps[0] > 0 and dec.dropped_timesteps[1] == 0
    # Row 0's last observation saw exactly the window of its kept timesteps (whole ones, the newest).
    kept = np.unique(dec.slot_timestep[0, :CAP][dec.slot_order[0, :CAP] >= 0])
    window = seqs[0].slice(starts[0][kept[0]], starts[0][11] + obs_len)
    np.testing.assert_allclose(seen[0, 11], full_logits(window)[-obs_len:], atol=ATOL, rtol=0)
    # Row 1 never overflowed: its last observation's logits are its own full pass.
    np.testing.assert_allclose(seen[1, 3], full_logits(seqs[1])[starts[1][3]: starts[1][3] + obs_len], atol=ATOL, rtol=0)


@pytest.mark.parametrize("overflow", ["memory", "recompute"])
def test_timestep_longer_than_half_the_context(model, tok, overflow):
    """A step of 10 tokens in a 12-slot cache: step t's chunk [t-1's last action token, 7 observation
    tokens] leaves no room for step t-1's cached tokens, so they are dropped and the action token
    stays alone (BabyAI's 155-token steps in the demo's 256-token context raised before)."""
    cap = 12
    obs = _observations(tok, 5, seed=7)
    ranges = tok.action_token_ranges(SPEC)
    dec = gl.model.Decoder(model, capacity=cap, overflow=overflow, batch_size=2)
    dec.reset(seeds=[1, 2])
    for t in range(5):
        out = dec.act([obs[t], obs[t]], ranges, 0.0)
        assert np.all((out.ids >= ranges[:, 0]) & (out.ids < ranges[:, 1]))
        live = dec.slot_timestep[:, :cap]
        assert np.all(dec.num_cached <= cap)
        if t > 0:  # this step's 7 + 2 fed tokens, and step t-1's last action token alone
            assert np.all(np.sum(live == t, axis=1) == len(obs[t]) + 2)
            assert np.all(np.sum(live == t - 1, axis=1) == 1) and np.all(np.sum((live >= 0) & (live < t - 1), axis=1) == 0)
    assert np.all(dec.dropped_timesteps >= 4)


def test_bfloat16_decoding_matches_float32_greedy(model, tok):
    """bfloat16 weights and cache (`Decoder(dtype=, chunk_dtype=, cache_dtype=)`, `AgentConfig` the
    same): teacher-forced logits of 12 steps (36 action tokens, across a context overflow) stay
    within 0.1 of float32's (bfloat16 keeps 8 significant bits: ~0.4% per rounding; the tiny
    model's legal logits are O(1), so a few roundings per layer give a few 0.01), and the
    greedy id is the same wherever float32's best and second-best legal ids are further
    apart than twice the measured difference (closer ones may legitimately swap)."""
    ep = gl.testing.synthetic_episode(SPEC, 12, seed=5)
    seq = tok.tokenize_episode(ep, SPEC)
    starts, ends = seq.timestep_bounds()
    ranges = tok.action_token_ranges(SPEC)

    def run(**dtypes):
        dec = gl.model.Decoder(model, capacity=64, **dtypes)
        out = []
        for t in range(12):
            step = seq.slice(int(starts[t]), int(ends[t]))
            acts = np.asarray(step.ids)[np.asarray(step.is_action)]
            obs = tok.tokenize_observation({k: np.asarray(v[t]) for k, v in ep.observations.items()}, SPEC, timestep=t)
            lg = [dec.observe(obs, return_logits=True)[-1]]
            for j in range(len(ranges) - 1):
                lg.append(dec.feed_actions(acts[j: j + 1], return_logits=True)[0])
            dec.feed_actions(acts[-1:])
            out += [lg[j][lo:hi].astype(np.float64) for j, (lo, hi) in enumerate(ranges)]
        return out

    ref = run(dtype="float32", chunk_dtype="float32")
    got = run(dtype="bfloat16", chunk_dtype="bfloat16", cache_dtype="bfloat16")
    diff = max(float(np.abs(g - r).max()) for g, r in zip(got, ref))
    assert 0 < diff < 0.1
    for g, r in zip(got, ref):
        top2 = np.sort(r)[-2:]
        if top2[1] - top2[0] > 2 * diff:
            assert g.argmax() == r.argmax()
    agent = gl.agent.GatoAgent(model, tok, gl.agent.AgentConfig(dtype="bfloat16", chunk_dtype="bfloat16",
                                                                cache_dtype="bfloat16"))
    assert (agent.decoder.dtype, agent.decoder.chunk_dtype, agent.decoder.cache_dtype) == ("bfloat16",) * 3
    with pytest.raises(ValueError, match="AgentConfig.dtype"):
        gl.agent.AgentConfig(dtype="float16")
