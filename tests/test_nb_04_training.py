"""Runs notebooks/04_training in smoke mode: real expert data, a tiny Gato, loss must fall."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
@pytest.mark.slow
def test_training_notebook(tmp_path):
    m = notebooks.run("04_training", tmp_path, {"SMOKE": True}, timeout=900)["metrics"]  # per cell: a hang fails
    assert m["platform"] == "cpu" and m["where"] == "local CPU"
    assert m["steps"] == 30 and m["checkpoints"] == [10, 20, 30]
    assert m["loss_fell"] and m["last_loss"] < m["first_loss"] - 1.0, m
    assert m["live_points"] == 30 and m["tokens_per_s"] > 0 and 0 < m["mfu"] < 1
