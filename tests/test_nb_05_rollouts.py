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
    # Pause / Step (mode 2): the stepper on the agent's context at the paused step shows the
    # distribution the agent sampled from (one forward pass with the hooks vs the cached decoder).
    assert m["stepper_paused_at"] == 2 and m["stepper_context_tokens"] > 3 * 6
    assert m["stepper_chosen_ids"] == m["agent_ids"]
    assert m["stepper_vs_agent_max_diff"] < 1e-4 and m["stepper_first_dist_max_diff"] < 1e-4, (m["stepper_probs"], m["agent_probs"])
    assert m["stepper_attention_rows_sum_to_one"] and m["stepper_panels"] == 4  # embedding, attention, residual, action
    assert m["widget_length"] >= 3  # it played on after the pause at timestep 2
    assert m["eval_score"] is not None and m["eval_return"] >= 1
    html = open(res["html"]).read()
    assert html.count("<video") >= 2  # the headless video and the widget's, visible offline
