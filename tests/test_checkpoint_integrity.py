"""Checkpoints as trustworthy as the datasets (issue 17): a SHA-256 manifest per step, verified on
every load; a damaged file is a CheckpointDamaged naming the step folder and the file; a resumed run
falls back to the newest intact step (same trajectory as resuming from it) and sets the damaged one
aside; `gatolab checkpoint verify`; checkpoints written before the manifest still load, with a warning.

One trained run (three checkpoints) is shared by every test; each test damages its own copy.
"""

import json
import shutil
import types

import jax
import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab import cli
from gatolab.train import Trainer, TrainConfig
from gatolab.train.checkpoint import (CHECKSUM_FILE, CheckpointDamaged, load_model, tokenizer_meta, verify_run)

SMALL = dict(batch_size=8, seq_len=64, max_patches=32, log_every=1, peak_flops=1e11)  # test_train's: shares its compiled step


def _cfg(steps):
    return TrainConfig.preset_config("tiny", **SMALL, steps=steps, ckpt_every=1, keep=3)


def _source(cfg):
    return gl.testing.SyntheticBatches(cfg.batch_size, cfg.sequence_length, cfg.max_patches, seed=cfg.seed)


def _trainer(run, steps, compiled=None):
    cfg = _cfg(steps)
    src = _source(cfg)
    trainer = Trainer(cfg, run, src, extra_meta=tokenizer_meta(src.tokenizer))
    if compiled is not None:  # the same model and batches: reuse the jitted steps (saves ~10 s of tracing per run)
        trainer._compiled = compiled
    return trainer


def _params(trainer):
    return jax.tree.leaves(nnx.to_pure_dict(trainer.state))


def _biggest_array_file(step_dir):
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(step_dir):
    f = _biggest_array_file(step_dir)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return f.relative_to(step_dir).as_posix()


def _flip_byte(step_dir):
    f = _biggest_array_file(step_dir)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    return f.relative_to(step_dir).as_posix()


def _truncate_meta(step_dir):
    f = step_dir / "meta" / "metadata"
    f.write_bytes(f.read_bytes()[:100])
    return "meta/metadata"


def _delete_file(step_dir):
    f = _biggest_array_file(step_dir)
    f.unlink()
    return f.relative_to(step_dir).as_posix()


def _drop_manifest(step_dir):  # a save interrupted after orbax's rename, before the manifest
    (step_dir / CHECKSUM_FILE).unlink()
    return CHECKSUM_FILE


DAMAGE = {"truncate": _truncate, "flip_byte": _flip_byte, "truncate_meta": _truncate_meta, "delete_file": _delete_file,
          "no_manifest": _drop_manifest}


