"""Classic control domain: real gymnasium environments, analytic experts beat random."""

import numpy as np
import pytest

import gatolab as gl
from gatolab.domains import rollout
from gatolab.testing import tiny_tokenizer

DOMAIN = gl.domains.get("classic")

# Expert return thresholds: well above what a uniform random policy gets
# (CartPole ~20, Acrobot -500, MountainCar -200, Pendulum ~-1200).
EXPECTED = {
    "CartPole-v1": (500.0, True),
    "Acrobot-v1": (-150.0, True),
    "MountainCar-v0": (-160.0, True),
    "MountainCarContinuous-v0": (80.0, True),
    "Pendulum-v1": (-400.0, None),
}


def test_registered_and_tasks():
    assert "classic" in gl.domains.names()
    assert DOMAIN.kind == "control"
    assert set(DOMAIN.tasks()) == set(EXPECTED)


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_expert_beats_random_and_tokenizes(task):
    env = DOMAIN.make(task)
    expert, rand = DOMAIN.expert(task), DOMAIN.random_policy(task, seed=0)
    spec = DOMAIN.spec(task)
    min_return, succeeds = EXPECTED[task]
    for seed in range(3):
        ep = rollout(env, expert, seed=seed).episode
        rand_ep = rollout(env, rand, seed=seed).episode
        assert ep.total_return >= min_return, (task, seed, ep.total_return)
        assert ep.total_return > rand_ep.total_return
        if succeeds:
            assert ep.metadata["success"] and not rand_ep.metadata["success"]
    seq = tiny_tokenizer().tokenize_episode(ep, spec)
    assert seq.num_timesteps == len(ep)
    env.close()


def test_generate_is_deterministic():
    a = list(DOMAIN.generate("Pendulum-v1", 2, seed=5))
    b = list(DOMAIN.generate("Pendulum-v1", 2, seed=5))
    assert [e.metadata["seed"] for e in a] == [5, 6]
    np.testing.assert_array_equal(a[1].observations["state"], b[1].observations["state"])
    assert not np.array_equal(a[0].observations["state"][0], a[1].observations["state"][0])
    # Pendulum defines no success: no "success" entry (not a misleading False); others have one.
    assert "success" not in a[0].metadata and a[0].metadata["expert"] == "PendulumExpert"
    assert not DOMAIN.defines_success("Pendulum-v1") and DOMAIN.defines_success("CartPole-v1")
    cart = next(DOMAIN.generate("CartPole-v1", 1, seed=0))
    assert cart.metadata["success"] is True and cart.metadata["expert"] == "CartPoleExpert"


def test_render_frames():
    env = DOMAIN.make("CartPole-v1", render=True)
    run = rollout(env, DOMAIN.expert("CartPole-v1"), seed=0, max_steps=5, render=True)
    ep, frames = run.episode, run.frames
    assert frames.shape[0] == len(ep) + 1 and frames.shape[-1] == 3 and frames.dtype == np.uint8
    assert frames.std() > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown task 'Nope-v0'.*CartPole-v1"):
        DOMAIN.spec("Nope-v0")
    env = DOMAIN.make("Pendulum-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'action' must have shape \\(1,\\)"):
        env.step({"action": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="'action' must lie in \\[-2.0, 2.0\\]"):
        env.step({"action": np.array([3.0], np.float32)})
    with pytest.raises(ValueError, match="'action' contains NaN"):
        env.step({"action": np.array([np.nan], np.float32)})
    with pytest.raises(ValueError, match="'torque' is not in the spec"):
        env.step({"action": np.zeros(1, np.float32), "torque": 0})
    env = DOMAIN.make("CartPole-v1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'action' must lie in \\[0, 2\\)"):
        env.step({"action": np.asarray(2)})
    with pytest.raises(ValueError, match="discrete; got non-integer"):
        env.step({"action": np.asarray(0.5)})
