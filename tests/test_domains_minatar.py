"""MinAtar via gymnax: the adapter (packed grid, seeds, errors), PPO learning, the committed experts."""

import json
import math

import numpy as np
import pytest

import gatolab as gl
from gatolab.cli import main as cli_main
from gatolab.data import storage as st
from gatolab.domains.minatar import env as mn_env
from gatolab.domains.minatar import expert as mn_expert
from gatolab.domains import rollout
from gatolab.domains import evaluate_policies
from gatolab.experts import store
from gatolab.experts.ppo import PPOConfig, train_jax_env
from gatolab.testing import tiny_tokenizer

DOMAIN = gl.domains.get("minatar")


@pytest.mark.parametrize("task", list(mn_env.MINATAR_TASKS))
def test_spec_matches_gymnax(task):
    import gymnax

    env, params = gymnax.make(task)
    channels, actions, max_steps = mn_env.MINATAR_TASKS[task]
    assert env.observation_space(params).shape == (10, 10, channels)
    assert env.action_space(params).n == actions
    assert params.max_steps_in_episode == max_steps
    spec = DOMAIN.spec(task)
    assert spec.observation["grid"].shape == (10, 10) and spec.observation["grid"].num_values == 2**channels <= 1024
    assert spec.action["action"].num_values == actions


def test_pack_unpack_round_trip_is_exact():
    rng = np.random.default_rng(0)
    for c in (4, 6, 7, 10):
        channels = (rng.random((10, 10, c)) < 0.3).astype(np.float32)
        grid = mn_env.pack_grid(channels)
        assert grid.max() < 2**c
        np.testing.assert_array_equal(mn_env.unpack_grid(grid, c), channels)
    with pytest.raises(ValueError, match=r"must lie in \[0, 16\)"):
        mn_env.unpack_grid(np.full((10, 10), 16), 4)
    with pytest.raises(ValueError, match=r"shape \(10, 10, C\)"):
        mn_env.pack_grid(np.zeros((9, 10, 4)))


def test_episodes_are_deterministic_by_seed_and_render():
    env = DOMAIN.make("Breakout-MinAtar")
    policy = DOMAIN.random_policy("Breakout-MinAtar", seed=1)
    run = rollout(env, policy, seed=5, render=True)
    a, frames = run.episode, run.frames
    b = rollout(env, DOMAIN.random_policy("Breakout-MinAtar", seed=1), seed=5).episode
    np.testing.assert_array_equal(a.observations["grid"], b.observations["grid"])
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert frames.shape == (len(a) + 1, 160, 160, 3) and frames.dtype == np.uint8
    starts = {env.reset(seed=s)["grid"].tobytes() for s in range(10)}  # the seed picks the ball's start
    assert len(starts) > 1


def test_bad_inputs_raise():
    env = DOMAIN.make("Asterix-MinAtar")
    with pytest.raises(ValueError, match="before reset"):
        env.step({"action": np.asarray(0)})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"'action' must lie in \[0, 5\)"):
        env.step({"action": np.asarray(5)})
    with pytest.raises(ValueError, match="'action' is missing"):
        env.step({})
    with pytest.raises(ValueError, match="unknown task 'Pong-MinAtar'"):
        DOMAIN.spec("Pong-MinAtar")


@pytest.mark.slow
def test_ppo_learns_breakout_minatar():
    """A short PureJaxRL-style run: the return of the last rollouts beats the first ones and random."""
    import gymnax

    env, params = gymnax.make("Breakout-MinAtar")
    config = PPOConfig(total_steps=400_000)
    _, curve = train_jax_env(env, params, config, seed=0, updates_per_call=10, log=None)
    assert {"step", "return", "episodes", "wall_s", "entropy", "approx_kl"} <= set(curve[0])
    first, last = curve[0]["return"], curve[-1]["return"]
    assert last > 3 * first and last > 5.0, curve  # random play scores ~0.5 (data_cards/minatar.md)


