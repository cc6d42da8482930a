"""Model configuration: the paper's presets (Gato Table 5) and every [open] switch.

    episode -> tokens -> **embeddings -> transformer -> logits** -> actions -> environment

`ModelConfig` is a frozen dataclass; `ModelConfig.preset(name, **overrides)` returns one
of the paper's three sizes (`gato_79m`, `gato_364m`, `gato_1_18b`) or `tiny` for tests,
with any field replaced (papermill passes a preset name plus overrides).

Parameter counting (`paper_param_table`): see `count_params` and the docstring of
`PARAM_CONVENTION` for the convention under which the presets are compared with the
paper's 79M / 364M / 1.18B.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from gatolab.tokenizers import Vocabulary

NormPlacement = Literal["pre", "post"]
Activation = Literal["gelu", "relu", "geglu"]
ActionPosition = Literal["shared", "none"]
Remat = Literal["none", "block"]
DType = Literal["float32", "bfloat16"]
ObsEncoding = Literal["tokens", "field"]

# Gato Table 5 (appendix C.1; GATO_SPEC §3): layers, embed dim, FF hidden, heads, head size.
# The main text's "8196" FF hidden for the 1.18B model is a typo for 8192 (GATO_SPEC §3).
_PAPER_TABLE5 = {
    "gato_79m": dict(num_layers=8, embed_dim=768, ff_dim=3072, num_heads=24, head_dim=32),
    "gato_364m": dict(num_layers=12, embed_dim=1536, ff_dim=6144, num_heads=12, head_dim=128),
    "gato_1_18b": dict(num_layers=24, embed_dim=2048, ff_dim=8192, num_heads=16, head_dim=128),
}
# The sizes the paper quotes for them (Gato §2.3, Table 5 headings).
PAPER_PARAMS = {"gato_79m": 79e6, "gato_364m": 364e6, "gato_1_18b": 1.18e9}

PARAM_CONVENTION = (
    "all trainable parameters (tied 33,027 x D token table, ResNet patch embedding, position tables, "
    "blocks, norms, biases), read with binary prefixes as the paper's sizes appear to be: "
    "M = 2**20, B = 2**30"
)
"""How we compare parameter counts with the paper (GATO_SPEC §3 [open]: counting convention).

