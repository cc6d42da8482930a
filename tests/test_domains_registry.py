"""A domain of one's own, defined entirely in this file, registered, and carried through every
stage with no edit anywhere else: generate -> verify -> card -> mixture -> 2 training steps -> evaluate.

It is the README's "Adding a domain" walk-through, run as a test.
"""

import json

import numpy as np
import pytest

import gatolab as gl
from gatolab import cli


# --- the domain: walk along a line of cells to the goal --------------------------------------
class LineEnv(gl.domains.TaskEnv):
    """Cells 0..N-1; the agent starts at one end's half, the goal sits at a seeded cell.

    Observation "cells": DISCRETE (N,) with 0 empty, 1 agent, 2 goal. Action "move": 0 left, 1 right.
    Reward -0.05 per step, +1 on reaching the goal (terminated, success).
    """

    def __init__(self, task: str, spec: gl.EnvSpec):
        self.task, self.spec = task, spec
        self.n = spec.observation["cells"].shape[0]
        self.max_steps = 2 * self.n
        self.agent = self.goal = 0

    def _obs(self):
        cells = np.zeros(self.n, np.int64)
        cells[self.goal], cells[self.agent] = 2, 1
        return {"cells": cells}

    def reset(self, seed=None):
        rng = np.random.default_rng(seed)
        self.goal = int(rng.integers(self.n))
        self.agent = int(rng.integers(self.n - 1))
        self.agent += self.agent >= self.goal  # never on the goal
        return self._obs()

    def step(self, action):
        self.agent = int(np.clip(self.agent + (1 if int(action["move"]) else -1), 0, self.n - 1))
        done = self.agent == self.goal
        return self._obs(), (1.0 if done else -0.05), done, False, {"success": done}


class TowardsGoal:
    """The expert: step towards the goal cell."""

    def __call__(self, env, obs):
        cells = obs["cells"]
        return {"move": np.int64(int(np.argmax(cells == 2) > np.argmax(cells == 1)))}


class LineDomain(gl.domains.Domain):
    name = "line"
    kind = "control"

    def tasks(self):
        return ["line-5", "line-9"]

    def spec(self, task):
        self.check_task(task)
        n = int(task.split("-")[1])
        return gl.EnvSpec(task, {"cells": gl.FieldSpec.discrete(3, (n,))}, {"move": gl.FieldSpec.discrete(2)})

    def make(self, task, seed=0, render=False):
        return LineEnv(task, self.spec(task))

    def expert(self, task):
        self.check_task(task)
        return TowardsGoal()


ENTRY = gl.domains.DomainEntry(
    name="line",
    factory=LineDomain,
    weights={"line": 3.0},
    notes={"what": "A line of cells with a goal (a test's own domain).", "expert": "Steps towards the goal.",
           "licence": "Apache-2.0 (gatolab).", "use": "The registry's end-to-end test.", "limits": "Not a benchmark."},
    owns=lambda task: task.startswith("line-"),
)


# --- the walk-through ------------------------------------------------------------------------
def test_own_domain_end_to_end(tmp_path):
    with gl.domains.registered(ENTRY):
        assert "line" in gl.domains.names() and gl.domains.owner("line-9") == "line"
        assert "line" in gl.domains.control_names() and gl.domains.default_weights()["line"] == 3.0

        # generate (two worker processes: the domain travels to them by pickle) and verify
        manifest = gl.data.generate("line", tmp_path / "data", episodes=6, shard_size=3, workers=2, progress=False)
        assert manifest["domain"] == "line" and manifest["num_episodes"] == 12
        data = tmp_path / "data" / "line"
        assert cli.main(["data", "verify", "--data", str(data)]) == 0
        episodes = list(gl.data.storage.EpisodeDataset(data))
        assert all(ep.metadata["success"] and ep.metadata["expert"] == "TowardsGoal" for ep in episodes)

        # card: the registry's notes and weight, the random policy read off the spec
        card = gl.data.write_card(data, tmp_path / "cards", random_episodes=4, tokenizer=gl.testing.tiny_tokenizer(),
                                  progress=False)
        md = (tmp_path / "cards" / "line.md").read_text()
        assert ENTRY.notes["what"] in md and card["table1_weight_percent"] == 3.0
        for row in card["tasks"].values():
            assert row["expert_success_rate"] == 1.0 and row["random_return"]["n"] == 4
            assert row["expert_return"]["mean"] > row["random_return"]["mean"]
        returns = json.loads((tmp_path / "cards" / "returns.json").read_text())
        assert set(returns) == {"line-5", "line-9"}

        # mixture: the default weight comes from the entry
        mix = gl.data.Mixture(gl.data.MixtureConfig(sequence_length=64), [data], gl.testing.tiny_tokenizer())
        assert mix.dataset_names == ["line"] and mix.weights.tolist() == [1.0]

        # two training steps of the tiny model on it
        run = tmp_path / "run"
        res = gl.train.train("tiny", out=run, data=[str(data)], progress=False,
                             overrides={"steps": 2, "batch_size": 2, "seq_len": 64, "log_every": 1, "ckpt_every": 2})
        assert res["step"] == 2 and np.isfinite(res["last"]["loss"])

        # evaluate: the checkpoint plays the domain's own environment, scored against the card
        results = gl.evaluate.evaluate(run, ["line-5"], episodes=2, returns=tmp_path / "cards" / "returns.json",
                                       out=tmp_path / "eval", progress=False)
        (row,) = results.rows
        assert row["error"] is None and row["domain"] == "line" and row["reference"] == "data_cards"
        assert row["expert_return"] == pytest.approx(returns["line-5"]["expert_return"])
        assert results.aggregate["per_domain"]["line"]["tasks"] == 1
    assert "line" not in gl.domains.names()  # registered for the block only


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown domain 'babyia'; did you mean 'babyai'"):
        gl.domains.get("babyia")
    with pytest.raises(ValueError, match="already registered"):
        gl.domains.register(gl.domains.DomainEntry("classic", LineDomain))
    with pytest.raises(ValueError, match="unknown notes key 'licnce'"):
        gl.domains.DomainEntry("x", LineDomain, notes={"licnce": "MIT"})
    with pytest.raises(ValueError, match="no domain has it"):
        gl.domains.owner("line-5")  # not registered outside the test above
    with pytest.raises(ValueError, match="has no expert trainer"):
        gl.domains.entry("classic").trainer()
