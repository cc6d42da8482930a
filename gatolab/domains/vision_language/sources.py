"""Vision-language sources: generated shape scenes with ground-truth captions and VQA, and
loaders for COCO-captions and VQAv2 files a user already has (see the package docstring)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PAIRS_PER_EPISODE = 5  # Gato §2.3
VQA_TEMPLATE = "Q: {question} A: {answer}"

# ----------------------------------------------------------------------------------
# Generated scenes
# ----------------------------------------------------------------------------------
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 40),
    "purple": (140, 60, 180),
    "orange": (245, 135, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (245, 245, 245), "gray": (128, 128, 128), "black": (20, 20, 20)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.13, "large": 0.22}  # half-extent as a fraction of the image side
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}


def _place(rng: np.random.Generator, half: float, placed: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """A centre (y, x) in [0, 1]^2 whose bounding circle overlaps no placed object."""
    for _ in range(50):
        y, x = rng.uniform(half + 0.02, 1 - half - 0.02, size=2)
        if all((y - py) ** 2 + (x - px) ** 2 > (half + ph + 0.03) ** 2 * 2 for py, px, ph in placed):
            return float(y), float(x)
    return None


def _region(y: float, x: float) -> str:
    """"top left", "bottom", "middle", ... from a centre in [0, 1]^2."""
    vert = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    horiz = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    return " ".join(w for w in (vert, horiz) if w) or "middle"


def random_scene(rng: np.random.Generator, max_objects: int = 3) -> dict[str, Any]:
    """A scene description: background and 1..max_objects non-overlapping objects."""
    background = str(rng.choice(list(BACKGROUNDS)))
    objects: list[dict[str, Any]] = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        size = str(rng.choice(list(SIZES)))
        centre = _place(rng, SIZES[size], placed)
        if centre is None:
            continue
        colour = str(rng.choice([c for c in COLORS if not (background == "white" and c == "yellow")]))
        obj = {"shape": str(rng.choice(SHAPES)), "color": colour, "size": size, "y": centre[0], "x": centre[1]}
        obj["region"] = _region(obj["y"], obj["x"])
        objects.append(obj)
        placed.append((centre[0], centre[1], SIZES[size]))
    return {"background": background, "objects": objects}


def render_scene(scene: Mapping[str, Any], size: int = 64) -> np.ndarray:
    """Draws a scene as an RGB uint8 image (size, size, 3) with plain numpy masks."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = BACKGROUNDS[scene["background"]]
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size  # pixel centres in [0, 1]
    for obj in scene["objects"]:
        h, cy, cx = SIZES[obj["size"]], obj["y"], obj["x"]
        if obj["shape"] == "circle":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= h**2
        elif obj["shape"] == "square":
            mask = (np.abs(yy - cy) <= h * 0.85) & (np.abs(xx - cx) <= h * 0.85)
        else:  # upright triangle: apex at the top, base at the bottom
            top, bottom = cy - h, cy + h
            half_width = (yy - top) / (2 * h) * h
            mask = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
        img[mask] = COLORS[obj["color"]]
    return img


def _describe(obj: Mapping[str, Any]) -> str:
    return f"a {obj['size']} {obj['color']} {obj['shape']}"


def scene_caption(scene: Mapping[str, Any]) -> str:
    """A caption that states every object's size, colour, shape and region."""
    where = {"middle": "in the middle", "left": "on the left", "right": "on the right"}
    parts = [f"{_describe(o)} {where.get(o['region'], 'at the ' + o['region'])}" for o in scene["objects"]]
    if not parts:
        return f"an empty {scene['background']} background."
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{listed}, on a {scene['background']} background."


