"""The Gato network in Flax NNX, one file per stage of the data flow (Gato §2.2–2.4):

    episode -> tokens -> TokenBatch (gatolab.batch) -> embeddings (embed.py)
      -> transformer (transformer.py) -> logits (heads.py; the whole network: gato.py)
      -> masked loss (loss.py) / actions (decode.py) -> environment

    import gatolab as gl
    from flax import nnx
    model = gl.model.Gato(gl.model.ModelConfig.preset("tiny"), rngs=nnx.Rngs(0))
    batch = gl.batch.TokenBatch.stack([seq.to_arrays(256)])
    logits = model(batch)                               # (B, T, V)
    loss, metrics = gl.model.loss_fn(model, batch)      # overall + per modality
    policy = gl.model.Decoder(model); policy.prefill(prompt); policy.observe(obs_tokens)
    ids = policy.sample_action(spec_ranges, temperature=1.0, rng=key)

Imports run one way: layers, config <- embed, transformer, heads <- gato <- loss, decode,
count, inspect. `gl.model.haiku` is the same network in Haiku (`gatolab/model/haiku/`), loaded
on first use.
"""

import importlib

from gatolab.model.config import PAPER_PARAMS, PARAM_CONVENTION, ModelConfig, block_param_count, preset_names
from gatolab.model.count import abstract_model, count_by_part, count_params, format_param_table, paper_param_table
from gatolab.model.decode import Decoder, restricted_logits, sample_restricted
from gatolab.model.embed import Embedder, PatchResNet, patch_position_bounds, patch_position_indices
from gatolab.model.gato import Gato, logits
from gatolab.model.heads import Unembed
from gatolab.model.layers import LOGICAL_AXES, constrain
from gatolab.model.loss import LOSS_MODALITIES, cross_entropy, loss_fn, target_bucket
from gatolab.model import inspect
from gatolab.model.transformer import Transformer, causal_mask, slot_mask

__all__ = [
    "LOGICAL_AXES", "LOSS_MODALITIES", "PAPER_PARAMS", "PARAM_CONVENTION", "Decoder", "Embedder", "Gato", "ModelConfig",
    "PatchResNet", "Transformer", "Unembed", "abstract_model", "block_param_count", "causal_mask", "constrain",
    "count_by_part", "count_params", "cross_entropy", "format_param_table", "inspect", "logits", "loss_fn",
    "paper_param_table", "patch_position_bounds", "patch_position_indices", "preset_names", "restricted_logits",
    "sample_restricted", "slot_mask", "target_bucket",
]


def __getattr__(name):
    if name == "haiku":  # lazy: dm-haiku is an optional extra, so importing gatolab.model never needs it
        return importlib.import_module("gatolab.model.haiku")
    raise AttributeError(f"module 'gatolab.model' has no attribute {name!r}")
