"""The grain mixture: weights and prompts hold statistically, rows are exact, the stream is deterministic."""

import dataclasses
import jax
import numpy as np
import pytest
from scipy import stats

from gatolab import testing
from gatolab.data import generation as gen
from gatolab.data import mixture as mx
from gatolab.data import storage as st
from gatolab.testing import ToyDomain
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec, Modality

N_DRAWS = 20_000
ALPHA = 1e-3  # the seeds are fixed, so these tests are deterministic; ALPHA says how surprising a pass would be


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    for name in ("toy_a", "toy_b", "toy_c"):
        gen.generate(ToyDomain(), root, episodes=6, shard_size=3, dataset_name=name, progress=False,
                     seed={"toy_a": 0, "toy_b": 100, "toy_c": 200}[name])
    return root


@pytest.fixture(scope="module")
def tok():
    return testing.tiny_tokenizer()


def _mix(root, tok, names=("toy_a", "toy_b", "toy_c"), **cfg):
    cfg.setdefault("weights", {n: 1.0 for n in names})
    cfg.setdefault("sequence_length", 128)
    return mx.Mixture(mx.MixtureConfig(**cfg), [root / n for n in names], tok)


def test_dataset_weights_hold_statistically(toy_root, tok):
    m = _mix(toy_root, tok, weights={"toy_a": 1, "toy_b": 2, "toy_c": 5})
    assert m.weights == pytest.approx([1 / 8, 2 / 8, 5 / 8])
    counts = np.bincount([m.draw(i).dataset for i in range(N_DRAWS)], minlength=3)
    assert stats.chisquare(counts, N_DRAWS * m.weights).pvalue > ALPHA
    # ... and the test has power: the same counts are far from uniform.
    assert stats.chisquare(counts, np.full(3, N_DRAWS / 3)).pvalue < 1e-10
    # Within a dataset, tasks are uniform (within_dataset="task").
    tasks = np.bincount([m.draw(i).task for i in range(N_DRAWS)], minlength=len(m.task_names))
    a = tasks[[m.task_dataset[t] == 0 for t in range(len(m.task_names))]]
    assert stats.chisquare(a).pvalue > ALPHA


@pytest.mark.parametrize("p, end", [(0.25, 0.5), (0.6, 0.2)])
def test_prompt_fraction_and_split_hold_statistically(toy_root, tok, p, end):
    m = _mix(toy_root, tok, prompt_probability=p, prompt_end_fraction=end)
    kinds = np.array([m.draw(i).prompt_kind for i in range(N_DRAWS)])
    prompted = int((kinds != mx.PROMPT_NONE).sum())
    assert stats.binomtest(prompted, N_DRAWS, p).pvalue > ALPHA
    assert stats.binomtest(int((kinds == mx.PROMPT_END).sum()), prompted, end).pvalue > ALPHA
    assert stats.binomtest(prompted, N_DRAWS, p + 0.03).pvalue < ALPHA  # power: 3 points off is detected


