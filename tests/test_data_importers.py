"""Importers: Minari datasets and JAT parquet files -> gatolab datasets, exactly, with inferred specs and clear errors.

Every fixture is written here with the formats' own tools (minari's DataCollector and
buffer API; pyarrow with the JAT column layout); nothing is downloaded.
"""

import io
import json
import math

import gymnasium as gym
import minari
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gymnasium import spaces

from gatolab import testing
from gatolab.data import importers as im
from gatolab.data import mixture as mx
from gatolab.data import storage as st
from gatolab.specs import FieldSpec, Modality

# minari asks for author/description/eval_env metadata that these fixtures do not need.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")


@pytest.fixture(scope="module")
def tok():
    return testing.tiny_tokenizer()


# ----------------------------------------------------------------------------------------
# Minari fixtures
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minari_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def cartpole_minari(minari_root):
    """CartPole recorded with minari's DataCollector (the standard layout, T + 1 observations)."""
    env = minari.DataCollector(gym.make("CartPole-v1"))
    rng = np.random.default_rng(0)
    for i in range(3):
        env.reset(seed=i)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(int(rng.integers(2)))
            done = term or trunc
    env.create_dataset(dataset_id="test/cartpole-random-v0", algorithm_name="random")
    env.close()
    return minari_root / "test" / "cartpole-random-v0"


RICH_OBS = spaces.Dict({
    "camera": spaces.Box(0, 255, (16, 16, 3), np.uint8),
    "grid": spaces.Box(0, 9, (3, 3), np.int64),
    "mission": spaces.Text(max_length=64),
    "mode": spaces.Discrete(3, start=1),
    "proprio": spaces.Dict({"joints": spaces.Box(-2.0, 2.0, (3,), np.float64)}),
})
RICH_ACT = spaces.Dict({"button": spaces.Discrete(5), "torque": spaces.Box(-1.0, 1.0, (2,), np.float32)})


def _rich_buffers(n=3, seed=0):
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(seed)
    bufs = []
    for i in range(n):
        t = 4 + i
        obs = {
            "camera": rng.integers(0, 256, (t + 1, 16, 16, 3), dtype=np.uint8),
            "grid": rng.integers(0, 10, (t + 1, 3, 3)),
            "mission": [f"go to the {c} ball — naïve" for c in rng.choice(["red", "blue"], t + 1)],
            "mode": rng.integers(1, 4, t + 1),
            "proprio": {"joints": rng.uniform(-2, 2, (t + 1, 3))},
        }
        act = {"button": rng.integers(0, 5, t), "torque": rng.uniform(-1, 1, (t, 2)).astype(np.float32)}
        term = np.zeros(t, bool)
        term[-1] = i % 2 == 0
        trunc = np.zeros(t, bool)
        trunc[-1] = i % 2 == 1
        bufs.append(EpisodeBuffer(id=i, seed=100 + i, observations=obs, actions=act, rewards=rng.normal(size=t),
                                  terminations=term, truncations=trunc))
    return bufs


@pytest.fixture(scope="module")
def rich_minari(minari_root):
    bufs = _rich_buffers()
    minari.create_dataset_from_buffers("test/rich-v0", bufs, observation_space=RICH_OBS, action_space=RICH_ACT,
                                       algorithm_name="synthetic", jpeg_encoding=False)
    return minari_root / "test" / "rich-v0", bufs


