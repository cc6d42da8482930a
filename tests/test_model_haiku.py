"""The Haiku twin (gatolab.model.haiku) computes what the NNX network computes, and weights move both ways.

Parameters are random (NumPy draws, so no bias or norm offset is zero) and the same arrays go
to both networks. Logits, loss, metrics and gradients are compared in float32 on multi-modal
sequences (text, image patches, discrete, continuous, actions), for the tiny preset and a
gato_79m-shaped network, over the settings of the switches that change the network. Each
configuration compiles once per network; compilation is most of the time.
"""

import dataclasses

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab.model import ModelConfig
from gatolab.model import haiku as gh

ATOL = 1e-5  # float32 logits, absolute

# The switches that change the network, each setting in at least one configuration: logits are
# compared for the first two (every switch at two settings), loss and gradients for the third.
SWITCHES = {
    "pre-gelu-shared-tied": {},
    "post-relu-none-untied-nobias": dict(norm="post", activation="relu", action_position="none", tie_embeddings=False,
                                         use_bias=False),
}
GRADIENTS = dict(activation="geglu", tie_embeddings=False)  # every kind of parameter at once
ALL = {**SWITCHES, "geglu-untied": GRADIENTS}


@pytest.fixture(scope="module")
def tok():
    return gl.testing.tiny_tokenizer()


@pytest.fixture(scope="module")
def batch(tok):
    # Row 0: three timesteps (135 tokens, 36 patches); row 1: a shorter window, so padding is
    # exercised. 160 tokens > attention_block (128): the query-blocked attention runs twice.
    spec = gl.testing.multimodal_spec()
    seq = tok.tokenize_episode(gl.testing.synthetic_episode(spec, 3, seed=0), spec)
    return gl.batch.TokenBatch.stack([seq.to_arrays(160, 48), seq.slice(0, 50).to_arrays(160, 48)])


def random_params(config: ModelConfig, seed: int = 0) -> hk.Params:
    """Random parameters in the twin's layout, drawn with NumPy (nothing to compile).

    Weights N(0, 0.02^2) (GPT-2's init); norm scales 1 + N(0, 0.1^2); biases, offsets and the
    action vector N(0, 0.1^2), so no parameter is zero and a mis-mapped bias would show.
    """
    shapes = jax.eval_shape(gh.transform(config).forward.init, jax.random.key(0), gh.example_batch(config))
    rng = np.random.default_rng(seed)

    def draw(name, shape):
        x = rng.standard_normal(shape, np.float32)
        return jnp.asarray(1 + 0.1 * x if name == "scale" else (0.1 if len(shape) == 1 else 0.02) * x)

    return {m: {n: draw(n, s.shape) for n, s in sorted(p.items())} for m, p in sorted(shapes.items())}


def nnx_fn(model, fn):
    """`fn(model, batch)` compiled, with the model's state as an argument."""
    graphdef, state = nnx.split(model)
    compiled = jax.jit(lambda s, b: fn(nnx.merge(graphdef, s), b))
    return lambda b: compiled(state, b)


def max_logit_diff(a, b) -> float:
    """Largest |a - b| over finite logits; the -inf (padded ids) must sit in the same places."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.array_equal(np.isneginf(a), np.isneginf(b)) and np.isfinite(a[~np.isneginf(a)]).all()
    finite = ~np.isneginf(a)
    return float(np.abs(a[finite] - b[finite]).max())


def assert_trees_equal(a, b):
    """Same structure, dtypes and bits."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))


# --- logits -----------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["tiny", "gato_79m"])
@pytest.mark.parametrize("switches", list(SWITCHES), ids=list(SWITCHES))
def test_logits_match_nnx(preset, switches, batch):
    config = ModelConfig.preset(preset, **SWITCHES[switches])
    params = random_params(config)
    model = gh.to_nnx(params, config)
    want = nnx_fn(model, lambda m, b: m(b))(batch)
    got = jax.jit(gh.transform(config).forward.apply)(params, None, batch)
    assert got.shape == want.shape == (2, 160, config.padded_vocab_size) and got.dtype == jnp.float32
    diff = max_logit_diff(want, got)
    print(f"{preset} {switches}: max |logit difference| {diff:.3g}")
    assert diff <= ATOL


