"""Plots and widgets (plotly, ipywidgets, mediapy are imported only under `gatolab.viz`).

Importing this package sets plotly's default renderer to one that both shows figures
in JupyterLab and embeds plotly.js in the notebook once, so an executed notebook's
HTML export shows its plots offline.
"""

import importlib

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

_SUBMODULES = ("tokens", "model", "data", "training", "rollouts", "video", "experiments", "stepper")


# The two widgets by their own names too: gl.viz.ArchitectureStepper, gl.viz.RolloutWidget.
_WIDGETS = {"ArchitectureStepper": "stepper", "RolloutWidget": "rollouts"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"gatolab.viz.{name}")
    if name in _WIDGETS:
        return getattr(importlib.import_module(f"gatolab.viz.{_WIDGETS[name]}"), name)
    raise AttributeError(f"module 'gatolab.viz' has no attribute {name!r}")
