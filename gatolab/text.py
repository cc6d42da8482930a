"""Text tokenization: SentencePiece with 32,000 subwords (Gato §2.1).

gatolab trains its own SentencePiece model (nothing is downloaded). The default
corpus is built on the spot from the docstrings, comments and help topics of the
CPython standard library that ships with the running interpreter (PSF License 2.0,
see `data_cards/text.md`): about 3 MB of English technical prose that every
machine with Python already has. The model type is BPE by default: a unigram model
cannot reach 32,000 pieces on 3 MB (SentencePiece stops at ~17,500). Point `train_text_tokenizer` at your own
plain-text or JSONL files for anything else.

Trained models are cached under `cache_dir()` (env `GATOLAB_CACHE`, default
`~/.cache/gatolab`), keyed by vocabulary size and a hash of the corpus.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import sysconfig
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import sentencepiece as spm

from gatolab import io_utils


def cache_dir() -> Path:
    return Path(os.environ.get("GATOLAB_CACHE", Path.home() / ".cache" / "gatolab"))


# ----------------------------------------------------------------------------------
# The default corpus
# ----------------------------------------------------------------------------------
_SKIP_DIRS = ("test", "tests", "idlelib", "site-packages", "lib2to3")


def _paragraphs(text: str, min_chars: int = 40) -> Iterator[str]:
    for para in text.split("\n\n"):
        para = " ".join(para.split())
        if len(para) >= min_chars:
            yield para


def _comment_blocks(source: str) -> Iterator[str]:
    """Runs of consecutive '#' comments, joined into one paragraph each."""
    block: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                block.append(tok.string.lstrip("#").strip())
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) and block:
                yield " ".join(block)
                block = []
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return
    if block:
        yield " ".join(block)


def stdlib_text(max_chars: int | None = None) -> Iterator[str]:
    """English prose from the running CPython's standard library, one paragraph per item.

    Docstrings and comment blocks of every module (tests excluded), then the
    interactive help topics (`pydoc_data.topics`): about 3 MB, enough for a 32k BPE
    vocabulary.
    """
    import pydoc_data.topics  # the stdlib's help topics (~0.7 MB): read only to build the default corpus

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    total = 0

    def texts() -> Iterator[str]:
        for path in sorted(stdlib.rglob("*.py")):
            if any(p in _SKIP_DIRS for p in path.relative_to(stdlib).parts):
                continue
            try:
                source = path.read_text(encoding="utf-8")
                tree = ast.parse(source)
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield from _paragraphs(ast.get_docstring(node) or "")
            yield from (c for c in _comment_blocks(source) if len(c) >= 40)
        for key in sorted(pydoc_data.topics.topics):
            yield from _paragraphs(pydoc_data.topics.topics[key])

    for para in texts():
        yield para
        total += len(para)
        if max_chars is not None and total >= max_chars:
            return


def default_corpus_path(max_chars: int | None = None) -> Path:
    """Writes (once) and returns the default text corpus, one paragraph per line."""
    suffix = "full" if max_chars is None else str(max_chars)
    path = cache_dir() / "text" / f"stdlib_text_{suffix}.txt"
    if not path.exists():
        io_utils.atomic_write_text(path, "\n".join(stdlib_text(max_chars)) + "\n")
    return path


def read_corpus(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Lines of plain-text files, or the "text" field of JSONL files (*.jsonl)."""
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"text corpus file {str(p)!r} does not exist")
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if p.suffix == ".jsonl":
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{p}:{lineno}: not valid JSON ({e.msg})") from None
                    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                        raise ValueError(f"{p}:{lineno}: expected an object with a string field 'text'")
                    line = record["text"]
                line = line.strip()
                if line:
                    yield line


# ----------------------------------------------------------------------------------
# SentencePiece
# ----------------------------------------------------------------------------------
class TextTokenizer:
    """A trained SentencePiece model: str <-> int32 ids in [0, vocab_size)."""

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextTokenizer:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"SentencePiece model {str(path)!r} does not exist (train one with `gatolab text train`)")
        return cls(path.read_bytes())

    def save(self, path: str | os.PathLike) -> None:
        io_utils.atomic_write_bytes(Path(path), self.model_proto)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_proto).hexdigest()[:16]

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise ValueError(f"text tokenizer: expected a str, got {type(text).__name__}")
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode([int(i) for i in ids])

    def piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(int(token_id))

    def __repr__(self) -> str:
        return f"TextTokenizer(vocab_size={self.vocab_size}, fingerprint={self.fingerprint})"


def train_text_tokenizer(
    lines: Iterable[str],
    vocab_size: int = 32_000,
    *,
    out_path: str | os.PathLike | None = None,
    model_type: str = "bpe",
    character_coverage: float = 0.9995,
    max_sentences: int = 2_000_000,
) -> TextTokenizer:
    """Trains a SentencePiece model on `lines` (Gato §2.1: 32k subwords)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        byte_fallback=True,  # any string tokenizes: unknown characters become byte tokens
        hard_vocab_limit=True,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    tok = TextTokenizer(model.getvalue())
    if out_path is not None:
        tok.save(out_path)
    return tok


def default_text_tokenizer(vocab_size: int = 32_000, max_chars: int | None = None) -> TextTokenizer:
    """The cached SentencePiece model over the default corpus; trained on first use.

    32k subwords over the full corpus (a few seconds on 2 cores). Tests and smoke
    runs use a small `vocab_size` and `max_chars`.
    """
    corpus = default_corpus_path(max_chars)
    digest = hashlib.sha256(corpus.read_bytes()).hexdigest()[:12]
    path = cache_dir() / "text" / f"spm_{vocab_size}_{digest}.model"
    if path.exists():
        return TextTokenizer.load(path)
    return train_text_tokenizer(read_corpus([corpus]), vocab_size, out_path=path)
