"""The demo's recipe (`make demo`, `python -m gatolab.demo`): tasks, network, weights, data sizes, budget.

Each choice is [open] (the paper's runs are hundreds of times larger) and explained beside
its value; `gatolab.demo` runs it (data -> 20 minutes of CPU training -> evaluation -> report).
"""

from __future__ import annotations

from gatolab.agent import AgentConfig
from gatolab.configs.base import DataConfig, DatasetConfig, EvalConfig, RunConfig, TextConfig
from gatolab.data.mixture import MixtureConfig
from gatolab.train.loop import TrainConfig

# The demo mixture: small and CPU-sized. [open] Which tasks: the cheapest ones per domain
# where the experts succeed (GATO_SPEC §8 lists the paper's full sets); episodes per task.
DATASETS = {
    "classic": DatasetConfig("classic", episodes=60),  # all five tasks
    "babyai": DatasetConfig("babyai", ("BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToRedBall-v0", "BabyAI-GoToObj-v0"),
                            episodes=300),
    "metaworld": DatasetConfig("metaworld", ("reach-v3", "button-press-topdown-v3"), episodes=30),
    "text": DatasetConfig("text", episodes=300),
    "vision_language": DatasetConfig("vision_language", episodes=300),
}
# [open] The demo's network: the `tiny` preset widened to 4 layers x 128 (0.8M parameters in
# the blocks), with an 8-channel patch ResNet -- the 32-channel one of `tiny` spends ~80%
# of a CPU step on the 16x16 convolutions of the image-caption rows.
MODEL = {"num_layers": 4, "embed_dim": 128, "ff_dim": 512, "num_heads": 4, "head_dim": 32, "resnet_channels": 8,
         "resnet_groups": 4}
# [open] The demo's mixture weights (GATO_SPEC §8 gives Table 1's for the paper's 600+ tasks;
# the registry's default weights keep those proportions: `mixture.weights=None` uses them).
# Twenty minutes of CPU is ~2,500 steps of 8 rows; a BabyAI row of 256 tokens holds one
# timestep (one action target), and CartPole/Acrobot need many steps before the policy reads
# the binned state (held-out action accuracy 55% / 67% after 2,539 steps at 20% classic
# rows), so the demo gives most rows to BabyAI and classic control. Image-caption rows cost
# the most per row (patches, ~290 targets), and caption perplexity falls to ~1.5 on little.
WEIGHTS = {"babyai": 45.0, "classic": 30.0, "metaworld": 10.0, "text": 5.0, "vision_language": 10.0}
# [open] Text ids: a 4,096-piece SentencePiece model in a compact id layout (text [0, 4096),
# continuous [4096, 5120): 5,123 ids) -- the output projection over the paper's 33,027 ids
# would be most of a CPU step. `text.vocab_size=32000 text.compact_ids=False` keeps the paper's.
TEXT = TextConfig(vocab_size=4096, compact_ids=True)


def get_config() -> RunConfig:
    return RunConfig(
        name="demo",
        # The `tiny` training preset (batch 8 x 256-token rows, AdamW at 1e-3 with warm-up and
        # cosine decay) on the widened network; the step count comes from the budget.
        train=TrainConfig.preset_config("tiny", model_overrides=MODEL, log_every=10),
        mixture=MixtureConfig(weights=WEIGHTS),
        data=DataConfig(datasets=DATASETS, workers=2, shard_size=100),
        text=TEXT,
        # The paper samples actions (temperature 1) after a prompt from the start of a stored
        # successful demonstration (Gato §2.4); 50 rollouts per control task, the paper's number
        # (batched: all 50 rows of a task decode together).
        eval=EvalConfig(episodes=50, language_episodes=16, agent=AgentConfig(prompt="start", temperature=1.0)),
        budget_minutes=20.0,
        probe_steps=40,
    )
