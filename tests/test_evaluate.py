"""Evaluation (GATO_SPEC §6): normalised scores, aggregation, Figure 5, per-task failures, CLI."""

import csv
import json
import math

import pytest
from flax import nnx

import gatolab as gl
from gatolab import agent as ga
from gatolab import evaluate as ev


def test_normalised_score_and_bad_reference():
    assert ev.normalised_score(5.0, 10.0, 0.0) == 0.5
    assert ev.normalised_score(-300.0, -100.0, -500.0) == 0.5  # negative returns (Acrobot-like)
    assert ev.normalised_score(0.0, 10.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="equals random"):
        ev.normalised_score(1.0, 2.0, 2.0)


def test_aggregate_domain_then_overall_and_figure5():
    rows = [{"domain": "babyai", "task": "a", "normalised_score": 1.0, "success_rate": 1.0, "error": None},
            {"domain": "babyai", "task": "b", "normalised_score": 0.0, "success_rate": 0.5, "error": None},
            {"domain": "classic", "task": "c", "normalised_score": 0.8, "success_rate": None, "error": None},
            {"domain": "classic", "task": "d", "normalised_score": None, "error": "RuntimeError: boom"}]
    agg = ev.aggregate(rows)
    assert agg["per_domain"]["babyai"]["normalised_score"] == 0.5
    assert agg["per_domain"]["babyai"]["success_rate"] == 0.75
    assert agg["per_domain"]["classic"] == {"tasks": 1, "normalised_score": 0.8, "success_rate": None, "tasks_above_50": 1}
    assert agg["overall"] == pytest.approx(0.65)  # mean of the domain means, not of the 3 tasks (0.6)
    assert agg["failed"] == [{"task": "d", "error": "RuntimeError: boom"}]
    f5 = ev.figure5_data(rows, thresholds=[0, 50, 80, 100, 120])
    assert f5["counts"] == {"babyai": [2, 1, 1, 1, 0], "classic": [1, 1, 1, 0, 0]}
    assert f5["total"] == [3, 2, 2, 1, 0]


def test_task_owners():
    assert gl.domains.owner("CartPole-v1") == "classic"
    assert gl.domains.owner("BabyAI-GoToRedBall-v0") == "babyai"
    assert gl.domains.owner("classic/Pendulum-v1") == "classic"
    with pytest.raises(ValueError, match="unknown task 'NotATask-v0'"):
        gl.domains.owner("NotATask-v0")
    assert ev.control_task("classic/Pendulum-v1") == ("classic", "Pendulum-v1")
    assert ev.control_task("ALE/Pong-v5") == ("atari", "ALE/Pong-v5")  # a gymnasium id with a "/" stays whole
    with pytest.raises(ValueError, match="has no environment"):
        ev.control_task("stdlib_text")


@pytest.fixture(scope="module")
def random_agent():
    model = gl.model.Gato(gl.model.ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))
    return ga.GatoAgent(model, gl.testing.tiny_tokenizer(), ga.AgentConfig(prompt="start", temperature=1.0))


def test_evaluate_writes_results_and_survives_a_crashing_env(random_agent, tmp_path, monkeypatch):
    from gatolab.domains.classic import ClassicDomain

    real_make = ClassicDomain.make

    def make(self, task, seed=0, render=False):
        if task == "Acrobot-v1":
            raise RuntimeError("simulated render crash")
        return real_make(self, task, seed=seed, render=render)

    monkeypatch.setattr(ClassicDomain, "make", make)
    res = ev.evaluate(random_agent, ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"], episodes=3, max_steps=40,
                      out=tmp_path, progress=False)
    rows = {r["task"]: r for r in res.rows}
    assert rows["Acrobot-v1"]["error"] == "RuntimeError: simulated render crash"
    assert rows["Acrobot-v1"]["normalised_score"] is None
    cp, mc = rows["CartPole-v1"], rows["MountainCar-v0"]
    refs = ev.load_references()
    assert cp["reference"] == "data_cards" and cp["expert_return"] == refs["CartPole-v1"]["expert_return"]
    assert cp["normalised_score"] == pytest.approx(ev.normalised_score(cp["mean_return"], cp["expert_return"], cp["random_return"]))
    assert 1 <= cp["mean_return"] <= 40  # capped at 40 steps, +1 per step
    assert mc["mean_return"] == -40.0 and mc["success_rate"] == 0.0  # a random policy never reaches the flag in 40 steps
    assert cp["latency_ms_median"] > 0 and cp["prompt_tokens"] > 0
    assert res.aggregate["failed"] == [{"task": "Acrobot-v1", "error": "RuntimeError: simulated render crash"}]
    assert set(res.aggregate["per_domain"]) == {"classic"} and res.aggregate["per_domain"]["classic"]["tasks"] == 2
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["agent"]["prompt"] == "start" and saved["config"]["episodes"] == 3
    with open(tmp_path / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["task"] for r in table] == ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"]
    assert ev.load_results(tmp_path).aggregate == res.aggregate


