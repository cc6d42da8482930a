"""Procgen: the adapter (64x64 frames, 15 actions, one level per seed, errors), the vector env for
PPO, the committed expert against random, and the games without an expert."""

import json

import numpy as np
import pytest

from gatolab.domains.procgen import env as pg_env
from gatolab.domains.procgen import expert as pg_expert
from gatolab.domains.procgen import recipe as pg_recipe
from gatolab.domains import get as get_domain, rollout
from gatolab.domains import evaluate_policies
from gatolab.experts import store

DOMAIN = get_domain("procgen")
EXPERT_TASK = "starpilot"  # the committed expert (experts/starpilot)


def test_specs_match_procgen_for_all_16_games():
    from procgen import ProcgenGym3Env

    assert DOMAIN.tasks() == pg_env.PROCGEN_GAMES and len(pg_env.PROCGEN_GAMES) == 16
    for game in pg_env.PROCGEN_GAMES:
        env = ProcgenGym3Env(num=1, env_name=game, distribution_mode="easy", num_levels=1, start_level=0)
        _, obs, _ = env.observe()
        assert env.ac_space.eltype.n == 15 and obs["rgb"].shape == (1, 64, 64, 3), game
        spec = DOMAIN.spec(game)
        assert spec.observation["image"].shape == (64, 64, 3) and spec.action["action"].num_values == 15
    with pytest.raises(ValueError, match="unknown task 'pong'"):
        DOMAIN.spec("pong")


@pytest.mark.parametrize("game", ["coinrun", "starpilot"])
def test_an_episode_is_reproducible_from_its_seed(game):
    env = DOMAIN.make(game)
    a = rollout(env, DOMAIN.random_policy(game, seed=1), seed=5, max_steps=200).episode
    b = rollout(env, DOMAIN.random_policy(game, seed=1), seed=5, max_steps=200).episode
    np.testing.assert_array_equal(a.observations["image"], b.observations["image"])
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert a.observations["image"].dtype == np.uint8 and a.observations["image"].shape[1:] == (64, 64, 3)
    firsts = {env.reset(seed=s)["image"].tobytes() for s in range(6)}  # the seed picks the level
    assert len(firsts) == 6


def test_episode_end_success_and_render():
    env = DOMAIN.make("coinrun", render=True)
    obs = env.reset(seed=3)
    assert env.render().shape == (512, 512, 3)
    steps, info, done = 0, {}, False
    while not done:  # the game's own timeout ends a stuck episode at 1000 steps
        obs, _, term, trunc, info = env.step({"action": np.asarray(4)})  # no-op
        steps, done = steps + 1, term or trunc
    assert steps == pg_env.MAX_STEPS["coinrun"] == 1000 and info["success"] is False and obs["image"].shape == (64, 64, 3)
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step({"action": np.asarray(4)})
    assert DOMAIN.make("coinrun").reset(seed=0) is not None and DOMAIN.make("coinrun").render() is None


def test_bad_inputs_raise():
    env = DOMAIN.make("bigfish")
    with pytest.raises(ValueError, match="before reset"):
        env.step({"action": np.asarray(0)})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"'action' must lie in \[0, 15\)"):
        env.step({"action": np.asarray(15)})
    with pytest.raises(ValueError, match="field 'act' is not in the spec"):
        env.step({"act": np.asarray(0)})
    with pytest.raises(ValueError, match="level seed must lie in"):
        env.reset(seed=-1)


def test_vector_env_and_host_driver_run():
    from gatolab.experts.ppo import train_host_env

    venv = pg_recipe.ProcgenVecEnv("coinrun", 4, num_levels=10, seed=0)
    obs = venv.reset()
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    finished = []
    for _ in range(1000):  # the game's timeout ends every episode by then
        obs, reward, done, ended = venv.step(np.full(4, 8))  # jump right
        assert np.all(np.abs(reward) <= 10)
        finished += ended
    assert finished and set(finished) <= {0.0, 10.0}  # coinrun: 10 for the coin, else 0
    config = pg_recipe.ppo_config(64, num_envs=4, num_steps=16, num_minibatches=2, update_epochs=1)
    _, curve = train_host_env(venv, config, log=None)
    assert {"step", "return", "episodes", "wall_s", "entropy", "approx_kl"} <= set(curve[0]) and curve[0]["step"] == 64
    venv.close()


def test_committed_expert_beats_random_through_the_adapter():
    meta = json.loads((store.expert_path(EXPERT_TASK) / store.META_FILE).read_text())
    ev = meta["evaluation"]
    assert meta["algo"] == "ppo" and meta["domain"] == "procgen"
    assert ev["expert_return_mean"] > ev["random_return_mean"]  # held-out levels
    got = evaluate_policies(DOMAIN, EXPERT_TASK, {"expert": DOMAIN.expert(EXPERT_TASK),
                                                  "random": DOMAIN.random_policy(EXPERT_TASK, 0)}, episodes=12, seed=20_000)
    assert got["expert_return_mean"] > got["random_return_mean"] + 0.5, got  # held-out levels: ~2.6 vs ~1.1


def test_games_without_an_expert_and_corrupt_experts_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="gatolab experts train --env maze"):
        DOMAIN.expert("maze")
    params, meta = store.load_expert(EXPERT_TASK)
    path = store.save_expert(EXPERT_TASK, params, domain="procgen", algo="ppo", config=meta["config"], curve=[], root=tmp_path)
    pg_expert.load_expert(EXPERT_TASK, root=tmp_path)
    (path / store.META_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="corrupt expert metadata"):
        pg_expert.load_expert(EXPERT_TASK, root=tmp_path)


def test_episodes_tokenize_to_16_patches_per_frame():
    from gatolab.specs import Modality
    from gatolab.testing import tiny_tokenizer

    ep = rollout(DOMAIN.make("fruitbot"), DOMAIN.random_policy("fruitbot", 0), seed=0, max_steps=5).episode
    seq = tiny_tokenizer().tokenize_episode(ep, DOMAIN.spec("fruitbot"))
    assert seq.num_timesteps == 5 and int(np.sum(seq.modality == Modality.IMAGE)) == 5 * 16
    assert int(np.sum(seq.is_action)) == 5
