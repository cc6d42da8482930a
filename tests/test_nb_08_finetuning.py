"""Runs notebooks/08_finetuning in smoke mode: held-out cartpole-swingup, pretraining on all data vs BC from
scratch vs 1-NN retrieval, K = 1 and 2 episodes, 2 seeds; asserts the curves and the provenance checks."""

import pytest

from gatolab import notebooks
from gatolab.evaluate.control import load_references
from gatolab.viz import experiments as viz_experiments


@pytest.mark.notebook
@pytest.mark.slow
def test_finetuning_notebook(tmp_path):
    res = notebooks.run("08_finetuning", tmp_path, {"SMOKE": True}, timeout=1200)
    m = res["metrics"]["cartpole-swingup"]
    assert m["task"] == "cartpole-swingup" and m["episodes"] == [1, 2]
    assert m["cells"] == m["done"] == 2 * (1 + 2 + 2 + 2)  # seeds x (pretrain, all_k*, scratch_k*, retrieval_k*)
    # Figure 10: one point per variant x K, each inside its interval, over both seeds.
    assert set(m["lines"]) == {"all", "scratch", "retrieval"}
    for pts in m["lines"].values():
        assert [p["episodes"] for p in pts] == [1, 2]
        for p in pts:
            assert p["ci"][0] <= p["value"] <= p["ci"][1] and p["seeds"] == 2
    assert {v: [p["episodes"] for p in pts] for v, pts in m["vs_scratch"].items()} == {"all": [1, 2], "retrieval": [1, 2]}
    # Each fine-tuned run started from its pretraining run's final parameters (its seed's).
    assert len(m["provenance"]) == 2 * 2 and all(p["match"] for p in m["provenance"])
    assert {(p["arm"], p["source_arm"]) for p in m["provenance"]} == {("all_k1", "pre_all"), ("all_k2", "pre_all")}
    # Retrieval on a stored observation plays the stored action.
    assert m["retrieval_replay"]["checked"] == 20 and m["retrieval_replay"]["exact"] == 1.0
    assert m["training"]["pre_all"]["steps"] == 3 and m["training"]["all_k1"]["steps"] == 2
    assert "plotly" in open(res["html"]).read()


def test_figure10_levels():
    # Meta-World plots the success rate beside the data card's expert success rate; DM Control plots
    # the normalised score beside expert (1) and random (0).
    assert load_references()["assembly-v3"]["expert_success_rate"] == 1.0  # data_cards/metaworld.json: 5 of 5
    point = {"episodes": 1, "value": 0.1, "ci": [0.0, 0.2], "success": {"value": 0.5, "ci": [0.4, 0.6]}, "seeds": 2}
    curve = {"task": "assembly-v3", "metric": "success", "lines": {"all": [point]}, "expert_success_rate": 1.0}
    fig = viz_experiments.finetuning_curve(curve)
    assert list(fig.data[0].y) == [0.5] and [s.y0 for s in fig.layout.shapes] == [1.0]
    fig = viz_experiments.finetuning_curve({**curve, "metric": "normalised_score"})
    assert list(fig.data[0].y) == [0.1] and sorted(s.y0 for s in fig.layout.shapes) == [0.0, 1.0]
