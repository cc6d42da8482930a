"""One run as one frozen configuration: data, tokenizer, model, optimiser, mixture, agent, evaluation.

    config = gl.configs.get("demo", ["model.num_layers=6", "mixture.prompt_probability=0.0"])
    gl.train.train(config, out="runs/x")        # the run folder records the resolved config
    gl.configs.load("runs/x")                    # ... from which it can be repeated

A `RunConfig` nests the configs the stages already use (`TrainConfig` with its model
preset, overrides and `OptimConfig`; `MixtureConfig`; `TokenizerConfig`; `AgentConfig`)
plus what a run generates (`DataConfig`), its text model (`TextConfig`) and how it is
evaluated (`EvalConfig`). Named configs live in `gatolab/configs/<name>.py`, each with
`get_config() -> RunConfig` (big_vision's habit); `gatolab/configs/overrides.py` applies
"key.sub=value" changes and names the closest valid keys for an unknown one.

Why frozen dataclasses and not ml-collections' ConfigDict: the stages already take frozen
dataclasses (ModelConfig, TrainConfig, MixtureConfig, ...), which validate themselves when
built, so a config file builds the very objects training uses; a ConfigDict would be a
second, untyped copy to convert and keep in sync.

A few values are derived, so each has one place: the rows' length, patch budget and seed
are the training config's (`train.seq_len`, `train.max_patches`, `train.seed`: the
mixture gets them), the learning-rate schedule spans `train.steps`, and the model's
`vocab_size` is the tokenizer's id layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from gatolab.agent import EVAL_SEED, AgentConfig
from gatolab.data.mixture import MixtureConfig
from gatolab.gato_tokenizer import TokenizerConfig
from gatolab.model import ModelConfig
from gatolab.train.loop import TrainConfig


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """One dataset a run generates (or finds, resumable) with a domain's expert.

    Attributes:
      domain: a registered domain (`gl.domains.names()`).
      tasks: which of its tasks; None: every task.
      episodes: episodes per task.
      options: keyword options of the domain's constructor (e.g. BabyAI's `mission_loss`);
        they change the data, so a dataset with options gets its own folder.
    """

    domain: str
    tasks: tuple[str, ...] | None = None
    episodes: int = 20
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f"DatasetConfig.episodes must be >= 1, got {self.episodes}")
        if self.tasks is not None and not self.tasks:
            raise ValueError("DatasetConfig.tasks: an empty tuple names no task; None means every task")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What a run trains on.

    Attributes:
      datasets: dataset name -> how it is generated (the name is the mixture's key: a
        Table-1 weight in `gl.domains.default_weights()` or one in `mixture.weights`).
      paths: existing dataset folders to add (imported data, datasets made elsewhere).
      source: "datasets" (the mixture over the above) or "synthetic" (random multimodal
        episodes, for smoke runs of the training loop only).
      root: where datasets are generated; None: `<run folder>/data` (an experiment passes
        one shared folder to all its cells).
      seed, shard_size, workers: `gl.data.generate`'s (episode i of a task uses seed + i).
    """

    datasets: Mapping[str, DatasetConfig] = dataclasses.field(
        default_factory=lambda: {"classic": DatasetConfig("classic", episodes=20)})
    paths: tuple[str, ...] = ()
    source: Literal["datasets", "synthetic"] = "datasets"
    root: str | None = None
    seed: int = 0
    shard_size: int = 100
    workers: int = 1

    def __post_init__(self):
        if self.source not in ("datasets", "synthetic"):
            raise ValueError(f"DataConfig.source must be 'datasets' or 'synthetic', got {self.source!r}")
        if self.source == "datasets" and not self.datasets and not self.paths:
            raise ValueError("DataConfig: no datasets and no paths: nothing to train on")

    def identity(self) -> str:
        """A short hash of what decides the generated data (not where it goes): shared folders key on it."""
        what = {"datasets": to_json(dict(self.datasets)), "seed": self.seed, "shard_size": self.shard_size}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The SentencePiece text model (Gato §2.1: 32,000 subwords) and where its ids live.

    Attributes:
      vocab_size: pieces.
      corpus_chars: train it on the first this many characters of the default corpus
        (None: all of it; 100_000 with 512 pieces is the tests' small model).
      compact_ids: [open] text ids [0, vocab_size) instead of the paper's [0, 32000)
        (GATO_SPEC §1): a smaller table and output projection for CPU runs.
    """

    vocab_size: int = 32_000
    corpus_chars: int | None = None
    compact_ids: bool = False


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How a trained run is evaluated (GATO_SPEC §6).

    Attributes:
      episodes: rollouts per control task (the paper: 50).
      tasks: control tasks ("domain/task" accepted); None: every control task trained on.
      max_steps: cap on episode length (None: each environment's own).
      seed: rollout i of every task resets with seed + i (the same seeds in every arm).
      language_episodes: held-out episodes per text / image-text task (likelihood).
      agent: the prompt and sampling settings.
      policy: what acts: "gato" (the trained run's prompted agent) or "retrieval" (REGENT's
        1-nearest-neighbour "retrieve and play" over the run's training episodes of each
        task -- `mixture.episodes_per_task` of them, after the §2.3 filter -- with no
        network: `gatolab.baselines.Retrieval`; a reference arm for fine-tuning, Gato §5.2).
      step: evaluate the checkpoint of this training step (None: the latest); Figure 8's
        curves evaluate several steps of one run (the run must keep them: `train.keep`).
    """

    episodes: int = 50
    tasks: tuple[str, ...] | None = None
    max_steps: int | None = None
    seed: int = EVAL_SEED
    language_episodes: int = 16
    agent: AgentConfig = AgentConfig()
    policy: Literal["gato", "retrieval"] = "gato"
    step: int | None = None

    def __post_init__(self):
        if self.episodes < 1:
            raise ValueError(f"EvalConfig.episodes must be >= 1, got {self.episodes}")
        if self.policy not in ("gato", "retrieval"):
            raise ValueError(f"EvalConfig.policy must be 'gato' or 'retrieval', got {self.policy!r}")
        if self.step is not None and self.step < 0:
            raise ValueError(f"EvalConfig.step must be >= 0 or None (the latest), got {self.step}")


_FROM_TOKENIZER = ("obs_encoding", "field_width")  # model fields a run takes from its tokenizer


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run is: data -> tokenizer -> model -> training -> evaluation.

    Attributes:
      name: a label (the config file's name by default).
      train: model preset and overrides, optimiser, steps, batch, row length, seed, loop.
      mixture: the training mixture's choices (Gato §2.3); its row length, patch budget
        and seed are the training config's.
      data: the datasets.
      text: the text model.
      tokenizer: the id layout and tokenization switches (GATO_SPEC §1).
      eval: the evaluation.
      budget_minutes: train for this wall-clock budget instead of a fixed `train.steps`:
        a `probe_steps` run measures the step time and the run gets as many steps as fit,
        so its learning-rate schedule ends on time (`train.max_seconds` bounds it anyway).
      probe_steps: length of that probe.
    """

    name: str = "run"
    train: TrainConfig = TrainConfig.preset_config("tiny")
    mixture: MixtureConfig = MixtureConfig()
    data: DataConfig = DataConfig()
    text: TextConfig = TextConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    eval: EvalConfig = EvalConfig()
    budget_minutes: float | None = None
    probe_steps: int = 40

    def __post_init__(self):
        derived = {"sequence_length": "train.seq_len", "max_patches": "train.max_patches", "seed": "train.seed"}
        default = MixtureConfig()
        for name, where in derived.items():
            if getattr(self.mixture, name) != getattr(default, name):
                raise ValueError(f"RunConfig: mixture.{name} comes from {where}; set that instead")
        if "vocab_size" in self.train.model_overrides:
            raise ValueError("RunConfig: the model's vocab_size follows the tokenizer's id layout "
                             "(text.vocab_size, text.compact_ids, tokenizer.vocab.*); do not set model.vocab_size")
        for name in _FROM_TOKENIZER:
            if name in self.train.model_overrides:
                raise ValueError(f"RunConfig: the model's {name} follows the tokenizer's; set tokenizer.{name} "
                                 f"instead of model.{name}")
        if self.budget_minutes is not None and not (self.budget_minutes > 0 and math.isfinite(self.budget_minutes)):
            raise ValueError(f"RunConfig.budget_minutes must be > 0, got {self.budget_minutes}")
        if self.probe_steps < 1:
            raise ValueError(f"RunConfig.probe_steps must be >= 1, got {self.probe_steps}")
        self.model_config()  # an unknown model field or preset fails here, not at the first step

    # --- what the stages get -------------------------------------------------------------
    def tokenizer_config(self) -> TokenizerConfig:
        if not self.text.compact_ids:
            return self.tokenizer
        vocab = dataclasses.replace(self.tokenizer.vocab, text_size=self.text.vocab_size)
        return dataclasses.replace(self.tokenizer, vocab=vocab)

    def model_config(self) -> ModelConfig:
        try:
            return ModelConfig.preset(self.train.preset, **{**self.train.model_overrides, **self._from_tokenizer()})
        except TypeError as e:  # an unknown field name
            raise ValueError(f"RunConfig: model overrides {dict(self.train.model_overrides)}: {e}") from None

    def train_config(self, steps: int | None = None) -> TrainConfig:
        """The loop's config: the schedule spans the run's steps, the vocabulary is the tokenizer's."""
        steps = int(steps or self.train.steps)
        optim = dataclasses.replace(self.train.optim, total_steps=steps,
                                    warmup_steps=min(self.train.optim.warmup_steps, steps))
        return dataclasses.replace(self.train, steps=steps, optim=optim,
                                   model_overrides={**self.train.model_overrides, **self._from_tokenizer()})

    def _from_tokenizer(self) -> dict[str, Any]:
        """The model fields the tokenizer decides: the id layout's size, and how observations are
        encoded (`field_width` only where it matters, so Gato's configs keep their overrides)."""
        tok = self.tokenizer_config()
        out: dict[str, Any] = {"vocab_size": tok.vocab.size}
        if tok.obs_encoding != "tokens":
            out.update(obs_encoding=tok.obs_encoding, field_width=tok.field_width)
        return out

    def mixture_config(self) -> MixtureConfig:
        t = self.train
        return dataclasses.replace(self.mixture, sequence_length=t.sequence_length, max_patches=t.max_patches, seed=t.seed)

    def with_training_recipe(self, name: str) -> RunConfig:
        """The config trained with `TrainConfig.preset_config(name)`'s recipe ("tiny" or "paper": batch,
        rows, steps, optimiser, logging), keeping its model, seed and mesh."""
        recipe = TrainConfig.preset_config(name)
        t = self.train
        return dataclasses.replace(self, train=dataclasses.replace(
            recipe, preset=t.preset, model_overrides=t.model_overrides, seed=t.seed, mesh_shape=t.mesh_shape))

    def without_eval(self) -> RunConfig:
        """The config with the evaluation section reset: two configs that train the same run compare equal here."""
        return dataclasses.replace(self, name="", eval=EvalConfig())

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunConfig:
        return from_json(cls, d)


# ---------------------------------------------------------------------------------------
# JSON: any of these dataclasses <-> plain dicts, following the type annotations
# ---------------------------------------------------------------------------------------
def to_json(obj: Any) -> Any:
    """Dataclasses, mappings and tuples -> dicts and lists (float infinities as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    return obj


def from_json(tp: Any, value: Any, where: str = "config") -> Any:
    """The value of type `tp` that `to_json` would turn into `value`; ValueError naming `where` otherwise."""
    return coerce(tp, value, where, from_file=True)


def coerce(tp: Any, value: Any, where: str, *, from_file: bool = False) -> Any:
    """`value` checked and converted to type `tp` (a field's annotation).

    Raises:
      ValueError: naming `where` (the key) and the type expected.
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for alt in (a for a in args if a is not type(None)):
            try:
                return coerce(alt, value, where, from_file=from_file)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: expected one of {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a {tp.__name__} (a dict of its fields), got {value!r}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"{where}: {tp.__name__} has no field {unknown[0]!r} (fields: {', '.join(sorted(names))})")
        return tp(**{k: coerce(hints[k], v, f"{where}.{k}", from_file=from_file) for k, v in value.items()})
    if origin in (Mapping, dict) or tp in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: coerce(vt, v, f"{where}.{k}", from_file=from_file) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a tuple, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{where}[{i}]", from_file=from_file) for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(coerce(a, v, f"{where}[{i}]", from_file=from_file) for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected True or False, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an int, got {value!r}")
        return value
    if tp is float:
        if from_file and isinstance(value, str) and value in ("inf", "-inf", "nan"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ValueError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