def scene_questions(scene: Mapping[str, Any], rng: np.random.Generator) -> list[tuple[str, str]]:
    """Question/answer pairs that the scene's ground truth answers unambiguously."""
    objs = scene["objects"]
    qa = [("how many shapes are there?", NUMBER_WORDS.get(len(objs), str(len(objs)))),
          ("what color is the background?", scene["background"])]
    shapes = [o["shape"] for o in objs]
    colours = [o["color"] for o in objs]
    for o in objs:
        if shapes.count(o["shape"]) == 1:
            qa.append((f"what color is the {o['shape']}?", o["color"]))
        if colours.count(o["color"]) == 1:
            qa.append((f"what shape is the {o['color']} object?", o["shape"]))
        if sum(p["shape"] == o["shape"] and p["color"] == o["color"] for p in objs) == 1:
            qa.append((f"where is the {o['color']} {o['shape']}?", o["region"]))
    # A yes/no question, half the time about an object that is there.
    if objs and rng.random() < 0.5:
        o = objs[int(rng.integers(len(objs)))]
        qa.append((f"is there a {o['color']} {o['shape']}?", "yes"))
    else:
        present = {(o["color"], o["shape"]) for o in objs}
        absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
        c, s = absent[int(rng.integers(len(absent)))]
        qa.append((f"is there a {c} {s}?", "no"))
    return qa


# ----------------------------------------------------------------------------------
# Sources: something that yields (image, text) pairs
# ----------------------------------------------------------------------------------
class ShapesCaptions:
    """Generated scenes with ground-truth captions; pair i is a pure function of its seed."""

    def __init__(self, image_size: int = 64):
        self.image_size = (image_size, image_size)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str, dict[str, Any]]:
        scene = random_scene(rng)
        return render_scene(scene, self.image_size[0]), scene_caption(scene), {"scene": scene}


class ShapesVQA(ShapesCaptions):
    """Generated scenes with one ground-truth question/answer pair each."""

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str, dict[str, Any]]:
        scene = random_scene(rng)
        qa = scene_questions(scene, rng)
        question, answer = qa[int(rng.integers(len(qa)))]
        return render_scene(scene, self.image_size[0]), VQA_TEMPLATE.format(question=question, answer=answer), {"scene": scene}


