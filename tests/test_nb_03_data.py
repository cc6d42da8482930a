"""Runs notebooks/03_data in smoke mode with papermill and checks its metrics."""

import pytest

from gatolab import notebooks


@pytest.mark.notebook
def test_data_notebook(tmp_path):
    res = notebooks.run("03_data", tmp_path, {"SMOKE": True}, timeout=900)  # per cell: a hang fails
    m = res["metrics"]
    ds = m["datasets"]
    assert set(ds) == {"classic", "babyai", "metaworld", "sokoban", "minatar", "atari", "procgen", "dmc", "text",
                       "vision_language"}
    assert ds["classic"] == {**ds["classic"], "tasks": 2, "episodes": 6}
    assert all(d["episodes"] > 0 and d["tokens"] >= d["timesteps"] for d in ds.values())
    # Experts beat the random policy where the gap is unambiguous.
    assert m["expert_return_mean"]["CartPole-v1"] == 500 and m["random_return_mean"]["CartPole-v1"] < 100
    assert m["expert_return_mean"]["BabyAI-GoToRedBallGrey-v0"] > m["random_return_mean"]["BabyAI-GoToRedBallGrey-v0"]
    assert m["expert_return_mean"]["Sokoban-7x7-1box"] > m["random_return_mean"]["Sokoban-7x7-1box"]
    assert m["expert_return_mean"]["cartpole-swingup"] > 5 * m["random_return_mean"]["cartpole-swingup"]
    assert m["video_frames"]["babyai"] >= 2 and m["video_frames"]["metaworld"] >= 2
    # The second wave: every showcased expert played (frames = steps + 1) and the RL experts' measured
    # returns beat random play.
    assert set(m["showcase"]) == {"Sokoban-7x7-2box", "Breakout-MinAtar", "ALE/Breakout-v5", "starpilot", "cartpole-swingup"}
    assert all(v["frames"] == v["steps"] + 1 for v in m["showcase"].values())
    assert m["showcase"]["Sokoban-7x7-2box"]["return"] > 10  # solved: +10 on completion, +1 per box
    assert m["experts"] and all(e["expert_return_mean"] > e["random_return_mean"] for e in m["experts"].values())
    assert m["batch_shape"] == [8, 256] and m["batch_loss_on_prompt"] == 0 and m["batch_valid_tokens"] > 0
    emp = m["mixture"]
    for name, p in emp["dataset_probability"].items():  # 4000 draws: 4 sigma is at most 0.032
        assert abs(emp["dataset_fraction"][name] - p) < 0.032, name
    assert emp["prompt_eligible"] > 1000 and abs(emp["prompt_fraction"] - 0.25) < 4 * (0.1875 / emp["prompt_eligible"]) ** 0.5
    assert m["tokens_per_s"] > 0
    html = open(res["html"]).read()
    assert html.count("Plotly.newPlot") >= 5 and html.count("<video") >= 7
