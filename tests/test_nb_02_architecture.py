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
    # The stepper (mode 1) on the timestep with the sampled action: its numbers are the model's records.
    assert m["stepper_tokens"] == 44 and m["stepper_attention_rows_sum_to_one"]
    assert m["stepper_attention_matches_layer_weights"] < 1e-6  # the same records (padded to 64 tokens there)
    assert len(m["stepper_residual_norms"]) == 3 and all(n > 0 for n in m["stepper_residual_norms"])
    # Its distribution over the legal ids is the decoder's, token for token (cached decode vs one forward pass).
    assert m["stepper_vs_decoder_max_diff"] < 1e-4, (m["stepper_action_probs"], m["decoder_action_probs"])
    assert m["stepper_action_values"] == pytest.approx(m["decoded_action_values"], abs=1e-6)
    assert m["stepper_action_dists_sum_to_one"]
    assert m["stepper_image_bins"] == [106, 112]  # the last patch of a 3 x 4 grid: bottom row, last column
    e = m["stepper_embedding_norms"]
    assert e["row_position"] > 0 and e["col_position"] > 0 and e["action_position"] == 0 and e["total"] > 0
    # The Haiku twin (gl.model.haiku) on the same timestep: the same logits (bit for bit on this CPU),
    # and every parameter tensor mapped: 5 tables, 3 convs + 3 GroupNorms + the projection (2 each),
    # 16 per block, the final LayerNorm's 2.
    assert m["haiku_max_logit_diff"] <= 1e-5
    assert m["haiku_parameter_tensors"] == 5 + 14 + 16 * 2 + 2
    html = open(res["html"]).read()
    assert html.count("Plotly.newPlot") >= 5  # every figure is in the offline HTML
