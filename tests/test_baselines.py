"""The 1-nearest-neighbour "retrieve and play" reference policy (REGENT's baseline beside Gato §5.2)."""

import numpy as np
import pytest

from gatolab.baselines import RetrievalPolicy
from gatolab.domains import registry
from gatolab.domains.base import RandomPolicy, rollout
from gatolab.episode import Episode
from gatolab.specs import EnvSpec, FieldSpec


def test_retrieval_plays_cartpole_from_five_expert_episodes_far_above_random():
    domain = registry.get("classic")
    episodes = list(domain.generate("CartPole-v1", 5, seed=0))
    policy = RetrievalPolicy(episodes, domain.spec("CartPole-v1"))
    assert policy.size == sum(len(e) for e in episodes)
    # A stored observation retrieves itself, so its stored action.
    obs, act = episodes[2].timestep(17)
    assert policy.nearest(obs) == len(episodes[0]) + len(episodes[1]) + 17
    assert policy(None, obs) == act
    env = domain.make("CartPole-v1")
    seeds = range(1000, 1005)  # not the stored episodes' seeds
    got = np.mean([rollout(env, policy, seed=s, record=False).total_return for s in seeds])
    rand = np.mean([rollout(env, RandomPolicy(env.spec, s), seed=s, record=False).total_return for s in seeds])
    env.close()
    assert got > 3 * rand, (got, rand)


def test_text_fields_must_match_and_bad_input_is_named():
    spec = EnvSpec("t", {"mission": FieldSpec.text(), "pos": FieldSpec.continuous((2,), -1, 1)},
                   {"move": FieldSpec.discrete(4)})

    def ep(mission, pos, move):
        return Episode("t", {"mission": [mission] * len(pos), "pos": np.asarray(pos, np.float32)},
                       {"move": np.asarray(move)})

    policy = RetrievalPolicy([ep("go left", [[0, 0], [1, 1]], [0, 1]), ep("go right", [[0.9, 0.9]], [3])], spec)
    # Nearest overall is the "go right" timestep, but the mission picks among its own rows.
    assert policy(None, {"mission": "go left", "pos": np.array([0.9, 0.9])})["move"] == 1
    assert policy(None, {"mission": "go right", "pos": np.array([0.0, 0.0])})["move"] == 3
    assert policy(None, {"mission": "unseen", "pos": np.array([0.1, 0.0])})["move"] == 0  # no match: all rows
    with pytest.raises(ValueError, match="observation field 'pos' holds NaN"):
        policy(None, {"mission": "go left", "pos": np.array([np.nan, 0.0])})
    with pytest.raises(ValueError, match="no episodes to retrieve from"):
        RetrievalPolicy([], spec)


def test_retrieval_through_the_evaluation_uses_the_runs_first_k_episodes(tmp_path):
    import gatolab as gl
    from gatolab.baselines import Retrieval
    from gatolab.data.mixture import MixtureConfig

    gl.data.generate("classic", tmp_path, tasks=["CartPole-v1"], episodes=4, progress=False)
    data = [str(tmp_path / "classic")]
    ref = Retrieval(data, MixtureConfig(episodes_per_task=2))
    stored = ref.episodes("CartPole-v1")
    everything = Retrieval(data, MixtureConfig()).episodes("CartPole-v1")
    assert len(stored) == 2 and [len(e) for e in stored] == [len(e) for e in everything[:2]]
    assert ref.policy("CartPole-v1").size == sum(len(e) for e in stored)
    res = gl.evaluate.evaluate(ref, ["CartPole-v1"], episodes=3, progress=False, out=tmp_path / "eval")
    row = res.rows[0]
    assert row["error"] is None and len(row["returns"]) == 3 and row["mean_return"] > 30
    assert res.config["policy"]["policy"] == "retrieval-1nn" and res.config["checkpoint"] is None
    with pytest.raises(ValueError, match="no dataset holds episodes of task 'Acrobot-v1'"):
        ref.policy("Acrobot-v1")
