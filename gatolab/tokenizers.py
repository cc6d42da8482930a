"""Gato's tokenizers, in pure NumPy (Gato §2.1; `../shared/GATO_SPEC.md` §1).

    values  --mu-law (maybe)-->  [-1, 1]  --1024 uniform bins-->  [0, 1024)  --shift-->  ids
    images  --pad to 16k-->  16x16 patches (raster order), pixels in [-1, 1] / 4
    text    --SentencePiece (see `gatolab.text`)-->  [0, 32000)

Everything here has an exact inverse where one exists (`decode_*`), and stays out
of JAX so that data pipelines and notebooks can use it anywhere.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

# Gato appendix B: mu-law with mu = 100, M = 256.
MU = 100.0
M = 256.0

DiscretePolicy = Literal["shared", "disjoint"]
ImagePolicy = Literal["pad", "resize", "error"]


# ----------------------------------------------------------------------------------
# The id space
# ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Where each kind of token lives in the one embedding table (Gato §2.1–2.2).

    Layout with the defaults (text 32,000, discrete policy "shared"):

        [0, 32000)      text (SentencePiece)          and discrete values [0, 1024)
        [32000, 33024)  continuous values (1024 bins)
        33024           separator '|'
        33025           image placeholder (patches are embedded by the ResNet, not looked up)
        33026           padding

    GATO_SPEC §1 [open]: the paper literally puts discrete values in [0, 1024), the
    same ids as the first text subwords. `discrete_policy="shared"` (default) follows
    the paper; `"disjoint"` gives discrete values their own ids after the continuous
    range (as NEKO does), for the ablation that asks whether the overlap hurts.
    With "shared" and a text vocabulary smaller than 1024 the continuous range
    starts at 1024, so the ranges never collide.
    """

    text_size: int = 32_000
    discrete_size: int = 1024
    continuous_bins: int = 1024
    discrete_policy: DiscretePolicy = "shared"

    def __post_init__(self):
        if self.discrete_policy not in ("shared", "disjoint"):
            raise ValueError(f"Vocabulary.discrete_policy must be 'shared' or 'disjoint', got {self.discrete_policy!r}")
        for name in ("text_size", "discrete_size", "continuous_bins"):
            if getattr(self, name) < 2:
                raise ValueError(f"Vocabulary.{name} must be >= 2, got {getattr(self, name)}")

    @property
    def text_offset(self) -> int:
        return 0

    @property
    def continuous_offset(self) -> int:
        if self.discrete_policy == "shared":
            return max(self.text_size, self.discrete_size)
        return self.text_size

    @property
    def discrete_offset(self) -> int:
        if self.discrete_policy == "shared":
            return 0
        return self.continuous_offset + self.continuous_bins

    @property
    def special_offset(self) -> int:
        end = self.continuous_offset + self.continuous_bins
        return end if self.discrete_policy == "shared" else end + self.discrete_size

    @property
    def separator_id(self) -> int:
        return self.special_offset

    @property
    def image_id(self) -> int:
        return self.special_offset + 1

    @property
    def pad_id(self) -> int:
        return self.special_offset + 2

    @property
    def size(self) -> int:
        """Rows of the embedding table."""
        return self.special_offset + 3

    def describe(self) -> dict[str, tuple[int, int]]:
        """Half-open id ranges by name, for display and tests."""
        return {
            "text": (self.text_offset, self.text_offset + self.text_size),
            "discrete": (self.discrete_offset, self.discrete_offset + self.discrete_size),
            "continuous": (self.continuous_offset, self.continuous_offset + self.continuous_bins),
            "separator": (self.separator_id, self.separator_id + 1),
            "image": (self.image_id, self.image_id + 1),
            "pad": (self.pad_id, self.pad_id + 1),
        }


# ----------------------------------------------------------------------------------
# Continuous values: mu-law -> bins
# ----------------------------------------------------------------------------------
def mu_law_encode(x: np.ndarray, mu: float = MU, m: float = M) -> np.ndarray:
    """F(x) = sgn(x) log(|x| mu + 1) / log(M mu + 1)   (Gato appendix B).

    Maps [-M, M] onto [-1, 1]; larger magnitudes land outside [-1, 1].
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x) * mu) / math.log1p(m * mu)


def mu_law_decode(y: np.ndarray, mu: float = MU, m: float = M) -> np.ndarray:
    """Exact inverse of `mu_law_encode`: sgn(y) ((M mu + 1)^|y| - 1) / mu."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.expm1(np.abs(y) * math.log1p(m * mu)) / mu


def discretize(y: np.ndarray, num_bins: int = 1024) -> np.ndarray:
    """[-1, 1] -> {0, ..., num_bins - 1}, uniform bins; y = 1 goes to the last bin."""
    y = np.asarray(y, dtype=np.float64)
    bins = np.floor((y + 1.0) * (num_bins / 2.0)).astype(np.int64)
    return np.clip(bins, 0, num_bins - 1)  # only moves y == 1.0 (callers range-check first)


def bin_centers(bins: np.ndarray, num_bins: int = 1024) -> np.ndarray:
    """{0, ..., num_bins - 1} -> the centre of each bin in [-1, 1]."""
    bins = np.asarray(bins, dtype=np.float64)
    return -1.0 + (bins + 0.5) * (2.0 / num_bins)


