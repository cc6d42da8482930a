"""Text and vision-language domains: corpora and (image, text) datasets as episodes."""

import json

import numpy as np
import pytest
from PIL import Image

import gatolab as gl
from gatolab.domains import text as gtext_env
from gatolab.domains import vision_language as vl_domain
from gatolab.domains.vision_language import sources as vl
from gatolab.specs import Modality
from gatolab.testing import tiny_tokenizer


# --- text ---------------------------------------------------------------------------
def test_text_domain_on_plain_and_jsonl(tmp_path):
    plain = tmp_path / "corpus.txt"
    plain.write_text("\n".join(f"paragraph number {i} " + "word " * i for i in range(10)) + "\n")
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"record {i}"}) for i in range(6)) + "\n")

    d = gtext_env.TextDomain([plain], paragraphs_per_episode=3, max_chars=40)
    assert d.tasks() == ["corpus"] and d.kind == "text"
    spec = d.spec("corpus")
    assert list(spec.observation) == ["text"] and not spec.action
    chunks = d.chunks()
    assert all(len(c) <= 40 for c in chunks)
    assert " ".join(chunks).split() == plain.read_text().split()  # splitting loses no words
    eps = list(d.generate("corpus", 3, seed=1))
    assert [len(e) for e in eps] == [3, 3, 3]
    start = eps[0].metadata["chunk_index"]
    assert eps[0].observations["text"] == chunks[start : start + 3]
    assert [e.observations["text"] for e in d.generate("corpus", 3, seed=1)] == [e.observations["text"] for e in eps]
    assert sum(1 for _ in d.episodes()) == len(chunks) // 3

    j = gtext_env.TextDomain([jsonl], paragraphs_per_episode=2)
    assert [e.observations["text"] for e in j.episodes()][0] == ["record 0", "record 1"]
    seq = tiny_tokenizer().tokenize_episode(eps[0], spec)
    assert seq.loss_mask.all()  # all text is a target (Gato §2.3)
    assert not (seq.modality == Modality.SEPARATOR).any()  # no actions, no separator


def test_text_default_corpus_and_errors(tmp_path):
    d = gl.domains.get("text")
    assert d.tasks() == ["stdlib_text"]
    ep = next(d.generate("stdlib_text", 1, seed=0))
    assert len(ep) == 4 and all(isinstance(t, str) and t for t in ep.observations["text"])
    with pytest.raises(ValueError, match="unknown task 'wiki'"):
        d.spec("wiki")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "oops"}\n')
    with pytest.raises(ValueError, match="string field 'text'"):
        gtext_env.TextDomain([bad]).chunks()
    short = tmp_path / "short.txt"
    short.write_text("only one paragraph\n")
    with pytest.raises(ValueError, match="fewer than paragraphs_per_episode=4"):
        gtext_env.TextDomain([short]).chunks()
    with pytest.raises(ValueError, match="paragraphs_per_episode must be >= 1"):
        gtext_env.TextDomain(paragraphs_per_episode=0)
    assert gtext_env.split_long("aaaaaaa bb", 3) == ["aaa", "aaa", "a", "bb"]