# ----------------------------------------------------------------------------------------
# Minari
# ----------------------------------------------------------------------------------------
def test_minari_datacollector_dataset_round_trips(cartpole_minari, tmp_path, tok):
    m = im.import_minari(cartpole_minari, tmp_path, shard_size=2)
    assert m["dataset"] == "test-cartpole-random-v0" and m["tasks"] == ["CartPole-v1"]
    assert m["num_episodes"] == 3 and len(m["shards"]) == 2 and m["imported"]["format"] == "minari"
    ds = st.EpisodeDataset(tmp_path / m["dataset"])
    assert ds.verify_all() == 2
    spec = ds.specs["CartPole-v1"]
    obs_f, act_f = spec.observation["observation"], spec.action["action"]
    assert obs_f.modality == Modality.CONTINUOUS and obs_f.shape == (4,) and obs_f.low < -4.7 and obs_f.uses_mu_law
    assert act_f == FieldSpec.discrete(2)
    src = minari.MinariDataset(str(cartpole_minari / "data"))
    for ep, ref in zip(ds, src.iterate_episodes()):
        assert len(ep) == len(ref.rewards)
        assert np.array_equal(ep.observations["observation"], ref.observations[:-1])  # T + 1 -> T
        assert np.array_equal(ep.actions["action"], ref.actions)
        assert np.array_equal(ep.rewards, ref.rewards.astype(np.float32))
        assert ep.metadata["final_observation_dropped"] and ep.metadata["terminated"] == bool(ref.terminations[-1])
    assert ds.episode_return.tolist() == pytest.approx([float(e.rewards.sum()) for e in src.iterate_episodes()])
    seq = tok.tokenize_episode(ds[0], spec)
    assert len(seq) == len(ds[0]) * (4 + 1 + 1)  # 4 state values, '|', 1 action


def test_minari_rich_spaces_infer_the_spec_and_round_trip(rich_minari, tmp_path, tok):
    path, bufs = rich_minari
    m = im.import_minari(path / "data", tmp_path, name="rich", task="rich-task")  # the data folder itself works too
    ds = st.EpisodeDataset(tmp_path / "rich")
    spec = ds.specs["rich-task"]
    assert spec.observation == {
        "camera": FieldSpec.image(16, 16, 3),
        "grid": FieldSpec.discrete(10, (3, 3)),
        "mission": FieldSpec.text(),
        "mode": FieldSpec.discrete(3),
        "proprio/joints": FieldSpec.continuous((3,), -2.0, 2.0),
    }
    assert spec.action == {"button": FieldSpec.discrete(5), "torque": FieldSpec.continuous((2,), -1.0, 1.0)}
    assert m["imported"]["value_offsets"] == {"mode": 1}
    for ep, b in zip(ds, bufs):
        t = len(b.rewards)
        assert len(ep) == t
        assert np.array_equal(ep.observations["camera"], b.observations["camera"][:t])
        assert np.array_equal(ep.observations["grid"], b.observations["grid"][:t])
        assert ep.observations["mission"] == b.observations["mission"][:t]
        assert np.array_equal(ep.observations["mode"], b.observations["mode"][:t] - 1)  # Discrete(start=1) -> [0, 3)
        assert np.array_equal(ep.observations["proprio/joints"], b.observations["proprio"]["joints"][:t].astype(np.float32))
        assert np.array_equal(ep.actions["button"], b.actions["button"])
        assert np.array_equal(ep.actions["torque"], b.actions["torque"])
        assert np.array_equal(ep.rewards, b.rewards.astype(np.float32))
        assert ep.metadata["seed"] == b.seed
        assert ep.metadata["terminated"] == bool(b.terminations[-1]) and ep.metadata["truncated"] == bool(b.truncations[-1])
    seq = tok.tokenize_episode(ds[0], spec)
    assert set(np.unique(seq.modality)) >= {int(Modality.TEXT), int(Modality.IMAGE), int(Modality.DISCRETE),
                                           int(Modality.CONTINUOUS)}
    mix = mx.Mixture(mx.MixtureConfig(weights={"rich": 1.0}, sequence_length=256), [tmp_path / "rich"], tok)
    row = mix.row(0)
    assert row["ids"].shape == (256,) and row["loss_mask"].any()


def test_minari_jpeg_dataset_imports_the_decoded_pixels(minari_root, tmp_path):
    bufs = _rich_buffers(2, seed=1)
    minari.create_dataset_from_buffers("test/rich-jpeg-v0", bufs, observation_space=RICH_OBS, action_space=RICH_ACT,
                                       algorithm_name="synthetic", jpeg_encoding=True)
    src = minari_root / "test" / "rich-jpeg-v0"
    im.import_minari(src, tmp_path, name="jpeg")
    ds = st.EpisodeDataset(tmp_path / "jpeg")
    ref = next(minari.MinariDataset(str(src / "data")).iterate_episodes())
    assert np.array_equal(ds[0].observations["camera"], ref.observations["camera"][:-1])  # what Minari decodes