def _make_legacy(step_dir):
    """What a checkpoint written before this change looks like: no manifest, no 'checksums' in its meta."""
    (step_dir / CHECKSUM_FILE).unlink()
    meta_file = step_dir / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    meta.pop("checksums")
    meta_file.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run with checkpoints at steps 1, 2, 3, and its state and losses (it never stopped)."""
    run = tmp_path_factory.mktemp("ckpt") / "run"
    trainer = _trainer(run, 3)
    trainer.run(progress=False)
    return types.SimpleNamespace(run=run, params=_params(trainer), losses=[m["loss"] for m in gl.train.read_metrics(run)],
                                 compiled=trainer._compiled)


@pytest.fixture(scope="module")
def run3(trained):
    return trained.run


def _copy_step(run3, tmp_path, step=3):
    dst = tmp_path / "checkpoints" / str(step)
    shutil.copytree(run3 / "checkpoints" / str(step), dst)
    return dst


def test_every_step_records_its_checksums_and_verifies(run3, capsys):
    for step in (1, 2, 3):
        manifest = json.loads((run3 / "checkpoints" / str(step) / CHECKSUM_FILE).read_text())
        assert manifest["algorithm"] == "sha256" and manifest["step"] == step
        assert "meta/metadata" in manifest["files"] and any(f.startswith("state/") for f in manifest["files"])
    assert [(c.step, c.status) for c in verify_run(run3)] == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert cli.main(["checkpoint", "verify", str(run3)]) == 0
    assert "3 of 3 steps intact" in capsys.readouterr().out
    model, _, meta = load_model(run3)
    assert meta["step"] == 3 and meta["checksums"] == CHECKSUM_FILE


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_step_is_named_with_its_file(run3, tmp_path, damage, capsys):
    step_dir = _copy_step(run3, tmp_path)
    name = DAMAGE[damage](step_dir)
    with pytest.raises(CheckpointDamaged) as e:
        load_model(tmp_path)
    assert str(step_dir) in str(e.value) and name in str(e.value) and "\n" not in str(e.value)
    # The CLI says the same in one line, without a traceback; verify exits 1 naming the file.
    assert cli.main(["eval", "--checkpoint", str(tmp_path), "--tasks", "CartPole-v1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gatolab: error: checkpoint ") and name in err and "Traceback" not in err
    assert cli.main(["checkpoint", "verify", str(tmp_path)]) == 1
    assert f"step 3: DAMAGED checkpoint {step_dir}: {name}" in capsys.readouterr().out


def test_a_checkpoint_without_checksums_still_loads_with_a_warning(run3, tmp_path, capsys):
    step_dir = _copy_step(run3, tmp_path)
    _make_legacy(step_dir)
    _, _, meta = load_model(tmp_path)
    err = capsys.readouterr().err
    assert meta["step"] == 3 and err.count("\n") == 1 and f"{step_dir} has no {CHECKSUM_FILE}" in err
    assert [(c.step, c.status) for c in verify_run(tmp_path)] == [(3, "unverified")]
    # Unverifiable, but a truncated array file is still one named line rather than TensorStore's traceback.
    _truncate(step_dir)
    with pytest.raises(CheckpointDamaged, match=rf"checkpoint {step_dir}: orbax could not read it \(Exception: "):
        load_model(tmp_path)
    _truncate_meta(step_dir)
    with pytest.raises(CheckpointDamaged, match=rf"checkpoint {step_dir}: meta/metadata is unreadable \(JSONDecodeError"):
        load_model(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_resume_falls_back_to_the_newest_intact_step(trained, tmp_path, damage, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained.run, run)
    name = DAMAGE[damage](run / "checkpoints" / "3")
    bad_bytes = (run / "checkpoints" / "3" / name).read_bytes()
    trainer = _trainer(run, 3, trained.compiled)
    res = trainer.run(progress=False)
    err = capsys.readouterr().err
    assert res["resumed"] and res["step"] == 3
    assert f"checkpoints/3: {name} has sha256" in err and "resuming from step 2 instead" in err
    # Resumed from step 2, step 3 is made again exactly as the run that never stopped made it.
    assert [m["loss"] for m in gl.train.read_metrics(run)] == trained.losses
    for a, b in zip(_params(trainer), trained.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The damaged step is kept, renamed aside, and the record says what happened.
    assert (run / "checkpoints" / "3.damaged" / name).read_bytes() == bad_bytes
    (event,) = gl.train.read_events(run)
    assert event["event"] == "checkpoint_fallback" and event["resumed_from"] == 2
    assert event["damaged"][0]["step"] == 3 and event["damaged"][0]["moved_to"].endswith("checkpoints/3.damaged")
    assert [(c.step, c.status) for c in verify_run(run)] == [(1, "ok"), (2, "ok"), (3, "ok"), (None, "set aside")]


def test_no_intact_step_is_one_error_and_moves_nothing(run3, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run3, run)
    for step in (1, 2, 3):
        _truncate(run / "checkpoints" / str(step))
    with pytest.raises(CheckpointDamaged, match="every checkpoint in .* is damaged"):
        _trainer(run, 5).restore()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1", "2", "3"]


def test_a_run_killed_during_its_first_saves_starts_again(run3, tmp_path, capsys):
    # Every step's save unfinished (no manifest): nothing a checkpoint kept, so the run starts from
    # step 0 instead of refusing; the unfinished steps are set aside, not deleted, and recorded.
    run = tmp_path / "run"
    shutil.copytree(run3, run)
    for step in (1, 2, 3):
        _drop_manifest(run / "checkpoints" / str(step))
    trainer = _trainer(run, 5)
    assert trainer.restore() is False and trainer.step == 0
    assert "starting from step 0" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["1.damaged", "2.damaged", "3.damaged"]
    (event,) = trainer._events
    assert event["event"] == "checkpoint_fallback" and event["resumed_from"] is None and len(event["damaged"]) == 3
