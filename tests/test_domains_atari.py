"""ALE Atari: the adapter (RGB frames, 18 actions, seeds, errors), the expert's DQN view equal to
ale-py's vector env bit for bit, the matmul Nature CNN, the PPO host driver, the committed expert."""

import json

import numpy as np
import pytest

from gatolab.domains.atari import emulator as at_emulator
from gatolab.domains.atari import expert as at_expert
from gatolab.domains.atari import recipe as at_recipe
from gatolab.domains import get as get_domain, rollout
from gatolab.domains import evaluate_policies
from gatolab.experts import store

DOMAIN = get_domain("atari")
TASK = "ALE/Breakout-v5"
EXPERT_TASK = "ALE/Breakout-v5"  # the committed expert (experts/ALE_Breakout-v5)


def test_tasks_are_gymnasium_ids_with_roms_and_specs():
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    assert len(DOMAIN.tasks()) == 57
    for task, rom in at_emulator.ATARI_GAMES.items():
        assert task in gym.registry, task
        assert ale_py.roms.get_rom_path(rom) is not None, rom
    spec = DOMAIN.spec("ALE/Pong-v5")
    assert spec.observation["image"].shape == (84, 84, 3)
    assert spec.action["action"].num_values == 18
    with pytest.raises(ValueError, match="unknown task 'ALE/NoSuchGame-v5'"):
        DOMAIN.spec("ALE/NoSuchGame-v5")


def test_area_resize_is_an_area_average():
    flat = np.full((210, 160), 77, np.uint8)
    assert (at_emulator.area_resize(flat) == 77).all()
    img = np.random.default_rng(0).integers(0, 256, (168, 168, 3)).astype(np.uint8)  # exact 2x: block means
    expect = np.rint(img.reshape(84, 2, 84, 2, 3).astype(np.float64).mean((1, 3)))
    assert np.abs(at_emulator.area_resize(img).astype(int) - expect).max() <= 1


@pytest.mark.parametrize("task", ["ALE/Breakout-v5", "ALE/SpaceInvaders-v5"])
def test_expert_view_equals_the_training_vector_env_bit_for_bit(task):
    """The TaskEnv's emulator reproduces ale-py's AtariVectorEnv (the PPO training env), built from
    the same PREPROCESSING table: grayscale stacks and the RGB frame, with sticky actions on.
    (No-op starts off here: their count comes from a different generator, same distribution.)"""
    seed = 11
    gray = at_recipe.make_vector_env(task, 1, noop_max=0)
    rgb = at_recipe.make_vector_env(task, 1, noop_max=0, grayscale=False, stack_num=1)
    emulator = at_emulator.DQNEmulator(at_emulator.ATARI_GAMES[task], noop_max=0)
    g, _ = gray.reset(seed=seed)
    c, _ = rgb.reset(seed=seed)
    emulator.reset(seed)
    np.testing.assert_array_equal(g[0], emulator.stack)
    np.testing.assert_array_equal(c[0, 0], emulator.image)
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(150):
        a = int(rng.integers(18))
        g, r, term, _, _ = gray.step(np.array([a], np.int32))
        c, _, _, _, _ = rgb.step(np.array([a], np.int32))
        reward, game_over, _ = emulator.step(a)
        assert reward == r[0] and game_over == bool(term[0])
        if game_over:
            break
        np.testing.assert_array_equal(g[0], emulator.stack)
        np.testing.assert_array_equal(c[0, 0], emulator.image)
        compared += 1
    assert compared > 100
    gray.close()
    rgb.close()