def test_space_mapping_and_unmappable_spaces_name_the_field():
    f = im.space_fields(spaces.Tuple((spaces.Discrete(4), spaces.MultiBinary(3), spaces.MultiDiscrete([2, 7]))), "observation")
    assert f == {"0": FieldSpec.discrete(4), "1": FieldSpec.discrete(2, (3,)), "2": FieldSpec.discrete(7, (2,))}
    assert im.space_fields(spaces.Box(0, 255, (8, 8, 1), np.uint8), "observation") == {"observation": FieldSpec.image(8, 8, 1)}
    assert im.space_fields(spaces.Box(-5, 5, (2,), np.int32), "observation")["observation"].modality == Modality.CONTINUOUS
    inf_box = im.space_fields(spaces.Box(-np.inf, np.inf, (2,), np.float64), "o")["o"]
    assert math.isinf(inf_box.low) and math.isinf(inf_box.high)
    with pytest.raises(ValueError, match=r"'big'.*Discrete\(5000\)"):
        im.space_fields(spaces.Dict({"big": spaces.Discrete(5000)}), "observation")
    with pytest.raises(ValueError, match=r"observation field 'nodes/graph'.*Graph"):
        im.space_fields(spaces.Dict({"nodes": spaces.Dict({"graph": spaces.Graph(spaces.Box(0, 1, (2,)), None)})}),
                        "observation")
    with pytest.raises(ValueError, match=r"action field 'say'.*Text"):
        im.space_fields(spaces.Dict({"say": spaces.Text(8)}), "action", action=True)
    with pytest.raises(ValueError, match=r"action field 'action'.*Sequence"):
        im.space_fields(spaces.Sequence(spaces.Discrete(2)), "action", action=True)