No decimal convention of the form "transformer blocks + R x D embedding rows" lands all
three presets within 5% of 79M / 364M / 1.18B: the 1.18B preset's blocks alone are
1.2086e9 (+2.4%), which caps R at ~15k rows, while the 79M preset needs R >= ~24k rows
to reach 75M. Counting everything (the model as built: 33,027-row tied table, ResNet
patch embedding, 512 local + 2 x 128 patch position rows) gives 83.5M / 393.5M / 1.280B
in decimal units (+5.7% / +8.1% / +8.5%). Read with binary prefixes (M = 2**20,
B = 2**30) the same totals are 79.7Mi / 375.3Mi / 1.192Gi: +0.8% / +3.1% / +1.0%. That
is the convention we report, next to the decimal numbers; it is our hypothesis about
the paper's rounding, not something the paper states.
"""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes the network.

    Attributes:
      num_layers, embed_dim, ff_dim, num_heads, head_dim: Gato Table 5.
      vocab_size: rows of the token table that hold real ids (`Vocabulary().size` = 33027).
      vocab_pad_multiple: the table is padded to a multiple of this for fast matmuls; the
        padded rows are never targets and get -inf logits, so they are never sampled.
      context_len: L, the longest sequence (Gato §2.3: 1024).
      max_local_positions: rows of the local (within-timestep) observation position table
        (Gato appendix C.3). Must exceed the number of observation tokens per timestep.
      patch_size, image_channels: Gato §2.1 16x16 RGB patches.
      patch_position_bins: Gato appendix C.3: row/column intervals quantised into 128 bins.
      resnet_channels, resnet_groups: width and GroupNorm groups of the one ResNet v2 block
        per patch (appendix C.2). GATO_SPEC §2 [open]: 32 groups is a reproduction default;
        the width is ours (64 channels, then 4x4 average pooling and a linear map to D).
      norm: GATO_SPEC §3 [open]: "pre" (LayerNorm before attention and MLP, plus a final
        LayerNorm; the GPT-2 / Chinchilla-era default and stable without warm-up tricks)
        or "post" (the original Transformer's placement).
      activation: GATO_SPEC §3 [open]: "gelu" (default; two FF matrices, so the counts
        match Table 5's FF hidden size), "relu", or "geglu" (gated, adds a third FF matrix
        of D x F parameters per layer).
      tie_embeddings: GATO_SPEC §3 [open]: the output projection reuses the token table
        (default True: the paper's sizes leave no room for a second 33k x D matrix, see
        PARAM_CONVENTION); False adds an untied (D, V) output matrix.
      action_position: GATO_SPEC §2 [open]: what action tokens receive as local position.
        "shared": one learned "action" vector added to every action token (early JAT/GIA);
        "none": nothing (OrigamiDream's literal reading of §2.2). Default "shared": with no
        global position encoding, it is the only signal that marks a token as an action.
      dropout: GATO_SPEC §3: 0.1 (appendix E, indirect). Applied after attention, after the
        MLP and on the embeddings, in training only.
      use_bias: biases on the dense layers.
      dtype: compute dtype of the matmuls ("bfloat16" on accelerators, and fast on CPUs with
        AVX512-BF16); parameters are always float32 and accumulation is float32.
      patch_dtype: compute dtype of the patch ResNet's convolutions; None = `dtype`. The
        cached decoder on CPU runs the transformer in float32 (see `Decoder`) but keeps
        the convolutions in the model's dtype: they are compute-bound, and bfloat16 convs
        are ~2.7x faster on AVX512-BF16 CPUs.
      attention_block: query block size of the causal training attention; each block
        attends only to keys at or before it (half the work of a full T x T score matrix,
        and scores that stay in cache). 0 = one block. Results are identical.
      scan_layers: run the training / full forward pass as a `lax.scan` over layers
        (one compiled block, buffers reused across layers: far less memory and compile
        time); parameters stay per block either way. The cached decoder always unrolls.
      remat: "block" (default) recomputes each block's activations in the backward pass
        (jax.checkpoint): ~1/3 more FLOPs but far less memory traffic. Measured at the
        gato_79m shape, batch 2 x 1024, bfloat16, on 2 CPU cores: 1.0 GB of XLA temporaries
        instead of 4.9 GB, and faster, not slower. "none" keeps activations.
      norm_eps: LayerNorm epsilon.
      obs_encoding: how an observation enters the network (issue 18; follows
        `TokenizerConfig.obs_encoding` in a run). "tokens" (default): Gato §2.1, one token per
        element. "field": one embedding per observation field (`embed.FieldEmbedder`):
        continuous values through a learned linear map, discrete values through a small
        learned table (`field_discrete_dim` wide per element) then a linear map, images
        through the patch ResNet averaged over the image's patches. Text, '|' and actions
        stay Gato's tokens.
      field_width: F, the longest field vector a "field" token carries (the tokenizer's).
      field_discrete_dim: width of the per-element discrete embedding ("field" only).
    Global position encoding (GATO_SPEC §3 [open]): none. The paper describes only local
    observation positions (§2.2); a causal decoder infers order from its mask, and without
    absolute positions the deployment key/value cache can drop old timesteps freely.
    """

    num_layers: int = 8
    embed_dim: int = 768
    ff_dim: int = 3072
    num_heads: int = 24
    head_dim: int = 32
    vocab_size: int = Vocabulary().size
    vocab_pad_multiple: int = 128
    context_len: int = 1024
    max_local_positions: int = 512
    patch_size: int = 16
    image_channels: int = 3
    patch_position_bins: int = 128
    resnet_channels: int = 64
    resnet_groups: int = 32
    norm: NormPlacement = "pre"
    activation: Activation = "gelu"
    tie_embeddings: bool = True
    action_position: ActionPosition = "shared"
    dropout: float = 0.1
    use_bias: bool = True
    dtype: DType = "float32"
    patch_dtype: DType | None = None
    attention_block: int = 128
    scan_layers: bool = True
    remat: Remat = "block"
    norm_eps: float = 1e-6
    obs_encoding: ObsEncoding = "tokens"
    field_width: int = 256
    field_discrete_dim: int = 8

    def __post_init__(self):
        choices = {"obs_encoding": ("tokens", "field"), "norm": ("pre", "post"), "activation": ("gelu", "relu", "geglu"), "action_position": ("shared", "none"),
                   "remat": ("none", "block"), "dtype": ("float32", "bfloat16"),
                   "patch_dtype": (None, "float32", "bfloat16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ModelConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("num_layers", "embed_dim", "ff_dim", "num_heads", "head_dim", "vocab_size", "vocab_pad_multiple",
                     "context_len", "max_local_positions", "patch_size", "image_channels", "patch_position_bins",
                     "resnet_channels", "resnet_groups", "field_width", "field_discrete_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.resnet_channels % self.resnet_groups:
            raise ValueError(f"ModelConfig.resnet_channels ({self.resnet_channels}) must be a multiple of resnet_groups ({self.resnet_groups})")
        if self.patch_size % 4:
            raise ValueError(f"ModelConfig.patch_size must be a multiple of 4 (4x4 pooling), got {self.patch_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")

    # --- presets ------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset with `overrides` applied.

        Args:
          name: "gato_79m", "gato_364m", "gato_1_18b" (Gato Table 5) or "tiny" (tests).
          **overrides: any `ModelConfig` field.

        Raises:
          ValueError: unknown preset or unknown field.
        """
        if name == "tiny":
            # Small enough to compile and run in a second on 2 CPU cores; keeps the full
            # 33,027-id vocabulary so real token sequences feed it unchanged.
            base = dict(num_layers=2, embed_dim=64, ff_dim=256, num_heads=4, head_dim=16, context_len=256,
                        max_local_positions=256, resnet_channels=32, resnet_groups=8, dropout=0.0)
        elif name in _PAPER_TABLE5:
            base = dict(_PAPER_TABLE5[name])
        else:
            raise ValueError(f"ModelConfig.preset: unknown preset {name!r}; expected one of {preset_names()}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"ModelConfig.preset: unknown field {unknown[0]!r} (fields: {sorted(fields)})")
        return cls(**{**base, **overrides})

    # --- derived sizes ------------------------------------------------------------------
    @property
    def padded_vocab_size(self) -> int:
        m = self.vocab_pad_multiple
        return int(math.ceil(self.vocab_size / m) * m)

    @property
    def attention_dim(self) -> int:
        """H * K, the width of the query/key/value projections."""
        return self.num_heads * self.head_dim

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def preset_names() -> list[str]:
    return ["tiny", *_PAPER_TABLE5]


def block_param_count(config: ModelConfig) -> int:
    """Parameters of the transformer blocks and final LayerNorm (analytic; `count_params` checks it)."""
    d, f, a = config.embed_dim, config.ff_dim, config.attention_dim
    b = 1 if config.use_bias else 0
    attn = 3 * (d * a + b * a) + (a * d + b * d)
    n_in = 2 if config.activation == "geglu" else 1
    mlp = n_in * (d * f + b * f) + (f * d + b * d)
    norms = 2 * 2 * d
    final_norm = 2 * d if config.norm == "pre" else 0
    return config.num_layers * (attn + mlp + norms) + final_norm
