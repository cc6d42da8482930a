"""Fine-tuning from a pretrained run (Gato §5.2): `init_from` takes the parameters and nothing else,
`freeze` holds parts at their values, a run that does not fit is refused naming both sides."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab import cli
from gatolab.train import Trainer, TrainConfig
from gatolab.train.checkpoint import load_model, tokenizer_meta
from gatolab.train.finetune import INIT_FILE, IncompatibleInit, check_compatible, params_sha256
from gatolab.train.optim import parameter_path

SMALL = dict(batch_size=2, seq_len=64, max_patches=16, log_every=1, peak_flops=1e11, prefetch=0,
             model_overrides=dict(num_layers=1, embed_dim=32, ff_dim=64, num_heads=2, head_dim=16, resnet_channels=8,
                                  resnet_groups=4))


def _cfg(**over):
    return TrainConfig.preset_config("tiny", **{**SMALL, **over})


def _train(cfg, out):
    src = gl.testing.SyntheticBatches(cfg.batch_size, cfg.sequence_length, cfg.max_patches, seed=cfg.seed)
    trainer = Trainer(cfg, out, src, extra_meta=tokenizer_meta(src.tokenizer))
    return trainer, trainer.run(progress=False)


def _params(model) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))[0]
    return {parameter_path(p): np.asarray(v) for p, v in leaves}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    _train(_cfg(steps=4, ckpt_every=4), out)
    return out


def test_init_from_takes_the_parameters_with_a_fresh_optimiser_and_freeze_holds_them(pretrained, tmp_path):
    pre_model, _, pre_meta = load_model(pretrained)
    pre = _params(pre_model)
    cfg = _cfg(steps=2, ckpt_every=2, seed=1, init_from=str(pretrained), freeze=("embed",),
               **{"optim.warmup_steps": 0, "optim.peak_lr": 1e-2})
    trainer, res = _train(cfg, tmp_path)
    assert res["step"] == 2  # its own schedule from step 0, not the pretrained run's step 4

    record = json.loads((tmp_path / INIT_FILE).read_text())
    assert record["step"] == 4 and record["path"] == str(pretrained.resolve())
    assert record["params_sha256"] == params_sha256(nnx.to_pure_dict(nnx.state(pre_model)))
    tuned_model, _, meta = load_model(tmp_path)  # a checkpoint with frozen parts loads like any other
    assert meta["init_from"] == record and meta["train_config"]["freeze"] == ["embed"]
    tuned = _params(tuned_model)
    frozen = [k for k in pre if k.startswith("embed/")]
    moved = [k for k in pre if not k.startswith("embed/") and not np.array_equal(pre[k], tuned[k])]
    assert frozen and all(np.array_equal(pre[k], tuned[k]) for k in frozen)  # neither update nor weight decay
    assert len(moved) == len(pre) - len(frozen)  # everything else trained

    # The optimiser started fresh: its step counter counts this run's 2 steps only.
    opt_state = nnx.to_pure_dict(nnx.state(nnx.merge(trainer.graphdef, trainer.state)[1]))
    counts = [int(v) for p, v in jax.tree_util.tree_flatten_with_path(opt_state)[0] if "count" in jax.tree_util.keystr(p)]
    assert counts and set(counts) <= {0, 2}, counts

    # Re-running resumes the fine-tuning run (its checkpoint), not the pretrained one, and keeps the record.
    _, res2 = _train(dataclasses.replace(cfg, steps=3), tmp_path)
    assert res2["resumed"] and res2["step"] == 3 and load_model(tmp_path)[2]["init_from"] == record


def test_a_pretrained_run_that_does_not_fit_is_named_on_both_sides(pretrained, tmp_path):
    with pytest.raises(IncompatibleInit, match=r"model\.num_layers: 1 \(pretrained\) vs 2 \(this run\)"):
        _train(_cfg(steps=1, init_from=str(pretrained), **{"model.num_layers": 2}), tmp_path / "a")
    assert not (tmp_path / "a" / "checkpoints").exists() or not any((tmp_path / "a" / "checkpoints").iterdir())
    # Compute-only fields (dropout, dtype, remat, context length) may change.
    meta = load_model(pretrained)[2]
    changed = dataclasses.replace(_cfg().model_config(), dropout=0.0, remat="none", dtype="bfloat16", context_len=2048)
    check_compatible("pre", meta, changed, None)
    with pytest.raises(IncompatibleInit, match=r"model\.activation: 'gelu' \(pretrained\) vs 'relu'"):
        check_compatible("pre", meta, dataclasses.replace(changed, activation="relu"), None)

    cfg = _cfg(steps=1, init_from=str(pretrained))
    src = gl.testing.SyntheticBatches(cfg.batch_size, cfg.sequence_length, cfg.max_patches)
    other = tokenizer_meta(src.tokenizer)
    other["tokenizer"]["config"] = {**other["tokenizer"]["config"], "mu_law": "always"}
    other["tokenizer"]["sentencepiece"] = "another model"
    with pytest.raises(IncompatibleInit, match=r"tokenizer\.mu_law: .* \(pretrained\) vs 'always' \(this run\).*"
                                               r"text model: the SentencePiece models differ"):
        Trainer(cfg, tmp_path / "c", src, extra_meta=other).run(progress=False)

    with pytest.raises(ValueError, match=r"train\.freeze: 'embeddings' names no parameter \(parameter groups: .*'embed/patch'"):
        Trainer(_cfg(steps=1, freeze=("embeddings",)), tmp_path / "d", src)


def test_init_from_through_the_run_config_and_cli(pretrained):
    config = gl.configs.get("tiny", ["init_from=runs/pre", "freeze=('embed',)"])
    assert config.train.init_from == "runs/pre" and config.train.freeze == ("embed",)
    args = cli.build_parser().parse_args(["train", "--out", "x", "--init-from", str(pretrained), "--freeze", "embed",
                                             "transformer/blocks", "--episodes", "10"])
    from gatolab.train.run import cli_config

    c = cli_config(args)
    assert c.train.init_from == str(pretrained) and c.train.freeze == ("embed", "transformer/blocks")
    assert c.mixture.episodes_per_task == 10
    assert gl.configs.RunConfig.from_json(c.to_json()) == c  # recorded in run_config.json, repeatable