def test_minari_missing_and_corrupt_inputs_are_clear_errors(rich_minari, tmp_path):
    import shutil

    path, _ = rich_minari
    with pytest.raises(ValueError, match=r"nowhere.*no such file"):
        im.import_minari(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no metadata.json"):
        im.import_minari(tmp_path / "empty", tmp_path / "out")
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    h5 = bad / "data" / "main_data.hdf5"
    h5.write_bytes(h5.read_bytes()[: h5.stat().st_size // 3])  # truncated
    with pytest.raises(ValueError, match=r"bad/data: could not read episodes 0..2 from main_data.hdf5"):
        im.import_minari(bad, tmp_path / "out")
    h5.unlink()
    with pytest.raises(ValueError, match=r"main_data.hdf5 is missing"):
        im.import_minari(bad, tmp_path / "out")
    (bad / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metadata.json is corrupt"):
        im.import_minari(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing half-written


def test_minari_data_outside_the_declared_space_is_refused(minari_root, tmp_path):
    from minari.data_collector import EpisodeBuffer

    obs_space = spaces.Dict({"x": spaces.Box(-1.0, 1.0, (2,), np.float32)})
    act_space = spaces.Discrete(3)
    buf = EpisodeBuffer(id=0, observations={"x": np.full((4, 2), 5.0, np.float32)}, actions=np.array([0, 1, 2]),
                        rewards=np.zeros(3), terminations=np.array([0, 0, 1], bool), truncations=np.zeros(3, bool))
    minari.create_dataset_from_buffers("test/outside-v0", [buf], observation_space=obs_space, action_space=act_space)
    with pytest.raises(ValueError, match=r"episode_0: continuous field 'x' has value 5 outside its declared bounds"):
        im.import_minari(minari_root / "test" / "outside-v0", tmp_path)
    assert not (tmp_path / "test-outside-v0").exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_import_refuses_to_overwrite(cartpole_minari, tmp_path):
    im.import_minari(cartpole_minari, tmp_path, name="cp")
    with pytest.raises(ValueError, match=r"cp already exists"):
        im.import_minari(cartpole_minari, tmp_path, name="cp")


# ----------------------------------------------------------------------------------------
# JAT parquet fixtures
# ----------------------------------------------------------------------------------------
def _png(a: np.ndarray) -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return {"bytes": buf.getvalue(), "path": None}


def _write_parquet(path, rows: dict, schema=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), path)
    return path


def _metaworld_like(rng, n=3, obs_dim=5):
    lens = [6, 3, 9][:n]
    return {
        "continuous_observations": [rng.normal(0, 3, (t, obs_dim)).astype(np.float32).tolist() for t in lens],
        "continuous_actions": [rng.uniform(-1, 1, (t, 2)).astype(np.float32).tolist() for t in lens],
        "rewards": [rng.uniform(0, 1, t).astype(np.float32).tolist() for t in lens],
    }


def test_jat_continuous_files_round_trip(tmp_path, tok):
    rng = np.random.default_rng(0)
    a, b = _metaworld_like(rng), _metaworld_like(rng, 2)
    root = tmp_path / "jat-dataset"
    _write_parquet(root / "metaworld-demo" / "train" / "0000.parquet", a)
    _write_parquet(root / "metaworld-demo" / "train" / "0001.parquet", b)
    _write_parquet(root / "other-task" / "train" / "0000.parquet", {"text": ["not this one"]})  # ignored: another task
    m = im.import_jat(root, tmp_path / "out", task="metaworld-demo", shard_size=2)
    assert m["dataset"] == "jat-metaworld-demo" and m["num_episodes"] == 5 and len(m["shards"]) == 3
    ds = st.EpisodeDataset(tmp_path / "out" / "jat-metaworld-demo")
    spec = ds.specs["metaworld-demo"]
    assert spec.observation == {"continuous_observations": FieldSpec.continuous((5,))}
    assert spec.action == {"continuous_actions": FieldSpec.continuous((2,), -1.0, 1.0)}
    assert not spec.action["continuous_actions"].uses_mu_law and spec.observation["continuous_observations"].uses_mu_law
    src = [(a, i) for i in range(3)] + [(b, i) for i in range(2)]
    for ep, (cols, i) in zip(ds, src):
        want = np.array(cols["continuous_observations"][i], np.float32)
        assert np.array_equal(ep.observations["continuous_observations"], want)
        assert np.array_equal(ep.actions["continuous_actions"], np.array(cols["continuous_actions"][i], np.float32))
        assert np.array_equal(ep.rewards, np.array(cols["rewards"][i], np.float32))
    assert len(tok.tokenize_episode(ds[0], spec)) == 6 * (5 + 1 + 2)
    mix = mx.Mixture(mx.MixtureConfig(weights={"jat-metaworld-demo": 1.0}, sequence_length=64),
                     [tmp_path / "out" / "jat-metaworld-demo"], tok)
    batch = next(mix.iterator(batch_size=4))
    assert batch.tokens.ids.shape == (4, 64)


def test_jat_babyai_and_atari_layouts(tmp_path, tok):
    rng = np.random.default_rng(1)
    lens = [4, 7]
    babyai = {
        "text_observations": [[f"pick up the {c} key" for c in rng.choice(["red", "grey"], t)] for t in lens],
        "discrete_observations": [rng.integers(0, 11, (t, 12)).tolist() for t in lens],
        "discrete_actions": [rng.integers(0, 6, t).tolist() for t in lens],
        "rewards": [[0.0] * (t - 1) + [0.9] for t in lens],
    }
    f = _write_parquet(tmp_path / "babyai.parquet", babyai)
    im.import_jat(f, tmp_path / "out", task="babyai-demo", name="bab", num_values={"discrete_actions": 7})
    ds = st.EpisodeDataset(tmp_path / "out" / "bab")
    spec = ds.specs["babyai-demo"]
    assert spec.observation["text_observations"] == FieldSpec.text()
    top = max(int(np.max(x)) for x in babyai["discrete_observations"])
    assert spec.observation["discrete_observations"] == FieldSpec.discrete(top + 1, (12,))
    assert spec.action == {"discrete_actions": FieldSpec.discrete(7)}
    for i, ep in enumerate(ds):
        assert ep.observations["text_observations"] == babyai["text_observations"][i]
        assert np.array_equal(ep.observations["discrete_observations"], babyai["discrete_observations"][i])
        assert np.array_equal(ep.actions["discrete_actions"], babyai["discrete_actions"][i])
        assert ep.total_return == pytest.approx(0.9)
    assert len(tok.tokenize_episode(ds[1], spec)) > 7 * (12 + 1 + 1)

    # Atari-like: 4 stacked grayscale frames per timestep as an RGBA PNG (the datasets Image struct).
    frames = [rng.integers(0, 256, (t, 16, 16, 4), dtype=np.uint8) for t in (3, 5)]
    img_type = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    atari = {"image_observations": [[_png(x) for x in fr] for fr in frames],
             "discrete_actions": [[1, 0, 3], [2, 2, 0, 1, 3]], "rewards": [[0.0, 1.0, 0.0], [0.0] * 5]}
    schema = pa.schema([("image_observations", img_type), ("discrete_actions", pa.list_(pa.int64())),
                        ("rewards", pa.list_(pa.float32()))])
    f = _write_parquet(tmp_path / "atari.parquet", atari, schema)
    im.import_jat([f], tmp_path / "out", task="atari-demo", num_values={"discrete_actions": 18})
    ds = st.EpisodeDataset(tmp_path / "out" / "jat-atari-demo")
    spec = ds.specs["atari-demo"]
    assert spec.observation == {f"image_observations/c{k}": FieldSpec.image(16, 16, 1) for k in range(4)}
    for ep, fr in zip(ds, frames):
        back = np.concatenate([ep.observations[f"image_observations/c{k}"] for k in range(4)], axis=-1)
        assert np.array_equal(back, fr)
    seq = tok.tokenize_episode(ds[0], spec)
    assert (seq.modality == int(Modality.IMAGE)).sum() == 3 * 4  # one 16x16 patch per frame per timestep


def test_jat_raw_image_arrays_channel_first_and_grayscale(tmp_path):
    rng = np.random.default_rng(4)
    rgb_chw = [rng.integers(0, 256, (t, 3, 8, 8)) for t in (2, 3)]  # (T, C, H, W) nested lists, channel-first
    f = _write_parquet(tmp_path / "rgb.parquet", {"image_observations": [x.tolist() for x in rgb_chw],
                                                  "discrete_actions": [[0, 1], [1, 1, 0]]})
    im.import_jat(f, tmp_path / "out", task="rgb")
    ds = st.EpisodeDataset(tmp_path / "out" / "jat-rgb")
    assert ds.specs["rgb"].observation == {"image_observations": FieldSpec.image(8, 8, 3)}
    assert ds.specs["rgb"].action == {"discrete_actions": FieldSpec.discrete(2)}
    for ep, x in zip(ds, rgb_chw):
        assert np.array_equal(ep.observations["image_observations"], x.transpose(0, 2, 3, 1))
        assert ep.metadata["rewards_recorded"] is False and ep.total_return == 0.0
    gray = rng.integers(0, 256, (2, 16, 16), dtype=np.uint8)
    f = _write_parquet(tmp_path / "gray.parquet", {"image_observations": [[_png(g) for g in gray]],
                                                   "discrete_actions": [[0, 0]], "rewards": [[1.0, 0.0]]})
    im.import_jat(f, tmp_path / "out", task="gray")
    ep = st.EpisodeDataset(tmp_path / "out" / "jat-gray")[0]
    assert np.array_equal(ep.observations["image_observations"], gray[..., None])


def test_jat_bad_inputs_name_the_file_row_and_column(tmp_path):
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match=r"missing.parquet: no such file"):
        im.import_jat(tmp_path / "missing.parquet", tmp_path / "out", task="t")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match=r"junk.parquet: not a readable parquet file"):
        im.import_jat(junk, tmp_path / "out", task="t")
    good = _write_parquet(tmp_path / "good.parquet", _metaworld_like(rng))
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"cut.parquet: not a readable parquet file"):
        im.import_jat(cut, tmp_path / "out", task="t")
    damaged = bytearray(good.read_bytes())
    damaged[200:260] = bytes(60)  # inside the first column chunk's compressed pages
    (tmp_path / "damaged.parquet").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match=r"damaged.parquet: corrupt parquet data near row 0"):
        im.import_jat(tmp_path / "damaged.parquet", tmp_path / "out", task="t")
    cols = _metaworld_like(rng)
    cols["rewards"][1] = cols["rewards"][1][:-1]
    f = _write_parquet(tmp_path / "short.parquet", cols)
    with pytest.raises(ValueError, match=r"short.parquet, row 1: column 'rewards' has 2 timesteps, the actions have 3"):
        im.import_jat(f, tmp_path / "out", task="t")
    cols = _metaworld_like(rng)
    cols["continuous_observations"][0][2] = cols["continuous_observations"][0][2][:3]
    f = _write_parquet(tmp_path / "ragged.parquet", cols)
    with pytest.raises(ValueError, match=r"ragged.parquet, row 0, column 'continuous_observations'.*ragged"):
        im.import_jat(f, tmp_path / "out", task="t")
    f = _write_parquet(tmp_path / "text.parquet", {"text": ["a caption"], "images": [b"x"]})
    with pytest.raises(ValueError, match=r"text.parquet: no action column.*text / vision-language"):
        im.import_jat(f, tmp_path / "out", task="t")
    cols = _metaworld_like(rng)
    cols["continuous_observations"][0][0][0] = 1e6
    f = _write_parquet(tmp_path / "huge.parquet", cols)
    with pytest.raises(ValueError, match=r"huge.parquet, row 0: continuous field 'continuous_observations'.*out_of_range='clip'"):
        im.import_jat(f, tmp_path / "out", task="t")
    m = im.import_jat(f, tmp_path / "out", task="t", out_of_range="clip")  # saturates at tokenization, as the spec says
    clipped = st.EpisodeDataset(tmp_path / "out" / m["dataset"]).specs["t"].observation["continuous_observations"]
    assert clipped.out_of_range == "clip"
    with pytest.raises(ValueError, match=r"num_values=3 but the data hold the value"):
        im.import_jat(_write_parquet(tmp_path / "d.parquet", {"discrete_observations": [[[5]]], "discrete_actions": [[4]]}),
                      tmp_path / "out", task="d", num_values={"discrete_actions": 3})
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "out").iterdir())


