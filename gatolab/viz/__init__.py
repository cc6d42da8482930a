"""Plots and widgets (plotly, ipywidgets, mediapy are imported only under `gatolab.viz`).

Importing this package sets plotly's default renderer to one that both shows figures
in JupyterLab and embeds plotly.js in the notebook once, so an executed notebook's
HTML export shows its plots offline.
"""

import importlib

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

_SUBMODULES = ("tokens", "model", "data", "training", "rollouts", "video", "experiments", "stepper")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"gatolab.viz.{name}")
    raise AttributeError(f"module 'gatolab.viz' has no attribute {name!r}")