def continuous_roundtrip_bound(x: np.ndarray, use_mu_law: bool, num_bins: int = 1024, mu: float = MU, m: float = M) -> np.ndarray:
    """Worst-case |decode(encode(x)) - x| for each x (documented and tested).

    Without mu-law the error is at most half a bin: 1 / num_bins (= 0.000977).
    With mu-law, half a bin in the encoded domain (delta = 1/num_bins) becomes
        |x_hat - x| <= (|x| + 1/mu) * (exp(delta * log(M mu + 1)) - 1)
                     = 0.00996 * (|x| + 0.01)        for the defaults,
    i.e. about 1% relative error for large |x| and 1e-4 absolute near 0.
    """
    delta = 1.0 / num_bins
    if not use_mu_law:
        return np.full(np.shape(x), delta)
    return (np.abs(x) + 1.0 / mu) * math.expm1(delta * math.log1p(m * mu))


# ----------------------------------------------------------------------------------
# Images: 16x16 patches in raster order
# ----------------------------------------------------------------------------------
def image_to_float(image: np.ndarray, name: str = "image") -> np.ndarray:
    """uint8 [0, 255] or float [0, 1] -> float32 [-1, 1]. Anything else is an error."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) * (2.0 / 255.0) - 1.0
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{name}: image contains NaN or inf")
        lo, hi = float(image.min(initial=0.0)), float(image.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name}: float images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        return image.astype(np.float32) * 2.0 - 1.0
    raise ValueError(f"{name}: images must be uint8 or float, got dtype {image.dtype}")


def _resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) * image.shape[0] / height).astype(np.int64)
    cols = (np.arange(width) * image.shape[1] / width).astype(np.int64)
    return image[rows][:, cols]


def patchify(
    image: np.ndarray,
    patch_size: int = 16,
    policy: ImagePolicy = "pad",
    channels: int = 3,
    name: str = "image",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cuts an image into non-overlapping patches in raster order (Gato §2.1, ViT).

    Args:
      image: (H, W, C) or (H, W), uint8 in [0, 255] or float in [0, 1]; C in {1, 3}.
      patch_size: 16 in Gato.
      policy: sides that are not multiples of `patch_size`:
        "pad" (default): pad bottom/right with black (pixel value -1 before the
          1/sqrt(patch_size) scaling) — exact, no interpolation, the image keeps its
          aspect ratio and the patch intervals cover the padded canvas;
        "resize": nearest-neighbour resize to the nearest multiple (at least one patch);
        "error": raise.
      channels: channels of the output patches; grayscale is repeated to 3.

    Returns:
      patches: float32 (P, patch_size, patch_size, channels), pixels in [-1, 1] divided
        by sqrt(patch_size) (= 4 for 16x16, Gato §2.1).
      row_interval, col_interval: float32 (P, 2): the normalised [start, end) of each
        patch's rows and columns in [0, 1] (for the position encodings, Gato §C.3).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"{name}: expected an image of shape (H, W, C) or (H, W), got shape {image.shape}")
    h, w, c = image.shape
    if c not in (1, 3):
        raise ValueError(f"{name}: expected 1 or 3 channels, got {c} (shape {image.shape})")
    if h == 0 or w == 0:
        raise ValueError(f"{name}: empty image of shape {image.shape}")
    pixels = image_to_float(image, name)
    if c == 1 and channels == 3:
        pixels = np.repeat(pixels, 3, axis=2)
    elif c != channels:
        raise ValueError(f"{name}: cannot turn {c} channels into {channels}")

    if h % patch_size or w % patch_size:
        if policy == "error":
            raise ValueError(f"{name}: image sides {h}x{w} are not multiples of {patch_size} (policy 'error')")
        if policy == "pad":
            ph, pw = -h % patch_size, -w % patch_size
            pixels = np.pad(pixels, ((0, ph), (0, pw), (0, 0)), constant_values=-1.0)
        elif policy == "resize":
            nh = max(patch_size, int(round(h / patch_size)) * patch_size)
            nw = max(patch_size, int(round(w / patch_size)) * patch_size)
            pixels = _resize_nearest(pixels, nh, nw)
        else:
            raise ValueError(f"{name}: unknown image policy {policy!r} (expected 'pad', 'resize' or 'error')")

    hp, wp = pixels.shape[0] // patch_size, pixels.shape[1] // patch_size
    # (hp*ps, wp*ps, C) -> (hp, ps, wp, ps, C) -> (hp, wp, ps, ps, C) -> (P, ps, ps, C), raster order.
    patches = pixels.reshape(hp, patch_size, wp, patch_size, channels).transpose(0, 2, 1, 3, 4)
    patches = patches.reshape(hp * wp, patch_size, patch_size, channels) / math.sqrt(patch_size)
    rows, cols = np.divmod(np.arange(hp * wp), wp)
    row_interval = np.stack([rows / hp, (rows + 1) / hp], axis=1).astype(np.float32)
    col_interval = np.stack([cols / wp, (cols + 1) / wp], axis=1).astype(np.float32)
    return patches.astype(np.float32), row_interval, col_interval


def unpatchify(patches: np.ndarray, num_rows: int, num_cols: int) -> np.ndarray:
    """Inverse of `patchify` (up to padding): patches -> float image in [0, 1]."""
    p, ps, _, c = patches.shape
    if p != num_rows * num_cols:
        raise ValueError(f"unpatchify: {p} patches do not make a {num_rows}x{num_cols} grid")
    x = patches * math.sqrt(ps)
    x = x.reshape(num_rows, num_cols, ps, ps, c).transpose(0, 2, 1, 3, 4).reshape(num_rows * ps, num_cols * ps, c)
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def patch_grid(height: int, width: int, patch_size: int = 16, policy: ImagePolicy = "pad") -> tuple[int, int]:
    """(rows, cols) of patches `patchify` makes for an image of this size."""
    if policy == "resize":
        return max(1, int(round(height / patch_size))), max(1, int(round(width / patch_size)))
    return -(-height // patch_size), -(-width // patch_size)
