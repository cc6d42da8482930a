"""The observation-encoding switch (issue 18): Gato's per-element tokens vs one token per field.

"tokens" must be today's model bit for bit (the golden file was written by the code before
the switch existed); "field" must tokenize, train, decode with the cache exactly like the
full pass, and play through the agent and the evaluation.
"""

import hashlib
import json
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import gatolab as gl
from gatolab.model import ModelConfig
from gatolab.specs import Modality

GOLDEN = json.loads((Path(__file__).parent / "data" / "tokens_encoding_golden.json").read_text())
F = 64  # field_width for these tests (the multimodal spec's widest field has 6 values)


@pytest.fixture(scope="module")
def spec():
    return gl.testing.multimodal_spec()


@pytest.fixture(scope="module")
def episode(spec):
    return gl.testing.synthetic_episode(spec, 3, seed=0)


@pytest.fixture(scope="module")
def tok_field():
    return gl.testing.tiny_tokenizer(obs_encoding="field", field_width=F)


@pytest.fixture(scope="module")
def field_model():
    return gl.model.Gato(ModelConfig.preset("tiny", obs_encoding="field", field_width=F), rngs=nnx.Rngs(0))


def _step(seq, t):
    starts, ends = seq.timestep_bounds()
    return seq.slice(starts[t], ends[t])


def _observation(step):
    """A timestep's tokens before '|'."""
    return step.slice(0, int(np.flatnonzero(step.modality == Modality.SEPARATOR)[0]))


def _forward(model):
    g, s = nnx.split(model)
    f = jax.jit(lambda s, b: nnx.merge(g, s)(b))
    return lambda b: np.asarray(f(s, b))