# --- generated scenes ---------------------------------------------------------------
def test_scene_ground_truth_matches_pixels():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        scene = vl.random_scene(rng)
        img = vl.render_scene(scene, 64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert 1 <= len(scene["objects"]) <= 3
        for obj in scene["objects"]:
            cy, cx = int(obj["y"] * 64), int(obj["x"] * 64)
            if obj["shape"] == "triangle":
                cy += 3  # the centre of a triangle's box is inside it, but nearer the wide base is safer
            np.testing.assert_array_equal(img[cy, cx], vl.COLORS[obj["color"]])
        caption = vl.scene_caption(scene)
        for obj in scene["objects"]:
            assert f"{obj['size']} {obj['color']} {obj['shape']}" in caption
        answers = dict(vl.scene_questions(scene, rng))
        assert answers["how many shapes are there?"] == vl.NUMBER_WORDS[len(scene["objects"])]
        assert answers["what color is the background?"] == scene["background"]
        for q, a in answers.items():
            if q.startswith("what color is the ") and q != "what color is the background?":
                shape = q.removeprefix("what color is the ").removesuffix("?")
                assert [o["color"] for o in scene["objects"] if o["shape"] == shape] == [a]
            if q.startswith("is there a "):
                colour, shape = q.removeprefix("is there a ").removesuffix("?").split()
                present = any(o["color"] == colour and o["shape"] == shape for o in scene["objects"])
                assert a == ("yes" if present else "no")


@pytest.mark.parametrize("task", ["shapes_captions", "shapes_vqa"])
def test_default_vl_episodes_are_five_pairs(task):
    d = gl.domains.get("vision_language")
    assert d.kind == "vision_language"
    spec = d.spec(task)
    assert spec.observation["image"].shape == (64, 64, 3) and not spec.action
    eps = list(d.generate(task, 2, seed=0))
    assert all(len(e) == 5 for e in eps)
    assert eps[0].observations["image"].shape == (5, 64, 64, 3)
    assert eps[0].observations["text"] != eps[1].observations["text"]
    again = next(d.generate(task, 1, seed=0))
    np.testing.assert_array_equal(again.observations["image"], eps[0].observations["image"])
    if task == "shapes_vqa":
        assert all(t.startswith("Q: ") and " A: " in t for t in eps[0].observations["text"])
    seq = tiny_tokenizer().tokenize_episode(eps[0], spec)
    assert seq.num_patches == 5 * 16  # 64x64 -> 4x4 patches of 16 px


# --- file formats -------------------------------------------------------------------
def test_coco_and_vqa_loaders_round_trip_generated_dataset(tmp_path):
    paths = vl.write_shapes_dataset(tmp_path, num_images=7, seed=3, image_size=32)
    coco = vl.CocoCaptions(paths["captions"], paths["images"], image_size=(32, 32))
    vqa = vl.VQAv2(paths["questions"], paths["annotations"], paths["images"],
                   image_pattern="COCO_{data_subtype}_{image_id:012d}.png", image_size=(32, 32))
    assert len(coco) == 7 and len(vqa) == 7
    d = vl_domain.VisionLanguageDomain({"coco": coco, "vqa": vqa})
    ep = next(d.generate("coco", 1, seed=0))
    assert len(ep) == 5 and len({m["file"] for m in ep.metadata["pairs"]}) == 5  # distinct images
    for img, caption, meta in zip(ep.observations["image"], ep.observations["text"], ep.metadata["pairs"]):
        i = int(meta["file"].split("_")[-1].split(".")[0])
        scene = vl.random_scene(np.random.default_rng(3 + i))
        np.testing.assert_array_equal(img, vl.render_scene(scene, 32))  # PNG round trip is exact
        assert caption == vl.scene_caption(scene)
    ep = next(d.generate("vqa", 1, seed=0))
    assert all(t.startswith("Q: ") for t in ep.observations["text"])
    assert tiny_tokenizer().tokenize_episode(ep, d.spec("vqa")).num_patches == 5 * 4


def test_coco_loader_resizes_and_validates(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((50, 80, 3), 200, np.uint8)).save(tmp_path / "imgs" / "a.jpg")
    ann = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "missing.jpg"}],
           "annotations": [{"image_id": 1, "caption": "a grey  picture "}, {"image_id": 1, "caption": "flat grey"},
                           {"image_id": 2, "caption": "nothing"}]}
    (tmp_path / "c.json").write_text(json.dumps(ann))
    coco = vl.CocoCaptions(tmp_path / "c.json", tmp_path / "imgs", image_size=(48, 64))
    img, text, _ = coco.pair(0, np.random.default_rng(0))
    assert img.shape == (48, 64, 3) and text in ("a grey picture", "flat grey")
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        coco.pair(1, np.random.default_rng(0))
    (tmp_path / "bad.json").write_text(json.dumps({"images": [], "annotations": [{"image_id": 9, "caption": "x"}]}))
    with pytest.raises(ValueError, match="unknown image_id 9"):
        vl.CocoCaptions(tmp_path / "bad.json", tmp_path)
    (tmp_path / "nokey.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="missing field 'annotations'"):
        vl.CocoCaptions(tmp_path / "nokey.json", tmp_path)
    (tmp_path / "q.json").write_text(json.dumps({"questions": [{"question_id": 1, "image_id": 1, "question": "what?"}]}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": [{"question_id": 2, "multiple_choice_answer": "x"}]}))
    with pytest.raises(ValueError, match="no 'data_subtype'"):
        vl.VQAv2(tmp_path / "q.json", tmp_path / "a.json", tmp_path)
    with pytest.raises(ValueError, match="no annotation for question_id 1"):
        vl.VQAv2(tmp_path / "q.json", tmp_path / "a.json", tmp_path, image_pattern="{image_id}.jpg")
    with pytest.raises(ValueError, match="unknown task 'coco'"):
        gl.domains.get("vision_language").spec("coco")