def test_batched_evaluate_equals_one_env_at_a_time(random_agent):
    """Greedy: the rollouts of a task played all at once, 2 at a time (rows refilled) and one
    after another give the same return per rollout (rollout i resets with seed + i)."""
    greedy = ga.GatoAgent(random_agent.model, random_agent.tokenizer, ga.AgentConfig(prompt="start", temperature=0.0),
                          random_agent.prompts)
    tasks = ["CartPole-v1", "Pendulum-v1"]  # a discrete and a continuous action
    runs = {b: ev.evaluate(greedy, tasks, episodes=3, max_steps=12, batch=b, progress=False) for b in (None, 2, 1)}
    for b, res in runs.items():
        assert [r["batch"] for r in res.rows] == [b or 3] * 2 and not res.aggregate["failed"]
    for i in range(2):
        assert runs[None].rows[i]["returns"] == runs[2].rows[i]["returns"] == runs[1].rows[i]["returns"], tasks[i]
    assert len(set(runs[None].rows[1]["returns"])) == 3  # Pendulum: three different episodes


def test_unknown_task_fails_before_rollouts(random_agent):
    with pytest.raises(ValueError, match="unknown task"):
        ev.evaluate(random_agent, ["CartPole-v1", "Nope-v9"], episodes=1, progress=False)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        ev.evaluate(random_agent, ["CartPole-v1"], episodes=0, progress=False)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        ev.evaluate(random_agent, ["CartPole-v1"], episodes=2, batch=0, progress=False)


def test_language_eval_of_an_untrained_model_is_near_uniform(random_agent):
    res = ev.evaluate_language(random_agent.model, random_agent.tokenizer, "text", episodes=2)
    assert res["tokens"] > 50
    assert abs(res["nll"] - math.log(33_027)) < 1.0  # freshly initialised: close to uniform over the vocabulary
    assert 0.0 <= res["next_token_accuracy"] < 0.05
    with pytest.raises(ValueError, match="control domain"):
        ev.evaluate_language(random_agent.model, random_agent.tokenizer, "classic")


def test_cli_eval_missing_checkpoint(tmp_path, capsys):
    from gatolab import cli

    rc = cli.main(["eval", "--checkpoint", str(tmp_path / "missing"), "--tasks", "CartPole-v1", "--episodes", "1"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_eval_from_checkpoint(tmp_path, capsys):
    """A real (2-step) checkpoint rebuilt from its path alone, evaluated through `gatolab eval`."""
    from gatolab import cli

    gl.train.train("tiny", out=tmp_path / "run", progress=False,
                   overrides={"steps": 2, "data.source": "synthetic", "batch_size": 2, "seq_len": 64, "max_patches": 32})
    rc = cli.main(["eval", "--checkpoint", str(tmp_path / "run"), "--tasks", "CartPole-v1", "--episodes", "2",
                   "--max-steps", "10", "--temperature", "0", "--out", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    assert rc == 0, out
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["config"]["checkpoint"]["step"] == 2 and saved["config"]["agent"]["temperature"] == 0.0
    assert "classic/CartPole-v1: return" in out and "% of expert" in out
