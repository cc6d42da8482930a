"""Episode -> TokenSequence: layout, masks, windows, round trips and bad input (Gato §2.1)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gatolab as gl
from gatolab import testing
from gatolab import tokenizers as tk
from gatolab.specs import EnvSpec, FieldSpec, Modality


@pytest.fixture(scope="module")
def tok():
    return testing.tiny_tokenizer()


@pytest.fixture(scope="module")
def spec():
    return testing.multimodal_spec()


@pytest.fixture(scope="module")
def seq(tok, spec):
    return tok.tokenize_episode(testing.synthetic_episode(spec, num_steps=5, seed=1), spec)


# --- layout ---------------------------------------------------------------------------
def test_timestep_order_text_image_tensors_separator_actions(seq, spec):
    starts, ends = seq.timestep_bounds()
    assert len(starts) == 5
    for s, e in zip(starts, ends):
        mods = seq.modality[s:e]
        fields = [seq.field_names[f] if f >= 0 else "|" for f in seq.field[s:e]]
        first_change = [fields[0]] + [b for a, b in zip(fields, fields[1:]) if a != b]
        assert first_change == ["mission", "camera", "grid", "proprio/gripper", "proprio/joints", "|", "button", "torque"]
        sep = int(np.flatnonzero(mods == Modality.SEPARATOR)[0])
        assert np.all(seq.is_action[s + sep + 1:e]) and not np.any(seq.is_action[s:s + sep + 1])


def test_tensor_fields_are_row_major(tok):
    spec = EnvSpec("rm", {"m": FieldSpec.discrete(100, (2, 3))})
    grid = np.arange(6).reshape(1, 2, 3)
    s = tok.tokenize_episode(gl.Episode("rm", {"m": grid}), spec)
    assert s.ids.tolist() == list(range(6))


def test_local_positions_and_loss_mask(seq):
    starts, ends = seq.timestep_bounds()
    for s, e in zip(starts, ends):
        obs = ~seq.is_action[s:e] & (seq.modality[s:e] != Modality.SEPARATOR)
        n_obs = int(obs.sum())
        assert seq.local_position[s:e][obs].tolist() == list(range(n_obs))
        assert np.all(seq.local_position[s:e][~obs] == -1)
    expected = (seq.modality == Modality.TEXT) | seq.is_action
    np.testing.assert_array_equal(seq.loss_mask, expected)


def test_loss_override_per_field(tok):
    spec = EnvSpec("o", {"mission": FieldSpec.text(loss=False), "x": FieldSpec.continuous((2,), loss=True)},
                   {"a": FieldSpec.discrete(3)})
    ep = gl.Episode("o", {"mission": ["go left"] * 2, "x": np.zeros((2, 2))}, {"a": np.array([0, 2])})
    s = tok.tokenize_episode(ep, spec)
    assert not s.loss_mask[s.modality == Modality.TEXT].any()
    assert s.loss_mask[s.modality == Modality.CONTINUOUS].all() and s.loss_mask[s.is_action].all()


def test_patches_follow_image_tokens(seq):
    img = seq.modality == Modality.IMAGE
    assert seq.num_patches == img.sum() == 5 * 12  # 48x64 -> 3x4 patches per step
    np.testing.assert_array_equal(seq.patch_index[img], np.arange(seq.num_patches))
    assert np.all(seq.ids[img] == gl.Vocabulary().image_id)


def test_episode_path_equals_deployment_path(tok, spec, seq):
    """Vectorised episode tokenization == per-step observation + action tokens."""
    ep = testing.synthetic_episode(spec, num_steps=5, seed=1)
    starts, ends = seq.timestep_bounds()
    for t in range(5):
        obs, act = ep.timestep(t)
        o = tok.tokenize_observation(obs, spec, timestep=t)
        a = tok.tokenize_action(act, spec)
        np.testing.assert_array_equal(np.concatenate([o.ids, a]), seq.ids[starts[t]:ends[t]])
        assert np.all(o.timestep == t)
        np.testing.assert_array_equal(o.patches, seq.slice(starts[t], ends[t]).patches)


# --- actions --------------------------------------------------------------------------
def test_action_ranges_and_decode(tok, spec):
    ranges = tok.action_token_ranges(spec)
    assert ranges.tolist() == [[0, 18], [32000, 33024], [32000, 33024], [32000, 33024]]
    action = {"button": np.int64(7), "torque": np.array([-1.0, 0.0, 0.999])}
    ids = tok.tokenize_action(action, spec)
    assert np.all((ids >= ranges[:, 0]) & (ids < ranges[:, 1]))
    dec = tok.decode_action(ids, spec)
    assert int(dec["button"]) == 7
    np.testing.assert_allclose(dec["torque"], action["torque"], atol=1 / 1024 + 1e-7)


@settings(max_examples=200, deadline=None)
@given(st.floats(-256, 256, allow_nan=False), st.floats(-1, 1, allow_nan=False))
def test_continuous_round_trip_within_documented_bound(tok, x_mu, x_lin):
    spec = EnvSpec("rt", {"o": FieldSpec.discrete(2)},
                   {"a_mu": FieldSpec.continuous((), mu_law="always"), "a_lin": FieldSpec.continuous((), -1, 1)})
    dec = tok.decode_action(tok.tokenize_action({"a_mu": x_mu, "a_lin": x_lin}, spec), spec)
    assert abs(float(dec["a_mu"]) - x_mu) <= tk.continuous_roundtrip_bound(np.array(x_mu), True) + 1e-9
    assert abs(float(dec["a_lin"]) - x_lin) <= 1 / 1024 + 1e-9
    # 0 is a bin edge, so the sign survives (below ~1e-15, (y + 1) rounds to 1 in float64)
    assert np.sign(float(dec["a_mu"])) == np.sign(x_mu) or abs(x_mu) < 1e-12


def test_documented_worst_case_numbers():
    # the numbers quoted in the README and the tokenizer docstring
    assert tk.continuous_roundtrip_bound(np.array(0.0), False) == pytest.approx(0.000977, abs=1e-6)
    assert tk.continuous_roundtrip_bound(np.array(100.0), True) / 100 == pytest.approx(0.00996, abs=2e-5)


def test_mu_law_switch_is_static_per_field():
    assert not FieldSpec.continuous((), -1, 1).uses_mu_law
    assert FieldSpec.continuous((), -2, 1).uses_mu_law
    assert FieldSpec.continuous(()).uses_mu_law
    assert FieldSpec.continuous((), -1, 1, mu_law="always").uses_mu_law
    assert not FieldSpec.continuous((), -5, 5, mu_law="never").uses_mu_law


def test_disjoint_policy_moves_discrete_ids():
    tok = gl.GatoTokenizer(gl.TokenizerConfig(vocab=gl.Vocabulary(discrete_policy="disjoint")))
    spec = EnvSpec("d", {"g": FieldSpec.discrete(5, (2,))}, {"a": FieldSpec.discrete(4)})
    s = tok.tokenize_episode(gl.Episode("d", {"g": np.array([[0, 4]])}, {"a": np.array([3])}), spec)
    assert s.ids.tolist() == [33024, 33028, 34048, 33027]
    assert tok.action_token_ranges(spec).tolist() == [[33024, 33028]]
    assert int(tok.decode_action(np.array([33027]), spec)["a"]) == 3


# --- windows ------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(30, 400), st.integers(0, 4))
def test_windows_cut_at_timestep_boundaries(seq, max_len, start):
    starts, ends = seq.timestep_bounds()
    per_step = ends - starts
    if per_step.max() > max_len:
        with pytest.raises(ValueError, match="more than max_len"):
            list(seq.windows(max_len))
        return
    w = seq.window(start, max_len)
    assert len(w) <= max_len and w.num_timesteps >= 1
    assert len(w) == per_step[start:start + w.num_timesteps].sum()
    nxt = start + w.num_timesteps
    assert nxt == len(starts) or len(w) + per_step[nxt] > max_len  # greedy: as many whole timesteps as fit
    ws = list(seq.windows(max_len))
    assert sum(len(x) for x in ws) == len(seq)
    np.testing.assert_array_equal(np.concatenate([x.ids for x in ws]), seq.ids)


def test_last_window_drops_oldest_whole_timesteps(seq):
    starts, ends = seq.timestep_bounds()
    step = int(ends[0] - starts[0])
    w = seq.last_window(2 * step + 5)
    assert w.num_timesteps == 2 and w.timestep[0] == 3 and len(w) == 2 * step


def test_concatenate_renumbers_timesteps_and_patches(seq):
    a, b = seq.window(3, 10_000), seq.window(0, 10_000)
    c = gl.TokenSequence.concatenate([a, b])
    assert len(c) == len(a) + len(b) and np.all(np.diff(c.timestep) >= 0) and c.num_timesteps == a.num_timesteps + b.num_timesteps
    np.testing.assert_array_equal(c.patches, np.concatenate([a.patches, b.patches]))


def test_to_arrays_pads(seq):
    w = seq.window(0, 200)
    arr = w.to_arrays(256, max_patches=64, pad_id=gl.Vocabulary().pad_id)
    n = len(w)
    assert arr["ids"].shape == (256,) and arr["patches"].shape == (64, 16, 16, 3)
    assert arr["valid"].sum() == n and not arr["loss_mask"][n:].any() and np.all(arr["modality"][n:] == Modality.PAD)
    batch = gl.batch.Batch.stack([arr, arr])
    assert batch.tokens.ids.shape == (2, 256) and batch.info.timestep.shape == (2, 256) and batch.info.dataset_id is None
    with pytest.raises(ValueError, match="do not fit"):
        seq.to_arrays(10)


def test_html_repr_shows_every_token_and_targets(seq):
    w = seq.window(0, 100)
    html = w._repr_html_()
    assert html.count("<span title=") == len(w) and "loss target" in html


# --- bad input -------------------------------------------------------------------------------
def _ep(spec, **override):
    ep = testing.synthetic_episode(spec, num_steps=2, seed=0)
    obs = dict(ep.observations)
    acts = dict(ep.actions)
    for k, v in override.items():
        (acts if k in acts else obs)[k] = v
    return gl.Episode(ep.task, obs, acts)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("proprio/joints", np.array([[0.0, np.nan, 0, 0], [0, 0, 0, 0]]), "NaN"),
        ("proprio/joints", np.array([[0.0, np.inf, 0, 0], [0, 0, 0, 0]]), "NaN or inf"),
        ("proprio/joints", np.zeros((2, 5)), "expected shape"),
        ("grid", np.full((2, 3, 3), 11), "outside"),
        ("grid", np.full((2, 3, 3), 1.5), "integers"),
        ("proprio/gripper", np.array([0.5, 1.5]), "declared bounds"),
        ("proprio/joints", np.full((2, 4), 1e5), "beyond"),
        ("torque", np.full((2, 3), 2.0), "declared bounds"),
        ("button", np.array([0, 18]), "outside"),
        ("camera", np.zeros((2, 48, 64, 4), np.uint8), "expected shape"),
    ],
)
def test_bad_values_name_the_field(tok, spec, field, value, match):
    with pytest.raises(ValueError, match=match) as e:
        tok.tokenize_episode(_ep(spec, **{field: value}), spec)
    assert repr(field) in str(e.value)


def test_unknown_and_missing_fields(tok, spec):
    ep = testing.synthetic_episode(spec, num_steps=2)
    obs = dict(ep.observations)
    obs["lidar"] = np.zeros((2, 3))
    with pytest.raises(ValueError, match="'lidar' is not in the spec"):
        tok.tokenize_episode(gl.Episode("x", obs, ep.actions), spec)
    del obs["lidar"], obs["grid"]
    with pytest.raises(ValueError, match="'grid' is missing"):
        tok.tokenize_episode(gl.Episode("x", obs, ep.actions), spec)


def test_clip_is_explicit(tok):
    spec = EnvSpec("c", {"x": FieldSpec.continuous((2,), out_of_range="clip")})
    s = tok.tokenize_episode(gl.Episode("c", {"x": np.array([[1e6, -1e6]])}), spec)
    assert s.ids.tolist() == [33023, 32000]


def test_text_field_needs_text_tokenizer(spec):
    with pytest.raises(ValueError, match="text tokenizer"):
        gl.GatoTokenizer().tokenize_episode(testing.synthetic_episode(spec, 1), spec)


def test_episode_and_spec_validation():
    with pytest.raises(ValueError, match="different lengths"):
        gl.Episode("x", {"a": np.zeros((3, 2)), "b": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="num_values"):
        FieldSpec.discrete(2000)
    with pytest.raises(ValueError, match="action field"):
        EnvSpec("x", {"o": FieldSpec.discrete(2)}, {"a": FieldSpec.text()})
    with pytest.raises(ValueError, match="C in"):
        FieldSpec.image(16, 16, 4)


def test_token_sequence_checks_its_shapes(seq):
    with pytest.raises(ValueError, match="expected"):
        dataclasses.replace(seq, ids=seq.ids[:-1])
    with pytest.raises(ValueError, match="IMAGE tokens"):
        dataclasses.replace(seq, patches=seq.patches[:-1], patch_row_interval=seq.patch_row_interval[:-1],
                            patch_col_interval=seq.patch_col_interval[:-1])


def test_spec_json_round_trip(spec):
    again = EnvSpec.from_json(spec.to_json())
    assert again == spec


def test_spec_order_puts_the_image_before_its_caption(tok):
    spec = EnvSpec("vl", {"image": FieldSpec.image(16, 16, 3), "text": FieldSpec.text()}, order=("image", "text"))
    ep = gl.Episode("vl", {"image": np.zeros((2, 16, 16, 3), np.uint8), "text": ["a red ball", "a blue box"]})
    s = tok.tokenize_episode(ep, spec)
    starts, ends = s.timestep_bounds()
    for a, b in zip(starts, ends):
        assert s.modality[a] == Modality.IMAGE and s.modality[b - 1] == Modality.TEXT
    assert EnvSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="every observation field"):
        EnvSpec("vl", {"image": FieldSpec.image(16, 16, 3), "text": FieldSpec.text()}, order=("image",))
