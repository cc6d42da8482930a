"""DM Control Suite domain: real dm_control tasks (state and pixels), the SAC trainer, stored experts."""

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dm_control")

import gatolab as gl
import gatolab.domains.dmc as dmc
from gatolab.domains.dmc import env as dmc_env
from gatolab.domains.dmc import recipe as dmc_recipe
from gatolab.domains import rollout
from gatolab.experts import sac
from gatolab.experts.store import PARAMS_FILE, expert_path, load_expert, save_expert
from gatolab.testing import tiny_tokenizer

DOMAIN = dmc.DMCDomain()
COMMITTED = dmc.DMCDomain(experts_root=str(Path(__file__).resolve().parents[1] / "experts"))  # not $GATOLAB_EXPERTS
TASK, PIXELS = "cartpole-swingup", "cartpole-swingup-pixels"


def test_registered_tasks_and_specs():
    assert "dmc" in gl.domains.names() and gl.domains.get("dmc").kind == "control"
    tasks = DOMAIN.tasks()
    assert len(tasks) == 56 and TASK in tasks and PIXELS in tasks
    assert {dmc_env.state_task(t) for t in tasks} == set(dmc_env.DMC_TASKS)
    spec = DOMAIN.spec(TASK)
    assert list(spec.observation) == ["state"] and spec.observation["state"].shape == (5,)
    assert spec.observation["state"].uses_mu_law  # unbounded state -> mu-law (Gato §2.1)
    act = spec.action["action"]
    assert act.shape == (1,) and (act.low, act.high) == (-1.0, 1.0) and not act.uses_mu_law
    pix = DOMAIN.spec(PIXELS)
    assert list(pix.observation) == ["pixels"] and pix.observation["pixels"].shape == (64, 64, 3)
    assert pix.action == spec.action
    assert DOMAIN.spec("walker-walk").observation["state"].shape == (24,)
    assert DOMAIN.spec("walker-walk-pixels").action["action"].shape == (6,)
    assert not DOMAIN.defines_success(PIXELS)


def test_spec_table_matches_dm_control():
    from dm_control import suite

    for task, (obs_dim, act_dim) in dmc_env.DMC_TASKS.items():
        env = suite.load(*dmc_env.suite_names(task))
        a = env.action_spec()
        assert sum(int(np.prod(v.shape)) for v in env.observation_spec().values()) == obs_dim, task
        assert a.shape == (act_dim,) and np.all(a.minimum == -1) and np.all(a.maximum == 1), task
        env.close()


def test_flatten_observation_is_sorted_by_key():
    obs = {"velocity": np.array([3.0, 4.0]), "height": np.float64(9.0), "orientations": np.array([[1.0], [2.0]])}
    np.testing.assert_array_equal(dmc_env.flatten_observation(obs), np.array([9, 1, 2, 3, 4], np.float32))


