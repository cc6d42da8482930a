"""Vision-language data: captioning and VQA as episodes of (image, text) pairs.

Gato §2.3 / GATO_SPEC §4: "each training episode is 5 (image, text) pairs" (MS-COCO
Captions, VQAv2, ... 0.67% of the mixture each, GATO_SPEC §8). A timestep here is one
pair: an IMAGE field "image" and a TEXT field "text", no actions.

Sources:
- `ShapesCaptions` / `ShapesVQA` (default, made here): numpy-drawn scenes of coloured
  circles, squares and triangles on a plain background; captions and question/answer
  pairs are computed from each scene's ground truth, so every answer is right.
- `CocoCaptions`: the COCO-captions JSON format (`images`, `annotations`) + an image folder.
- `VQAv2`: VQAv2 question and annotation JSON files + an image folder (the answer is
  `multiple_choice_answer`, VQAv2's most frequent human answer).
`write_shapes_dataset` exports the generated scenes in those two formats (so real
loaders and generated data can be checked against each other).

Licences: the generated shapes data is gatolab's own (Apache-2.0). MS-COCO caption
annotations and VQAv2 annotations are CC BY 4.0; COCO images keep their Flickr
owners' terms (cocodataset.org/#termsofuse). gatolab ships none of them; the loaders
read files the user already has.

Decisions ([open], GATO_SPEC §1/§4):
- Images are resized to a fixed `image_size` (default 64x64, 4x4 Gato patches) with
  bilinear filtering; the paper does not state the VL image resolution.
- VQA text is "Q: <question> A: <answer>" in one TEXT field, all of it a loss target
  (Gato §2.3: text tokens are targets). `VQA_TEMPLATE` holds the format.
- Token order within a timestep: the image, then its text (`EnvSpec(order=("image",
  "text"))`), so a caption or answer is predicted from its own image. The default
  order for control data (GATO_SPEC §1: text, then image patches) would put a caption
  before its image.

Files: `sources.py` (generated scenes, the COCO-captions and VQAv2 loaders); this file the domain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from gatolab.domains.base import Domain, check_task
from gatolab.domains.registry import DomainEntry
from gatolab.domains.vision_language.sources import PAIRS_PER_EPISODE, ShapesCaptions, ShapesVQA, FileSource
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec


class VisionLanguageDomain(Domain):
    """Episodes of `pairs_per_episode` (image, text) pairs from named sources.

    Args:
      sources: task name -> source (`ShapesCaptions`, `ShapesVQA`, `CocoCaptions`,
        `VQAv2`, or anything with `image_size` and `sample(rng)`); default: the
        generated "shapes_captions" and "shapes_vqa".
      pairs_per_episode: 5 in Gato (§2.3).
      image_size: side of the generated default scenes.
    """

    name = "vision_language"
    kind = "vision_language"
    packages = ("pillow",)

    def __init__(self, sources: Mapping[str, Any] | None = None, pairs_per_episode: int = PAIRS_PER_EPISODE,
                 image_size: int = 64):
        if pairs_per_episode < 1:
            raise ValueError(f"pairs_per_episode must be >= 1, got {pairs_per_episode}")
        self.sources = dict(sources) if sources is not None else {
            "shapes_captions": ShapesCaptions(image_size), "shapes_vqa": ShapesVQA(image_size)}
        self.pairs_per_episode = pairs_per_episode

    def tasks(self) -> list[str]:
        return list(self.sources)

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        h, w = self.sources[task].image_size
        return EnvSpec(task, observation={"image": FieldSpec.image(h, w, 3), "text": FieldSpec.text()}, order=("image", "text"))

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Episode i draws its pairs from seed `seed + i` (deterministic)."""
        check_task(task, self.tasks(), self.name)
        source = self.sources[task]
        for i in range(num_episodes):
            rng = np.random.default_rng(seed + i)
            if isinstance(source, FileSource) and len(source) >= self.pairs_per_episode:
                # Distinct images within an episode when the dataset has enough of them.
                pairs = [source.pair(int(j), rng) for j in rng.choice(len(source), self.pairs_per_episode, replace=False)]
            else:
                pairs = [source.sample(rng) for _ in range(self.pairs_per_episode)]
            yield Episode(
                task,
                {"image": np.stack([p[0] for p in pairs]), "text": [p[1] for p in pairs]},
                metadata={"seed": seed + i, "pairs": [p[2] for p in pairs]},
            )


ENTRY = DomainEntry(
    name="vision_language",
    factory=VisionLanguageDomain,
    weights={"vision_language": 8.02},  # Table 1: M3W 4% + ALIGN, MS-COCO, CC, LTIP, OKVQA, VQAv2 at 0.67% each
    notes={
        "what": "(image, text) pairs, 5 per episode as in Gato §2.3 (gatolab/domains/vision_language); Gato used M3W, "
                "ALIGN, COCO, CC, LTIP, OKVQA, VQAv2.",
        "expert": "None: captions are the data.",
        "licence": "See the image/caption source's licence in gatolab/domains/vision_language. The packaging: Apache-2.0 (gatolab).",
        "use": "Keeps the vision-language part of the mixture.",
        "limits": "Synthetic or small; not comparable to web-scale image-text data.",
    },
    owns=lambda task: task in ("shapes_captions", "shapes_vqa"),  # the default sources; your own sources name theirs
)
