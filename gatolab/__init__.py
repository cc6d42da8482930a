"""gatolab: a research workbench for Gato (Reed et al., 2022).

    import gatolab as gl

The data flow, one module per stage:
    episode (gl.Episode) -> tokens (gl.GatoTokenizer -> gl.TokenSequence)
    -> embeddings -> transformer -> logits -> actions -> environment

Tokenization is pure NumPy and importing `gatolab` does not import JAX; the model,
data and plotting modules load on first use (`gl.model`, `gl.data`, `gl.viz`, ...).
"""

import importlib

from gatolab import tokenizers
from gatolab.episode import Episode
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.sequence import TokenSequence
from gatolab.specs import EnvSpec, FieldSpec, Modality
from gatolab.text import TextTokenizer, default_text_tokenizer, train_text_tokenizer
from gatolab.tokenizers import Vocabulary

__version__ = "0.1.0"

_LAZY = ("batch", "model", "data", "domains", "experts", "viz", "testing", "text", "notebooks", "train", "evaluate", "agent",
         "configs", "experiments")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"gatolab.{name}")
    raise AttributeError(f"module 'gatolab' has no attribute {name!r}")


__all__ = [
    "Episode", "EnvSpec", "FieldSpec", "GatoTokenizer", "Modality", "TextTokenizer", "TokenSequence",
    "TokenizerConfig", "Vocabulary", "default_text_tokenizer", "tokenizers", "train_text_tokenizer",
]
