"""Data cards are measured from the data, and the committed cards are what the code produces."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import gatolab as gl
from gatolab import cli, testing
from gatolab.data import cards, mixture
from gatolab.data import generation as gen
from gatolab.data import storage as st
from gatolab.testing import ToyDomain

REPO_CARDS = Path(__file__).resolve().parent.parent / "data_cards"


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    gen.generate(ToyDomain(), root, episodes=6, shard_size=4, progress=False)
    return root / "toy"


def test_card_numbers_come_from_the_data(toy_dir, tmp_path):
    tok = testing.tiny_tokenizer()
    card = cards.write_card(toy_dir, tmp_path, random_episodes=4, tokenizer=tok, progress=False)
    ds = st.EpisodeDataset(toy_dir)
    assert card["num_episodes"] == len(ds) == 12 and card["num_tasks"] == 2
    assert card["num_timesteps"] == sum(len(ep) for ep in ds)
    assert card["num_tokens"] == sum(len(tok.tokenize_episode(ep, ds.specs[ep.task])) for ep in ds)
    row = card["tasks"]["reach-long"]
    rets = [ep.total_return for ep in ds if ep.task == "reach-long"]
    assert row["expert_return"]["mean"] == pytest.approx(np.mean(rets)) and row["expert_return"]["std"] == pytest.approx(np.std(rets, ddof=1))
    assert row["windowed_expert_return"] == pytest.approx(mixture.expert_return(rets))
    assert row["expert_success_rate"] == 1.0
    # Random returns are measured by rolling out the random policy with the recorded seeds.
    again = cards.measure_returns(ToyDomain(), "reach-long", 4, row["random_seeds"][0])
    assert row["random_returns"] == pytest.approx(again) and row["random_return"]["n"] == 4
    assert row["random_return"]["mean"] < row["expert_return"]["mean"]
    saved = json.loads((tmp_path / "toy.json").read_text())
    assert saved["tasks"]["reach-long"]["expert_returns"] == pytest.approx(rets)
    md = (tmp_path / "toy.md").read_text()
    assert "| reach-long | 6 |" in md and "Licence" in md and "Intended use" in md
    returns = json.loads((tmp_path / "returns.json").read_text())
    assert returns["reach-short"]["random_return"] == pytest.approx(card["tasks"]["reach-short"]["random_return"]["mean"])
    assert "[toy](toy.md) | 2 | 12 |" in (tmp_path / "README.md").read_text()


def test_card_refuses_a_corrupt_dataset(toy_dir, tmp_path):
    bad = tmp_path / "toy"
    shutil.copytree(toy_dir, bad)
    f = st.list_shards(bad)[0] / "main_data.hdf5"
    data = bytearray(f.read_bytes())
    data[-50] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt shard"):
        cards.write_card(bad, tmp_path / "cards", random_episodes=0, progress=False)
    (tmp_path / "cards").mkdir(exist_ok=True)
    (tmp_path / "cards" / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        cards.write_summary(tmp_path / "cards")


def test_cli_card(toy_dir, tmp_path, capsys):
    assert cli.main(["data", "card", "--data", str(toy_dir), "--random-episodes", "2", "--out", str(tmp_path)]) == 0
    assert "2 tasks, 12 episodes" in capsys.readouterr().out
    serial = json.loads((tmp_path / "toy.json").read_text())
    assert cli.main(["data", "card", "--data", str(toy_dir), "--random-episodes", "2", "--workers", "2", "--out", str(tmp_path)]) == 0
    parallel = json.loads((tmp_path / "toy.json").read_text())
    assert [r["random_returns"] for r in parallel["tasks"].values()] == [r["random_returns"] for r in serial["tasks"].values()]
    assert cli.main(["data", "summary", "--cards", str(tmp_path)]) == 0


def test_committed_cards_cover_the_default_datasets_and_are_regenerable(tmp_path):
    names = set(gl.domains.default_weights())
    for n in names:
        card = json.loads((REPO_CARDS / f"{n}.json").read_text())
        assert (REPO_CARDS / f"{n}.md").exists() and card["num_episodes"] > 0 and card["num_tokens"] > 0
        assert card["default_sample_weight"] == pytest.approx(mixture.default_weight_share()[n])
        for task, row in card["tasks"].items():
            assert row["expert_return"]["n"] == row["episodes"] == len(row["expert_returns"]), (n, task)
            if card["kind"] == "control":
                assert row["random_return"]["n"] == len(row["random_returns"]) > 0, (n, task)
    # The cards' markdown, the summary, README and returns.json are exactly what the code makes from the JSON.
    for p in REPO_CARDS.glob("*.json"):
        shutil.copy(p, tmp_path / p.name)
    cards.write_summary(tmp_path)
    for name in ["README.md", "summary.json", "returns.json"] + [f"{n}.md" for n in names]:
        assert (tmp_path / name).read_text() == (REPO_CARDS / name).read_text(), name
