"""Runs notebooks/09_scaling in smoke mode: three sizes x two checkpoints x two seeds on CartPole; asserts Figure 8's points."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
@pytest.mark.slow
def test_scaling_notebook(tmp_path):
    res = notebooks.run("09_scaling", tmp_path, {"SMOKE": True}, timeout=1200)
    m = res["metrics"]
    assert m["sizes"] == ["s79m", "s364m", "s1_18b"]
    totals = [m["parameters"][s]["total"] for s in m["sizes"]]
    blocks = [m["parameters"][s]["blocks"] for s in m["sizes"]]
    assert totals == sorted(totals) and blocks[2] > 15 * blocks[0]  # Table 5's ratios, scaled down
    assert m["cells"] == m["done"] == 3 * 2 * 2 and m["training_runs"] == 3 * 2  # checkpoint arms share their run
    tokens = {}
    for size, pts in m["points"].items():  # one point per size x checkpoint, the checkpoint that was asked for
        assert [p["step"] for p in pts] == [2, 4]
        for p in pts:
            assert p["evaluated_steps"] == [p["step"]] and p["tokens"] > 0
            assert p["score"]["ci"][0] <= p["score"]["value"] <= p["score"]["ci"][1]
            assert set(p["per_domain"]) == {"classic"}
        tokens[size] = [p["tokens"] for p in pts]
        assert tokens[size][1] > tokens[size][0]
    assert len({tuple(t) for t in tokens.values()}) == 1  # every size saw the same tokens
    assert m["largest_minus_smallest"] is not None
    assert "plotly" in open(res["html"]).read()
