"""The demo's recipe (`make demo`, `python -m gatolab.demo`): its tasks, network, weights and data sizes.

Each choice is [open] (the paper's runs are hundreds of times larger) and explained
beside its value; `gatolab.demo` runs it.
"""

from __future__ import annotations

from typing import Any

# The demo mixture: small and CPU-sized. [open] Which tasks: the cheapest ones per domain
# where the experts succeed (GATO_SPEC §8 lists the paper's full sets).
TASKS: dict[str, list[str] | None] = {
    "classic": None,  # all five
    "babyai": ["BabyAI-GoToRedBallGrey-v0", "BabyAI-GoToRedBall-v0", "BabyAI-GoToObj-v0"],
    "metaworld": ["reach-v3", "button-press-topdown-v3"],
    "text": None,
    "vision_language": None,
}
# [open] The demo's network: the `tiny` preset widened to 4 layers x 128 (0.8M parameters in
# the blocks), with an 8-channel patch ResNet -- the 32-channel one of `tiny` spends ~80%
# of a CPU step on the 16x16 convolutions of the image-caption rows.
MODEL: dict[str, Any] = {"num_layers": 4, "embed_dim": 128, "ff_dim": 512, "num_heads": 4, "head_dim": 32,
                              "resnet_channels": 8, "resnet_groups": 4}
# [open] The demo's mixture weights (GATO_SPEC §8 gives Table 1's for the paper's 600+
# tasks; the registry's default weights keep those proportions, `--table1-weights` uses them). Twenty
# minutes of CPU is ~2,500 steps of 8 rows; a BabyAI row of 256 tokens holds one timestep
# (one action target), and CartPole/Acrobot need many steps before the policy reads the
# binned state (held-out action accuracy 55% / 67% after 2,539 steps at 20% classic rows),
# so the demo gives most rows to BabyAI and classic control. Image-caption rows cost the
# most per row (patches, ~290 targets), and caption perplexity falls to ~1.5 on little.
WEIGHTS = {"babyai": 45.0, "classic": 30.0, "metaworld": 10.0, "text": 5.0, "vision_language": 10.0}
# [open] Text ids: a 4,096-piece SentencePiece model in a compact id layout (text [0, 4096),
# continuous [4096, 5120): 5,123 ids) -- the output projection over the paper's 33,027 ids
# would be most of a CPU step. `--paper-vocab` keeps the paper's layout.
TEXT_VOCAB = 4096
EPISODES = {"classic": 60, "babyai": 300, "metaworld": 30, "text": 300, "vision_language": 300}
SMOKE_EPISODES = {"classic": 3, "babyai": 5, "metaworld": 2, "text": 10, "vision_language": 10}
