"""Every domain: registered, tokenizable, strict about bad input, lazy about optional packages."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import gatolab as gl
from gatolab.domains import common
from gatolab.domains.metaworld import MetaWorldDomain
from gatolab.domains import rollout
from gatolab.specs import EnvSpec, FieldSpec
from gatolab.testing import tiny_tokenizer

FIRST_TASK = {"babyai": "BabyAI-GoToLocal-v0", "classic": "CartPole-v1", "metaworld": "reach-v3",
              "sokoban": "Sokoban-7x7-1box", "minatar": "Breakout-MinAtar", "dmc": "cartpole-swingup",
              "text": "stdlib_text", "vision_language": "shapes_vqa"}


def test_all_domains_registered():
    assert set(gl.domains.names()) >= set(FIRST_TASK)
    kinds = {name: gl.domains.get(name).kind for name in FIRST_TASK}
    assert kinds == {**{name: "control" for name in FIRST_TASK}, "text": "text", "vision_language": "vision_language"}
    with pytest.raises(ValueError, match="unknown domain 'nosuchdomain'"):
        gl.domains.get("nosuchdomain")


@pytest.mark.parametrize("name", sorted(FIRST_TASK))
def test_every_domain_generates_tokenizable_episodes(name):
    domain = gl.domains.get(name)
    task = FIRST_TASK[name]
    assert task in domain.tasks()
    spec = domain.spec(task)
    if name == "metaworld":  # full 500-step episodes are slow-ish; one is enough here
        episodes = list(MetaWorldDomain(terminate_on_success=True).generate(task, 1, seed=0))
    else:
        episodes = list(domain.generate(task, 2, seed=0))
    tok = tiny_tokenizer()
    for ep in episodes:
        assert ep.task == task
        assert set(ep.observations) == set(spec.observation) and set(ep.actions) == set(spec.action)
        seq = tok.tokenize_episode(ep, spec)
        assert seq.num_timesteps == len(ep)
        if spec.action:  # decoding the logged action tokens gives back the logged actions
            obs0, act0 = ep.timestep(0)
            ids = tok.tokenize_action(act0, spec)
            decoded = tok.decode_action(ids, spec)
            for k, f in spec.action.items():
                # Continuous: within about a bin (1024 uniform bins over [-1, 1], Gato §2.1); discrete: exact.
                atol = 2.5 / 1024 * (f.high - f.low) if f.modality.name == "CONTINUOUS" else 0
                np.testing.assert_allclose(decoded[k], act0[k], atol=atol)


def test_check_action_messages():
    spec = EnvSpec("demo", {"s": FieldSpec.continuous((2,))},
                   {"move": FieldSpec.continuous((2,), -1, 1), "button": FieldSpec.discrete(3)})
    ok = common.check_action(spec, {"move": [0.5, -1.0], "button": 2})
    assert ok["button"].dtype == np.int64 and ok["move"].dtype == np.float32
    cases = [
        ({"move": [0, 0]}, "'button' is missing"),
        ({"move": [0, 0], "button": 1, "extra": 0}, "'extra' is not in the spec"),
        ({"move": [0, 0, 0], "button": 1}, "'move' must have shape \\(2,\\)"),
        ({"move": [0, 1.5], "button": 1}, "'move' must lie in \\[-1.0, 1.0\\]"),
        ({"move": [0, 0], "button": 3}, "'button' must lie in \\[0, 3\\)"),
        ({"move": [0, 0], "button": -1}, "'button' must lie in \\[0, 3\\)"),
        ({"move": ["a", "b"], "button": 1}, "'move' must be numeric"),
        ([0, 1], "an action must be a dict"),
    ]
    for action, message in cases:
        with pytest.raises(ValueError, match=message):
            common.check_action(spec, action)


def test_nan_observation_raises():
    env = gl.domains.get("classic").make("CartPole-v1")
    env.env = gym.wrappers.TransformObservation(env.env, lambda o: o * np.nan, env.env.observation_space)
    with pytest.raises(ValueError, match="observation field 'state' contains NaN"):
        env.reset(seed=0)


def test_random_policy_needs_finite_bounds():
    spec = EnvSpec("demo", {"s": FieldSpec.continuous((2,))}, {"a": FieldSpec.continuous((2,))})
    with pytest.raises(ValueError, match="finite bounds on action field 'a'"):
        gl.domains.RandomPolicy(spec)
    spec = EnvSpec("demo", {"s": FieldSpec.continuous((2,))}, {"a": FieldSpec.continuous((2,), -2, 2)})
    env = gl.domains.get("classic").make("Pendulum-v1")
    acts = [gl.domains.RandomPolicy(spec, seed=1)(env, {})["a"] for _ in range(200)]
    assert np.min(acts) >= -2 and np.max(acts) <= 2 and np.std(acts) > 0.5


def test_missing_optional_package_fails_only_on_use():
    # Block metaworld and minigrid: listing domains must still work, and using the
    # domain must raise an ImportError naming the package.
    code = """
import sys
for pkg in ("metaworld", "minigrid", "gymnax", "dm_control"):
    sys.modules[pkg] = None
import gatolab as gl
assert "metaworld" in gl.domains.names() and "babyai" in gl.domains.names()
assert gl.domains.owner("CartPole-v1") == "classic"  # every domain's `owns` is asked: none imports its simulator
uses = {"metaworld": lambda d: d.tasks(), "babyai": lambda d: d.tasks(),
        "minatar": lambda d: d.make("Breakout-MinAtar"), "dmc": lambda d: d.make("cartpole-swingup")}
for name, pkg in (("metaworld", "metaworld"), ("babyai", "minigrid"), ("minatar", "gymnax"), ("dmc", "dm_control")):
    try:
        uses[name](gl.domains.get(name))
    except ImportError as e:
        assert repr(pkg) in str(e) and "pip install" in str(e), str(e)
    else:
        raise SystemExit(name + ": no ImportError")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_rollout_metadata_for_control():
    domain = gl.domains.get("classic")
    env = domain.make("MountainCar-v0")
    ep = rollout(env, domain.expert("MountainCar-v0"), seed=3).episode
    assert ep.metadata["seed"] == 3 and ep.metadata["success"]
    assert ep.metadata["length"] == len(ep) and ep.metadata["return"] == pytest.approx(ep.total_return)