def test_episodes_are_deterministic_by_seed_and_render():
    env = DOMAIN.make(TASK)
    run = rollout(env, DOMAIN.random_policy(TASK, seed=1), seed=5, render=True)
    a, frames = run.episode, run.frames
    b = rollout(env, DOMAIN.random_policy(TASK, seed=1), seed=5).episode
    assert len(b) < env.max_steps  # the game ended (all lives lost)
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step({"action": np.asarray(0)})
    np.testing.assert_array_equal(a.observations["image"], b.observations["image"])
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert a.observations["image"].shape == (len(a), 84, 84, 3) and a.observations["image"].dtype == np.uint8
    assert frames.shape == (len(a) + 1, 210, 160, 3) and frames.dtype == np.uint8
    c = rollout(env, DOMAIN.random_policy(TASK, seed=1), seed=6).episode  # other no-op count and sticky draws
    assert len(c) != len(a) or not np.array_equal(c.observations["image"], a.observations["image"])
    env.reset(seed=0)
    view = env.expert_observation()
    assert view.shape == (84, 84, 4) and view.dtype == np.uint8 and (view[..., :3] == 0).all() and view[..., 3].any()


def test_bad_inputs_raise():
    env = DOMAIN.make("ALE/Pong-v5")
    with pytest.raises(ValueError, match="before reset"):
        env.step({"action": np.asarray(0)})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"'action' must lie in \[0, 18\)"):
        env.step({"action": np.asarray(18)})
    with pytest.raises(ValueError, match="'action' is missing"):
        env.step({})
    with pytest.raises(ValueError, match="'action' is discrete"):
        env.step({"action": np.asarray(1.5)})


def test_matmul_cnn_equals_the_lax_convolution():
    import jax
    import jax.numpy as jnp

    from gatolab.experts.ppo import conv_as_matmul, init_params

    rng = np.random.default_rng(0)
    for shape, k, stride in [((84, 84, 4), 8, 4), ((20, 20, 32), 4, 2), ((7, 7, 64), 3, 1), ((64, 64, 3), 8, 4)]:
        x = jnp.asarray(rng.random((2, *shape), np.float32))
        kernel = jnp.asarray(rng.normal(size=(k, k, shape[-1], 16)).astype(np.float32))
        ref = jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        np.testing.assert_allclose(conv_as_matmul(x, kernel, stride), ref, rtol=1e-4, atol=1e-3)
    params = init_params(at_recipe.ppo_config(1000), 18, (84, 84, 4), jax.random.PRNGKey(3))["params"]
    assert [params[f"Conv_{i}"]["kernel"].shape for i in range(3)] == [(8, 8, 4, 32), (4, 4, 32, 64), (3, 3, 64, 64)]


def test_vector_env_adapter_and_host_drivers_run():
    from gatolab.experts.ppo import PPOConfig, train_host_env

    venv = at_recipe.AtariVecEnv(TASK, 2, seed=0, num_threads=1)
    obs = venv.reset()
    assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
    ended, saw_life_loss = [], False
    rng = np.random.default_rng(0)
    for _ in range(400):
        obs, reward, done, finished = venv.step(rng.integers(0, 18, 2))
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        saw_life_loss |= bool(done.any())
        ended += finished
    assert saw_life_loss and ended and all(r >= 0 for r in ended)  # raw Breakout scores
    keys = {"step", "return", "episodes", "wall_s", "entropy", "approx_kl"}
    config = at_recipe.ppo_config(64, num_envs=2, num_steps=32, num_minibatches=2, update_epochs=1)
    params, curve = train_host_env(venv, config, log=None)
    assert len(curve) == 1 and keys <= set(curve[0]) and curve[0]["step"] == 64
    _, curve = train_host_env(venv, PPOConfig(num_envs=2, num_steps=8, total_steps=16, num_minibatches=1, update_epochs=1,
                                              obs_scale=1 / 255), log=None)  # the MLP network too
    assert keys <= set(curve[0])
    venv.close()


class _BrightSideEnv:
    """A one-step image bandit: the bright half of the frame (left or right) names the rewarded action."""

    num_actions, obs_shape = 2, (36, 36, 1)

    def __init__(self, num_envs):
        self.num_envs, self.rng = num_envs, np.random.default_rng(0)

    def _obs(self):
        self.side = self.rng.integers(0, 2, self.num_envs)
        obs = np.zeros((self.num_envs, 36, 36, 1), np.uint8)
        for i, s in enumerate(self.side):
            obs[i, :, 18 * s:18 * (s + 1)] = 255
        return obs

    def reset(self):
        return self._obs()

    def step(self, actions):
        reward = (np.asarray(actions) == self.side).astype(np.float32)
        return self._obs(), reward, np.ones(self.num_envs, np.float32), reward.tolist()

    def close(self):
        pass


