"""Expert algorithms: PPO and SAC in JAX, and the on-disk store of trained experts.

Nothing here knows a domain: the trainers take environments (or an environment factory)
and return parameters; each domain's recipe (`gatolab/domains/<name>/recipe.py`) runs
them, measures the result against random play and saves it with `store.save_expert`.

    gatolab experts train --env Breakout-MinAtar      # the domain's recipe: train, evaluate, save experts/<task>/
    gatolab experts list                              # what is trained, with its measured returns
"""

import importlib

_LAZY = ("ppo", "sac", "store")  # loaded on first use (PPO imports JAX): `gl.experts.ppo.PPOConfig()`


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"gatolab.experts.{name}")
    raise AttributeError(f"module 'gatolab.experts' has no attribute {name!r}")
