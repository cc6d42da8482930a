"""Storage: Minari shards round-trip every modality exactly, and damage is reported by path."""

import json
import os

import numpy as np
import pytest

from gatolab import testing
from gatolab.data import storage as st
from gatolab.episode import Episode


def _episodes(n=3, steps=5):
    spec = testing.multimodal_spec()
    return spec, [testing.synthetic_episode(spec, steps + i, seed=i) for i in range(n)]


def _assert_same(a: Episode, b: Episode):
    assert a.task == b.task and len(a) == len(b)
    assert set(a.observations) == set(b.observations) and set(a.actions) == set(b.actions)
    for k, x in a.observations.items():
        y = b.observations[k]
        if isinstance(x, list):
            assert y == x
        else:
            assert y.dtype == x.dtype and y.shape == x.shape and np.array_equal(x, y), k
    for k, x in a.actions.items():
        assert np.array_equal(x, b.actions[k]) and b.actions[k].shape == x.shape, k
    assert np.array_equal(a.rewards, b.rewards)
    assert dict(a.metadata) == dict(b.metadata)


def test_round_trip_every_modality(tmp_path):
    spec, eps = _episodes()
    eps[0] = Episode(eps[0].task, {**eps[0].observations, "mission": ["naïve café ünïcode → ok"] * len(eps[0])},
                     eps[0].actions, eps[0].rewards, {"seed": 7, "success": True, "nested": {"a": [1, 2]}})
    path = tmp_path / "ds" / spec.name / st.shard_name(0)
    side = st.write_shard(path, spec, eps)
    assert side["num_episodes"] == 3 and side["num_timesteps"] == sum(len(e) for e in eps)
    assert side["returns"] == pytest.approx([e.total_return for e in eps])
    spec2, back = st.read_shard(path)
    assert spec2 == spec
    for a, b in zip(eps, back):
        _assert_same(a, b)
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


def test_shards_open_in_minari_without_gatolab(tmp_path):
    import minari

    spec, eps = _episodes(2)
    path = tmp_path / "s"
    st.write_shard(path, spec, eps)
    ds = minari.MinariDataset(str(path))
    assert ds.total_episodes == 2
    ep = next(ds.iterate_episodes())
    assert np.array_equal(ep.observations["camera"], eps[0].observations["camera"])  # raw, not JPEG
    assert np.array_equal(ep.observations["proprio"]["joints"], eps[0].observations["proprio/joints"])
    assert list(ep.observations["mission"]) == eps[0].observations["mission"]
    assert np.array_equal(ep.actions["button"], eps[0].actions["button"])
    assert ep.truncations[-1] and not ep.terminations.any()  # end reason not recorded -> "recording ends here"


def test_manifest_dataset_reader(tmp_path):
    spec, eps = _episodes(5)
    d = tmp_path / "demo"
    st.write_shard(st.shard_dir(d, spec.name, 0), spec, eps[:3])
    st.write_shard(st.shard_dir(d, spec.name, 1), spec, eps[3:])
    m = st.write_manifest(d, {"domain": "demo", "kind": "control"})
    assert m["num_episodes"] == 5 and len(m["shards"]) == 2
    ds = st.EpisodeDataset(d)
    assert len(ds) == 5 and ds.tasks == [spec.name] and ds.verify_all() == 2
    for a, b in zip(eps, ds):
        _assert_same(a, b)
    with pytest.raises(IndexError):
        ds[5]


def _flip_byte(path, offset_from_end=200):
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_shard_is_reported_by_path(tmp_path):
    spec, eps = _episodes(2)
    path = tmp_path / "s"
    st.write_shard(path, spec, eps)
    _flip_byte(path / "main_data.hdf5")
    with pytest.raises(ValueError, match=rf"corrupt shard {path}.*main_data.hdf5"):
        st.read_shard(path)


def test_truncated_and_incomplete_shards(tmp_path):
    spec, eps = _episodes(2)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for p in (a, b, c):
        st.write_shard(p, spec, eps)
    f = a / "main_data.hdf5"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"corrupt shard {a}"):
        st.read_shard(a)
    (b / st.SHARD_SIDECAR).unlink()
    with pytest.raises(ValueError, match=rf"shard {b}.*missing"):
        st.read_shard(b)
    (c / st.SHARD_SIDECAR).write_text("{not json")
    with pytest.raises(ValueError, match=rf"shard {c}.*corrupt"):
        st.read_shard(c)


def test_manifest_checksum_catches_a_rewritten_sidecar(tmp_path):
    spec, eps = _episodes(2)
    d = tmp_path / "demo"
    path = st.shard_dir(d, spec.name, 0)
    st.write_shard(path, spec, eps)
    st.write_manifest(d)
    # Damage the data AND make the sidecar agree with it: only the manifest still knows.
    _flip_byte(path / "main_data.hdf5")
    side = json.loads((path / st.SHARD_SIDECAR).read_text())
    side["sha256"]["main_data.hdf5"] = st.sha256_file(path / "main_data.hdf5")
    (path / st.SHARD_SIDECAR).write_text(json.dumps(side))
    ds = st.EpisodeDataset(d)
    with pytest.raises(ValueError, match="corrupt shard"):
        ds[0]
    with pytest.raises(ValueError, match="corrupt shard"):
        ds.verify_all()


def test_write_is_atomic_and_checks_its_input(tmp_path, monkeypatch):
    spec, eps = _episodes(2)
    path = tmp_path / "task" / "shard-00000"
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    def boom(self, *a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(HDF5Storage, "update_episode_metadata", boom)
    with pytest.raises(OSError, match="disk full"):
        st.write_shard(path, spec, eps)
    assert not path.exists() and os.listdir(path.parent) == []  # nothing half-written left behind
    monkeypatch.undo()
    st.write_shard(path, spec, eps)
    with pytest.raises(ValueError, match="already exists"):
        st.write_shard(path, spec, eps)
    with pytest.raises(ValueError, match="no episodes"):
        st.write_shard(tmp_path / "empty", spec, [])
    other = testing.synthetic_episode(testing.multimodal_spec(), 3)
    bad = Episode(other.task, {k: v for k, v in other.observations.items() if k != "grid"}, other.actions, other.rewards)
    with pytest.raises(ValueError, match="observation fields"):
        st.write_shard(tmp_path / "bad", spec, [bad])
    with pytest.raises(ValueError, match="task name"):
        st.shard_dir(tmp_path, "../escape", 0)


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"manifest.json is missing"):
        st.EpisodeDataset(tmp_path)
