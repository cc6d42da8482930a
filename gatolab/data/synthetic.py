"""Synthetic multimodal episodes and a batch source over them (smoke runs, tests, notebooks).

    spec = multimodal_spec()                        # one field of every modality
    episode = synthetic_episode(spec, num_steps=4)  # random but valid
    source = SyntheticBatches(batch_size=8, seq_len=256)
    batch = next(source)                            # a gatolab.batch.Batch

`gatolab train --mixture synthetic` trains on `SyntheticBatches`: no dataset on disk, no
environment, the whole pipeline from tokens to checkpoints. Its text model is a small
SentencePiece model (`small_text_tokenizer`), the same one the tests use.
"""

from __future__ import annotations

import functools

import numpy as np

from gatolab.batch import Batch
from gatolab.episode import Episode
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.specs import EnvSpec, FieldSpec, Modality
from gatolab.text import TextTokenizer, default_text_tokenizer

# The small text model: 512 pieces over the first 100 kB of the default corpus (< 1 s to train).
SMALL_TEXT_VOCAB = 512
SMALL_TEXT_CHARS = 100_000


@functools.cache
def small_text_tokenizer() -> TextTokenizer:
    """`default_text_tokenizer(SMALL_TEXT_VOCAB, max_chars=SMALL_TEXT_CHARS)`, cached per process."""
    return default_text_tokenizer(SMALL_TEXT_VOCAB, max_chars=SMALL_TEXT_CHARS)


def multimodal_spec(image_hw: tuple[int, int] = (48, 64)) -> EnvSpec:
    """One field of every modality, with a mixed continuous + discrete action."""
    return EnvSpec(
        name="multimodal-demo",
        observation={
            "mission": FieldSpec.text(),
            "camera": FieldSpec.image(*image_hw, 3),
            "grid": FieldSpec.discrete(11, (3, 3)),
            "proprio": {"joints": FieldSpec.continuous((4,)), "gripper": FieldSpec.continuous((), -1.0, 1.0)},
        },
        action={"torque": FieldSpec.continuous((3,), -1.0, 1.0), "button": FieldSpec.discrete(18)},
    )


def demo_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A synthetic RGB uint8 scene: a sky gradient, a ground, a red disc and a blue box."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), np.float64)
    img[..., 0] = 0.35 + 0.3 * y / height
    img[..., 1] = 0.55 + 0.3 * y / height
    img[..., 2] = 0.95
    ground = y > 0.65 * height
    img[ground] = [0.35, 0.6, 0.3]
    cy, cx, r = rng.uniform(0.3, 0.6) * height, rng.uniform(0.2, 0.5) * width, 0.15 * height
    img[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = [0.85, 0.15, 0.1]
    bx, by = int(rng.uniform(0.6, 0.8) * width), int(0.45 * height)
    img[by : by + height // 4, bx : bx + width // 6] = [0.15, 0.25, 0.8]
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def synthetic_episode(spec: EnvSpec | None = None, num_steps: int = 4, seed: int = 0) -> Episode:
    """Random but valid observations and actions for `spec` (default `multimodal_spec()`)."""
    spec = spec or multimodal_spec()
    rng = np.random.default_rng(seed)
    words = ["pick", "up", "the", "red", "ball", "go", "to", "blue", "box", "open", "door"]

    def column(f: FieldSpec):
        if f.modality == Modality.TEXT:
            mission = " ".join(rng.choice(words, size=5))
            return [mission] * num_steps
        if f.modality == Modality.IMAGE:
            h, w, c = f.shape
            frames = np.stack([demo_image(h, w, seed + t) for t in range(num_steps)])
            return frames if c == 3 else frames[..., :1]
        if f.modality == Modality.DISCRETE:
            return rng.integers(0, f.num_values, (num_steps, *f.shape))
        lo, hi = max(f.low, -10.0), min(f.high, 10.0)
        return rng.uniform(lo, hi, (num_steps, *f.shape)).astype(np.float32)

    obs = {k: column(f) for k, f in spec.observation.items()}
    act = {k: column(f) for k, f in spec.action.items()}
    return Episode(spec.name, obs, act, rng.normal(size=num_steps).astype(np.float32), {"seed": seed, "synthetic": True})


class SyntheticBatches:
    """A deterministic, resumable batch source over synthetic episodes (smoke runs, tests).

    Row r of global batch i depends only on (seed, i, r): the state is just {"index": i},
    and host `shard_index` of `shard_count` yields rows [h*B/P, (h+1)*B/P) of every global
    batch, so any number of hosts trains on the same global batches. Batches carry no
    provenance (`info` holds only the per-token timestep, field and value).

    Args:
      tokenizer: the Gato tokenizer; default: full id layout with `small_text_tokenizer()`.
    """

    def __init__(self, batch_size: int, seq_len: int, max_patches: int | None = None, spec: EnvSpec | None = None,
                 num_episodes: int = 8, steps_per_episode: int = 12, seed: int = 0, shard_index: int = 0,
                 shard_count: int = 1, tokenizer: GatoTokenizer | None = None):
        if batch_size % shard_count:
            raise ValueError(f"batch_size {batch_size} is not divisible by shard_count {shard_count}")
        self.spec = spec or multimodal_spec(image_hw=(32, 32))
        self.tokenizer = tokenizer or GatoTokenizer(text=small_text_tokenizer())
        self.local_batch = batch_size // shard_count
        self.seq_len, self.max_patches = seq_len, max_patches or seq_len
        self.seed, self.shard_index = seed, shard_index
        self.sequences = [self.tokenizer.tokenize_episode(synthetic_episode(self.spec, steps_per_episode, seed + i), self.spec)
                          for i in range(num_episodes)]
        self.index = 0

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        rows = []
        for r in range(self.shard_index * self.local_batch, (self.shard_index + 1) * self.local_batch):
            rng = np.random.default_rng([self.seed, self.index, r])
            seq = self.sequences[rng.integers(len(self.sequences))]
            start = int(rng.integers(seq.num_timesteps))
            rows.append(seq.window(start, self.seq_len).to_arrays(self.seq_len, self.max_patches,
                                                                  pad_id=self.tokenizer.vocab.pad_id))
        self.index += 1
        return Batch.stack(rows)

    def get_state(self) -> dict[str, int]:
        return {"index": self.index}

    def set_state(self, state: dict[str, int]) -> None:
        self.index = int(state["index"])
