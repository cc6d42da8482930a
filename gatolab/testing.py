"""Small shared fixtures for tests and notebook smoke runs (like gemma's `gm.testing`).

Everything here is deterministic given its seed and cheap (< 1 s after the first call,
which trains a 512-piece SentencePiece model on 100 kB of the default corpus). The
synthetic episodes and batches live in the package (`gatolab.data.synthetic`, which
`gatolab train --mixture synthetic` uses); they are re-exported here for tests.
"""

from __future__ import annotations

from gatolab.data.synthetic import (SMALL_TEXT_VOCAB, SyntheticBatches, demo_image, multimodal_spec,
                                    small_text_tokenizer, synthetic_episode)
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.text import TextTokenizer

__all__ = ["TINY_TEXT_VOCAB", "SyntheticBatches", "demo_image", "multimodal_spec", "synthetic_episode",
           "tiny_text_tokenizer", "tiny_tokenizer"]

TINY_TEXT_VOCAB = SMALL_TEXT_VOCAB


def tiny_text_tokenizer() -> TextTokenizer:
    """A 512-piece SentencePiece model over the first 100 kB of the default corpus (cached)."""
    return small_text_tokenizer()


def tiny_tokenizer(**config) -> GatoTokenizer:
    """The Gato tokenizer with the full id layout (text range 32,000) and the tiny text model."""
    return GatoTokenizer(TokenizerConfig(**config), text=tiny_text_tokenizer())
