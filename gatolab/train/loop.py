"""The training loop (Gato §2.3; GATO_SPEC §4): masked next-token loss, AdamW, checkpoints.

    Batch (mixture) -> batch.tokens, sharded over the mesh -> jit(train_step) -> metrics.jsonl / checkpoints
      (batch.info, the rows' provenance, stays on the host: per-domain loss)

One `Trainer` runs on one host or many (`jax.distributed.initialize` is called by the
CLI before anything else); every host feeds its own slice of the global batch. Each
step's PRNG key is `fold_in(key(seed), step)`, and a checkpoint holds parameters,
optimiser state, step and the data iterator's state, so a run resumed from a
checkpoint follows the same trajectory as one that never stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

import gatolab
from gatolab import io_utils
from gatolab.batch import Batch, TokenBatch
from gatolab.model import Gato, ModelConfig, loss_fn, target_bucket
from gatolab.model.config import block_param_count
from gatolab.train import finetune
from gatolab.train import sharding as shd
from gatolab.train.checkpoint import (Checkpointer, CheckpointDamaged, CheckpointError, CheckpointIncomplete, decode_bytes,
                                      encode_bytes, warn)
from gatolab.train.optim import OptimConfig, learning_rate_schedule, make_optimizer


class BatchSource(Protocol):
    """What the loop needs from a data pipeline: batches, and a state to save and restore."""

    def __next__(self) -> Batch: ...
    def get_state(self) -> Any: ...
    def set_state(self, state: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run. Numbers from the paper cite GATO_SPEC §4.

    Attributes:
      preset: model preset (`ModelConfig.preset`), with `model_overrides` applied.
      optim: optimiser and schedule (GATO_SPEC §4).
      steps: optimiser steps to run in total (a resumed run stops at the same step).
      batch_size: global sequences per step (Gato: 512).
      seq_len: tokens per sequence (Gato: 1024); None = the model's context length.
      max_patches: image patches per sequence in a batch; None = seq_len.
      seed: the one seed for parameters, dropout and patch-position sampling.
      log_every: steps between metric lines (metrics.jsonl) and progress updates.
      ckpt_every: steps between checkpoints (a final one is always written).
      keep: checkpoints kept (keep-last-N).
      mesh_shape: ("data", "fsdp", "tensor") sizes; None = all devices data-parallel.
      peak_flops: the device's peak FLOP/s for MFU; None measures a float32 matmul.
      max_seconds: a wall-clock budget for this invocation; when spent, the loop writes a
        checkpoint and returns early (re-running resumes). None = no limit.
      init_from: start from the parameters of another run (a run folder, its checkpoints
        folder or one step's folder; `init_step` picks a step, default the latest) with a
        fresh optimiser and schedule: fine-tuning (Gato §5.2). The network and tokenizer
        must match (`gatolab.train.finetune`); the run records what it started from.
      freeze: parameter path prefixes the optimiser leaves at their values
        (`gl.train.optim.make_optimizer`), e.g. ("embed",).
    """

    preset: str = "tiny"
    model_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    optim: OptimConfig = OptimConfig()
    steps: int = 1_000_000
    batch_size: int = 512
    seq_len: int | None = None
    max_patches: int | None = None
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 1000
    keep: int = 3
    mesh_shape: tuple[int, int, int] | None = None
    peak_flops: float | None = None
    max_seconds: float | None = None
    prefetch: int = 2
    init_from: str | None = None
    init_step: int | None = None
    freeze: tuple[str, ...] = ()

    @classmethod
    def preset_config(cls, name: str, **overrides: Any) -> TrainConfig:
        """"paper": Gato's run (GATO_SPEC §4: batch 512 x 1024, 1M steps, warm-up 15k, lr 1e-4).
        "tiny": a CPU-sized run of the `tiny` model for tests and notebooks."""
        if name == "paper":
            base = cls(preset="gato_1_18b", optim=OptimConfig(), steps=1_000_000, batch_size=512, seq_len=1024)
        elif name == "tiny":
            base = cls(preset="tiny", optim=OptimConfig(peak_lr=1e-3, warmup_steps=20, total_steps=200),
                       steps=200, batch_size=8, seq_len=256, max_patches=128, log_every=10, ckpt_every=50)
        else:
            raise ValueError(f"unknown training preset {name!r} (expected 'paper' or 'tiny')")
        return base.replace(**overrides)

    def replace(self, **overrides: Any) -> TrainConfig:
        """`dataclasses.replace`, plus dotted keys into `optim.` and `model.` (e.g. "optim.peak_lr")."""
        # Dotted keys apply on top of an `optim` / `model_overrides` given in the same call.
        optim = dict(dataclasses.asdict(overrides.get("optim", self.optim)))
        model = dict(overrides.get("model_overrides", self.model_overrides))
        top = {}
        for key, value in overrides.items():
            if key.startswith("optim."):
                name = key.split(".", 1)[1]
                if name not in optim:
                    raise ValueError(f"unknown optimiser setting {name!r} (known: {sorted(optim)})")
                optim[name] = value
            elif key.startswith("model."):
                model[key.split(".", 1)[1]] = value
            else:
                if key not in {f.name for f in dataclasses.fields(self)}:
                    raise ValueError(f"unknown training setting {key!r}")
                top[key] = value
        cfg = dataclasses.replace(self, **top)
        return dataclasses.replace(cfg, optim=OptimConfig(**optim), model_overrides=model)

    def model_config(self) -> ModelConfig:
        return ModelConfig.preset(self.preset, **dict(self.model_overrides))

    @property
    def sequence_length(self) -> int:
        return self.seq_len or self.model_config().context_len

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_overrides"] = dict(self.model_overrides)
        d["mesh_shape"] = list(self.mesh_shape) if self.mesh_shape else None
        d["freeze"] = list(self.freeze)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrainConfig:
        d = dict(d)
        d["optim"] = OptimConfig(**d["optim"])
        d["mesh_shape"] = tuple(d["mesh_shape"]) if d.get("mesh_shape") else None
        d["freeze"] = tuple(d.get("freeze", ()))
        return cls(**d)


