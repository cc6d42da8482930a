"""SentencePiece text tokenizer: training, caching, corpora and errors (Gato §2.1)."""

import json

import numpy as np
import pytest

from gatolab import testing, text


@pytest.fixture(scope="module")
def corpus_lines():
    return list(text.read_corpus([text.default_corpus_path(max_chars=100_000)]))


def test_default_corpus_is_real_prose(corpus_lines):
    assert len(corpus_lines) > 500 and sum(map(len, corpus_lines)) >= 100_000
    assert any("Return" in line for line in corpus_lines)


def test_tiny_tokenizer_round_trips_normalised_text():
    tok = testing.tiny_text_tokenizer()
    assert tok.vocab_size == testing.TINY_TEXT_VOCAB
    for s in ["pick up the red ball", "Return the number of items.", "x = 3 + 4 * (y - 1)", "naïve café 😀"]:
        ids = tok.encode(s)
        assert ids.dtype == np.int32 and np.all((ids >= 0) & (ids < tok.vocab_size))
        assert tok.decode(ids) == s  # byte fallback: no unknown pieces


def test_cache_returns_the_same_model():
    a = text.default_text_tokenizer(testing.TINY_TEXT_VOCAB, max_chars=100_000)
    b = text.default_text_tokenizer(testing.TINY_TEXT_VOCAB, max_chars=100_000)
    assert a.fingerprint == b.fingerprint


def test_train_from_user_files(tmp_path, corpus_lines):
    txt = tmp_path / "a.txt"
    txt.write_text("\n".join(corpus_lines[:800]))
    jl = tmp_path / "b.jsonl"
    jl.write_text("\n".join(json.dumps({"text": line}) for line in corpus_lines[800:1600]))
    out = tmp_path / "m.model"
    tok = text.train_text_tokenizer(text.read_corpus([txt, jl]), 400, out_path=out)
    assert out.exists() and text.TextTokenizer.load(out).fingerprint == tok.fingerprint
    assert tok.vocab_size == 400


def test_bad_corpus_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(text.read_corpus([tmp_path / "nope.txt"]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected an object with a string field 'text'"):
        list(text.read_corpus([bad]))
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: not valid JSON"):
        list(text.read_corpus([bad]))
    with pytest.raises(FileNotFoundError, match="gatolab text train"):
        text.TextTokenizer.load(tmp_path / "missing.model")


def test_encode_rejects_non_strings():
    with pytest.raises(ValueError, match="expected a str"):
        testing.tiny_text_tokenizer().encode(b"bytes")