def test_host_driver_learns_an_image_bandit():
    config = at_recipe.ppo_config(16 * 32 * 12, num_envs=16, num_steps=32, lr=1e-3)
    from gatolab.experts.ppo import train_host_env

    _, curve = train_host_env(_BrightSideEnv(16), config, log_every=1, log=None)
    assert curve[0]["return"] < 0.75 and np.mean([p["return"] for p in curve[-3:]]) > 0.9, curve


def test_committed_expert_beats_random_through_the_adapter():
    meta = json.loads((store.expert_path(EXPERT_TASK) / store.META_FILE).read_text())
    ev = meta["evaluation"]
    assert meta["algo"] == "ppo" and meta["domain"] == "atari" and ev["expert_return_mean"] > ev["random_return_mean"]
    got = evaluate_policies(DOMAIN, EXPERT_TASK, {"expert": DOMAIN.expert(EXPERT_TASK),
                                                  "random": DOMAIN.random_policy(EXPERT_TASK, 0)}, episodes=3, seed=123)
    assert got["expert_return_mean"] > got["random_return_mean"] + 1.0, got


def test_missing_and_corrupt_experts_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="gatolab experts train --env ALE/Pong-v5"):
        at_expert.load_expert("ALE/Pong-v5", root=tmp_path)
    params, meta = store.load_expert(EXPERT_TASK)
    path = store.save_expert(EXPERT_TASK, params, domain="atari", algo="ppo", config=meta["config"], curve=[], root=tmp_path)
    at_expert.load_expert(EXPERT_TASK, root=tmp_path)  # round trip loads
    data = bytearray((path / store.PARAMS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / store.PARAMS_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt expert parameters .*params.npz"):
        at_expert.load_expert(EXPERT_TASK, root=tmp_path)
    with pytest.raises(ValueError, match="needs an AtariEnv"):
        at_expert.expert_features(object(), {})


def test_episodes_tokenize_to_36_patches_per_frame():
    from gatolab.specs import Modality
    from gatolab.testing import tiny_tokenizer

    env = DOMAIN.make(TASK)
    ep = rollout(env, DOMAIN.random_policy(TASK, 0), seed=0, max_steps=5).episode
    seq = tiny_tokenizer().tokenize_episode(ep, DOMAIN.spec(TASK))
    assert seq.num_timesteps == len(ep) == 5
    assert int(np.sum(seq.modality == Modality.IMAGE)) == 5 * 36  # 84x84 padded to 96x96 (GATO_SPEC §1)
    assert int(np.sum(seq.is_action)) == 5  # one token for the 18-way button


def test_generate_stores_gymnasium_ids_and_records_the_expert(tmp_path):
    """Task names with "/" (gymnasium ids) get a "__" folder; the dataset gives back the real name."""
    import gatolab as gl
    from gatolab.data import storage as st
    from gatolab.testing import tiny_tokenizer

    m = gl.data.generate("atari", tmp_path, tasks=[EXPERT_TASK], episodes=1, progress=False)
    assert m["experts"][EXPERT_TASK]["algo"] == "ppo"
    assert (tmp_path / "atari" / "ALE__Breakout-v5").is_dir()
    ds = st.EpisodeDataset(tmp_path / "atari")
    ep = ds[0]
    assert ds.episode_task == [EXPERT_TASK] and ep.task == EXPERT_TASK
    assert ep.observations["image"].shape[1:] == (84, 84, 3)
    assert tiny_tokenizer().tokenize_episode(ep, ds.specs[EXPERT_TASK]).num_timesteps == len(ep)
    with pytest.raises(ValueError, match="must not contain '__'"):
        st.shard_dir(tmp_path, "a__b", 0)