class Prefetch:
    """A `BatchSource` read `depth` batches ahead by a background thread.

    `get_state()` is the wrapped source's state right after the last batch handed out
    (not after the ones waiting in the queue), so a checkpoint taken between steps resumes
    exactly. `set_state()` stops the reader, restores the source and restarts lazily.
    An exception in the reader is raised by the `next()` that would have received it.
    """

    def __init__(self, source: BatchSource, depth: int = 2):
        if depth < 1:
            raise ValueError(f"Prefetch.depth must be >= 1, got {depth}")
        self.source, self.depth = source, depth
        self._state = copy.deepcopy(source.get_state())
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self, q: queue.Queue, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                item = (next(self.source), copy.deepcopy(self.source.get_state()), None)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                item = (None, None, e)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self._thread is None:
            self._queue, self._stop = queue.Queue(self.depth), threading.Event()
            self._thread = threading.Thread(target=self._read, args=(self._queue, self._stop), daemon=True,
                                            name="gatolab-prefetch")
            self._thread.start()
        batch, state, error = self._queue.get()
        if error is not None:
            self.close()
            raise error
        self._state = state
        return batch

    def get_state(self) -> Any:
        return copy.deepcopy(self._state)

    def set_state(self, state: Any) -> None:
        self.close()
        self.source.set_state(state)
        self._state = copy.deepcopy(state)

    def close(self) -> None:
        """Stops the reader; batches it read ahead are dropped (the source is rewound to
        the last state handed out, so none is lost)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread, self._queue = None, None
        self.source.set_state(copy.deepcopy(self._state))

    def __getattr__(self, name: str) -> Any:  # domain_names, tokenizer, ... of the wrapped source
        source = self.__dict__.get("source")
        if source is None:
            raise AttributeError(name)
        return getattr(source, name)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the message names the step and the last good checkpoint."""