def load_image(path: Path, image_size: tuple[int, int]) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3), resized (bilinear) to `image_size` = (H, W)."""
    from PIL import Image  # Pillow (optional): only to read image files

    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (image_size[1], image_size[0]):
            im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
        return np.asarray(im, np.uint8)


def _read_json(path: str | os.PathLike, what: str) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} file {str(path)!r} is not valid JSON ({e.msg} at line {e.lineno})") from None


def _require_keys(record: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for k in keys:
        if k not in record:
            raise ValueError(f"{where}: missing field {k!r} (expected fields {list(keys)})")


class FileSource:
    """A finite list of (image file, texts); `sample` draws an item and one of its texts."""

    items: list[tuple[Path, list[str]]]
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.items)

    def pair(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, str, dict[str, Any]]:
        path, texts = self.items[index]
        return load_image(path, self.image_size), texts[int(rng.integers(len(texts)))], {"file": path.name}

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, str, dict[str, Any]]:
        return self.pair(int(rng.integers(len(self.items))), rng)


class CocoCaptions(FileSource):
    """COCO-captions format: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}.

    Args:
      annotations: path of the captions JSON (e.g. captions_train2017.json).
      image_dir: folder holding the images named by "file_name".
      image_size: (H, W) every image is resized to.
    """

    def __init__(self, annotations: str | os.PathLike, image_dir: str | os.PathLike, image_size: tuple[int, int] = (64, 64)):
        data = _read_json(annotations, "COCO captions")
        _require_keys(data, ["images", "annotations"], f"COCO captions {annotations}")
        self.image_size = tuple(image_size)
        files: dict[Any, str] = {}
        for i, im in enumerate(data["images"]):
            _require_keys(im, ["id", "file_name"], f"COCO captions {annotations}: images[{i}]")
            files[im["id"]] = im["file_name"]
        captions: dict[Any, list[str]] = {}
        for i, ann in enumerate(data["annotations"]):
            _require_keys(ann, ["image_id", "caption"], f"COCO captions {annotations}: annotations[{i}]")
            if ann["image_id"] not in files:
                raise ValueError(f"COCO captions {annotations}: annotations[{i}] refers to unknown image_id {ann['image_id']!r}")
            captions.setdefault(ann["image_id"], []).append(" ".join(str(ann["caption"]).split()))
        image_dir = Path(image_dir)
        self.items = [(image_dir / files[i], caps) for i, caps in captions.items()]
        if not self.items:
            raise ValueError(f"COCO captions {annotations}: no image has a caption")


class VQAv2(FileSource):
    """VQAv2 format: questions JSON {"questions": [{"question_id", "image_id", "question"}]} and
    annotations JSON {"annotations": [{"question_id", "multiple_choice_answer"}]}.

    Args:
      questions, annotations: the two VQAv2 JSON files.
      image_dir: folder with the images.
      image_pattern: file name of an image, formatted with image_id and data_subtype;
        default VQAv2/COCO's "COCO_{data_subtype}_{image_id:012d}.jpg" (data_subtype
        read from the questions file).
      image_size: (H, W) every image is resized to.
    """

    def __init__(self, questions: str | os.PathLike, annotations: str | os.PathLike, image_dir: str | os.PathLike,
                 image_pattern: str = "COCO_{data_subtype}_{image_id:012d}.jpg", image_size: tuple[int, int] = (64, 64)):
        qdata = _read_json(questions, "VQAv2 questions")
        adata = _read_json(annotations, "VQAv2 annotations")
        _require_keys(qdata, ["questions"], f"VQAv2 questions {questions}")
        _require_keys(adata, ["annotations"], f"VQAv2 annotations {annotations}")
        if "{data_subtype" in image_pattern and "data_subtype" not in qdata:
            raise ValueError(f"VQAv2 questions {questions}: no 'data_subtype' field to fill image_pattern {image_pattern!r}; "
                             "pass image_pattern")
        self.image_size = tuple(image_size)
        answers: dict[Any, str] = {}
        for i, ann in enumerate(adata["annotations"]):
            _require_keys(ann, ["question_id", "multiple_choice_answer"], f"VQAv2 annotations {annotations}: annotations[{i}]")
            answers[ann["question_id"]] = str(ann["multiple_choice_answer"])
        by_image: dict[Any, list[str]] = {}
        for i, q in enumerate(qdata["questions"]):
            _require_keys(q, ["question_id", "image_id", "question"], f"VQAv2 questions {questions}: questions[{i}]")
            if q["question_id"] not in answers:
                raise ValueError(f"VQAv2 {annotations}: no annotation for question_id {q['question_id']!r}")
            text = VQA_TEMPLATE.format(question=q["question"], answer=answers[q["question_id"]])
            by_image.setdefault(q["image_id"], []).append(text)
        image_dir = Path(image_dir)
        subtype = qdata.get("data_subtype", "")
        self.items = [(image_dir / image_pattern.format(image_id=i, data_subtype=subtype), qa) for i, qa in by_image.items()]
        if not self.items:
            raise ValueError(f"VQAv2 questions {questions}: no questions")


def write_shapes_dataset(out_dir: str | os.PathLike, num_images: int, seed: int = 0, image_size: int = 64,
                         data_subtype: str = "shapes") -> dict[str, Path]:
    """Writes generated scenes as a COCO-captions + VQAv2 dataset (PNG images).

    Returns the paths: {"images", "captions", "questions", "annotations"}.
    """
    from PIL import Image  # Pillow (optional): only to write image files

    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, caps, questions, anns = [], [], [], []
    for i in range(num_images):
        rng = np.random.default_rng(seed + i)
        scene = random_scene(rng)
        name = f"COCO_{data_subtype}_{i:012d}.png"
        Image.fromarray(render_scene(scene, image_size)).save(images_dir / name)
        images.append({"id": i, "file_name": name, "height": image_size, "width": image_size})
        caps.append({"id": i, "image_id": i, "caption": scene_caption(scene)})
        for j, (q, a) in enumerate(scene_questions(scene, rng)):
            qid = i * 100 + j
            questions.append({"question_id": qid, "image_id": i, "question": q})
            anns.append({"question_id": qid, "image_id": i, "multiple_choice_answer": a,
                         "answers": [{"answer": a, "answer_id": 1}]})
    paths = {"images": images_dir, "captions": out / "captions.json", "questions": out / "questions.json",
             "annotations": out / "annotations.json"}
    paths["captions"].write_text(json.dumps({"images": images, "annotations": caps}))
    paths["questions"].write_text(json.dumps({"data_subtype": data_subtype, "questions": questions}))
    paths["annotations"].write_text(json.dumps({"annotations": anns}))
    return paths