# --- "tokens" is today's model ---------------------------------------------------------------
def test_tokens_encoding_is_bit_for_bit_the_model_before_the_switch(spec, episode):
    seq = gl.testing.tiny_tokenizer().tokenize_episode(episode, spec)
    assert seq.field_width is None and seq.obs_encoding == "tokens"
    arrays = seq.to_arrays(160, 48)
    assert set(arrays) == set(GOLDEN["tokens_sha256"])  # no new arrays in a Gato batch
    for k, v in arrays.items():
        assert hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() == GOLDEN["tokens_sha256"][k], k
    config = ModelConfig.preset("tiny")
    assert config.obs_encoding == "tokens"
    model = gl.model.Gato(config, rngs=nnx.Rngs(0))
    params = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))}
    assert sorted(params) == sorted(GOLDEN["params"])  # the same parameters, no field embedder
    for name, (shape, total, abs_total) in GOLDEN["params"].items():
        a = params[name].astype(np.float64)
        assert list(a.shape) == shape, name
        assert a.sum() == pytest.approx(total, rel=1e-6, abs=1e-6) and np.abs(a).sum() == pytest.approx(abs_total, rel=1e-6)
    batch = gl.batch.TokenBatch.stack([arrays])
    assert batch.field_width is None and batch.field_values is None
    logits = _forward(model)(batch)[0, : len(seq), : config.vocab_size].astype(np.float64)
    assert logits.sum() == pytest.approx(GOLDEN["logits_sum"], rel=1e-6)
    assert np.abs(logits).sum() == pytest.approx(GOLDEN["logits_abs_sum"], rel=1e-6)
    sample = logits[:: max(1, len(logits) // 16), ::997]
    np.testing.assert_allclose(sample, GOLDEN["logits_sample"], atol=2e-5, rtol=0)


def test_a_gato_run_config_records_nothing_new():
    config = gl.configs.get("demo")
    assert config.tokenizer.obs_encoding == "tokens"
    assert "obs_encoding" not in config.train_config().model_overrides
    field = gl.configs.apply(config, {"tokenizer.obs_encoding": "field"})
    assert field.model_config().obs_encoding == "field" and field.model_config().field_width == field.tokenizer.field_width
    with pytest.raises(ValueError, match="set tokenizer.obs_encoding instead of model.obs_encoding"):
        gl.configs.apply(config, {"model.obs_encoding": "field"})


# --- "field": the tokens ---------------------------------------------------------------------------
def test_field_tokens_carry_each_observation_field_whole(spec, episode, tok_field):
    gato = gl.testing.tiny_tokenizer()
    a, b = gato.tokenize_episode(episode, spec), tok_field.tokenize_episode(episode, spec)
    assert b.obs_encoding == "field" and b.num_timesteps == a.num_timesteps == 3
    text = [k for k in spec.observation_order if spec.observation[k].modality == Modality.TEXT]
    fields = [k for k in spec.observation_order if k not in text]
    for t in range(3):
        sa, sb = _step(a, t), _step(b, t)
        obs_a, obs_b = _observation(sa), _observation(sb)
        # text pieces unchanged, one token per other field, then '|' and the same action tokens
        assert np.array_equal(obs_a.ids[obs_a.modality == Modality.TEXT], obs_b.ids[obs_b.modality == Modality.TEXT])
        assert int((obs_b.modality != Modality.TEXT).sum()) == len(fields)
        assert np.array_equal(sa.ids[sa.is_action], sb.ids[sb.is_action])
        assert np.array_equal(obs_b.local_position, np.arange(len(obs_b)))
        for key in fields:
            f = spec.observation[key]
            i = int(np.flatnonzero(obs_b.field == list(b.field_names).index(key))[0])
            w = int(obs_b.field_width[i])
            if f.modality == Modality.IMAGE:
                assert w == int((obs_a.field == list(a.field_names).index(key)).sum())  # all its patches
            elif f.modality == Modality.DISCRETE:
                np.testing.assert_array_equal(obs_b.field_values[i, :w], np.asarray(episode.observations[key][t]).ravel())
            else:
                y, _ = tok_field.continuous_unit(key, f, np.asarray(episode.observations[key][t:t + 1]))
                np.testing.assert_allclose(obs_b.field_values[i, :w], y.ravel(), rtol=1e-6)
                assert np.all(np.abs(obs_b.field_values[i]) <= 1.0)
            assert np.all(obs_b.field_values[i, w:] == 0)
    np.testing.assert_array_equal(a.patches, b.patches)  # the same pixels, fewer tokens
    assert len(b) < len(a)
    # windows, slices and joins keep an image token's patches with it
    w = b.window(1, 40)
    first = int(b.patch_index[b.timestep_bounds()[0][1]:][b.modality[b.timestep_bounds()[0][1]:] == Modality.IMAGE][0])
    assert w.num_timesteps >= 1 and w.num_patches == int(w.patch_counts().sum()) > 0
    np.testing.assert_array_equal(w.patches, b.patches[first:first + w.num_patches])
    joined = gl.TokenSequence.concatenate([b, b])
    assert joined.num_patches == 2 * b.num_patches and len(joined) == 2 * len(b)
    with pytest.raises(ValueError, match="different obs_encoding"):
        gl.TokenSequence.concatenate([a, b])


def test_field_encoding_bad_input_names_the_problem(spec, episode, tok_field, field_model):
    narrow = gl.testing.tiny_tokenizer(obs_encoding="field", field_width=2)
    with pytest.raises(ValueError, match=r"field '.*': \d+ elements do not fit tokenizer.field_width=2"):
        narrow.tokenize_episode(episode, spec)
    with pytest.raises(ValueError, match="obs_encoding must be 'tokens' or 'field'"):
        gl.testing.tiny_tokenizer(obs_encoding="fields")
    gato_batch = gl.batch.TokenBatch.stack([gl.testing.tiny_tokenizer().tokenize_episode(episode, spec).to_arrays(160, 48)])
    field_batch = gl.batch.TokenBatch.stack([tok_field.tokenize_episode(episode, spec).to_arrays(96, 48)])
    with pytest.raises(ValueError, match="encoded as 'tokens'.*expects obs_encoding='field'"):
        field_model(gato_batch)
    gato_model = gl.model.Gato(ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="encoded as 'field'.*expects obs_encoding='tokens'"):
        gato_model(field_batch)
    wrong_f = gl.model.Gato(ModelConfig.preset("tiny", obs_encoding="field", field_width=32), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"batch.field_values: expected shape \(1, 96, 32\).*must equal tokenizer.field_width\), got \(1, 96, 64\)"):
        wrong_f(field_batch)
    short = field_batch.replace(field_width=field_batch.field_width.copy())
    short.field_width[0, np.flatnonzero(np.asarray(field_batch.modality)[0] == Modality.IMAGE)[-1]] = 48
    with pytest.raises(ValueError, match="batch.field_width: an image token's patches end at .*past the 48 patches"):
        field_model(short)
    with pytest.raises(ValueError, match="Haiku twin implements ModelConfig.obs_encoding='tokens'"):
        gl.model.haiku.transform(field_model.config)
    dec = gl.model.Decoder(gato_model)
    with pytest.raises(ValueError, match="obs_encoding='field' but the model expects 'tokens'"):
        dec.prefill(tok_field.tokenize_episode(episode, spec))


# --- "field": the network ---------------------------------------------------------------------
def test_field_model_embeds_fields_and_learns(spec, tok_field, field_model):
    rows = [tok_field.tokenize_episode(gl.testing.synthetic_episode(spec, 3, seed=s), spec).to_arrays(96, 48) for s in range(4)]
    batch = gl.batch.TokenBatch.stack(rows)
    # the recorded embeddings are the field embedder's sum of parts (the stepper reads them)
    parts = gl.model.inspect.embedding_parts(field_model, batch)
    rec = gl.model.inspect.record(field_model, batch)
    np.testing.assert_allclose(parts["total"], rec.embeddings, atol=1e-5)
    field_tok = (np.asarray(batch.field_width) > 0) & ~np.asarray(batch.is_action)
    assert not np.allclose(parts["token"][field_tok], field_model.embed.table[...][np.asarray(batch.ids)][field_tok])
    # a field's values move its embedding; its padding does not
    emb = jax.jit(lambda m, b: m.embed_tokens(b))
    base = np.asarray(emb(field_model, batch))
    nudged = np.asarray(emb(field_model, batch.replace(field_values=batch.field_values + 1.0)))  # discrete: the next value
    changed = np.abs(nudged - base).max(-1) > 1e-6
    assert np.array_equal(changed, field_tok & (np.asarray(batch.modality) != Modality.IMAGE))
    # training: the loss of a fixed batch falls
    model = gl.model.Gato(field_model.config, rngs=nnx.Rngs(1))
    opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, batch):
        (loss, _), grads = nnx.value_and_grad(lambda m: gl.model.loss_fn(m, batch), has_aux=True)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, batch)) for _ in range(40)]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
    assert all(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(nnx.state(model.embed.field, nnx.Param)))


