"""Gato's own run at its scale (GATO_SPEC §4, Table 1): for a TPU pod, not this CPU.

    gatolab train --config paper --out runs/paper --mesh 2,8,1 --distributed preset=gato_79m

The 1.18B network (Table 5), batch 512 x 1024 tokens for 1M steps (AdamW, warm-up 15k to
1e-4, cosine decay by 10x; `--train-preset paper`), every domain gatolab has at its Table-1
weight (the registry's default weights), the paper's 32,000-piece text model in [0, 32000),
50 rollouts per task. The episode counts are a start: Gato's datasets hold 10^4-10^6 episodes
per domain (Table 1). Domains whose experts are trained (MinAtar, Atari, Procgen, DM Control)
generate only the tasks with an expert in `experts/`: train the others first
(`gatolab experts train --env <task>`).
"""

from __future__ import annotations

from gatolab.configs.base import DataConfig, DatasetConfig, EvalConfig, RunConfig, TextConfig
from gatolab.domains.dmc.env import DMC_TASKS, PIXELS_SUFFIX
from gatolab.train.loop import TrainConfig

DATASETS = {
    "babyai": DatasetConfig("babyai", episodes=1000),
    "metaworld": DatasetConfig("metaworld", episodes=1000),
    "sokoban": DatasetConfig("sokoban", episodes=1000),
    "atari": DatasetConfig("atari", ("ALE/Breakout-v5",), episodes=100),
    "minatar": DatasetConfig("minatar", episodes=1000),
    "procgen": DatasetConfig("procgen", ("starpilot",), episodes=1000),
    "classic": DatasetConfig("classic", episodes=1000),
    "dmc": DatasetConfig("dmc", ("cartpole-swingup",), episodes=1000),
    "dmc_pixels": DatasetConfig("dmc", ("cartpole-swingup" + PIXELS_SUFFIX,), episodes=100),
    "text": DatasetConfig("text", episodes=10_000),
    "vision_language": DatasetConfig("vision_language", episodes=10_000),
}
assert all(t.removesuffix(PIXELS_SUFFIX) in DMC_TASKS for t in DATASETS["dmc_pixels"].tasks)


def get_config() -> RunConfig:
    return RunConfig(
        name="paper",
        train=TrainConfig.preset_config("paper"),
        data=DataConfig(datasets=DATASETS, workers=8),
        text=TextConfig(vocab_size=32_000),
        eval=EvalConfig(episodes=50),
    )
