"""Experiments: a base config, named arms and seeds; every cell trained and evaluated; honest statistics.

    spec = gl.experiments.load("prompt_at_eval")                 # a ready ablation (gatolab/configs/ablations/)
    summary = gl.experiments.run(spec, out="runs/abl", overrides={"budget_minutes": 5})
    summary["summary"]["sentences"]                              # each arm vs the baseline, in words
    # or: gatolab ablate prompt_at_eval --out runs/abl budget_minutes=5 [--seeds 3] [--parallel 2] [--launcher slurm]

Modules: `spec` (ExperimentSpec, Arm, the cells and their checks), `runner` (data ->
training runs -> evaluations -> the long table, resumable; local processes or submitit
jobs), `stats` (rliable: mean, IQM, Gato's aggregate, per domain, performance profiles,
differences from the baseline, all with stratified-bootstrap intervals), `finetuning`
(Gato §5.2 / Figure 10: held-out tasks, pretraining variants, fine-tuning sets, BC and
retrieval references) and `scaling` (Figure 8: sizes x checkpoints at equal tokens), `cli`.
"""

from gatolab.experiments import finetuning, scaling
from gatolab.experiments.runner import collect, run, write_table
from gatolab.experiments.spec import Arm, Cell, ExperimentSpec, cells, load, names

__all__ = ["Arm", "Cell", "ExperimentSpec", "cells", "collect", "finetuning", "load", "names", "run", "scaling",
           "write_table"]
