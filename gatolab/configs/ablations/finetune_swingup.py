"""Gato §5.2 / Figure 10 on DM Control cartpole-swingup (held out): pretraining variants x fine-tuning
episodes, against BC from scratch and 1-NN retrieval (`gatolab.experiments.finetuning`)."""

from gatolab.experiments import finetuning
from gatolab.experiments.spec import ExperimentSpec


def get_spec() -> ExperimentSpec:
    return finetuning.spec("cartpole-swingup")
