"""Generation: deterministic, parallel, and an interrupted run resumes without duplicates or losses."""

import numpy as np
import pytest

from gatolab import cli
from gatolab.data import generation as gen
from gatolab.data import storage as st
from gatolab.testing import ToyDomain


def _seeds(ds):
    out = {}
    for ep in ds:
        out.setdefault(ep.task, []).append(ep.metadata["seed"])
    return out


def _all(ds):
    return [(ep.task, ep.metadata["seed"], ep.observations["state"].tobytes(), ep.actions["move"].tobytes()) for ep in ds]


def test_generate_writes_every_episode_once(tmp_path):
    m = gen.generate(ToyDomain(), tmp_path, episodes=7, shard_size=3, seed=100, progress=False)
    assert m["num_episodes"] == 14 and m["tasks"] == ["reach-long", "reach-short"]
    assert len(m["shards"]) == 6 and m["generation"]["seed"] == 100 and "minari" in m["versions"]
    ds = st.EpisodeDataset(tmp_path / "toy")
    assert _seeds(ds) == {t: list(range(100, 107)) for t in ("reach-long", "reach-short")}
    assert all(ep.metadata["success"] for ep in ds)  # the toy expert always reaches the goal


def test_interrupted_generation_resumes(tmp_path):
    ref = tmp_path / "ref"
    gen.generate(ToyDomain(), ref, episodes=8, shard_size=3, progress=False)
    out = tmp_path / "run"
    # Crash in the middle of the second task's second shard (seed 4): first task done, one shard of the second.
    with pytest.raises(RuntimeError, match="simulated crash"):
        gen.generate(ToyDomain(fail_on=("reach-short", 4)), out, episodes=8, shard_size=3, tasks=["reach-long", "reach-short"],
                     progress=False)
    done_before = st.list_shards(out / "toy")
    assert [p.relative_to(out / "toy").as_posix() for p in done_before] == [
        "reach-long/shard-00000", "reach-long/shard-00001", "reach-long/shard-00002", "reach-short/shard-00000"]
    mtimes = {p: (p / "main_data.hdf5").stat().st_mtime_ns for p in done_before}
    (out / "toy" / "reach-short" / ".shard-00001.leftover.tmp").mkdir()  # a half-written shard from the crash
    m = gen.generate(ToyDomain(), out, episodes=8, shard_size=3, progress=False)
    assert not list((out / "toy").glob("*/.shard-*.tmp"))
    assert {p: (p / "main_data.hdf5").stat().st_mtime_ns for p in done_before} == mtimes  # finished shards kept as they were
    assert m["num_episodes"] == 16
    assert _all(st.EpisodeDataset(out / "toy")) == _all(st.EpisodeDataset(ref / "toy"))  # same as an uninterrupted run


def test_extending_a_run_adds_shards(tmp_path):
    gen.generate(ToyDomain(), tmp_path, episodes=6, shard_size=3, progress=False)
    first = st.list_shards(tmp_path / "toy")
    m = gen.generate(ToyDomain(), tmp_path, episodes=9, shard_size=3, progress=False)
    assert m["num_episodes"] == 18 and set(first) < set(st.list_shards(tmp_path / "toy"))
    assert _seeds(st.EpisodeDataset(tmp_path / "toy"))["reach-long"] == list(range(9))
    # A count that would change an existing shard (the last one would grow) is refused, not mixed.
    gen.generate(ToyDomain(), tmp_path, episodes=10, shard_size=3, progress=False)  # shard 3 holds episode 9 only
    with pytest.raises(ValueError, match="requested_episodes"):
        gen.generate(ToyDomain(), tmp_path, episodes=11, shard_size=3, progress=False)


def test_resume_refuses_a_conflicting_run(tmp_path):
    gen.generate(ToyDomain(), tmp_path, episodes=4, shard_size=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="different parameters"):
        gen.generate(ToyDomain(), tmp_path, episodes=4, shard_size=2, seed=1, progress=False)


def test_workers_produce_the_same_data(tmp_path):
    gen.generate(ToyDomain(), tmp_path / "one", episodes=4, shard_size=2, workers=1, progress=False)
    gen.generate("toy", tmp_path / "two", episodes=4, shard_size=2, workers=2, progress=False)
    assert _all(st.EpisodeDataset(tmp_path / "one" / "toy")) == _all(st.EpisodeDataset(tmp_path / "two" / "toy"))


def test_shards_as_submitit_jobs_give_the_same_data(tmp_path):
    """`launcher="slurm"` runs one submitit job per shard; the local executor runs the same path here."""
    gen.generate(ToyDomain(), tmp_path / "one", episodes=4, shard_size=2, progress=False)
    gen.generate(ToyDomain(), tmp_path / "jobs", episodes=4, shard_size=2, launcher="submitit-local", progress=False)
    assert _all(st.EpisodeDataset(tmp_path / "one" / "toy")) == _all(st.EpisodeDataset(tmp_path / "jobs" / "toy"))
    assert len(list((tmp_path / "jobs" / ".submitit").glob("*_result.pkl"))) == 4  # 2 tasks x 2 shards, one job each


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        gen.generate(ToyDomain(), tmp_path, tasks=["nope"], episodes=2, progress=False)
    with pytest.raises(ValueError, match="unknown domain 'nope'"):
        gen.generate("nope", tmp_path, episodes=2, progress=False)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        gen.generate(ToyDomain(), tmp_path, episodes=0, progress=False)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        gen.generate(ToyDomain(), tmp_path, episodes=1, workers=0, progress=False)


def test_cli_generate_and_verify(tmp_path, capsys):
    assert cli.main(["data", "generate", "--domain", "toy", "--tasks", "reach-short", "--episodes", "3",
                     "--shard-size", "2", "--out", str(tmp_path)]) == 0
    assert "1 tasks, 3 episodes" in capsys.readouterr().out
    assert cli.main(["data", "verify", "--data", str(tmp_path / "toy")]) == 0
    assert "2 shards OK" in capsys.readouterr().out
    shard = st.list_shards(tmp_path / "toy")[0] / "main_data.hdf5"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 1
    shard.write_bytes(bytes(data))
    assert cli.main(["data", "verify", "--data", str(tmp_path / "toy")]) == 2
    assert "corrupt shard" in capsys.readouterr().err
    assert cli.main(["data", "generate", "--domain", "nope", "--episodes", "1", "--out", str(tmp_path)]) == 2


def test_real_domain_classic(tmp_path):
    m = gen.generate("classic", tmp_path, tasks=["CartPole-v1"], episodes=2, progress=False)
    ds = st.EpisodeDataset(tmp_path / "classic")
    ep = ds[0]
    assert m["kind"] == "control" and ep.observations["state"].shape == (len(ep), 4)
    assert np.isclose(ds.episode_return[0], ep.total_return) and ep.metadata["seed"] == 0