# --- loss, metrics, gradients; training mode ----------------------------------------------------
def test_loss_and_gradients_match_nnx(batch):
    # The NNX side runs its unrolled loop without remat: test_model.py shows scan and remat
    # compute the same, and this compiles in half the time.
    config = ModelConfig.preset("tiny", **GRADIENTS)
    params = random_params(config, seed=1)
    graphdef, state = nnx.split(gh.to_nnx(params, dataclasses.replace(config, scan_layers=False, remat="none")))
    nnx_loss = jax.jit(jax.value_and_grad(lambda s, b: gl.model.loss_fn(nnx.merge(graphdef, s), b), has_aux=True))
    hk_loss = jax.jit(jax.value_and_grad(gh.transform(config).loss.apply, has_aux=True))
    (want, want_m), want_g = nnx_loss(state, batch)
    (got, got_m), got_g = hk_loss(params, None, batch)
    assert float(got_m["targets"]) > 0 and set(got_m) == set(want_m)
    for k in want_m:
        np.testing.assert_allclose(np.asarray(got_m[k]), np.asarray(want_m[k]), rtol=1e-6, atol=1e-6, err_msg=k)
    # Gradients in the NNX layout, leaf by leaf (both trees hold every parameter).
    got_g = gh.tree_to_nnx(got_g, config)
    want_g = nnx.to_pure_dict(want_g)
    assert jax.tree.structure(got_g) == jax.tree.structure(want_g)
    worst = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(want_g), jax.tree.leaves(got_g)))
    scale = max(float(jnp.abs(a).max()) for a in jax.tree.leaves(want_g))
    print(f"tiny geglu-untied: loss {float(want):.6f} vs {float(got):.6f}; max |grad difference| {worst:.3g} (max |grad| {scale:.3g})")
    assert worst <= 1e-6 * max(1.0, scale)


def test_training_mode_and_gathered_targets_match_given_the_same_key(batch):
    """Dropout masks and sampled patch positions follow the key `hk.next_rng_key()` draws first."""
    config = ModelConfig.preset("tiny", dropout=0.1)
    params = random_params(config, seed=2)
    graphdef, state = nnx.split(gh.to_nnx(params, config))
    rng = jax.random.key(7)
    key = hk.transform(hk.next_rng_key).apply({}, rng)  # the NNX model gets the same key
    k = gl.model.target_bucket(batch)
    nnx_loss = jax.jit(lambda s, b, key: gl.model.loss_fn(nnx.merge(graphdef, s), b, train=True, key=key, max_targets=k))
    hk_loss = jax.jit(lambda p, r, b: gh.transform(config).loss.apply(p, r, b, is_training=True, max_targets=k))
    want, want_m = nnx_loss(state, batch, key)
    got, got_m = hk_loss(params, rng, batch)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_m["row_nll"]), np.asarray(want_m["row_nll"]), rtol=1e-6)
    # ... and it is training: another key gives another loss.
    assert float(hk_loss(params, jax.random.key(8), batch)[0]) != float(got)


