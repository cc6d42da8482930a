"""Runs notebooks/02_architecture in smoke mode with papermill and checks its metrics."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
def test_architecture_notebook(tmp_path):
    res = notebooks.run("02_architecture", tmp_path, {"SMOKE": True}, timeout=900)  # per cell: a hang fails
    m = res["metrics"]
    assert m["preset"] == "tiny" and m["embed_dim"] == 64
    # 48x64 image -> 12 patches; text, 12 patches, 9 grid, 5 continuous, '|', 4 action tokens
    assert m["num_patches"] == 12 and m["timestep_tokens"] == 44
    shapes = {s["stage"]: s["shape"] for s in m["stages"]}
    assert shapes["tokens (ids)"] == [1, 44]
    assert shapes["patch embeddings (ResNet + row/col)"] == [1, 12, 64]
    assert shapes["embeddings"] == shapes["block 0"] == shapes["block 1"] == [1, 44, 64]
    assert shapes["logits"] == [1, 44, m["padded_vocab"]] and m["padded_vocab"] % 128 == 0
    assert m["attention_above_diagonal"] == 0.0 and m["attention_rows_sum_to_one"]
    assert m["eval_positions_row"][:4] == [21] * 4 and m["eval_positions_row"][-1] == 106
    assert m["train_positions_inside_interval"]
    for name, p in m["presets"].items():
        assert abs(p["gap_binary"]) < 0.05, name
    assert 9.0 < m["initial_loss"] < 12.0  # ~log(33027) = 10.4 at initialisation
    assert m["loss_targets"]["targets/continuous"] == 3 and m["loss_targets"]["targets/discrete"] == 1
    assert m["action_ids_legal"]
    # The Haiku twin (gl.model.haiku) on the same timestep: the same logits (bit for bit on this CPU),
    # and every parameter tensor mapped: 5 tables, 3 convs + 3 GroupNorms + the projection (2 each),
    # 16 per block, the final LayerNorm's 2.
    assert m["haiku_max_logit_diff"] <= 1e-5
    assert m["haiku_parameter_tensors"] == 5 + 14 + 16 * 2 + 2
    html = open(res["html"]).read()
    assert html.count("Plotly.newPlot") >= 5  # every figure is in the offline HTML
