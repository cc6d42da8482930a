"""Text as a domain: a plain-text or JSONL corpus turned into `Episode`s.

Gato trains on MassiveText (GATO_SPEC §8, 6.7% of the mixture); gatolab's default
corpus is the CPython standard library's prose (`gatolab.text.default_corpus_path()`,
PSF licence), and any other corpus is a list of files: plain text (one paragraph per
line) or JSONL with a "text" field per line (`gatolab.text.read_corpus`).

An episode is `paragraphs_per_episode` consecutive chunks of the corpus; each
timestep is one chunk in a single TEXT observation field "text", with no actions
(the tokenizer then emits no separator, GATO_SPEC §1). Paragraphs longer than
`max_chars` are split at whitespace so one timestep stays well inside the 1024-token
context (~4 characters per BPE token on English prose). All text is a loss target
(Gato §2.3; the FieldSpec default).

[open] (GATO_SPEC §4) How text is cut into training sequences is not specified
beyond "sequences of 1024 tokens". gatolab makes episodes of whole paragraphs and
leaves windowing to the token level (`TokenSequence.windows`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from gatolab import text as gtext
from gatolab.domains.base import Domain, check_task
from gatolab.domains.registry import DomainEntry
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec

DEFAULT_TASK = "stdlib_text"


def split_long(paragraph: str, max_chars: int) -> list[str]:
    """Splits a paragraph at whitespace into pieces of at most `max_chars` characters.

    A single word longer than `max_chars` is cut inside the word (no text is lost).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    pieces: list[str] = []
    current = ""
    for word in paragraph.split():
        while len(word) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= max_chars:
            current += " " + word
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


class TextDomain(Domain):
    """Episodes of consecutive text chunks from a corpus.

    Args:
      paths: plain-text or JSONL files; default: the stdlib corpus.
      task: the name episodes and the spec carry (one task per corpus).
      paragraphs_per_episode: timesteps per episode.
      max_chars: longest chunk (characters) in one timestep.
    """

    name = "text"
    kind = "text"

    def __init__(self, paths: Sequence[str | os.PathLike] | None = None, task: str | None = None,
                 paragraphs_per_episode: int = 4, max_chars: int = 1000):
        if paragraphs_per_episode < 1:
            raise ValueError(f"paragraphs_per_episode must be >= 1, got {paragraphs_per_episode}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
        self.paths = None if paths is None else [Path(p) for p in paths]
        if self.paths is not None and not self.paths:
            raise ValueError("paths: expected at least one corpus file, got an empty list")
        self.task = task or (DEFAULT_TASK if paths is None else self.paths[0].stem)
        self.paragraphs_per_episode = paragraphs_per_episode
        self.max_chars = max_chars
        self._chunks: list[str] | None = None

    def tasks(self) -> list[str]:
        return [self.task]

    def spec(self, task: str) -> EnvSpec:
        check_task(task, self.tasks(), self.name)
        return EnvSpec(task, observation={"text": FieldSpec.text()})

    def chunks(self) -> list[str]:
        """The corpus as a list of chunks (read once; paragraphs split to `max_chars`)."""
        if self._chunks is None:
            paths = self.paths if self.paths is not None else [gtext.default_corpus_path()]
            chunks = [piece for para in gtext.read_corpus(paths) for piece in split_long(para, self.max_chars)]
            if len(chunks) < self.paragraphs_per_episode:
                raise ValueError(
                    f"text corpus {[str(p) for p in paths]} has {len(chunks)} chunks, fewer than "
                    f"paragraphs_per_episode={self.paragraphs_per_episode}"
                )
            self._chunks = chunks
        return self._chunks

    def _episode(self, start: int, seed: int | None) -> Episode:
        chunks = self.chunks()[start : start + self.paragraphs_per_episode]
        meta = {"chunk_index": start, "source": "default" if self.paths is None else [str(p) for p in self.paths]}
        if seed is not None:
            meta["seed"] = seed
        return Episode(self.task, {"text": chunks}, metadata=meta)

    def generate(self, task: str, num_episodes: int, seed: int = 0) -> Iterator[Episode]:
        """Episode i starts at a chunk drawn from seed `seed + i` (deterministic)."""
        check_task(task, self.tasks(), self.name)
        n_starts = len(self.chunks()) - self.paragraphs_per_episode + 1
        for i in range(num_episodes):
            start = int(np.random.default_rng(seed + i).integers(n_starts))
            yield self._episode(start, seed + i)

    def episodes(self) -> Iterator[Episode]:
        """Every episode of the corpus in order, non-overlapping (one pass over the data)."""
        for start in range(0, len(self.chunks()) - self.paragraphs_per_episode + 1, self.paragraphs_per_episode):
            yield self._episode(start, None)


ENTRY = DomainEntry(
    name="text",
    factory=TextDomain,
    weights={"text": 6.7},  # Table 1: MassiveText
    notes={
        "what": "Text sequences (gatolab/domains/text); Gato used MassiveText, which is not public.",
        "expert": "None: the text is the data.",
        "licence": "See the text corpus's licence in gatolab/domains/text. The packaging: Apache-2.0 (gatolab).",
        "use": "Keeps the language-modelling part of the mixture (Gato §2.3 trains on text tokens).",
        "limits": "Tiny and narrow next to MassiveText; no reward, no actions, no random baseline.",
    },
    owns=lambda task: task == DEFAULT_TASK,  # a corpus of your own names its task itself (TextDomain(task=...))
)