def test_rows_carry_their_prompt_and_provenance(toy_root, tok):
    m = _mix(toy_root, tok, prompt_probability=0.5)
    it = m.iterator(batch_size=64)
    batch = next(it)
    tokens, info = batch.tokens, batch.info  # what goes to the device; what stays on the host
    L = 128
    assert tokens.ids.shape == (64, L) and info.prompt_mask.shape == (64, L) and tokens.patches.shape[1] == 0
    seen = set()
    for r in range(64):
        i = int(info.index[r])
        d = m.draw(i)
        ds = m.datasets[d.dataset]
        assert info.dataset_id[r] == d.dataset and info.episode_id[r] == d.episode
        assert ds.episode_task[d.episode] == m.task_names[info.task_id[r]]
        kind = int(info.prompt_kind[r])
        n_prompt = int(info.prompt_mask[r].sum())
        assert kind == d.prompt_kind and (n_prompt > 0) == (kind != mx.PROMPT_NONE)
        assert not (tokens.loss_mask[r] & info.prompt_mask[r]).any()  # prompt_loss=False
        assert tokens.valid[r].sum() <= L and tokens.valid[r][:n_prompt].all()
        if kind:
            pep = int(info.prompt_episode_id[r])
            assert pep != d.episode and ds.episode_task[pep] == ds.episode_task[d.episode]
            pseq = m.tokens(d.dataset, pep)
            if kind == mx.PROMPT_END:  # goal conditioning: the prompt ends where its episode ends
                assert np.array_equal(tokens.ids[r][:n_prompt], pseq.last_window(L // 2).ids)
            seen.add(kind)
        # The episode window starts at a timestep boundary of the sampled episode.
        seq = m.tokens(d.dataset, d.episode)
        start = int(info.start_timestep[r])
        w = seq.window(start, L - n_prompt)
        assert np.array_equal(tokens.ids[r][n_prompt : n_prompt + len(w)], w.ids)
        assert tokens.local_position[r][n_prompt] == 0
    assert seen == {mx.PROMPT_END, mx.PROMPT_UNIFORM}
    cfg_loss = _mix(toy_root, tok, prompt_probability=1.0, prompt_loss=True).row(0)
    assert (cfg_loss["loss_mask"] & cfg_loss["prompt_mask"]).any()


def test_stream_is_deterministic_resumable_and_sharded(toy_root, tok):
    m = _mix(toy_root, tok)
    first = [next(iter_) for iter_ in [m.iterator(8)] for _ in range(1)][0]
    again = next(_mix(toy_root, tok).iterator(8))
    other = next(_mix(toy_root, tok, seed=1).iterator(8))
    assert np.array_equal(first.tokens.ids, again.tokens.ids) and not np.array_equal(first.tokens.ids, other.tokens.ids)

    it = m.iterator(8)
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(2)]
    it2 = m.iterator(8)
    it2.set_state(state)
    resumed = [next(it2) for _ in range(2)]
    for a, b in zip(expected, resumed):
        assert jax.tree.structure(a) == jax.tree.structure(b)
        for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), jax.tree_util.keystr(path)

    h0 = next(m.iterator(4, process_index=0, process_count=2))
    h1 = next(m.iterator(4, process_index=1, process_count=2))
    assert list(h0.info.index) == [0, 2, 4, 6] and list(h1.info.index) == [1, 3, 5, 7]
    assert np.array_equal(h1.tokens.ids[2], m.row(5)["ids"])
    with pytest.raises(ValueError, match="process_index"):
        m.iterator(4, process_index=2, process_count=2)


def test_worker_processes_give_the_same_batches(toy_root, tok):
    m = _mix(toy_root, tok)
    serial = m.iterator(8)
    parallel = m.iterator(8, workers=2)
    try:
        for _ in range(3):
            a, b = next(serial), next(parallel)  # Batches pickled across the worker processes
            assert np.array_equal(a.tokens.ids, b.tokens.ids) and np.array_equal(a.info.index, b.info.index)
    finally:
        parallel.close()


def test_episode_cache_stays_within_its_budget(toy_root, tok):
    m = _mix(toy_root, tok, cache_bytes=4000)
    rows = [m.row(i)["ids"] for i in range(60)]
    assert 0 < m._cache_size <= 4000 or len(m._cache) == 1
    assert all(np.array_equal(r, m.row(i)["ids"]) for i, r in enumerate(rows))  # evictions change nothing


def test_expert_return_and_filter_rule():
    r = [1, 2, 3, 10, 1, 1, 1, 1, 1, 1]
    assert mx.expert_return(r) == 10  # N = 10 -> W = 1
    assert mx.expert_return(r * 2) == pytest.approx((3 + 10) / 2)  # N = 20 -> W = 2: best pair (3, 10)
    keep, e, thr = mx.filter_episodes([10, 9, 7.9, 8, 0])
    assert e == 10 and thr == pytest.approx(8) and keep.tolist() == [True, True, False, True, False]
    keep, e, thr = mx.filter_episodes([-100, -110, -130, -500])  # negative returns: within 20% of |E|
    assert e == -100 and thr == pytest.approx(-120) and keep.tolist() == [True, True, False, False]
    assert mx.expert_return(list(range(3000))) == pytest.approx(np.mean(range(2700, 3000)))  # W = 0.1 N = 300
    assert mx.expert_return(list(range(3000)), window_fraction=1.0) == pytest.approx(np.mean(range(2000, 3000)))  # W capped at 1000
    with pytest.raises(ValueError, match="no episodes"):
        mx.expert_return([])


def _write_dataset(root, name, kind, spec, episodes):
    st.write_shard(st.shard_dir(root / name, spec.name, 0), spec, episodes)
    st.write_manifest(root / name, {"domain": name, "kind": kind})
    return root / name


