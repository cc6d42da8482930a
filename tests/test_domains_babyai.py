"""BabyAI domain: real minigrid levels, BabyAIBot expert, guarded replan, spec switches."""

import numpy as np
import pytest

import gatolab as gl
from gatolab.domains import babyai
from gatolab.domains.babyai import env as babyai_env
from gatolab.domains.babyai import expert as babyai_expert
from gatolab.domains import rollout
from gatolab.specs import Modality
from gatolab.testing import tiny_tokenizer

DOMAIN = gl.domains.get("babyai")
LEVELS = ["BabyAI-GoToRedBall-v0", "BabyAI-PickupLoc-v0", "BabyAI-OpenDoor-v0", "BabyAI-PutNextLocal-v0", "BabyAI-UnlockLocal-v0"]


def test_levels_and_exclusions():
    tasks = DOMAIN.tasks()
    assert len(tasks) >= 30
    assert set(LEVELS) <= set(tasks)
    for excluded in babyai_env.EXCLUDED_LEVELS:
        assert excluded in babyai_env.all_registered_levels()  # the table names real levels
        assert excluded not in tasks
    assert not any(t.endswith("Debug-v0") for t in tasks)


@pytest.mark.parametrize("task", LEVELS)
def test_bot_solves_and_beats_random(task):
    episodes = list(DOMAIN.generate(task, 2, seed=0))
    env = DOMAIN.make(task)
    for ep in episodes:
        assert ep.metadata["success"], (task, ep.metadata)
        assert 0 < ep.total_return <= 1
        assert ep.observations["grid"].shape == (len(ep), 7, 7, 3)
        assert ep.actions["action"].shape == (len(ep),)
        rand_ep = rollout(env, DOMAIN.random_policy(task, seed=ep.metadata["seed"]), seed=ep.metadata["seed"]).episode
        assert ep.total_return > rand_ep.total_return
    # The mission is the same string every timestep of an episode.
    assert len(set(episodes[0].observations["mission"])) == 1
    seq = tiny_tokenizer().tokenize_episode(episodes[0], DOMAIN.spec(task))
    assert seq.num_timesteps == len(episodes[0])


def test_mission_loss_switch_and_pixels():
    task = "BabyAI-GoToRedBall-v0"
    default = DOMAIN.spec(task)
    assert default.observation["mission"].modality == Modality.TEXT
    assert not default.observation["mission"].is_loss_target(is_action=False)
    literal = babyai.BabyAIDomain(mission_loss=True).spec(task)
    assert literal.observation["mission"].is_loss_target(is_action=False)

    tok = tiny_tokenizer()
    ep = next(DOMAIN.generate(task, 1, seed=3))
    n_default = int(tok.tokenize_episode(ep, default).loss_mask.sum())
    n_literal = int(tok.tokenize_episode(ep, literal).loss_mask.sum())
    assert n_default == len(ep)  # only the one action token per step
    assert n_literal > n_default

    pix = babyai.BabyAIDomain(pixels=True)
    ep = next(pix.generate(task, 1, seed=3))
    assert ep.observations["pixels"].shape == (len(ep), 112, 112, 3)
    assert ep.observations["pixels"].dtype == np.uint8 and ep.observations["pixels"].std() > 0
    seq = tok.tokenize_episode(ep, pix.spec(task))
    assert seq.num_patches == 49 * len(ep)  # 7x7 patches of 16 px: one per grid cell


def test_render_frames_for_video():
    env = DOMAIN.make("BabyAI-GoToRedBall-v0", render=True)
    run = rollout(env, DOMAIN.expert("BabyAI-GoToRedBall-v0"), seed=0, render=True)
    ep, frames = run.episode, run.frames
    assert frames.shape[0] == len(ep) + 1 and frames.shape[-1] == 3 and frames.dtype == np.uint8


def test_replan_budget_raises_bot_timeout():
    # UnlockToUnlock seed 4 makes BabyAIBot.replan() loop forever; the budget stops it.
    env = babyai_env.BabyAITaskEnv("BabyAI-UnlockToUnlock-v0", babyai_env.babyai_spec("BabyAI-UnlockToUnlock-v0"))
    with pytest.raises(babyai_expert.BotTimeout):
        rollout(env, babyai_expert.BabyAIExpert(call_budget=200_000), seed=4)


def test_call_budget_is_deterministic_and_restores_profiler():
    import sys

    def work():
        return sum(len(str(i)) for i in range(1000))

    assert babyai_expert._call_with_budget(work, 10_000) == work()
    with pytest.raises(babyai_expert.BotTimeout):
        babyai_expert._call_with_budget(work, 10)
    assert sys.getprofile() is None


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown task 'BabyAI-KeyInBox-v0'"):
        DOMAIN.make("BabyAI-KeyInBox-v0")
    env = DOMAIN.make("BabyAI-GoToRedBall-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="'action' must lie in \\[0, 7\\)"):
        env.step({"action": np.asarray(7)})
    with pytest.raises(ValueError, match="'action' must have shape \\(\\)"):
        env.step({"action": np.asarray([1, 2])})
    with pytest.raises(ValueError, match="needs a BabyAITaskEnv"):
        DOMAIN.expert("BabyAI-GoToRedBall-v0")(gl.domains.get("classic").make("CartPole-v1"), {})


def test_generate_skips_seeds_where_the_bot_fails():
    class WithUnlockToUnlock(babyai.BabyAIDomain):
        def tasks(self):
            return ["BabyAI-UnlockToUnlock-v0"]

        def expert(self, task):
            return babyai_expert.BabyAIExpert(call_budget=200_000)

    ep = next(WithUnlockToUnlock().generate("BabyAI-UnlockToUnlock-v0", 1, seed=4))
    assert ep.metadata["seed"] == 5 and ep.metadata["skipped_seeds"] == [4]
