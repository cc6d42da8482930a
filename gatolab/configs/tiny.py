"""The smallest real run: the `tiny` model and training preset on classic control (tests, notebooks, first steps).

    gatolab train --config tiny --out runs/tiny steps=200
"""

from __future__ import annotations

from gatolab.agent import AgentConfig
from gatolab.configs.base import DataConfig, DatasetConfig, EvalConfig, RunConfig, TextConfig
from gatolab.train.loop import TrainConfig


def get_config() -> RunConfig:
    return RunConfig(
        name="tiny",
        train=TrainConfig.preset_config("tiny"),  # 2 layers x 64, batch 8 x 256 tokens, 200 steps at 1e-3
        data=DataConfig(datasets={"classic": DatasetConfig("classic", episodes=20)}),
        # The tests' small text model (512 pieces on 100 kB of the default corpus): classic control has no text.
        text=TextConfig(vocab_size=512, corpus_chars=100_000),
        eval=EvalConfig(episodes=10, agent=AgentConfig(prompt="start", temperature=1.0)),
    )