def test_reset_and_step_deterministic_by_seed():
    from dm_control import suite

    env = DOMAIN.make(TASK)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, 1).astype(np.float32) for _ in range(20)]

    def run(seed):
        obs = [env.reset(seed=seed)["state"]]
        rewards = []
        for a in actions:
            o, r, terminated, truncated, _ = env.step({"action": a})
            assert not terminated and not truncated
            obs.append(o["state"])
            rewards.append(r)
        return np.stack(obs), np.array(rewards)

    a, b, c = run(3), run(4), run(3)
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])
    assert not np.array_equal(a[0][0], b[0][0])
    # reset(seed) is what suite.load(task_kwargs={"random": seed}) gives, without reloading.
    fresh = suite.load("cartpole", "swingup", task_kwargs={"random": 3})
    np.testing.assert_array_equal(dmc_env.flatten_observation(fresh.reset().observation), a[0][0])
    env.close()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown task 'cartpole-swingdown'.*cartpole-swingup"):
        DOMAIN.spec("cartpole-swingdown")
    with pytest.raises(ValueError, match="unknown task"):
        DOMAIN.expert("nope-pixels")
    env = DOMAIN.make("walker-walk")
    with pytest.raises(ValueError, match="reset"):
        env.step({"action": np.zeros(6, np.float32)})
    with pytest.raises(ValueError, match="reset"):
        env.state_observation()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'action' must have shape \\(6,\\)"):
        env.step({"action": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match="'action' must lie in \\[-1.0, 1.0\\]"):
        env.step({"action": np.array([0, 0, 1.5, 0, 0, 0], np.float32)})
    with pytest.raises(ValueError, match="'action' contains NaN"):
        env.step({"action": np.array([0, np.nan, 0, 0, 0, 0], np.float32)})
    with pytest.raises(ValueError, match="'torque' is not in the spec"):
        env.step({"action": np.zeros(6, np.float32), "torque": 0})
    env.close()


def test_random_rollout_pixels_and_tokenize():
    env = DOMAIN.make(PIXELS)
    run = rollout(env, DOMAIN.random_policy(PIXELS, seed=0), seed=0, max_steps=5, render=True)
    ep, frames = run.episode, run.frames
    pixels = ep.observations["pixels"]
    assert pixels.shape == (5, 64, 64, 3) and pixels.dtype == np.uint8 and pixels.std() > 0
    assert frames.shape == (6, 240, 320, 3) and frames.dtype == np.uint8
    assert env.state_observation().shape == (5,)
    assert np.all(np.abs(ep.actions["action"]) <= 1)
    assert tiny_tokenizer().tokenize_episode(ep, DOMAIN.spec(PIXELS)).num_timesteps == 5
    env.close()
    env = DOMAIN.make("cheetah-run")
    ep = rollout(env, DOMAIN.random_policy("cheetah-run", seed=0), seed=0, max_steps=5).episode
    assert ep.observations["state"].shape == (5, 17) and ep.observations["state"].dtype == np.float32
    assert tiny_tokenizer().tokenize_episode(ep, DOMAIN.spec("cheetah-run")).num_timesteps == 5
    env.close()


def test_committed_expert_beats_random_state_and_pixels():
    env, pix_env = DOMAIN.make(TASK), DOMAIN.make(PIXELS)
    expert, pix_expert = COMMITTED.expert(TASK), COMMITTED.expert(PIXELS)
    assert isinstance(expert, sac.SACPolicy)
    for seed in (0, 1):
        ep = rollout(env, expert, seed=seed, max_steps=200).episode
        rand = rollout(env, DOMAIN.random_policy(TASK, seed=seed), seed=seed, max_steps=200).episode
        assert ep.total_return > rand.total_return + 10, (seed, ep.total_return, rand.total_return)
    # The pixel expert is the state expert on the privileged state: the same actions.
    pix_ep = rollout(pix_env, pix_expert, seed=1, max_steps=30).episode
    np.testing.assert_array_equal(pix_ep.actions["action"], ep.actions["action"][:30])
    _, meta = load_expert(TASK, COMMITTED.experts_root)
    assert meta["domain"] == "dmc" and meta["algo"] == "sac"
    assert {TASK, PIXELS} <= set(COMMITTED.trained_tasks())
    ev = meta["evaluation"]
    assert ev["episodes"] == 10 and ev["expert_return_mean"] > ev["random_return_mean"] + 100
    env.close()
    pix_env.close()


def test_generate_metadata():
    ep = next(COMMITTED.generate(TASK, 1, seed=0))
    assert len(ep) == dmc_env.MAX_STEPS and "success" not in ep.metadata
    assert ep.metadata["expert"] == "SAC(cartpole-swingup)" and ep.metadata["seed"] == 0
    assert ep.metadata["return"] > 700  # the committed expert swings up and balances (random: ~25)


def test_step_after_episode_end_raises():
    env = DOMAIN.make("pendulum-swingup")
    env.reset(seed=0)
    zero = {"action": np.zeros(1, np.float32)}
    for t in range(dmc_env.MAX_STEPS):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated and truncated == (t == dmc_env.MAX_STEPS - 1)
    with pytest.raises(ValueError, match="episode has ended.*call reset"):
        env.step(zero)
    env.reset(seed=0)
    env.step(zero)


def test_sac_params_store_round_trip(tmp_path):
    config = sac.SACConfig(hidden=(32, 32))
    params = sac.init_params(5, 1, config, seed=1)
    cfg = {"obs_dim": 5, "act_dim": 1}
    save_expert(TASK, params, domain="dmc", algo="sac", config=cfg, curve=[{"step": 0, "return": 0.0, "wall_s": 0.0}],
                root=tmp_path)
    loaded, meta = load_expert(TASK, tmp_path)
    assert meta["config"] == cfg and float(loaded["log_alpha"]) == pytest.approx(np.log(0.1))
    for name in ("actor", "q1", "q2_target"):
        for a, b in zip(params[name], loaded[name]):
            np.testing.assert_array_equal(a["w"], b["w"])
            np.testing.assert_array_equal(a["b"], b["b"])
    state = np.linspace(-1, 1, 5).astype(np.float32)
    policy = dmc.DMCDomain(experts_root=str(tmp_path)).expert(PIXELS)
    np.testing.assert_array_equal(policy.act(state), sac.SACPolicy(params, cfg).act(state))
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(policy)).act(state), policy.act(state))
    with pytest.raises(ValueError, match="state must have shape \\(5,\\)"):
        policy.act(np.zeros(4))


