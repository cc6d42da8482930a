"""Trained experts: RL trainers (PPO, SAC) for domains without scripted experts, and their store on disk.

    gatolab experts train --env Breakout-MinAtar      # trains, evaluates against random, saves experts/<task>/
    gatolab experts list                              # what is trained, with its measured returns
"""

import importlib

_LAZY = ("ppo", "sac", "store", "cli")  # loaded on first use: `gl.experts.ppo.PPOConfig()`


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"gatolab.experts.{name}")
    raise AttributeError(f"module 'gatolab.experts' has no attribute {name!r}")
