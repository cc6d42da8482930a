"""Unit and property tests for the pure-NumPy tokenizers (Gato §2.1, GATO_SPEC §1)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatolab import tokenizers as tk


# --- mu-law -------------------------------------------------------------------------
def test_mu_law_maps_plus_minus_m_to_plus_minus_one():
    np.testing.assert_allclose(tk.mu_law_encode(np.array([-256.0, 0.0, 256.0])), [-1.0, 0.0, 1.0], atol=1e-12)


def test_mu_law_matches_formula_from_appendix_b():
    x = 3.7
    assert tk.mu_law_encode(x) == pytest.approx(math.log(abs(x) * 100 + 1) / math.log(256 * 100 + 1))


@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_mu_law_decode_inverts_encode(x):
    assert tk.mu_law_decode(tk.mu_law_encode(x)) == pytest.approx(x, rel=1e-9, abs=1e-9)


def test_mu_law_is_monotonic():
    x = np.linspace(-300, 300, 10001)
    assert np.all(np.diff(tk.mu_law_encode(x)) > 0)


# --- bins ---------------------------------------------------------------------------
def test_discretize_edges_and_centres():
    assert tk.discretize(np.array([-1.0, 1.0, 0.0, -1e-12])).tolist() == [0, 1023, 512, 511]
    centres = tk.bin_centers(np.arange(1024))
    assert centres[0] == pytest.approx(-1 + 1 / 1024) and centres[-1] == pytest.approx(1 - 1 / 1024)
    np.testing.assert_array_equal(tk.discretize(centres), np.arange(1024))


def test_no_bin_straddles_zero():
    # 0 is a bin edge, so decoding never flips a value's sign.
    assert tk.discretize(np.array([-1e-9]))[0] == 511 and tk.discretize(np.array([1e-9]))[0] == 512


# --- vocabulary ---------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["shared", "disjoint"])
@pytest.mark.parametrize("text_size", [512, 32_000])
def test_vocabulary_ranges(policy, text_size):
    v = tk.Vocabulary(text_size=text_size, discrete_policy=policy)
    r = v.describe()
    specials = [v.separator_id, v.image_id, v.pad_id]
    assert len(set(specials)) == 3 and min(specials) >= r["continuous"][1] and v.size == max(specials) + 1
    # continuous never overlaps text or discrete ids
    assert r["continuous"][0] >= max(r["text"][1], r["discrete"][1]) or r["continuous"][1] <= r["discrete"][0]
    if policy == "shared":
        assert r["discrete"] == (0, 1024)
    else:
        assert r["discrete"][0] >= r["continuous"][1] and r["discrete"][0] >= r["text"][1]


def test_default_vocabulary_is_the_papers():
    v = tk.Vocabulary()
    assert v.describe()["text"] == (0, 32000) and v.describe()["continuous"] == (32000, 33024)
    assert v.separator_id == 33024


def test_vocabulary_rejects_bad_policy():
    with pytest.raises(ValueError, match="discrete_policy"):
        tk.Vocabulary(discrete_policy="overlap")


# --- images -------------------------------------------------------------------------
def _index_image(rows, cols, ps=16):
    """Each patch filled with its raster index (as uint8)."""
    img = np.zeros((rows * ps, cols * ps, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            img[r * ps:(r + 1) * ps, c * ps:(c + 1) * ps] = r * cols + c
    return img


def test_patchify_raster_order_scaling_and_intervals():
    patches, rows, cols = tk.patchify(_index_image(2, 3))
    assert patches.shape == (6, 16, 16, 3) and patches.dtype == np.float32
    expected = (np.arange(6) * 2.0 / 255.0 - 1.0) / 4.0  # [0,255] -> [-1,1] -> / sqrt(16)
    np.testing.assert_allclose(patches.reshape(6, -1).mean(1), expected, atol=1e-6)
    np.testing.assert_allclose(rows[:, 0], [0, 0, 0, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(cols[:, 1], [1 / 3, 2 / 3, 1, 1 / 3, 2 / 3, 1], atol=1e-6)


def test_pixel_range_maps_to_plus_minus_quarter():
    p, _, _ = tk.patchify(np.full((16, 16, 3), 255, np.uint8))
    assert np.allclose(p, 0.25)
    p, _, _ = tk.patchify(np.zeros((16, 16), np.float32))
    assert p.shape == (1, 16, 16, 3) and np.allclose(p, -0.25)


def test_unpatchify_inverts_patchify():
    img = np.random.default_rng(0).integers(0, 256, (32, 48, 3)).astype(np.uint8)
    patches, _, _ = tk.patchify(img)
    np.testing.assert_allclose(tk.unpatchify(patches, 2, 3), img / 255.0, atol=1e-6)


def test_non_multiple_sides_policies():
    img = np.zeros((20, 40, 3), np.uint8)
    p, rows, _ = tk.patchify(img, policy="pad")
    assert p.shape[0] == 2 * 3 and tk.patch_grid(20, 40) == (2, 3)
    assert np.allclose(p[3:, 8:, :, :], -0.25)  # padded rows are black
    p, _, _ = tk.patchify(img, policy="resize")
    assert p.shape[0] == tk.patch_grid(20, 40, policy="resize")[0] * tk.patch_grid(20, 40, policy="resize")[1] == 1 * 2
    with pytest.raises(ValueError, match="not multiples of 16"):
        tk.patchify(img, policy="error")


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((16, 16, 3, 1), np.uint8), "shape"),
        (np.zeros((16,), np.uint8), "shape"),
        (np.zeros((16, 16, 4), np.uint8), "channels"),
        (np.zeros((16, 16, 3), np.int32), "dtype"),
        (np.full((16, 16, 3), 2.0), r"\[0, 1\]"),
        (np.full((16, 16, 3), np.nan), "NaN"),
    ],
)
def test_bad_images_raise_with_field_name(image, match):
    with pytest.raises(ValueError, match=match) as e:
        tk.patchify(image, name="field 'camera'")
    assert "camera" in str(e.value)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70))
def test_patch_count_matches_grid(h, w):
    p, rows, cols = tk.patchify(np.zeros((h, w, 3), np.uint8))
    nr, nc = tk.patch_grid(h, w)
    assert p.shape[0] == nr * nc == rows.shape[0] == cols.shape[0]
    assert np.all((rows >= 0) & (rows <= 1)) and np.all(rows[:, 1] > rows[:, 0])