# ---------------------------------------------------------------------------------------
# FLOPs and MFU
# ---------------------------------------------------------------------------------------
def train_flops_per_token(config: ModelConfig, seq_len: int, target_fraction: float = 1.0) -> float:
    """Model FLOPs per trained token: 6 x (matmul parameters) + attention (PaLM appendix B).

    The output projection counts only at target positions (the loss projects only those).
    """
    attention = 12 * config.num_layers * config.num_heads * config.head_dim * seq_len  # QK^T and AV, fwd+bwd
    unembed = 6 * config.embed_dim * config.vocab_size * target_fraction
    return 6 * block_param_count(config) + attention + unembed


def measure_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul throughput of the default device (FLOP/s)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t = time.perf_counter()
    for _ in range(repeats):
        f(a).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - t)


# ---------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------
def _to_json_state(state: Any) -> Any:
    return {"bytes": encode_bytes(state)} if isinstance(state, bytes) else state


def _from_json_state(state: Any) -> Any:
    return decode_bytes(state["bytes"]) if isinstance(state, dict) and set(state) == {"bytes"} else state


class Trainer:
    """Builds the model, optimiser, mesh and checkpointer for one run directory.

    Args:
      config: the run's TrainConfig.
      out_dir: run directory (metrics.jsonl, checkpoints/, config.json).
      source: the data pipeline (`BatchSource`), yielding host-local `Batch`es of
        batch_size / process_count rows.
      extra_meta: JSON-able facts saved with every checkpoint (e.g. the tokenizer).
      domain_names: names of the batch's `info.dataset_id`s; when given (and batches carry
        `dataset_id`), the loss is also logged per domain as `loss/domain/<name>`.
    """

    def __init__(self, config: TrainConfig, out_dir: str | os.PathLike, source: BatchSource,
                 extra_meta: Mapping[str, Any] | None = None, domain_names: list[str] | None = None):
        self.config = config
        self.domain_names = list(domain_names or [])
        self.out_dir = Path(out_dir)
        self.source = Prefetch(source, config.prefetch) if config.prefetch > 0 else source
        self.extra_meta = dict(extra_meta or {})
        self.model_config = config.model_config()
        self.mesh = shd.make_mesh(config.mesh_shape)
        self.model = Gato(self.model_config, rngs=nnx.Rngs(config.seed))
        shd.shard_model(self.model, self.mesh)
        if config.freeze:
            finetune.check_freeze(config.freeze, nnx.state(self.model, nnx.Param))
        self.optimizer = nnx.Optimizer(self.model, make_optimizer(config.optim, config.freeze), wrt=nnx.Param)
        self.lr = learning_rate_schedule(config.optim)
        self.graphdef, self.state = nnx.split((self.model, self.optimizer))
        # Every leaf committed to a sharding (the optimiser's scalars replicated), and the step
        # pinned to give its state back in those shardings: otherwise XLA picks equivalent but
        # differently written ones for step 1's output and step 2 compiles the step again.
        replicated = NamedSharding(self.mesh, PartitionSpec())
        self.state = jax.tree.map(lambda x: x if isinstance(x, jax.Array) and x.committed else jax.device_put(x, replicated),
                                  self.state)
        self._state_shardings = jax.tree.map(lambda x: x.sharding, self.state)
        self.step = 0
        self.base_key = jax.random.key(config.seed)
        self.checkpointer = Checkpointer(self.out_dir / "checkpoints", keep=config.keep)
        self._compiled: dict[int, Callable] = {}
        self._shapes: set[tuple[int, int]] = set()  # (target, patch) buckets compiled so far
        self._new_shapes = 0  # first-time buckets (compilations) since the last metrics line
        self._peak = config.peak_flops
        self._events: list[dict[str, Any]] = []  # not metrics: e.g. a fallback past a damaged checkpoint

    # --- the step -------------------------------------------------------------------------
    def _step_fn(self, max_targets: int) -> Callable:
        if max_targets in self._compiled:
            return self._compiled[max_targets]
        graphdef = self.graphdef

        def train_step(state, batch, key):
            model, optimizer = nnx.merge(graphdef, state)

            def loss(m):
                return loss_fn(m, batch, train=True, key=key, max_targets=max_targets)

            (value, metrics), grads = nnx.value_and_grad(loss, has_aux=True)(model)
            optimizer.update(model, grads)
            metrics["grad_norm"] = optax.global_norm(grads)
            # A step is good only if the loss, the gradients and every updated parameter are
            # finite: the loop never checkpoints parameters a bad update produced.
            params = jax.tree.leaves(nnx.state(model, nnx.Param))
            metrics["finite"] = jnp.isfinite(value) & jnp.isfinite(metrics["grad_norm"]) & jnp.all(
                jnp.stack([jnp.all(jnp.isfinite(p)) for p in params]))
            _, new_state = nnx.split((model, optimizer))
            return new_state, metrics

        fn = jax.jit(train_step, donate_argnums=0,
                     out_shardings=(self._state_shardings, NamedSharding(self.mesh, PartitionSpec())))
        self._compiled[max_targets] = fn
        return fn

    def _device_inputs(self, tokens: TokenBatch) -> tuple[tuple[int, int], TokenBatch, jax.Array]:
        """This step's (target, patch) buckets, its sharded batch and its PRNG key."""
        # Targets per row vary by domain; a power-of-two bucket (>= 64) bounds the number of
        # compiled step functions to ~log2(L) while projecting few padded positions.
        k = min(1 << (target_bucket(tokens) - 1).bit_length(), np.shape(tokens.ids)[1])
        # The same for the patch axis: the ResNet runs on a power-of-two bucket of the most
        # patches any row uses, not on every padded slot (control rows often have none).
        k, p = _agree_across_hosts(k, _patch_bucket(tokens))
        device_batch = shd.shard_batch(tokens.truncate_patches(p), self.mesh)
        return (k, p), device_batch, jax.random.fold_in(self.base_key, self.step)

    def lower_step(self, batch: Batch) -> jax.stages.Lowered:
        """The train step for `batch` lowered to StableHLO, sharding annotations included (nothing runs)."""
        (k, _), device_batch, key = self._device_inputs(batch.tokens)
        with shd.activation_sharding(self.mesh):
            return self._step_fn(k).lower(self.state, device_batch, key)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimiser step on a host-local batch; returns float metrics."""
        shape, device_batch, key = self._device_inputs(batch.tokens)
        self._new_shapes += shape not in self._shapes
        self._shapes.add(shape)
        with shd.activation_sharding(self.mesh):
            new_state, metrics = self._step_fn(shape[0])(self.state, device_batch, key)
        row_nll, row_targets = metrics.pop("row_nll"), metrics.pop("row_targets")
        out = {name: float(v) for name, v in metrics.items()}
        if self.domain_names and batch.info.dataset_id is not None:
            out.update(self._per_domain(np.asarray(batch.info.dataset_id), row_nll, row_targets))
        if not out.pop("finite"):
            good = self.checkpointer.latest_step()
            where = self.checkpointer.directory / str(good) if good is not None else "none (no checkpoint was written yet)"
            raise TrainingDiverged(f"non-finite loss, gradients or parameters at step {self.step} "
                                   f"(loss {out['loss']}, grad norm {out['grad_norm']}); training stopped before "
                                   f"anything was saved. Last good checkpoint: {where}")
        self.state = new_state
        self.step += 1
        return out

    def _per_domain(self, dataset_id: np.ndarray, row_nll, row_targets) -> dict[str, float]:
        """Summed NLL and target counts per domain: `nll/domain/<d>`, `targets/domain/<d>`."""
        if jax.process_count() > 1:
            dataset_id = np.asarray(multihost_utils.process_allgather(dataset_id, tiled=True))
            row_nll = multihost_utils.process_allgather(row_nll, tiled=True)
            row_targets = multihost_utils.process_allgather(row_targets, tiled=True)
        row_nll, row_targets = np.asarray(row_nll), np.asarray(row_targets)
        out = {}
        for d, name in enumerate(self.domain_names):
            sel = dataset_id == d
            out[f"nll/domain/{name}"] = float(row_nll[sel].sum())
            out[f"targets/domain/{name}"] = float(row_targets[sel].sum())
        return out

    # --- checkpoints -----------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "train_config": self.config.to_json(),
            "model_config": self.model_config.to_json(),
            "data_state": _to_json_state(self.source.get_state()),
            **self.extra_meta,
        }

    def save(self) -> None:
        if jax.process_index() == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        pure = nnx.to_pure_dict(self.state)  # the state of the (model, optimizer) pair: keys 0 and 1
        self.checkpointer.save(self.step, {"model": pure[0], "optimizer": pure[1]}, self._meta())

    def restore(self, step: int | None = None) -> bool:
        """Restores the latest (or given) checkpoint if there is one; returns whether it did.

        Without `step`, a latest checkpoint that is damaged (fails its checksums, an
        unfinished save, unreadable by orbax) does not end the run: the newest intact one is
        restored instead, the damaged ones are renamed aside (`<step>.damaged`, never
        deleted), and the fallback is reported on stderr and, by `run`, in metrics.jsonl.
        A given `step` that is damaged raises `CheckpointDamaged`.
        """
        steps = self.checkpointer.steps()
        if not steps:
            return False
        damaged: list[tuple[int, CheckpointDamaged]] = []
        for s in reversed(steps) if step is None else [step]:
            try:
                self._restore_step(s)
                break
            except CheckpointDamaged as e:
                if step is not None:
                    raise
                damaged.append((s, e))
        else:
            if all(isinstance(e, CheckpointIncomplete) for _, e in damaged):
                # Killed during its first saves: nothing was trained that a checkpoint kept, so the
                # run starts again (the unfinished steps set aside, not deleted).
                self._set_aside(damaged, fresh=True)
                return False
            raise CheckpointDamaged(f"every checkpoint in {self.checkpointer.directory} is damaged (nothing was moved): "
                                    + "; ".join(str(e) for _, e in damaged))
        if damaged:
            self._set_aside(damaged)
        return True

    def _restore_step(self, step: int) -> None:
        self.checkpointer.verify(step)  # once: the two reads below trust it
        meta = self.checkpointer.restore_meta(step, verify=False)
        if meta.get("model_config") != self.model_config.to_json():
            raise CheckpointError(f"checkpoint in {self.checkpointer.directory} was made with a different model config "
                                  f"({meta.get('model_config')} != {self.model_config.to_json()})")
        pure = nnx.to_pure_dict(self.state)
        restored, meta = self.checkpointer.restore({"model": pure[0], "optimizer": pure[1]}, step, verify=False)
        nnx.replace_by_pure_dict(self.state, {0: restored["model"], 1: restored["optimizer"]})
        self.step = int(meta["step"])
        self.source.set_state(_from_json_state(meta["data_state"]))

    def _init_from(self, resumed: bool) -> None:
        """A fine-tuning run: its first invocation takes the pretrained parameters (placed as
        the model's own are) and records where they came from; a resumed one keeps that record."""
        record_file = self.out_dir / finetune.INIT_FILE
        if resumed:
            if record_file.exists():
                self.extra_meta["init_from"] = json.loads(record_file.read_text())
            return
        params, record = finetune.load_init(self.config.init_from, self.config.init_step, self.model_config,
                                            (self.extra_meta.get("tokenizer") or None))
        pure = nnx.to_pure_dict(self.state)
        finetune.check_shapes(str(self.config.init_from), params, pure[0])
        pure[0] = jax.tree.map(lambda new, old: jax.device_put(np.asarray(new, old.dtype), old.sharding), params, pure[0])
        nnx.replace_by_pure_dict(self.state, pure)
        self.extra_meta["init_from"] = record
        if jax.process_index() == 0:
            io_utils.atomic_write_json(record_file, record)
            print(f"init_from: step {record['step']} of {record['path']} (parameters sha256 {record['params_sha256'][:16]}…)",
                  flush=True)

    def _set_aside(self, damaged: list[tuple[int, CheckpointDamaged]], fresh: bool = False) -> None:
        """Moves the damaged steps out of orbax's way (process 0; every host waits for it) and
        keeps the event for metrics.jsonl, so the run's record says where it resumed from."""
        moved = {}
        if jax.process_index() == 0:
            for s, e in damaged:
                moved[s] = str(self.checkpointer.set_aside(s))
                instead = "starting from step 0" if fresh else f"resuming from step {self.step} instead"
                warn(f"{e}; {instead} (the damaged step is kept as {moved[s]})")
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("gatolab-checkpoint-set-aside")
            self.checkpointer._mngr.reload()
        self._events.append({"step": self.step, "event": "checkpoint_fallback", "time": time.time(),
                             "resumed_from": None if fresh else self.step,
                             "damaged": [{"step": s, "error": str(e), "moved_to": moved.get(s)} for s, e in damaged]})

    # --- the run ----------------------------------------------------------------------------
    def _out_of_time(self, t_start: float) -> bool:
        """Whether `max_seconds` is spent; with several hosts, process 0's clock decides for all."""
        if self.config.max_seconds is None:
            return False
        spent = time.perf_counter() - t_start > self.config.max_seconds
        if jax.process_count() > 1:
            spent = bool(multihost_utils.broadcast_one_to_all(np.asarray(spent)))
        return spent

    def run(self, progress: bool = True, on_metrics: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Trains until `config.steps`, resuming from the latest checkpoint in `out_dir`.

        Writes a metrics line every `log_every` steps and a checkpoint every `ckpt_every`
        steps and at the end. Raises TrainingDiverged on a NaN/inf loss, after which the
        last good checkpoint is untouched.
        """
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.restore()
        if cfg.init_from is not None:
            self._init_from(resumed)
        if jax.process_index() == 0:
            io_utils.atomic_write_json(self.out_dir / "config.json", {"train_config": cfg.to_json(),
                                                                     "model_config": self.model_config.to_json(),
                                                                     "gatolab_version": gatolab.__version__})
        if self._peak is None:
            self._peak = measure_peak_flops()
        log_path = self.out_dir / "metrics.jsonl"
        if jax.process_index() == 0 and log_path.exists():
            # A resumed run rewrites the steps after its checkpoint: drop the killed run's lines past it.
            kept = [line for line in log_path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= self.step]
            io_utils.atomic_write_text(log_path, "".join(line + "\n" for line in kept))
        if jax.process_index() == 0 and self._events:
            with open(log_path, "a") as f:
                f.writelines(json.dumps(event) + "\n" for event in self._events)
        self._events = []
        bar = None
        if progress and jax.process_index() == 0:
            bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step")
        window: list[dict[str, float]] = []
        t_start = t_last = time.perf_counter()
        tokens_since = timesteps_since = 0
        last: dict[str, Any] = {}
        out_of_time = False
        try:
            while self.step < cfg.steps and not out_of_time:
                batch = next(self.source)
                metrics = self.train_step(batch)  # raises TrainingDiverged on NaN/inf
                window.append(metrics)
                tokens_since += int(np.asarray(batch.tokens.valid).sum()) * jax.process_count()
                timesteps_since += timesteps_in(batch.info) * jax.process_count()
                if bar is not None:
                    bar.update(1)
                out_of_time = self._out_of_time(t_start)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps or out_of_time:
                    dt = time.perf_counter() - t_last
                    mean = {k: float(np.mean([m[k] for m in window])) for k in window[0] if "/domain/" not in k}
                    for name in self.domain_names:  # per-domain loss over the whole logging window
                        n = sum(m.get(f"targets/domain/{name}", 0.0) for m in window)
                        mean[f"targets/domain/{name}"] = n / len(window)
                        if n:
                            mean[f"loss/domain/{name}"] = sum(m[f"nll/domain/{name}"] for m in window) / n
                    frac = mean["targets"] / max(1.0, tokens_since / len(window) / jax.process_count())
                    flops = train_flops_per_token(self.model_config, cfg.sequence_length, frac)
                    tps = tokens_since / dt
                    last = {"step": self.step, "lr": float(self.lr(self.step - 1)), **mean, "tokens_per_s": tps,
                            "tokens": tokens_since, "timesteps": timesteps_since, "timesteps_per_s": timesteps_since / dt,
                            "window_seconds": dt,
                            "mfu": tps * flops / (self._peak * jax.device_count()), "time": time.time(),
                            "compiled": self._new_shapes}
                    if jax.process_index() == 0:
                        with open(log_path, "a") as f:
                            f.write(json.dumps(last) + "\n")
                        if bar is not None:
                            bar.set_postfix(loss=f"{last['loss']:.3f}", tok_s=f"{tps:,.0f}")
                    if on_metrics is not None:
                        on_metrics(last)
                    window, t_last, tokens_since, timesteps_since, self._new_shapes = [], time.perf_counter(), 0, 0, 0
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or out_of_time:
                    self.save()
        finally:  # the reader thread never outlives the loop (a NaN stop raises out of it)
            if bar is not None:
                bar.close()
            if isinstance(self.source, Prefetch):
                self.source.close()
        return {"step": self.step, "resumed": resumed, "last": last, "checkpoint": str(self.checkpointer.directory),
                "stopped_by_time": out_of_time and self.step < cfg.steps, "seconds": time.perf_counter() - t_start}


def timesteps_in(info) -> int:
    """Timesteps (of episodes, prompts included) whose tokens a batch holds, from `BatchInfo.timestep`:
    within a row timesteps are numbered in order, so each change of number starts one."""
    ts = np.asarray(info.timestep)
    if ts.size == 0:
        return 0
    return int(np.sum(ts[:, 0] >= 0) + np.sum((ts[:, 1:] != ts[:, :-1]) & (ts[:, 1:] >= 0)))


def _patch_bucket(batch: TokenBatch, smallest: int = 8) -> int:
    """Patch slots a step needs: the next power of two (>= `smallest`) above the most
    patches any row uses, capped at the batch's patch axis."""
    size = np.shape(batch.patches)[1]
    index = np.asarray(batch.patch_index)  # rows index their own patches from 0
    count = 1 if batch.field_width is None else np.asarray(batch.field_width)  # a field-encoded image: all its patches
    used = int(np.max(np.where(index >= 0, index + count, 0), initial=0))
    return min(size, max(smallest, 1 << max(0, used - 1).bit_length()))


def _agree_across_hosts(*sizes: int) -> tuple[int, ...]:
    """Every host must compile the same shapes: the largest bucket over hosts wins."""
    if jax.process_count() == 1:
        return sizes
    local = np.asarray(sizes, np.int64)
    most = np.asarray(multihost_utils.process_allgather(local)).reshape(-1, len(sizes)).max(0)
    return tuple(int(m) for m in most)


def _jsonl_lines(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The metric lines a run has written so far (for live plots); events are left out."""
    return [m for m in _jsonl_lines(run_dir) if "event" not in m]


def read_events(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's event lines in metrics.jsonl (e.g. "checkpoint_fallback": resumed past a
    damaged checkpoint, which one, why, and where it was moved)."""
    return [m for m in _jsonl_lines(run_dir) if "event" in m]
