"""Training (Gato §2.3; GATO_SPEC §4): schedule, loss falls, NaN stop, activation constraints, the CLI,
prefetch, patch buckets, a checkpoint rebuilds the model. Subprocess runs (SIGKILL resume, 8 devices,
two processes) are in test_train_distributed.py, so pytest-xdist can put them on the other worker."""


import jax
import numpy as np
import pytest

import gatolab as gl
from gatolab.train import OptimConfig, Trainer, TrainConfig, TrainingDiverged, learning_rate_schedule
from gatolab.train.checkpoint import CheckpointError, load_model, tokenizer_meta
from sharding_checks import expected_activation_constraints, sharding_constraints

SMALL = dict(batch_size=8, seq_len=64, max_patches=32, log_every=1, peak_flops=1e11)


def _cfg(**over):
    return TrainConfig.preset_config("tiny", **{**SMALL, **over})


def _source(cfg):
    return gl.testing.SyntheticBatches(cfg.batch_size, cfg.sequence_length, cfg.max_patches, seed=cfg.seed)


def test_schedule_follows_the_spec():
    cfg = OptimConfig()
    lr = learning_rate_schedule(cfg)
    assert float(lr(0)) == pytest.approx(1e-7)
    assert float(lr(15_000)) == pytest.approx(1e-4)
    assert float(lr(1_000_000)) == pytest.approx(1e-5)  # cosine decay by 10x
    assert (cfg.b1, cfg.b2, cfg.eps, cfg.weight_decay, cfg.clip_norm) == (0.9, 0.95, 1e-8, 0.1, None)
    paper = TrainConfig.preset_config("paper")
    assert (paper.batch_size, paper.sequence_length, paper.steps) == (512, 1024, 1_000_000)
    with pytest.raises(ValueError, match="unknown optimiser setting"):
        paper.replace(**{"optim.lr": 1.0})


def test_loss_falls_and_checkpoint_rebuilds_the_model(tmp_path):
    cfg = _cfg(steps=25, ckpt_every=25, **{"optim.warmup_steps": 5})
    src = _source(cfg)
    trainer = Trainer(cfg, tmp_path, src, extra_meta=tokenizer_meta(src.tokenizer))
    res = trainer.run(progress=False)
    lines = gl.train.read_metrics(tmp_path)
    assert [m["step"] for m in lines] == list(range(1, 26))
    first, last = np.mean([m["loss"] for m in lines[:3]]), np.mean([m["loss"] for m in lines[-3:]])
    assert last < first - 2.0, (first, last)
    assert all(np.isfinite(m["mfu"]) and m["tokens_per_s"] > 0 for m in lines)
    assert res["step"] == 25 and (tmp_path / "config.json").exists()

    # The checkpoint path alone rebuilds model and tokenizer.
    model, tok, meta = load_model(tmp_path)
    batch = next(_source(cfg)).tokens
    from flax import nnx

    live = nnx.merge(trainer.graphdef, trainer.state)[0]
    np.testing.assert_allclose(float(gl.model.loss_fn(model, batch)[0]), float(gl.model.loss_fn(live, batch)[0]), rtol=1e-6)
    assert tok.text.fingerprint == src.tokenizer.text.fingerprint and meta["step"] == 25
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="different model config"):
        Trainer(cfg.replace(**{"model.num_layers": 3}), tmp_path, _source(cfg)).restore()


def test_nan_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = _cfg(steps=2, ckpt_every=1)
    Trainer(cfg, tmp_path, _source(cfg)).run(progress=False)
    bad = cfg.replace(steps=4, **{"optim.peak_lr": 1e300, "optim.init_lr": 1e300, "optim.warmup_steps": 0})
    with pytest.raises(TrainingDiverged, match=r"at step 2 .*Last good checkpoint: .*checkpoints/2"):
        Trainer(bad, tmp_path, _source(cfg)).run(progress=False)
    again = Trainer(cfg.replace(steps=3), tmp_path, _source(cfg))
    assert again.restore() and again.step == 2  # still readable, finite, and resumable
    assert np.isfinite(again.train_step(next(again.source))["loss"])


def test_activation_constraints_only_inside_a_mesh_context():
    from flax import nnx

    cfg = _cfg()
    batch = next(_source(cfg)).tokens
    model = gl.model.Gato(cfg.model_config(), rngs=nnx.Rngs(0))
    g, s = nnx.split(model)
    k = gl.model.target_bucket(batch)
    step = jax.jit(lambda s, b: gl.model.loss_fn(nnx.merge(g, s), b, max_targets=k)[0])
    assert "sharding_constraint" not in step.lower(s, batch).as_text()  # one device, no context: nothing added
    with gl.train.activation_sharding(gl.train.make_mesh((1, 1, 1))):
        pinned = sharding_constraints(step.lower(s, batch).as_text())
    assert expected_activation_constraints(8, 64, k) <= pinned, pinned