# --- the parameter map and round trips ------------------------------------------------------------
@pytest.mark.parametrize("switches", list(ALL), ids=list(ALL))
def test_parameter_map_covers_both_networks_exactly(switches, batch):
    config = ModelConfig.preset("tiny", **ALL[switches])
    rows = gh.parameter_map(config)
    hk_shapes = jax.eval_shape(gh.transform(config).forward.init, jax.random.key(0), batch)
    assert {(m, n) for _, m, n in rows} == {(m, n) for m, p in hk_shapes.items() for n in p}
    nnx_tree = nnx.to_pure_dict(nnx.state(gl.model.abstract_model(config)))
    nnx_leaves = {tuple(k.key for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(nnx_tree)}
    assert {p for p, _, _ in rows} == set(nnx_leaves) and len(rows) == len(nnx_leaves)
    # The same shapes on both sides; `example_batch` creates every parameter too.
    for path, module, name in rows:
        assert hk_shapes[module][name].shape == nnx_leaves[path].shape, (path, module, name)
    assert jax.tree.structure(jax.eval_shape(gh.transform(config).forward.init, jax.random.key(0),
                                             gh.example_batch(config))) == jax.tree.structure(hk_shapes)


@pytest.mark.parametrize("switches", list(ALL), ids=list(ALL))
def test_round_trips_are_bit_exact(switches):
    config = ModelConfig.preset("tiny", **ALL[switches])
    model = gh.to_nnx(random_params(config, seed=3), config)  # an NNX Gato, built as `Gato(config)` builds it
    params = gh.to_haiku(model)
    back = gh.to_nnx(params, config)
    assert_trees_equal(nnx.to_pure_dict(nnx.state(model)), nnx.to_pure_dict(nnx.state(back)))
    assert_trees_equal(params, gh.to_haiku(back))  # Haiku -> NNX -> Haiku too
    # The NNX model is the usual one: same graph, sharding names kept.
    assert nnx.graphdef(back) == nnx.graphdef(gl.model.abstract_model(config))
    assert nnx.state(back, nnx.Param)["embed"]["table"].get_metadata()["out_sharding"] == ("vocab", "embed")


def test_conversion_errors_name_the_mismatch(batch):
    config = ModelConfig.preset("tiny")
    params = jax.eval_shape(gh.transform(config).forward.init, jax.random.key(0), batch)
    with pytest.raises(ValueError, match="missing.*block_2"):
        gh.to_nnx(params, dataclasses.replace(config, num_layers=3))
    with pytest.raises(ValueError, match="unexpected.*action_position"):
        gh.to_nnx(params, dataclasses.replace(config, action_position="none"))
    wide = jax.tree.map(jnp.zeros_like, params)
    wide["gato/~/embed"]["table"] = jnp.zeros((8, config.embed_dim))
    with pytest.raises(ValueError, match="embed/table is float32\\[8, 64\\]"):
        gh.to_nnx(wide, config)


# --- checkpoints ----------------------------------------------------------------------------------
def test_checkpoints_move_both_ways(tmp_path, tok, batch):
    config = ModelConfig.preset("tiny")
    params = random_params(config, seed=4)
    # Haiku params -> a gatolab checkpoint that gatolab's loader and the agent read.
    run = gh.save(tmp_path / "from_haiku", params, config, tok, step=5, meta={"note": "converted"})
    model, tokenizer, meta = gl.train.load_model(run)
    assert meta["step"] == 5 and meta["note"] == "converted" and model.config == config
    assert tokenizer.config == tok.config
    assert_trees_equal(gh.tree_to_nnx(params, config), nnx.to_pure_dict(nnx.state(model)))
    agent = gl.agent.GatoAgent.from_checkpoint(run)
    assert_trees_equal(params, gh.to_haiku(agent.model))
    # ... and a gatolab checkpoint -> the twin, from its path alone, with the functions to run it.
    twin = gh.load(run)
    assert twin.config == config and twin.meta["step"] == 5 and twin.tokenizer.config == tok.config
    assert_trees_equal(params, twin.params)
    logits = jax.jit(twin.functions.forward.apply)(twin.params, None, batch)
    assert max_logit_diff(nnx_fn(model, lambda m, b: m(b))(batch), logits) <= ATOL
    # Saving again with the loaded meta keeps the run's facts (its train config's optimiser).
    again = gh.save(tmp_path / "again", twin.params, twin.config, twin.tokenizer, meta=twin.meta)
    assert gl.train.load_model(again)[2]["train_config"] == meta["train_config"]


def test_importing_gatolab_model_does_not_import_haiku():
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", "import sys, gatolab.model; assert 'haiku' not in sys.modules"], check=True)
    assert gl.model.haiku is gh  # the lazy attribute
