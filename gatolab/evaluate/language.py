"""Text and vision-language evaluation: held-out likelihood and completions (no environment).

`evaluate_language` measures held-out per-token negative log-likelihood, perplexity and
next-token accuracy of the text targets on freshly generated episodes (new seeds);
`complete_text` continues a text field greedily (a caption for an image, more prose).
They are not in Figure 5, which counts control tasks only (as the paper's Figure 5 does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gatolab.agent import EVAL_SEED
from gatolab.domains import registry
from gatolab.model.decode import Decoder


def evaluate_language(model, tokenizer, domain: str, task: str | None = None, episodes: int = 8,
                      seed: int = EVAL_SEED) -> dict[str, Any]:
    """Held-out text NLL / perplexity / next-token accuracy on the loss-target tokens.

    Episodes are generated fresh with seeds `seed + i` (the training data used 0..N-1), and
    each is scored as one sequence cut to the model's context (whole timesteps where they
    fit, else the first `context_len` tokens).
    """
    dom = registry.get(domain)
    if dom.kind == "control":
        raise ValueError(f"evaluate_language: domain {domain!r} is a control domain; use evaluate()")
    task = task or dom.tasks()[0]
    dom.check_task(task)
    spec = dom.spec(task)
    dec = Decoder(model, vocab=tokenizer.vocab)
    nll, correct, count = 0.0, 0, 0
    for ep in dom.generate(task, episodes, seed=seed):
        seq = tokenizer.tokenize_episode(ep, spec)
        cap = dec.capacity
        try:
            seq = seq.window(0, cap)
        except ValueError:
            seq = seq.slice(0, cap)
        dec.reset()
        logits = np.asarray(dec.prefill(seq, return_logits=True), np.float64)[:, : tokenizer.vocab.size]  # (N, V)
        target = seq.loss_mask[1:]
        lg, ids = logits[:-1][target], seq.ids[1:][target]
        m = lg.max(axis=1, keepdims=True)
        logz = (m[:, 0] + np.log(np.exp(lg - m).sum(axis=1)))
        nll += float(np.sum(logz - lg[np.arange(len(ids)), ids]))
        correct += int(np.sum(lg.argmax(axis=1) == ids))
        count += int(len(ids))
    if count == 0:
        raise ValueError(f"evaluate_language: no text targets in {episodes} episodes of {domain}/{task}")
    mean = nll / count
    return {"domain": domain, "task": task, "episodes": episodes, "tokens": count, "nll": mean,
            "perplexity": float(np.exp(mean)), "next_token_accuracy": correct / count}


def complete_text(model, tokenizer, spec, observation: dict[str, Any], text_field: str = "text",
                  max_new_tokens: int = 24, stop: str = ".") -> str:
    """Greedy continuation of `observation[text_field]` given the rest of the observation.

    E.g. an image and an empty caption -> a caption; a paragraph's first words -> more text.
    Each new token re-reads the whole (short) sequence with `Decoder.prefill`, so the text
    keeps its observation positions exactly as in training (the cached action path would
    feed generated text as action tokens). Restricted to the text ids [0, text vocab).
    """
    if text_field not in spec.observation:
        raise ValueError(f"complete_text: spec {spec.name!r} has no field {text_field!r} (fields: {sorted(spec.observation)})")
    if tokenizer.text is None:
        raise ValueError("complete_text: the tokenizer has no text model")
    dec = Decoder(model, vocab=tokenizer.vocab)
    n_text = min(tokenizer.vocab.text_size, tokenizer.text.vocab_size)  # the SentencePiece model may be smaller
    ids = list(tokenizer.text.encode(observation[text_field])) if observation[text_field] else []
    start = len(ids)
    for _ in range(max_new_tokens):
        obs = {**observation, text_field: tokenizer.text.decode(ids)}
        seq = tokenizer.tokenize_observation(obs, spec)
        if len(seq) >= dec.capacity:
            break
        dec.reset()
        logits = np.asarray(dec.prefill(seq, return_logits=True))[-1, :n_text]
        ids.append(int(np.argmax(logits)))
        if stop and stop in tokenizer.text.decode(ids[start:]):
            break
    return tokenizer.text.decode(ids[start:])
