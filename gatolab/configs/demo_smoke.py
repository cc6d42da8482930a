"""The demo in smoke mode (tests, `python -m gatolab.demo --smoke`): the demo's recipe on a few
episodes, the tests' 512-piece text model, 60-step evaluation episodes, a 6-step probe."""

from __future__ import annotations

import dataclasses

from gatolab.configs import demo
from gatolab.configs.base import RunConfig, TextConfig

EPISODES = {"classic": 3, "babyai": 5, "metaworld": 2, "text": 10, "vision_language": 10}


def get_config() -> RunConfig:
    c = demo.get_config()
    datasets = {name: dataclasses.replace(d, episodes=EPISODES[name]) for name, d in c.data.datasets.items()}
    return dataclasses.replace(
        c, name="demo_smoke",
        data=dataclasses.replace(c.data, datasets=datasets),
        text=TextConfig(vocab_size=512, corpus_chars=100_000, compact_ids=True),
        eval=dataclasses.replace(c.eval, max_steps=60, language_episodes=2),
        budget_minutes=0.25, probe_steps=6)
