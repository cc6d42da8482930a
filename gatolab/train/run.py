"""`gatolab train` and its Python twin `gl.train.train(...)`: data + model + loop in one call.

    gatolab train --preset tiny --data data/classic data/babyai --steps 500 --out runs/tiny \
        optim.peak_lr=3e-4 model.dropout=0.0 mixture.prompt_probability=0.25

Multi-host: start the same command on every host with `--coordinator HOST:PORT
--num-processes N --process-id I`; `jax.distributed.initialize` runs before anything
touches a device, and each host reads its own rows of every global batch.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from gatolab.data.mixture import Mixture, MixtureConfig
from gatolab.data.synthetic import SyntheticBatches
from gatolab.gato_tokenizer import GatoTokenizer
from gatolab.text import default_text_tokenizer
from gatolab.train.checkpoint import tokenizer_meta
from gatolab.train.loop import Trainer, TrainConfig


def split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """{"mixture.x": v, "steps": 3, "optim.y": w} -> (mixture overrides, train overrides)."""
    mix = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("mixture.")}
    rest = {k: v for k, v in overrides.items() if not k.startswith("mixture.")}
    return mix, rest


def build_source(config: TrainConfig, mixture: str, data: Sequence[str | os.PathLike], tokenizer, workers: int = 0,
                 mixture_overrides: Mapping[str, Any] | None = None):
    """The batch source for a run: "default" mixes the datasets in `data` with Table 1's
    weights (gatolab.data.mixture); "synthetic" is random multimodal episodes with their own
    small text model (gatolab.data.synthetic; smoke runs)."""
    process_index, process_count = jax.process_index(), jax.process_count()
    if config.batch_size % process_count:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {process_count} processes")
    local = config.batch_size // process_count
    if mixture == "synthetic":
        return SyntheticBatches(config.batch_size, config.sequence_length, config.max_patches, seed=config.seed,
                                shard_index=process_index, shard_count=process_count)
    if mixture != "default":
        raise ValueError(f"unknown mixture {mixture!r} (expected 'default' or 'synthetic')")
    if not data:
        raise ValueError("the 'default' mixture needs dataset directories (--data DIR ...)")
    mcfg = MixtureConfig(sequence_length=config.sequence_length, max_patches=config.max_patches, seed=config.seed,
                         **dict(mixture_overrides or {}))
    mix = Mixture(mcfg, list(data), tokenizer)
    it = mix.iterator(local, workers=workers, process_index=process_index, process_count=process_count)
    it.domain_names = [ds.name for ds in mix.datasets]
    return it


def train(preset: str = "tiny", *, out: str | os.PathLike, steps: int | None = None, data: Sequence[str] = (),
          mixture: str = "default", text_vocab: int = 32_000, text_chars: int | None = None,
          compact_vocab: bool = False, workers: int = 0,
          train_preset: str | None = None, overrides: Mapping[str, Any] | None = None, progress: bool = True,
          on_metrics=None) -> dict[str, Any]:
    """Trains a `preset` model on a mixture; resumes from `out` if it holds checkpoints.

    Args:
      preset: model preset ("tiny", "gato_79m", ...).
      out: run directory.
      steps: total optimiser steps (overrides the training preset's).
      data: dataset directories for the "default" mixture.
      mixture: "default" or "synthetic".
      text_vocab: pieces of the default mixture's SentencePiece model
        (`gatolab.text.default_text_tokenizer(text_vocab, text_chars)`; Gato §2.1: 32,000).
      text_chars: train that model on the first `text_chars` characters of the default
        corpus; None = all of it. The tests' tiny model is text_vocab=512, text_chars=100_000.
      compact_vocab: size the text id range to `text_vocab` instead of the paper's 32,000
        (GATO_SPEC §1), and the model's table with it: a 4,096-piece text model gives a
        5,123-id vocabulary, ~6x less output-projection work (CPU demos). The checkpoint's
        tokenizer records the layout, so the agent decodes with the same ids.
      workers: grain worker processes for the mixture.
      train_preset: "tiny" (CPU) or "paper" (GATO_SPEC §4); default "tiny" for the tiny
        model and "paper" otherwise.
      overrides: "key=value" settings: TrainConfig fields, "optim.*", "model.*", "mixture.*".
    """
    mix_over, train_over = split_overrides(dict(overrides or {}))
    cfg = TrainConfig.preset_config(train_preset or ("tiny" if preset == "tiny" else "paper"))
    cfg = cfg.replace(preset=preset, **train_over)
    if steps is not None:
        cfg = cfg.replace(steps=steps)
        if cfg.optim.total_steps != steps:
            cfg = cfg.replace(**{"optim.total_steps": steps, "optim.warmup_steps": min(cfg.optim.warmup_steps, steps)})
    tokenizer = None
    if mixture == "default":
        tokenizer = GatoTokenizer(text=default_text_tokenizer(text_vocab, max_chars=text_chars))
        if compact_vocab:
            vocab = dataclasses.replace(tokenizer.config.vocab, text_size=text_vocab)
            tokenizer = GatoTokenizer(dataclasses.replace(tokenizer.config, vocab=vocab), text=tokenizer.text)
            if "vocab_size" in cfg.model_overrides and cfg.model_overrides["vocab_size"] != vocab.size:
                raise ValueError(f"compact_vocab: model.vocab_size={cfg.model_overrides['vocab_size']} but the "
                                 f"compact layout has {vocab.size} ids")
            cfg = cfg.replace(**{"model.vocab_size": vocab.size})
    elif compact_vocab:
        raise ValueError("compact_vocab applies to the 'default' mixture (the synthetic one has its own tokenizer)")
    source = build_source(cfg, mixture, data, tokenizer, workers, mix_over)
    if tokenizer is None:
        tokenizer = source.tokenizer
    meta = {**tokenizer_meta(tokenizer), "mixture": {"kind": mixture, "data": [str(d) for d in data], **mix_over}}
    trainer = Trainer(cfg, out, source, extra_meta=meta, domain_names=getattr(source, "domain_names", None))
    return trainer.run(progress=progress, on_metrics=on_metrics)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r}: expected KEY=VALUE (e.g. optim.peak_lr=3e-4)")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def add_cli(sub) -> None:
    p = sub.add_parser("train", help="train a Gato model (resumes from --out)")
    p.add_argument("--preset", default="tiny", help="model preset: tiny, gato_79m, gato_364m, gato_1_18b")
    p.add_argument("--mixture", default="default", choices=["default", "synthetic"])
    p.add_argument("--data", nargs="*", default=[], help="dataset directories (gatolab data generate --out ...)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--text-vocab", type=int, default=32_000, help="pieces of the SentencePiece text model")
    p.add_argument("--text-chars", type=int, default=None,
                   help="train the text model on the first TEXT_CHARS characters of the corpus (default: all)")
    p.add_argument("--compact-vocab", action="store_true",
                   help="text ids [0, TEXT_VOCAB) instead of the paper's [0, 32000): a smaller table (CPU runs)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--train-preset", default=None, choices=["tiny", "paper"])
    p.add_argument("--mesh", default=None, help="data,fsdp,tensor sizes, e.g. 8,1,1 or 2,4,1")
    p.add_argument("--distributed", action="store_true",
                   help="multi-host with auto-detection (Cloud TPU pods, SLURM): jax.distributed.initialize()")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (multi-host, explicit)")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE: TrainConfig fields, optim.*, model.*, mixture.*")
    p.set_defaults(func=_cli_train)


def _cli_train(args) -> int:
    if args.coordinator:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    elif args.distributed:
        jax.distributed.initialize()
    overrides = parse_overrides(args.overrides)
    if args.mesh:
        overrides["mesh_shape"] = tuple(int(x) for x in args.mesh.split(","))
    res = train(args.preset, out=args.out, steps=args.steps, data=args.data, mixture=args.mixture,
                text_vocab=args.text_vocab, text_chars=args.text_chars, compact_vocab=args.compact_vocab,
                workers=args.workers,
                train_preset=args.train_preset, overrides=overrides, progress=not args.no_progress)
    if jax.process_index() == 0:
        last = res["last"]
        print(f"trained to step {res['step']} (resumed: {res['resumed']}); loss {last.get('loss', float('nan')):.4f}; "
              f"checkpoints in {res['checkpoint']}")
    return 0


