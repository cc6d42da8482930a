"""The main job in smoke mode on a reduced mixture: data -> time-bounded training -> evaluation
-> the executed report notebook 06 with its HTML export (videos embedded)."""

import json

import pytest

from gatolab import demo


def test_demo_bad_input(tmp_path):
    with pytest.raises(ValueError, match="train_minutes must be > 0"):
        demo.run(tmp_path, train_minutes=0)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        demo.run(tmp_path, episodes=0)
    with pytest.raises(ValueError, match="unknown domain 'atari'"):
        demo.run(tmp_path, tasks={"atari": None})


@pytest.mark.slow
@pytest.mark.notebook
def test_demo_smoke_end_to_end(tmp_path):
    tasks = {"classic": ["CartPole-v1"], "text": None, "vision_language": ["shapes_captions"]}
    s = demo.run(tmp_path, train_minutes=0.05, episodes=2, workers=1, smoke=True, tasks=tasks)
    assert set(s["timings_s"]) == {"1/4 data", "2/4 train", "3/4 evaluate", "4/4 report"}
    assert 1 <= s["train"]["steps"] <= s["train"]["planned_steps"] and s["train"]["seconds_per_step"] > 0
    agg = s["aggregate"]
    assert set(agg["per_domain"]) == {"classic"} and agg["per_domain"]["classic"]["tasks"] == 1 and not agg["failed"]
    assert [(x["domain"], x["task"]) for x in s["language"]] == [("text", "stdlib_text"), ("vision_language", "shapes_captions")]
    assert all(x["tokens"] > 0 and x["perplexity"] > 1 for x in s["language"])
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["report"]["html"].endswith("06_report.html")
    m = json.loads((tmp_path / "metrics.json").read_text())  # written by the report notebook
    assert m["per_domain"] == {"classic": pytest.approx(agg["per_domain"]["classic"]["normalised_score"])}
    assert set(m["videos"]) == {"classic"} and 1 <= m["videos"]["classic"] <= 40  # VIDEO_STEPS = 40 in smoke
    html = (tmp_path / "06_report.html").read_text()
    assert html.count("<video") >= 1 and "Figure 5" in html and "plotly" in html