# ----------------------------------------------------------------------------------------
# CLI and data cards
# ----------------------------------------------------------------------------------------
def test_cli_import_and_card(cartpole_minari, tmp_path, capsys):
    from gatolab.cli import main

    rng = np.random.default_rng(3)
    f = _write_parquet(tmp_path / "src" / "0000.parquet", _metaworld_like(rng))
    assert main(["data", "import", "--format", "jat", "--src", str(tmp_path / "src"), "--task", "mw", "--out",
                 str(tmp_path / "data")]) == 0
    assert "jat-mw: 1 task(s), 3 episodes" in capsys.readouterr().out
    assert main(["data", "import", "--format", "jat", "--src", str(f), "--out", str(tmp_path / "data")]) == 2
    assert "needs --task" in capsys.readouterr().err
    assert main(["data", "import", "--format", "minari", "--src", str(cartpole_minari), "--name", "cartpole",
                 "--out", str(tmp_path / "data")]) == 0
    assert main(["data", "verify", "--data", str(tmp_path / "data" / "cartpole")]) == 0
    cards = tmp_path / "cards"
    assert main(["data", "card", "--data", str(tmp_path / "data" / "cartpole"), str(tmp_path / "data" / "jat-mw"),
                 "--out", str(cards)]) == 0
    assert "random-policy returns are not measured" in capsys.readouterr().out
    card = json.loads((cards / "cartpole.json").read_text())
    t = card["tasks"]["CartPole-v1"]
    assert t["episodes"] == 3 and "random_return" not in t and t["tokens"] == t["timesteps"] * 6
    assert t["expert_return"]["mean"] == pytest.approx(np.mean(st.EpisodeDataset(tmp_path / "data" / "cartpole").episode_return))
    md = (cards / "cartpole.md").read_text()
    assert "no environment runs here, so random-policy returns are not measured" in md
    assert json.loads((cards / "returns.json").read_text())["mw"]["random_return"] is None
