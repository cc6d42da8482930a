"""The `gatolab` command. Each stage module registers its own subcommands.

    gatolab text train --vocab-size 32000 [--corpus FILE ...] --out spm.model
    gatolab --debug train ...        # a failing command shows its traceback

A bad input (a config key, a value, a damaged checkpoint or dataset, a missing file) ends
a command with one line, `gatolab: error: <what, where, what was expected>`, and exit
status 2; the traceback is for `--debug` (accepted anywhere on the line), since the line
already says what to fix and the frames are deep inside orbax, h5py or argparse.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gatolab import text

# "module:function" entries; each function takes the subparsers object and adds its commands.
_REGISTRARS = [
    "gatolab.cli:_add_text",
    "gatolab.data.cli:add_cli",
    "gatolab.train.run:add_cli",
    "gatolab.train.cli:add_cli",
    "gatolab.configs.cli:add_cli",
    "gatolab.evaluate.cli:add_cli",
    "gatolab.domains.cli:add_cli",
    "gatolab.experiments.cli:add_cli",
]


def _add_text(sub) -> None:
    p = sub.add_parser("text", help="text tokenizer (SentencePiece)")
    tsub = p.add_subparsers(dest="text_cmd", required=True)
    t = tsub.add_parser("train", help="train a SentencePiece model (default corpus: CPython stdlib prose)")
    t.add_argument("--vocab-size", type=int, default=32_000)
    t.add_argument("--corpus", nargs="*", default=None, help="plain-text or .jsonl files (default: the built-in corpus)")
    t.add_argument("--model-type", default="bpe", choices=["bpe", "unigram"])
    t.add_argument("--out", default=None, help="where to write the .model (default: the cache)")
    t.set_defaults(func=_text_train)


def _text_train(args) -> int:
    if args.corpus is None and args.out is None:
        tok = text.default_text_tokenizer(args.vocab_size)
    else:
        lines = text.read_corpus(args.corpus or [text.default_corpus_path()])
        tok = text.train_text_tokenizer(lines, args.vocab_size, out_path=args.out, model_type=args.model_type)
    print(tok)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gatolab", description="gatolab: a research workbench for Gato")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error, not just its one line")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for entry in _REGISTRARS:
        module, func = entry.split(":")
        getattr(importlib.import_module(module), func)(sub)
    return ap


# What a bad input raises: gatolab's own errors are ValueErrors (CheckpointError,
# CheckpointDamaged, config override errors, ...) that name the field, key or file.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere, not only before the subcommand
    parser = build_parser()
    args, extra = parser.parse_known_args([a for a in argv if a != "--debug"])
    # KEY=VALUE overrides may follow the options too (`gatolab ablate SPEC --out DIR steps=10`):
    # argparse gives a command's positionals only the first run of bare words.
    if extra and hasattr(args, "overrides") and not any(a.startswith("-") for a in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if debug:
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"gatolab: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