def test_missing_corrupt_or_mismatched_expert_raises(tmp_path):
    domain = dmc.DMCDomain(experts_root=str(tmp_path))
    assert domain.trained_tasks() == []
    with pytest.raises(FileNotFoundError, match="gatolab experts train --env cartpole-swingup"):
        domain.expert(PIXELS)
    params = sac.init_params(5, 1, sac.SACConfig(hidden=(8,)), seed=0)
    folder = save_expert(TASK, params, domain="dmc", algo="sac", config={"obs_dim": 5, "act_dim": 1}, curve=[], root=tmp_path)
    assert domain.trained_tasks() == [TASK, PIXELS]
    (folder / PARAMS_FILE).write_bytes((folder / PARAMS_FILE).read_bytes()[:-7] + b"garbage")
    with pytest.raises(ValueError, match="corrupt expert parameters.*params.npz"):
        domain.expert(TASK)
    # An expert trained for another task (wrong sizes) or by another algorithm.
    shutil.rmtree(folder)
    save_expert(TASK, sac.init_params(3, 1, sac.SACConfig(hidden=(8,))), domain="dmc", algo="sac",
                config={"obs_dim": 3, "act_dim": 1}, curve=[], root=tmp_path)
    with pytest.raises(ValueError, match="trained for state 3 / action 1"):
        domain.expert(TASK)
    save_expert(TASK, params, domain="dmc", algo="ppo", config={"obs_dim": 5, "act_dim": 1}, curve=[], root=tmp_path)
    with pytest.raises(ValueError, match="'ppo' expert, not 'sac'"):
        domain.expert(TASK)
    save_expert(TASK, params, domain="dmc", algo="sac", config={"obs_dim": 5, "act_dim": 2}, curve=[], root=tmp_path)
    with pytest.raises(ValueError, match="config says obs_dim 5, act_dim 2"):
        domain.expert(TASK)
    assert expert_path(TASK, tmp_path).exists()


@pytest.mark.slow
def test_sac_learns_cartpole_swingup(tmp_path):
    """A short SAC run beats the random policy clearly (random: ~25 per 1000-step episode)."""
    config = sac.SACConfig(hidden=(64, 64), batch_size=128, random_steps=1000, eval_episodes=2)
    folder = dmc_recipe.train_expert(TASK, steps=6000, seed=0, root=tmp_path, config=config, log_every=3000, log=None)
    params, meta = load_expert(TASK, tmp_path)
    curve, ev = meta["curve"], meta["evaluation"]
    assert [p["step"] for p in curve] == [3000, 6000] and all(set(p) >= {"step", "return", "wall_s"} for p in curve)
    assert ev["episodes"] == 10 and len(ev["expert_returns"]) == 10
    assert ev["expert_return_mean"] > 2 * ev["random_return_mean"] + 50, ev
    assert folder == expert_path(TASK, tmp_path) and list(params) == ["actor"]
    with pytest.raises(ValueError, match="no 'state' observation"):
        sac.train_sac(lambda seed: DOMAIN.make(PIXELS, seed=seed), DOMAIN.spec(PIXELS), 10, log=None)