def test_cli_trains_on_a_generated_dataset(tmp_path):
    from gatolab import cli

    assert cli.main(["data", "generate", "--domain", "classic", "--tasks", "CartPole-v1", "--episodes", "3",
                     "--out", str(tmp_path / "data")]) == 0
    assert cli.main(["train", "--config", "tiny", "--preset", "tiny", "--data", str(tmp_path / "data" / "classic"),
                     "--steps", "3", "--out", str(tmp_path / "run"), "--no-progress", "text.vocab_size=512",
                     "text.corpus_chars=100000", "batch_size=4", "seq_len=128", "log_every=1", "peak_flops=1e11"]) == 0
    lines = gl.train.read_metrics(tmp_path / "run")
    assert [m["step"] for m in lines] == [1, 2, 3] and lines[0]["targets/discrete"] > 0
    assert all(m["targets/domain/classic"] > 0 and np.isfinite(m["loss/domain/classic"]) for m in lines)  # per-domain loss
    assert cli.main(["train", "--out", str(tmp_path / "x"), "data.datasets={}"]) == 2  # nothing to train on


def test_max_seconds_stops_early_with_a_checkpoint(tmp_path):
    cfg = _cfg(steps=1000, ckpt_every=1000, max_seconds=0.0)
    res = Trainer(cfg, tmp_path, _source(cfg)).run(progress=False)
    assert res["stopped_by_time"] and res["step"] == 1
    assert [m["step"] for m in gl.train.read_metrics(tmp_path)] == [1]
    assert (tmp_path / "checkpoints" / "1").is_dir()


def test_prefetch_hands_out_the_same_batches_and_the_state_of_the_last_one():
    from gatolab.train.loop import Prefetch

    cfg = _cfg()
    plain, ahead = _source(cfg), Prefetch(_source(cfg), depth=3)
    for _ in range(3):
        a, b = next(plain), next(ahead)
        np.testing.assert_array_equal(a.tokens.ids, b.tokens.ids)
    assert ahead.get_state() == plain.get_state()  # not the state of the batches read ahead
    resumed = _source(cfg)
    resumed.set_state(ahead.get_state())
    np.testing.assert_array_equal(next(resumed).tokens.ids, next(ahead).tokens.ids)
    ahead.set_state({"index": 0})  # rewinds: stops the reader, restarts on the next call
    np.testing.assert_array_equal(next(ahead).tokens.ids, next(_source(cfg)).tokens.ids)
    ahead.close()

    class Broken:
        def __next__(self):
            raise OSError("shard 3 is truncated")

        def get_state(self):
            return {}

        def set_state(self, state):
            pass

    with pytest.raises(OSError, match="shard 3 is truncated"):
        next(Prefetch(Broken()))


def test_patch_bucket_leaves_the_loss_unchanged():
    from gatolab.train.loop import _patch_bucket

    cfg = _cfg(max_patches=64)
    batch = next(_source(cfg)).tokens
    used = int(batch.patch_index.max()) + 1
    p = _patch_bucket(batch)
    assert used <= p < 2 * max(used, 8) and p <= 64
    assert _patch_bucket(batch.replace(patch_index=np.full_like(batch.patch_index, -1))) == 8
    model = gl.model.Gato(cfg.model_config(), rngs=__import__("flax").nnx.Rngs(0))
    sliced = batch.truncate_patches(p)
    assert sliced.patches.shape[1] == p and sliced.patch_row_interval.shape[1] == sliced.patch_col_interval.shape[1] == p
    np.testing.assert_allclose(float(gl.model.loss_fn(model, sliced)[0]), float(gl.model.loss_fn(model, batch)[0]),
                               rtol=1e-5)


def test_compact_vocabulary_trains_and_the_agent_decodes_with_it(tmp_path):
    gl.data.generate("classic", tmp_path / "data", tasks=["CartPole-v1"], episodes=2)
    run = tmp_path / "run"
    gl.train.train("tiny", out=run, data=[str(tmp_path / "data" / "classic")], progress=False,
                   overrides={"steps": 2, "text.vocab_size": 512, "text.corpus_chars": 100_000, "text.compact_ids": True,
                              "batch_size": 2, "seq_len": 64, "peak_flops": 1e11})
    model, tok, _ = load_model(run)
    # "shared" discrete ids: continuous values start at max(512, 1024); 1024 bins + 3 specials.
    assert tok.vocab.text_size == 512 and model.config.vocab_size == tok.vocab.size == 2051
    agent = gl.agent.GatoAgent.from_checkpoint(run, gl.agent.AgentConfig(prompt="start"))
    trace = gl.agent.play(agent, "classic", "CartPole-v1", render=False, max_steps=5)
    assert trace.length == 5 and np.all(trace.action_ids < 2)
    with pytest.raises(ValueError, match="text.compact_ids applies to datasets"):
        gl.train.train("tiny", out=tmp_path / "x", progress=False,
                       overrides={"steps": 1, "data.source": "synthetic", "text.compact_ids": True})