def test_mixture_filters_low_return_episodes(tmp_path, tok):
    spec = ToyDomain().spec("reach-short")
    src = list(ToyDomain().generate("reach-short", 10, seed=0))
    eps = [Episode(e.task, e.observations, e.actions, e.rewards * 0 + (10.0 if i < 8 else 1.0) / len(e), e.metadata)
           for i, e in enumerate(src)]
    path = _write_dataset(tmp_path, "lowret", "control", spec, eps)
    on = mx.Mixture(mx.MixtureConfig(weights={"lowret": 1}, sequence_length=64), [path], tok)
    assert on.filter_report[0]["kept"] == 8 and on.filter_report[0]["expert_return"] == pytest.approx(10)
    assert {on.draw(i).episode for i in range(2000)} == set(range(8))
    assert {on.draw(i).prompt_episode for i in range(2000)} - {-1} == set(range(8))
    off = mx.Mixture(mx.MixtureConfig(weights={"lowret": 1}, sequence_length=64, filter_episodes=False), [path], tok)
    assert {off.draw(i).episode for i in range(2000)} == set(range(10))

    # A fine-tuning set of K episodes: the first K that pass the filter, the same in every arm.
    eps = [dataclasses.replace(e, rewards=e.rewards * 0 + (1.0 if i in (0, 3) else 10.0) / len(e)) for i, e in enumerate(eps)]
    path = _write_dataset(tmp_path, "kfirst", "control", spec, eps)
    for k, want in [(1, {1}), (3, {1, 2, 4}), (100, {1, 2, 4, 5, 6, 7, 8, 9})]:
        m = mx.Mixture(mx.MixtureConfig(weights={"kfirst": 1}, sequence_length=64, episodes_per_task=k), [path], tok)
        assert {m.draw(i).episode for i in range(500)} == want and m.filter_report[0]["kept"] == len(want)
    with pytest.raises(ValueError, match="episodes_per_task must be >= 1"):
        mx.MixtureConfig(episodes_per_task=0)