@pytest.mark.parametrize("task", list(mn_env.MINATAR_TASKS))
def test_committed_expert_beats_random_through_the_adapter(task):
    meta = json.loads((store.expert_path(task) / store.META_FILE).read_text())
    assert meta["algo"] == "ppo" and meta["evaluation"]["expert_return_mean"] > meta["evaluation"]["random_return_mean"]
    ev = evaluate_policies(DOMAIN, task, {"expert": DOMAIN.expert(task), "random": DOMAIN.random_policy(task, 0)},
                           episodes=2, seed=123, max_steps=300)
    assert ev["expert_return_mean"] > ev["random_return_mean"] + 1.0, ev


def test_missing_and_corrupt_experts_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="gatolab experts train --env Breakout-MinAtar"):
        mn_expert.load_expert("Breakout-MinAtar", root=tmp_path)
    params, meta = store.load_expert("Breakout-MinAtar")
    path = store.save_expert("Breakout-MinAtar", params, domain="minatar", algo="ppo", config=meta["config"],
                             curve=meta["curve"], root=tmp_path)
    mn_expert.load_expert("Breakout-MinAtar", root=tmp_path)  # round trip loads
    data = bytearray((path / store.PARAMS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / store.PARAMS_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt expert parameters .*params.npz"):
        mn_expert.load_expert("Breakout-MinAtar", root=tmp_path)


def test_store_round_trip_keeps_every_array(tmp_path):
    tree = {"params": {"Dense_0": {"kernel": np.arange(6.0).reshape(2, 3), "bias": np.zeros(3)}, "layers": [np.ones(2), np.ones(1)]}}
    store.save_expert("x/y", tree, domain="d", algo="a", config={}, curve=[], root=tmp_path)
    back, meta = store.load_expert("x/y", root=tmp_path)
    np.testing.assert_array_equal(back["params"]["Dense_0"]["kernel"], tree["params"]["Dense_0"]["kernel"])
    assert len(back["params"]["layers"]) == 2 and meta["num_params"] == 6 + 3 + 2 + 1
    store.save_expert("x/y", tree, domain="d", algo="b", config={}, curve=[], root=tmp_path)  # replaces atomically
    assert store.load_expert("x/y", root=tmp_path)[1]["algo"] == "b"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_generate_writes_a_dataset_that_tokenizes(tmp_path):
    m = gl.data.generate("minatar", tmp_path, tasks=["Breakout-MinAtar"], episodes=2, progress=False)
    assert m["num_episodes"] == 2
    rec = m["experts"]["Breakout-MinAtar"]  # the manifest names the parameters that made the data
    assert rec["algo"] == "ppo" and rec["params_sha256"] == store.load_expert("Breakout-MinAtar")[1]["params_sha256"]
    ds = st.EpisodeDataset(tmp_path / "minatar")
    tok = tiny_tokenizer()
    for ep in ds:
        assert ep.metadata["expert"] == "PPO" and "success" not in ep.metadata
        assert math.isfinite(ep.metadata["return"])
        seq = tok.tokenize_episode(ep, ds.specs[ep.task])
        assert seq.num_timesteps == len(ep)


def test_experts_cli_evaluate_records_a_new_measurement(tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.setenv("GATOLAB_EXPERTS", str(store.experts_root()))  # restored after the test
    shutil.copytree(store.expert_path("Breakout-MinAtar"), tmp_path / "Breakout-MinAtar")
    assert cli_main(["experts", "evaluate", "--env", "Breakout-MinAtar", "--episodes", "1", "--root", str(tmp_path)]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["episodes"] == 1 and ev["expert_return_mean"] > ev["random_return_mean"]
    params, meta = store.load_expert("Breakout-MinAtar", root=tmp_path)  # checksum still valid
    assert meta["evaluation"] == ev


def test_experts_cli_lists_and_rejects_unknown_tasks(capsys):
    assert cli_main(["experts", "list"]) == 0
    assert "Breakout-MinAtar" in capsys.readouterr().out
    assert cli_main(["experts", "train", "--env", "NoSuchGame"]) == 2
    assert "no expert trainer for task 'NoSuchGame'" in capsys.readouterr().err
