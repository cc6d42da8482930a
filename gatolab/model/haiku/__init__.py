"""The Gato network in Haiku, `gatolab.model`'s twin, with weights that move both ways.

Gato and the DeepMind agents of its time (e.g. the Multi-Game Decision Transformer, whose
released code is JAX + Haiku) were written in Haiku. This twin lets a researcher from that
code read gatolab's network in the idiom they know, and move weights between the two:

    import gatolab as gl
    fns = gl.model.haiku.transform(model.config)         # .forward / .hidden / .loss: hk.Transformed
    params = gl.model.haiku.to_haiku(model)               # NNX Gato -> Haiku params (same arrays)
    logits = fns.forward.apply(params, None, batch)       # == model(batch), evaluation mode
    model2 = gl.model.haiku.to_nnx(params, model.config)  # and back, bit-exact
    gl.model.haiku.logit_difference(model, batch)         # largest |NNX - Haiku| logit: 0.0 in float32

    twin = gl.model.haiku.load("runs/x")                  # a gatolab checkpoint, from its path
    gl.model.haiku.save("runs/y", twin.params, twin.config, twin.tokenizer, meta=twin.meta)

`network.py` holds the `hk.Module`s, `convert.py` the parameter map and the checkpoints.
`tests/test_model_haiku.py` holds the parity tests (logits, loss, gradients, round trips).
"""

from gatolab.model.haiku.convert import (Loaded, load, logit_difference, module_tree, parameter_map, save, to_haiku, to_nnx,
                                         tree_to_haiku, tree_to_nnx)
from gatolab.model.haiku.network import Functions, Gato, example_batch, loss, transform

__all__ = ["Functions", "Gato", "Loaded", "example_batch", "load", "logit_difference", "loss", "module_tree", "parameter_map",
           "save", "to_haiku", "to_nnx", "transform", "tree_to_haiku", "tree_to_nnx"]