def test_field_cached_decoding_equals_the_full_pass(spec, tok_field, field_model):
    seq = tok_field.tokenize_episode(gl.testing.synthetic_episode(spec, 4, seed=3), spec)
    starts, ends = seq.timestep_bounds()
    want = _forward(field_model)(gl.batch.TokenBatch.stack([seq.to_arrays(128, 64)]))[0, : len(seq), : field_model.config.vocab_size]
    dec = gl.model.Decoder(field_model)
    got = [dec.prefill(seq.slice(0, ends[1]), return_logits=True)]  # two timesteps in one chunk
    for t in (2, 3):
        step = seq.slice(starts[t], ends[t])
        n_act = int(step.is_action.sum())
        got.append(dec.observe(step.slice(0, len(step) - n_act), return_logits=True))
        got.append(dec.feed_actions(step.ids[len(step) - n_act:], return_logits=True))
    got = np.concatenate([np.asarray(g)[:, : field_model.config.vocab_size] for g in got])
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # and B rows at once choose what one row chooses
    ranges = tok_field.action_token_ranges(spec)
    obs = [_step(seq, t).slice(0, int(np.flatnonzero(_step(seq, t).is_action)[0])) for t in range(3)]
    one = []
    for o in obs:
        d1 = gl.model.Decoder(field_model)
        one.append(d1.act(o, ranges, temperature=0.0).ids[0])
    dec3 = gl.model.Decoder(field_model, batch_size=3)
    np.testing.assert_array_equal(dec3.act(obs, ranges, temperature=0.0).ids, np.stack(one))


def test_field_encoding_trains_and_plays_end_to_end(tmp_path):
    """Generate -> train (the run's tokenizer and model both field-encoded) -> evaluate through the agent."""
    gl.data.generate("toy", tmp_path / "data", episodes=6, shard_size=6, progress=False)
    data = tmp_path / "data" / "toy"
    run = tmp_path / "run"
    res = gl.train.train("tiny", out=run, data=[str(data)], progress=False,
                         overrides={"steps": 3, "batch_size": 2, "seq_len": 64, "log_every": 1, "ckpt_every": 3,
                                    "tokenizer.obs_encoding": "field", "tokenizer.field_width": 8,
                                    "mixture.weights": {"toy": 1.0}})
    assert res["step"] == 3 and np.isfinite(res["last"]["loss"])
    assert res["last"]["timesteps"] > res["last"]["tokens"] / 8  # a reach timestep is 3-4 tokens, not 4 + 2 values
    model, tokenizer, _ = gl.train.load_model(run)
    assert model.config.obs_encoding == tokenizer.config.obs_encoding == "field" and model.config.field_width == 8
    results = gl.evaluate.evaluate(run, ["reach-short"], episodes=3, out=tmp_path / "eval", progress=False)
    (row,) = results.rows
    assert row["error"] is None and len(row["returns"]) == 3
