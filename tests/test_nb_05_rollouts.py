"""Runs notebooks/05_rollouts in smoke mode: a briefly trained checkpoint acts in CartPole."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
@pytest.mark.slow
def test_rollouts_notebook(tmp_path):
    res = notebooks.run("05_rollouts", tmp_path, {"SMOKE": True}, timeout=900)  # per cell: a hang fails
    m = res["metrics"]
    assert m["checkpoint_step"] == 20
    assert 1 <= m["trace_length"] <= 40 and m["trace_return"] == m["trace_length"]  # CartPole: +1 per step
    assert m["frames"][0] == m["trace_length"] + 1 and m["frames"][3] == 3
    assert m["probs_in_range"] and m["latency_ms"] > 0 and m["prompt_tokens"] > 0
    assert 1 <= m["widget_length"] <= 40 and m["widget_status"].startswith("done:")
    assert m["widget_videos"] == 1  # the widget's video output holds one inline video
    assert m["eval_score"] is not None and m["eval_return"] >= 1
    html = open(res["html"]).read()
    assert html.count("<video") >= 2  # the headless video and the widget's, visible offline
