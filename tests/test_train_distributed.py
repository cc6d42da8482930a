"""Training in subprocesses (Gato §2.3): exact resume after SIGKILL, sharded == unsharded on 8 forced
CPU devices, two processes on localhost == one process with two devices."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import gatolab as gl
from sharding_checks import expected_activation_constraints, sharding_constraints

WORKER = Path(__file__).parent / "train_worker.py"
# The workers run a few steps each, so compiling the train step (twice per run, on several meshes) is
# nearly all of their time: XLA's CPU backend compiles without its expensive LLVM optimisations. Every
# comparison below is between runs compiled with the same flags.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def _env(xla_flags=""):
    return {**os.environ, "XLA_FLAGS": " ".join(f for f in (xla_flags or os.environ.get("XLA_FLAGS", ""), FAST_COMPILE) if f)}


def _worker(out, overrides, *extra, env=None, check=True):
    env = dict(env or {})
    env = {**_env(env.pop("XLA_FLAGS", "")), **env}
    return subprocess.run([sys.executable, str(WORKER), str(out), json.dumps(overrides), *extra], env=env,
                          capture_output=True, text=True, timeout=600, check=check)


@pytest.mark.slow
def test_sigkill_and_resume_follow_the_uninterrupted_trajectory(tmp_path):
    over = {"steps": 8, "ckpt_every": 3}
    _worker(tmp_path / "ref", over, "--report", str(tmp_path / "ref.json"))
    killed = _worker(tmp_path / "run", over, "--kill-at", "5", check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == [3]
    _worker(tmp_path / "run", over, "--report", str(tmp_path / "resumed.json"))
    ref = json.loads((tmp_path / "ref.json").read_text())
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert sorted(map(int, resumed["losses"])) == [4, 5, 6, 7, 8]  # picked up after checkpoint 3
    for step, loss in resumed["losses"].items():
        assert loss == pytest.approx(ref["losses"][step], rel=1e-6, abs=1e-6)  # stated tolerance: 1e-6
    assert resumed["param_abs_sum"] == pytest.approx(ref["param_abs_sum"], rel=1e-6)
    logged = [m["step"] for m in gl.train.read_metrics(tmp_path / "run")]
    assert logged == list(range(1, 9))  # the killed run's lines past the checkpoint were replaced


@pytest.mark.slow
def test_sharded_equals_unsharded_on_8_cpu_devices(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    reports = {}
    for mesh in ([1, 1, 1], [8, 1, 1], [2, 4, 1], [2, 2, 2]):
        name = "x".join(map(str, mesh))
        _worker(tmp_path / name, {"steps": 3, "ckpt_every": 100, "mesh_shape": mesh}, "--report",
                str(tmp_path / f"{name}.json"), *(["--lowered", str(tmp_path / "lowered.txt")] if name == "2x2x2" else []),
                env=env)
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    base = reports.pop("1x1x1")
    assert base["devices"] == 8
    assert reports["8x1x1"]["sharded_fraction"] == 0.0  # data parallel: parameters replicated
    assert reports["2x4x1"]["sharded_fraction"] > 0.95  # FSDP (with data parallelism)
    for name, rep in reports.items():
        for step, loss in base["losses"].items():
            assert rep["losses"][step] == pytest.approx(loss, rel=1e-4), name  # stated tolerance: 1e-4 relative
        assert rep["param_abs_sum"] == pytest.approx(base["param_abs_sum"], rel=1e-4), name
    # The activations are pinned in the step the 2x2x2 mesh really ran (batch 8 x 64 tokens).
    pinned = sharding_constraints((tmp_path / "lowered.txt").read_text())
    targets = {shape[1] for shape, _ in pinned if shape[-1] == gl.model.ModelConfig.preset("tiny").padded_vocab_size}
    assert len(targets) == 1 and expected_activation_constraints(8, 64, targets.pop()) <= pinned, pinned


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_localhost_match_one(tmp_path):
    over = {"steps": 3, "ckpt_every": 3}
    _worker(tmp_path / "one", over, "--report", str(tmp_path / "one.json"),
            env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    port = _free_port()
    env = _env("--xla_force_host_platform_device_count=1")
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / "two"), json.dumps(over), "--coordinator",
                               f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i), "--report",
                               str(tmp_path / "two.json")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["processes"] == 2 and two["devices"] == 2 and one["devices"] == 2
    for step, loss in one["losses"].items():
        assert two["losses"][step] == pytest.approx(loss, rel=1e-4)
    assert two["param_abs_sum"] == pytest.approx(one["param_abs_sum"], rel=1e-4)
    assert (tmp_path / "two" / "checkpoints" / "3").is_dir()
