"""Runs notebooks/01_tokenization in smoke mode with papermill and checks its metrics."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
def test_tokenization_notebook(tmp_path):
    res = notebooks.run("01_tokenization", tmp_path, {"SMOKE": True}, timeout=900)  # per cell: a hang fails
    m = res["metrics"]
    assert m["vocab_size"] == 33027 and m["text_vocab"] == 512
    c = m["timestep_counts"]
    # 48x72 image -> 3x5 patches (padded); 3x3 grid; 4 joints + gripper; '|'; 1 button + 3 torques
    assert c["image"] == 15 and c["discrete"] == 9 + 1 and c["continuous"] == 5 + 3 and c["separator"] == 1
    assert c["action"] == 4 and c["target"] == c["text"] + c["action"]
    assert m["max_roundtrip_error_linear"] <= 1 / 1024
    assert m["roundtrip_bound_holds"] is True and m["max_relative_error_mu_law_above_1"] < 0.0101
    assert m["windows"] >= 2 and m["max_window_tokens"] <= 1024
    html = open(res["html"]).read()
    assert html.count("Plotly.newPlot") >= 5  # every figure is in the offline HTML
