"""The network's own interpretability hooks (`layers.Record`, `gl.model.inspect.record`).

The records are checked against the forward pass itself: the logits and hidden states the
model returns, and each block's output rebuilt from the recorded attention weights with the
block's own submodules. Nothing here re-implements attention.
"""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab.model import ModelConfig
from gatolab.model.layers import Record


@pytest.fixture(scope="module")
def seq():
    spec = gl.testing.multimodal_spec()
    return gl.testing.tiny_tokenizer().tokenize_episode(gl.testing.synthetic_episode(spec, 2, seed=0), spec)


@pytest.fixture(scope="module")
def batch(seq):
    # Row 1 is shorter: padded queries and keys are exercised.
    return gl.batch.TokenBatch.stack([seq.to_arrays(112, 32), seq.slice(0, 40).to_arrays(112, 32)])


def make(**kw):
    # attention_block=48 splits the 112 queries into 3 blocks: the recorded (T, T) map is assembled from them.
    cfg = dataclasses.replace(ModelConfig.preset("tiny"), attention_block=48, **kw)
    return gl.model.Gato(cfg, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def model():
    return make()


@pytest.fixture(scope="module")
def recs(model, batch):
    return gl.model.inspect.record(model, batch)


def test_records_are_the_forward_pass(model, batch, recs):
    g, s = nnx.split(model)
    logits = jax.jit(lambda s, b: nnx.merge(g, s)(b))(s, batch)
    hidden = jax.jit(lambda s, b: nnx.merge(g, s).hidden(b))(s, batch)
    np.testing.assert_array_equal(recs.logits, np.asarray(logits))
    np.testing.assert_array_equal(recs.hidden, np.asarray(hidden))
    cfg = model.config
    L, B, T = cfg.num_layers, 2, 112
    assert recs.attention.shape == (L, B, cfg.num_heads, T, T) and recs.residual.shape == (L, B, T, cfg.embed_dim)
    np.testing.assert_allclose(np.asarray(model.transformer.ln_final(recs.residual[-1])), recs.hidden, atol=1e-5)


def test_each_block_output_follows_from_its_recorded_attention(model, batch, recs):
    """Block l's output, rebuilt with its own submodules from the recorded weights (pre-norm)."""
    valid = np.asarray(batch.valid)
    x = recs.embeddings
    for layer, block in enumerate(model.transformer.blocks):
        w = recs.attention[layer]  # (B, H, T, S)
        _, _, v = block.attn.qkv(block.ln_attn(x))
        ctx = jnp.einsum("BHTS,BSHK->BTHK", w, v)
        mid = x + block.attn._output(ctx)
        out = mid + block.mlp(block.ln_mlp(mid))
        np.testing.assert_allclose(np.asarray(out)[valid], recs.residual[layer][valid], atol=2e-5)
        x = recs.residual[layer]


def test_attention_is_causal_and_rows_sum_to_one(batch, recs):
    valid = np.asarray(batch.valid)
    w = recs.attention
    sums = w.sum(-1)  # (L, B, H, T)
    np.testing.assert_allclose(sums[np.broadcast_to(valid[None, :, None, :], sums.shape)], 1.0, atol=1e-5)
    assert np.all(np.triu(w, k=1) == 0.0)  # the future: exactly zero, also in the skipped blocks
    assert np.all(w[:, 1, :, :, 40:] == 0.0)  # row 1's padding keys


@pytest.mark.parametrize("kw", [dict(scan_layers=False, remat="none"), dict(scan_layers=False, remat="block"),
                                dict(scan_layers=True, remat="none"), dict(norm="post")])
def test_records_under_every_layer_loop(batch, recs, kw):
    """scan_layers (lax.scan) and remat (jax.checkpoint) return their blocks' records: the same values."""
    other = make(**kw)
    got = gl.model.inspect.record(other, batch)
    g, s = nnx.split(other)
    np.testing.assert_array_equal(got.logits, np.asarray(jax.jit(lambda s, b: nnx.merge(g, s)(b))(s, batch)))
    if "norm" not in kw:  # the same parameters: the same records, whichever way the layers are looped
        for name in ("attention", "residual", "embeddings", "logits"):
            np.testing.assert_allclose(getattr(got, name), getattr(recs, name), atol=1e-5, err_msg=name)


def test_nothing_is_recorded_or_stored_outside_a_capture(model, batch):
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # flax warns when sow runs outside nnx.capture
        model(batch)
        g, s = nnx.split(model)
        jax.jit(lambda s, b: nnx.merge(g, s)(b))(s, batch)
    assert not jax.tree.leaves(nnx.state(model, Record))
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, nnx.state(model, nnx.Param)))
    # Without a capture the traced program holds no attention-probability padding/concat for the records.
    plain = jax.make_jaxpr(lambda s, b: nnx.merge(g, s)(b))(s, batch)
    captured = jax.make_jaxpr(lambda s, b: nnx.capture(nnx.merge(g, s), Record)(b))(s, batch)
    assert len(str(plain)) < len(str(captured))


def test_embedding_parts_sum_to_the_recorded_embedding(model, batch, recs):
    parts = gl.model.inspect.embedding_parts(model, batch)
    np.testing.assert_allclose(parts["total"], recs.embeddings, atol=1e-5)
    image = np.asarray(batch.modality) == int(gl.Modality.IMAGE)
    assert np.all(parts["row_bin"][image] >= 0) and np.all(parts["row_bin"][~image] == -1)
    assert np.all(parts["local_position"][np.asarray(batch.is_action)] == 0)


def test_legal_distribution_is_the_restricted_softmax(recs, seq):
    spec = gl.testing.multimodal_spec()
    ranges = gl.testing.tiny_tokenizer().action_token_ranges(spec)
    pos = np.flatnonzero(seq.is_action)[: len(ranges)]
    dists = gl.model.inspect.legal_distribution(recs.logits[0], ranges, pos, temperature=0.7)
    for d, (lo, hi), p in zip(dists, ranges, pos):
        z = recs.logits[0, p - 1, lo:hi] / 0.7
        np.testing.assert_allclose(d, np.asarray(jax.nn.softmax(z)), atol=1e-6)
        assert len(d) == hi - lo and abs(d.sum() - 1) < 1e-9


def test_stepper_on_an_agent_step_shows_the_agents_distribution(model):
    """Mode 2: one forward pass with the hooks over what the agent saw = the cached decoder's probabilities."""
    from gatolab.viz.stepper import WatchedAgent

    tok = gl.testing.tiny_tokenizer()
    agent = gl.agent.GatoAgent(model, tok, gl.agent.AgentConfig(prompt="none", temperature=0.8))
    env = gl.testing.ReachEnv("reach-long", gl.testing.ToyDomain().spec("reach-long"))
    seen = []

    def on_decision(watched):
        if watched.timestep in (0, 3):
            stepper = watched.stepper()
            seen.append((watched.timestep, len(stepper.seq), stepper.last_action(), watched.last_steps[0]))

    trace = gl.agent.run_episode(WatchedAgent(agent, on_decision), env, seed=0, max_steps=5)
    assert trace.length == 5 and [s[0] for s in seen] == [0, 3]
    assert [s[1] for s in seen] == [4, 16]  # 2 continuous, '|', 1 action per timestep
    for _, _, actions, info in seen:
        assert [a["chosen"] for a in actions] == info.ids.tolist()
        np.testing.assert_allclose([a["chosen_prob"] for a in actions], info.probs, atol=1e-5)
        np.testing.assert_allclose(actions[0]["probs"], info.first_dist, atol=1e-5)
