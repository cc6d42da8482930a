"""Experiments: bad specs fail before training, the statistics say when arms cannot be told apart,
and a smoke experiment (2 arms x 2 seeds) survives SIGKILL without losing or duplicating a row."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gatolab as gl
from gatolab.experiments import Arm, ExperimentSpec, runner, stats

# A cell of the smoke experiment: the tiny network, CartPole expert data, a few steps, 2 rollouts.
SMOKE = {"data.datasets": {"classic": {"domain": "classic", "tasks": ["CartPole-v1"], "episodes": 4}},
         "batch_size": 2, "seq_len": 64, "log_every": 1, "peak_flops": 1e11,
         "eval.episodes": 2, "eval.max_steps": 10, "agent.temperature": 0.0}


def _spec(**over) -> ExperimentSpec:
    # Two evaluation-only arms that must behave the same: the decoder's two overflow rules differ only when the
    # context overflows, which 10-step CartPole episodes never do (one training run per seed serves both).
    return ExperimentSpec("smoke", config="tiny", overrides={**SMOKE, **over}, seeds=(0, 1),
                          arms=(Arm("memory", {"agent.overflow": "memory"}), Arm("recompute", {"agent.overflow": "recompute"})))


def test_bad_specs_fail_before_any_training(tmp_path):
    bad = [
        (ExperimentSpec("x", (Arm("a", {"mixture.bogus": 1}),), config="tiny"), "arm 'a': unknown config key 'mixture.bogus'"),
        (ExperimentSpec("x", (Arm("a"), Arm("b", {"mixture.prompt_probability": 0.25})), config="tiny"),
         "arm 'b' changes nothing relative to arm 'a'"),
        (ExperimentSpec("x", (Arm("a"),), config="tiny", seeds=()), "at least 1 seed"),
        (ExperimentSpec("x", (Arm("a"), Arm("b", {"eval.episodes": 3})), config="tiny"),
         "arm 'b' is evaluated on other episodes.*disagree on data"),
        (ExperimentSpec("x", (Arm("a"), Arm("b", {"data.datasets.classic.tasks": ["CartPole-v1"]})), config="tiny"),
         "arm 'b' is evaluated on other tasks"),
        (ExperimentSpec("x", (Arm("a"), Arm("b", {"seq_len": 64})), config="tiny", baseline="c"), "baseline 'c' is not an arm"),
        (ExperimentSpec("x", (Arm("a"), Arm("a", {"seq_len": 64})), config="tiny"), "arm names repeat"),
    ]
    for spec, message in bad:
        with pytest.raises(ValueError, match=message):
            gl.experiments.run(spec, tmp_path / spec.name, launcher="inline", log=None)
        assert not (tmp_path / spec.name / "cells").exists()  # nothing ran
    staged = [  # fine-tuning arms: what they start from must exist, train, and not loop
        (ExperimentSpec("x", (Arm("pre", evaluate=False), Arm("ft", {"seq_len": 64}, init_from="pr")), config="tiny"),
         "arm 'ft': init_from 'pr' is not an arm.*did you mean 'pre'"),
        (ExperimentSpec("x", (Arm("a", {"seq_len": 64}, init_from="b"), Arm("b", {"seq_len": 128}, init_from="a")),
                        config="tiny"), "cycle"),
        (ExperimentSpec("x", (Arm("a"), Arm("r", {"eval.policy": "retrieval"}, init_from="a")), config="tiny"),
         "arm 'r': eval.policy='retrieval' uses no network"),
        (ExperimentSpec("x", (Arm("pre", evaluate=False), Arm("b", {"seq_len": 64})), config="tiny", baseline="pre"),
         "baseline 'pre' is not evaluated"),
        (ExperimentSpec("x", (Arm("a"), Arm("b", {"eval.policy": "bogus"})), config="tiny"), "eval.policy"),
    ]
    for spec, message in staged:
        with pytest.raises(ValueError, match=message):
            gl.experiments.run(spec, tmp_path / spec.name, launcher="inline", log=None)
        assert not (tmp_path / spec.name / "cells").exists()
    with pytest.raises(ValueError, match="unknown experiment 'prompt_at_evl'; did you mean 'prompt_at_eval'"):
        gl.experiments.load("prompt_at_evl")


def test_every_ready_ablation_resolves_to_valid_cells():
    assert len(gl.experiments.names()) >= 7
    shared = {}
    for name in gl.experiments.names():
        cells = gl.experiments.cells(gl.experiments.load(name))
        shared[name] = len({c.train_key for c in cells})
        if not any("data.datasets" in a.overrides for a in gl.experiments.load(name).arms):
            assert len({c.data_key for c in cells}) == 1  # arms that change no data share all their datasets
    assert shared["prompt_at_eval"] == 3  # evaluation-only arms: one training run per seed


def _rows(scores: dict[str, np.ndarray]):
    """Per-episode rows from (seeds, tasks) score matrices (2 tasks in 2 domains, 1 episode each)."""
    tasks = [("t0", "d0"), ("t1", "d1")]
    return [{"arm": arm, "seed": s, "task": t, "domain": d, "episode": 0, "return": float(m[s, j]),
             "normalised_score": float(m[s, j]), "success": None}
            for arm, m in scores.items() for s in range(m.shape[0]) for j, (t, d) in enumerate(tasks)]


def test_finetuning_spec_orders_pretraining_first_and_keeps_its_runs_apart():
    spec = gl.experiments.load("finetune_swingup")
    cells = gl.experiments.cells(spec)
    by = {(c.arm, c.seed): c for c in cells}
    waves = gl.experiments.spec.train_waves(cells)
    first = {c.arm for c in waves[0]}
    assert {"pre_all", "pre_same", "pre_nocontrol", "scratch_k1"} <= first and "all_k1" not in first
    assert {c.init_from for c in waves[1]} == {"pre_all", "pre_same", "pre_nocontrol"}
    # A fine-tuning run differs from BC from scratch on the same episodes only by where it starts.
    assert by[("all_k10", 0)].config.to_json()["train"] | {"seed": 0} == by[("scratch_k10", 0)].config.to_json()["train"] | {"seed": 0}
    assert len({by[(f"{v}_k10", 0)].train_key for v in ("all", "same", "nocontrol", "scratch")}) == 4
    assert by[("all_k10", 0)].train_key != by[("all_k10", 1)].train_key
    for k in (1, 10, 100):  # retrieval trains nothing; the K-episode sets are the same episodes
        r = by[("retrieval_k%d" % k, 0)]
        assert not r.trains and r.config.mixture.episodes_per_task == k == by[(f"scratch_k{k}", 0)].config.mixture.episodes_per_task
    pre = [c for c in cells if not c.evaluate]
    assert {c.arm for c in pre} == {"pre_all", "pre_same", "pre_nocontrol"}
    for c in pre:  # no pretraining variant holds the held-out task
        assert all("cartpole-swingup" not in (ds.tasks or ()) for ds in c.config.data.datasets.values())
    assert not any(c.config.data.datasets.get("dmc") for c in pre if c.arm == "pre_nocontrol")
    ft = by[("all_k1", 0)]
    assert list(ft.config.data.datasets) == ["dmc"] and ft.config.data.datasets["dmc"].tasks == ("cartpole-swingup",)
    assert ft.config.eval.tasks == ("cartpole-swingup",)


def test_statistics_with_one_seed_call_no_difference():
    base = np.array([[0.2, 0.4]])
    one = stats.summarize(_rows({"a": base, "b": base + 0.5}), "a", reps=200)
    assert one["difference_from_baseline"]["b"]["gato"]["distinguishable"] is None
    assert "one seed gives no interval" in one["sentences"][0]


def test_statistics_say_when_arms_cannot_be_told_apart():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, (5, 2))
    same = stats.summarize(_rows({"a": base, "b": base.copy()}), "a", reps=500)
    d = same["difference_from_baseline"]["b"]["gato"]
    assert d["value"] == 0.0 and d["ci"][0] <= 0.0 <= d["ci"][1] and not d["distinguishable"]
    assert "not distinguishable at this budget" in same["sentences"][0]
    apart = stats.summarize(_rows({"a": base, "b": base + 0.5}), "a", reps=500)
    d = apart["difference_from_baseline"]["b"]["gato"]
    assert d["distinguishable"] and d["ci"][0] > 0.25 and "scores higher" in apart["sentences"][0]
    for arm in ("a", "b"):  # intervals hold their point estimate; profiles fall from 1 to 0
        for v in apart["arms"][arm].values():
            assert v["ci"][0] <= v["value"] <= v["ci"][1]
        prof = np.asarray(apart["profiles"][arm]["value"])
        assert prof[0] == 1.0 and np.all(np.diff(prof) <= 1e-12)
    assert apart["arms"]["a"]["domain/d0"]["value"] == pytest.approx(base[:, 0].mean())


def _run_cli(spec_dir: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gatolab.cli", "ablate", str(spec_dir), "--out", str(spec_dir),
                             "--launcher", "inline", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


@pytest.mark.slow
def test_smoke_experiment_resumes_after_sigkill(tmp_path):
    out = tmp_path / "abl"
    spec = _spec(steps=6, ckpt_every=2)
    runner._record_spec(spec, out)  # the folder's spec.json is what the command line runs
    # 1. SIGKILL while the second seed trains (a checkpoint of it exists, the run is not finished).
    proc = _run_cli(out)
    # its checksums file is written last: the folder alone can be a save in progress, which the re-run rejects
    mid = out / "cells" / "memory" / "seed1" / "train" / "checkpoints" / "2" / "gatolab_checksums.json"
    deadline = time.time() + 600
    while not mid.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.csv").exists()
    seed0 = out / "cells" / "memory" / "seed0" / "train" / "metrics.jsonl"
    assert [json.loads(x)["step"] for x in seed0.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]
    # 2. SIGKILL in the middle of the evaluations: one cell done, another not yet.
    proc = _run_cli(out)
    first = out / "cells" / "memory" / "seed0" / "cell.json"
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stamp = first.stat().st_mtime_ns
    # 3. A plain re-run finishes; nothing is redone or duplicated.
    proc = _run_cli(out)
    log = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, log
    assert first.stat().st_mtime_ns == stamp  # a finished cell is skipped
    lines = [json.loads(x)["step"] for x in (out / "cells" / "memory" / "seed1" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [1, 2, 3, 4, 5, 6]  # resumed from its checkpoint: every step once
    table = (out / "results.csv").read_text().splitlines()
    assert table[0].split(",") == list(runner.TABLE_COLUMNS)
    keys = [tuple(r.split(",")[:5]) for r in table[1:]]
    assert len(keys) == len(set(keys)) == 2 * 2 * 1 * 2  # arms x seeds x tasks x episodes, each once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == summary["cells"] == 4 and summary["complete_arms"] == ["memory", "recompute"]
    s = summary["summary"]
    for arm in ("memory", "recompute"):
        v = s["arms"][arm]["gato"]
        assert v["ci"][0] <= v["value"] <= v["ci"][1]
    # Equal arms: the same actions in the same episodes, so the difference is zero and the summary says so.
    assert s["difference_from_baseline"]["recompute"]["gato"]["value"] == 0.0
    assert "not distinguishable at this budget" in s["sentences"][0]
    assert (out / "results.parquet").exists() and "recompute" in (out / "summary.md").read_text()
    # What each arm's training processed: the resumed seed counts its steps once, so both seeds agree.
    train = summary["training"]["memory"]
    assert train["steps"] == 6 and train["cells"] == 2 and train["tokens"] > train["timesteps"] > 0
    assert train["tokens_per_s"] > 0 and "timesteps/s" in (out / "summary.md").read_text()
    # Eval-only arms share the training run; TensorBoard finds every cell's events under the experiment folder.
    cell = json.loads((out / "cells" / "recompute" / "seed0" / "cell.json").read_text())
    assert cell["train_dir"] == "cells/memory/seed0/train" and not (out / "cells" / "recompute" / "seed0" / "train").exists()
    assert len(list(out.glob("cells/*/seed*/tb/events.out.tfevents.*"))) == 4


def test_submitit_local_launcher_runs_a_phase(tmp_path):
    spec = _spec(steps=1)
    res = gl.experiments.run(spec, tmp_path, phase="data", launcher="submitit-local", log=None)
    assert res == {}  # the data phase writes no table
    data = next((tmp_path / "data").iterdir()) / "classic" / "manifest.json"
    assert json.loads(data.read_text())["tasks"] == ["CartPole-v1"]
    assert list((tmp_path / "submitit").glob("*_result.pkl"))  # the unit ran as a submitit job


def test_an_arm_fine_tunes_from_an_evaluated_arm_and_a_plain_unit_waits_for_it(tmp_path):
    spec = ExperimentSpec("ft", config="tiny", overrides={**SMOKE, "steps": 2}, seeds=(0,),
                          arms=(Arm("pre"), Arm("ft", {"steps": 3}, init_from="pre"),
                                Arm("nn", {"eval.policy": "retrieval"})))
    with pytest.raises(ValueError, match="starts from arm 'pre'.*has not finished.*--phase train --arm pre"):
        gl.experiments.run(spec, tmp_path, phase="train", arm="ft", launcher="inline", log=None)
    res = gl.experiments.run(spec, tmp_path, launcher="inline", log=None)
    assert res["done"] == 3 and res["complete_arms"] == ["ft", "nn", "pre"]
    init = json.loads((tmp_path / "cells" / "ft" / "seed0" / "train" / "init_from.json").read_text())
    assert init["path"] == str((tmp_path / "cells" / "pre" / "seed0" / "train").resolve()) and init["step"] == 2
    assert not (tmp_path / "cells" / "nn" / "seed0" / "train").exists()  # retrieval trains nothing
    nn = json.loads((tmp_path / "cells" / "nn" / "seed0" / "cell.json").read_text())
    assert nn["train_dir"] is None and len(nn["rows"]) == 2
