"""Runs notebooks/07_ablations in smoke mode: a ready ablation on CartPole, 3 arms x 2 seeds, and its metrics."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
@pytest.mark.slow
def test_ablations_notebook(tmp_path):
    res = notebooks.run("07_ablations", tmp_path, {"SMOKE": True}, timeout=900)
    m = res["metrics"]
    assert m["ablation"] == "prompt_at_eval" and m["baseline"] == "start" and m["arms"] == ["end", "none", "start"]
    assert m["cells"] == m["done"] == 6 and m["training_runs"] == 2  # evaluation-only arms share one run per seed
    assert m["columns"] == ["arm", "seed", "task", "domain", "episode", "return", "normalised_score", "success"]
    assert m["rows"] == 3 * 2 * 1 * 2  # arms x seeds x tasks x episodes
    for v in [*m["gato"].values(), *m["differences"].values()]:
        assert v["ci"][0] <= v["value"] <= v["ci"][1]
    assert set(m["differences"]) == {"end", "none"} and len(m["sentences"]) == 2
    assert m["profile_points"] == 31
    for arm in m["arms"]:  # what each arm's training processed (evaluation-only arms: the shared runs)
        t = m["training"][arm]
        assert t["cells"] == 2 and t["steps"] > 0 and t["tokens"] > t["timesteps"] > 0 and t["timesteps_per_s"] > 0
    html = open(res["html"]).read()
    assert "plotly" in html and "Difference from the baseline" in html
