"""What the activation-sharding tests look for in lowered StableHLO (shared by test_train*.py)."""

import re

import gatolab as gl


def sharding_constraints(lowered_text: str) -> set[tuple[tuple[int, ...], str]]:
    """(shape, mesh axes per dimension) of every sharding constraint in lowered StableHLO (Shardy)."""
    found = re.findall(r"sharding_constraint \S+ <@\w+, \[(.*?)\]> : tensor<([0-9x]+)x[a-z]+[0-9]*>", lowered_text)
    return {(tuple(int(d) for d in shape.split("x")), spec.replace('"', "")) for spec, shape in found}


def expected_activation_constraints(batch: int, length: int, targets: int):
    """The constraints the tiny model's train step must carry on a ("data", "fsdp", "tensor") mesh."""
    cfg = gl.model.ModelConfig.preset("tiny")
    b, t = batch, length
    return {
        ((b, t, cfg.embed_dim), "{data, fsdp}, {}, {}"),  # embeddings / residual: batch only, not fsdp twice
        ((b, t, cfg.ff_dim), "{data, fsdp}, {}, {tensor}"),  # MLP hidden
        ((b, t, cfg.num_heads, cfg.head_dim), "{data, fsdp}, {}, {tensor}, {}"),  # per-head q, k, v, output
        ((b, targets, cfg.padded_vocab_size), "{data, fsdp}, {}, {tensor}"),  # logits at the gathered targets
    }