def test_within_dataset_task_vs_episode_sampling(tmp_path, tok):
    dom = ToyDomain()
    d = tmp_path / "uneven"
    st.write_shard(st.shard_dir(d, "reach-short", 0), dom.spec("reach-short"), list(dom.generate("reach-short", 10)))
    st.write_shard(st.shard_dir(d, "reach-long", 0), dom.spec("reach-long"), list(dom.generate("reach-long", 2)))
    st.write_manifest(d, {"domain": "toy", "kind": "control"})
    for mode, p_long in (("task", 0.5), ("episode", 2 / 12)):
        m = mx.Mixture(mx.MixtureConfig(weights={"uneven": 1}, within_dataset=mode, filter_episodes=False), [d], tok)
        long_id = m.task_names.index("reach-long")
        n_long = sum(m.draw(i).task == long_id for i in range(N_DRAWS // 4))
        assert stats.binomtest(n_long, N_DRAWS // 4, p_long).pvalue > ALPHA, mode


def test_long_text_timesteps_are_cut_but_control_timesteps_are_not(tmp_path, tok):
    tspec = EnvSpec("prose", {"text": FieldSpec.text()})
    para = "the quick brown fox jumps over the lazy dog " * 40
    text_eps = [Episode("prose", {"text": [para, "short one", para]}) for _ in range(3)]
    tpath = _write_dataset(tmp_path, "text", "text", tspec, text_eps)
    m = mx.Mixture(mx.MixtureConfig(sequence_length=64, weights={"text": 1}, prompt_probability=1.0), [tpath], tok)
    assert {m.draw(i).prompt_kind for i in range(200)} == {mx.PROMPT_NONE}  # prompts are for control data
    everywhere = mx.Mixture(mx.MixtureConfig(sequence_length=64, weights={"text": 1}, prompt_probability=1.0,
                                             prompt_control_only=False), [tpath], tok)
    assert {everywhere.draw(i).prompt_kind for i in range(200)} == {mx.PROMPT_END, mx.PROMPT_UNIFORM}
    for i in range(20):
        row = m.row(i)
        assert row["valid"].all() or row["valid"][: row["valid"].sum()].all()
        assert (row["modality"][row["valid"]] == Modality.TEXT).all() and row["loss_mask"][row["valid"] & ~row["prompt_mask"]].all()
    # Packing: short text episodes fill the row with the following episodes of the task, in order.
    short = [Episode("prose", {"text": [f"episode {k} says hello", "and goodbye"]}) for k in range(6)]
    spath = _write_dataset(tmp_path, "short", "text", tspec, short)
    packed = mx.Mixture(mx.MixtureConfig(sequence_length=64, weights={"short": 1}), [spath], tok)
    row = packed.row(3)
    d = packed.draw(3)
    assert row["valid"].all() and row["num_episodes"] > 2
    expect = np.concatenate([packed.tokens(0, (d.episode + j) % 6).ids for j in range(int(row["num_episodes"]))])[:64]
    assert np.array_equal(row["ids"], expect)
    unpacked = mx.Mixture(mx.MixtureConfig(sequence_length=64, weights={"short": 1}, pack_non_control=False), [spath], tok)
    assert unpacked.row(3)["valid"].sum() == len(packed.tokens(0, d.episode)) and unpacked.row(3)["num_episodes"] == 1
    # Packed image rows stop before the batch's patch axis overflows.
    ispec = EnvSpec("captions", {"image": FieldSpec.image(32, 32, 3), "caption": FieldSpec.text()})
    img_eps = [Episode("captions", {"image": np.zeros((2, 32, 32, 3), np.uint8) + k, "caption": ["a box", "a red ball"]})
               for k in range(8)]
    ipath = _write_dataset(tmp_path, "vl", "vision_language", ispec, img_eps)
    vl = mx.Mixture(mx.MixtureConfig(sequence_length=64, weights={"vl": 1}), [ipath], tok)
    assert vl.max_patches == 32  # max(2 x 8 patches per episode, L / 2)
    rows = [vl.row(i) for i in range(20)]
    assert all((r["patch_index"] >= 0).sum() <= 32 and r["num_episodes"] >= 2 for r in rows)
    tight = mx.Mixture(mx.MixtureConfig(sequence_length=64, weights={"vl": 1}, max_patches=12), [ipath], tok)
    rows = [tight.row(i) for i in range(20)]
    assert all((r["patch_index"] >= 0).sum() == 12 and r["valid"].sum() < 64 for r in rows)  # 8 + the next 4, then stop
    cspec = testing.multimodal_spec()
    cpath = _write_dataset(tmp_path, "big", "control", cspec, [testing.synthetic_episode(cspec, 3, seed=s) for s in range(2)])
    with pytest.raises(ValueError, match="more than sequence_length=16"):
        mx.Mixture(mx.MixtureConfig(sequence_length=16, weights={"big": 1}, filter_episodes=False), [cpath], tok).row(0)
    m2 = mx.Mixture(mx.MixtureConfig(sequence_length=128, weights={"big": 1}, filter_episodes=False), [cpath], tok)
    # 48x64 camera -> 12 patches per timestep; 3-step episodes -> at most 2 x 36 patches in a row.
    assert m2.max_patches == 72 and m2.row(0)["patches"].shape == (72, 16, 16, 3)
    assert max(int((m2.row(i)["patch_index"] >= 0).sum()) for i in range(30)) <= 72


def test_bad_configuration_is_a_clear_error(toy_root, tok):
    with pytest.raises(ValueError, match=r"weights\['toy_a'\] must be a finite number >= 0"):
        _mix(toy_root, tok, weights={"toy_a": -1, "toy_b": 1, "toy_c": 1})
    with pytest.raises(ValueError, match="not in the mixture"):
        _mix(toy_root, tok, weights={"toy_a": 1, "toy_b": 1, "toy_c": 1, "atari": 1})
    with pytest.raises(ValueError, match=r"no sample weight for datasets \['toy_b'\]"):
        _mix(toy_root, tok, weights={"toy_a": 1, "toy_c": 1})
    with pytest.raises(ValueError, match="no sample weight"):
        mx.Mixture(mx.MixtureConfig(), [toy_root / "toy_a"], tok)  # toy has no Table-1 default
    with pytest.raises(ValueError, match="prompt_probability must lie in"):
        mx.MixtureConfig(prompt_probability=1.5)
    with pytest.raises(ValueError, match="positive weight"):
        _mix(toy_root, tok, weights={"toy_a": 0, "toy_b": 0, "toy_c": 0})


def test_default_weights_follow_table_1():
    share = mx.default_weight_share()
    assert sum(share.values()) == pytest.approx(1.0)
    assert share["babyai"] / share["metaworld"] == pytest.approx(9.06 / 8.96)
    assert share["text"] / share["babyai"] == pytest.approx(6.7 / 9.06)
    with pytest.raises(ValueError, match="no default sample weight"):
        mx.default_weight_share(["nosuchdataset"])
