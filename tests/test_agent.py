"""The prompted agent (Gato §2.4, GATO_SPEC §5): prompts, restricted sampling, traces, bad input."""

import numpy as np
import pytest
from flax import nnx

import gatolab as gl
from gatolab import agent as ga
from gatolab.model.decode import Decoder


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return gl.model.Gato(gl.model.ModelConfig.preset("tiny"), rngs=nnx.Rngs(0)), gl.testing.tiny_tokenizer()


@pytest.fixture(scope="module")
def classic():
    return gl.domains.get("classic")


def test_prompt_sequence_start_end_whole_timesteps(model_and_tokenizer, classic):
    _, tok = model_and_tokenizer
    spec = classic.spec("CartPole-v1")
    ep = next(classic.generate("CartPole-v1", 1, seed=0))
    full = tok.tokenize_episode(ep, spec)
    per_step = len(full) // ep.num_timesteps  # 4 state + '|' + 1 action = 6
    start = ga.prompt_sequence(tok, ep, spec, "start", 100)
    end = ga.prompt_sequence(tok, ep, spec, "end", 100)
    assert len(start) == len(end) == (100 // per_step) * per_step
    np.testing.assert_array_equal(start.ids, full.ids[: len(start)])
    np.testing.assert_array_equal(end.ids, full.ids[-len(end):])
    assert ga.prompt_sequence(tok, ep, spec, "none", 100) is None
    assert ga.prompt_sequence(tok, ep, spec, "start", per_step - 1) is None  # not one whole timestep fits
    with pytest.raises(ValueError, match="prompt kind"):
        ga.prompt_sequence(tok, ep, spec, "middle", 100)


def test_greedy_action_matches_decoder_argmax(model_and_tokenizer, classic):
    """The agent's step (one fused Decoder.act call) equals observe + Decoder.sample_action at temperature 0."""
    model, tok = model_and_tokenizer
    spec = classic.spec("Pendulum-v1")  # one continuous action token
    agent = ga.GatoAgent(model, tok, ga.AgentConfig(prompt="start", temperature=0.0))
    env = classic.make("Pendulum-v1")
    agent.reset(env, seed=5)
    obs = env.reset(seed=5)
    agent(env, obs)
    step = agent.last_step
    ref = Decoder(model, vocab=tok.vocab)
    demo = agent.prompts.episode("Pendulum-v1", seed=5)
    ref.prefill(ga.prompt_sequence(tok, demo, spec, "start", agent.prompt_budget))
    ref.observe(tok.tokenize_observation(obs, spec, timestep=0))
    want = ref.sample_action(tok.action_token_ranges(spec), temperature=0.0)
    np.testing.assert_array_equal(step.ids, want)
    assert step.probs[0] == pytest.approx(step.first_dist.max())
    assert step.first_dist.shape == (1024,) and step.first_dist.sum() == pytest.approx(1.0)
    assert -2.0 <= float(step.action["action"][0]) <= 2.0
    env.close()


def test_run_episode_trace(model_and_tokenizer, classic):
    model, tok = model_and_tokenizer
    agent = ga.GatoAgent(model, tok, ga.AgentConfig(prompt="end", temperature=1.0))
    env = classic.make("CartPole-v1", render=True)
    seen = []
    tr = ga.run_episode(agent, env, seed=ga.EVAL_SEED, render=True, max_steps=25,
                        on_step=lambda t, frame, info, ret: seen.append((t, frame.shape, ret)))
    env.close()
    assert 1 <= tr.length <= 25 and len(seen) == tr.length
    assert tr.total_return == pytest.approx(tr.length)  # CartPole: +1 per step survived
    assert tr.frames.shape[0] == tr.length + 1 and tr.frames.dtype == np.uint8
    assert tr.action_ids.shape == (tr.length, 1) and set(np.unique(tr.action_ids)) <= {0, 1}  # shared discrete ids
    assert np.all((tr.action_probs > 0) & (tr.action_probs <= 1))
    assert 0 < tr.prompt_tokens <= agent.prompt_budget == 128  # tiny context 256, half for the prompt
    assert np.all(tr.returns_so_far == np.arange(1, tr.length + 1))
    assert tr.latency_ms > 0


def test_sampling_is_seeded(model_and_tokenizer, classic):
    model, tok = model_and_tokenizer
    agent = ga.GatoAgent(model, tok, ga.AgentConfig(prompt="none", temperature=1.0))
    env = classic.make("Acrobot-v1")
    a = ga.run_episode(agent, env, seed=7, max_steps=30)
    b = ga.run_episode(agent, env, seed=7, max_steps=30)
    c = ga.run_episode(agent, env, seed=8, max_steps=30)
    env.close()
    assert a.prompt_tokens == 0
    np.testing.assert_array_equal(a.action_ids, b.action_ids)
    assert not np.array_equal(a.action_ids, c.action_ids)


def test_prompt_bank_uses_stored_successful_episodes(tmp_path, classic):
    gl.data.generate("classic", tmp_path, tasks=["MountainCar-v0"], episodes=4, progress=False)
    bank = ga.PromptBank([tmp_path / "classic"], run_expert=False)
    ds = bank.datasets[0]
    best = ds.episode_return.max()
    for s in range(4):
        ep = bank.episode("MountainCar-v0", seed=s)
        assert ep.total_return >= best - 0.2 * abs(best)
    with pytest.raises(ValueError, match="no stored demonstration"):
        bank.episode("CartPole-v1")


def test_bad_input(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    with pytest.raises(ValueError, match="AgentConfig.prompt"):
        ga.AgentConfig(prompt="middle")
    with pytest.raises(ValueError, match="prompt_fraction"):
        ga.AgentConfig(prompt_fraction=2.0)
    with pytest.raises(ValueError, match="does not exist"):
        ga.GatoAgent.from_checkpoint(tmp_path / "nope")
    agent = ga.GatoAgent(model, tok)
    with pytest.raises(ValueError, match="reset"):
        agent.act([None], [0], [{"state": np.zeros(4, np.float32)}])
