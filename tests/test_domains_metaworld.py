"""Meta-World domain: real MuJoCo tasks, scripted experts succeed, random does not."""

import numpy as np
import pytest

import gatolab as gl
from gatolab.domains import metaworld as gmw
from gatolab.domains.metaworld import env as gmw_env
from gatolab.domains.metaworld import expert as gmw_expert
from gatolab.domains import rollout
from gatolab.testing import tiny_tokenizer

FAST = gmw.MetaWorldDomain(terminate_on_success=True)
TASKS = ["reach-v3", "button-press-topdown-v3", "drawer-open-v3", "pick-place-v3"]


def test_tasks_and_spec():
    domain = gl.domains.get("metaworld")
    assert len(domain.tasks()) >= 45
    assert set(gmw_expert.EXPERT_SUCCESS) == set(domain.tasks())  # every offered task was measured
    spec = domain.spec("reach-v3")
    assert spec.observation["state"].shape == (39,) and spec.observation["state"].uses_mu_law
    assert spec.action["action"].shape == (4,) and not spec.action["action"].uses_mu_law


@pytest.mark.parametrize("task", TASKS)
def test_scripted_expert_succeeds(task):
    env = FAST.make(task)
    for seed in range(2):
        ep = rollout(env, FAST.expert(task), seed=seed).episode
        assert ep.metadata["success"], (task, seed)
        assert len(ep) < gmw_env.MAX_PATH_LENGTH  # terminate_on_success ended it early
        assert np.all(np.abs(ep.actions["action"]) <= 1.0)
    rand_ep = rollout(env, FAST.random_policy(task, seed=0), seed=0, max_steps=100).episode
    assert not rand_ep.metadata["success"]
    assert tiny_tokenizer().tokenize_episode(ep, FAST.spec(task)).num_timesteps == len(ep)
    env.close()


def test_full_length_default_and_determinism():
    domain = gl.domains.get("metaworld")
    a = next(domain.generate("reach-v3", 1, seed=7))
    b = next(domain.generate("reach-v3", 1, seed=7))
    c = next(domain.generate("reach-v3", 1, seed=8))
    assert len(a) == gmw_env.MAX_PATH_LENGTH and a.metadata["success"]
    np.testing.assert_array_equal(a.observations["state"], b.observations["state"])
    # A fresh goal per seed: the goal (last 3 dims) differs across seeds.
    assert not np.allclose(a.observations["state"][0, -3:], c.observations["state"][0, -3:])
    assert np.any(a.observations["state"][0, -3:] != 0)  # goal observable, not zeroed


def test_render_is_right_side_up_shape():
    env = FAST.make("reach-v3", render=True)
    run = rollout(env, FAST.expert("reach-v3"), seed=0, max_steps=3, render=True)
    ep, frames = run.episode, run.frames
    env.close()
    assert frames.shape == (len(ep) + 1, 128, 128, 3) and frames.dtype == np.uint8
    # The floor is the darkest/greyest part of the corner view once rotated: after the
    # 180° rotation the table top (brown wood) sits in the lower half of the frame.
    f = frames[0].astype(float)
    brown = (f[..., 0] - f[..., 2]) > 25
    assert brown[64:].sum() > brown[:64].sum()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown task 'reach-v2'.*reach-v3"):
        FAST.spec("reach-v2")
    env = FAST.make("reach-v3")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'action' must have shape \\(4,\\)"):
        env.step({"action": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="'action' must lie in \\[-1.0, 1.0\\]"):
        env.step({"action": np.array([0, 0, 2, 0], np.float32)})
    with pytest.raises(ValueError, match="'action' contains NaN"):
        env.step({"action": np.array([0, np.nan, 0, 0], np.float32)})
    env.close()


def test_choose_mujoco_gl_finds_a_working_backend():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    code = "from gatolab.domains.common import choose_mujoco_gl; print(choose_mujoco_gl())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("egl", "osmesa")  # this machine has both; a headless one must find one
    # A backend the user chose is left alone.
    env["MUJOCO_GL"] = "osmesa"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "osmesa"
