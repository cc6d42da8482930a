"""Few-shot fine-tuning on a held-out task (Gato §5.2, Figure 10) as one experiment.

    spec = gl.experiments.finetuning.spec("assembly", episodes=(1, 10, 100), seeds=(0, 1))  # notebook 08's defaults
    gl.experiments.run(spec, out="runs/ft_assembly")           # or: gatolab ablate finetune_assembly --out ...
    curve = gl.experiments.finetuning.curve(spec, "runs/ft_assembly")

Arms (every one of them on the same seeds, evaluated on the held-out task only, with the
same rollout seeds):
- `pre_<variant>` (train only): pretraining on a variant of the data that never holds the
  held-out task -- `all` (every domain of the protocol's mixture), `same` (the held-out
  task's domain only), `nocontrol` (text and image-text only) -- Gato §5.2's variants;
- `<variant>_k<K>`: fine-tuned from `pre_<variant>` (same seed) on the held-out task's first
  K episodes that pass the §2.3 filter (`mixture.episodes_per_task=K`: the K-episode set is
  the same in every arm, and nested in the larger ones); `scratch_k<K>` starts from random
  parameters: the paper's BC baseline on the same K episodes;
- `retrieval_k<K>`: REGENT's 1-nearest-neighbour "retrieve and play" over the same K
  episodes (`eval.policy="retrieval"`, no network).

[open] choices (GATO_SPEC §6 names the held-out tasks and variants, not the budgets):
- the workbench's scale: the `tiny` network (2 layers x 64, an 8-channel patch ResNet, a
  512-piece text model in the compact id layout), `pretrain_steps` of batch 8 x 256 tokens per variant, then
  `finetune_steps` for every K (the paper fine-tunes 1.18B parameters on up to 5,000 episodes);
- fine-tuning uses the pretraining optimiser settings with a fresh warm-up and cosine schedule
  and nothing frozen (`train.freeze` is a switch);
- evaluation without a prompt (`agent.prompt="none"`): a prompt would be drawn from the stored
  held-out episodes, which for K = 1 would show the agent episodes it was not fine-tuned on;
- rollouts at temperature 1 (the paper samples), `eval_episodes` per cell.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from gatolab.baselines import Retrieval
from gatolab.configs.base import DatasetConfig
from gatolab.configs.protocols import LANGUAGE, PROTOCOLS, HeldOut
from gatolab.evaluate.control import load_references
from gatolab.experiments import stats
from gatolab.experiments.runner import cell_data, collect, train_dir, train_owner
from gatolab.experiments.spec import Arm, ExperimentSpec, cells
from gatolab.train.checkpoint import load_model
from gatolab.train.finetune import INIT_FILE, params_sha256

VARIANTS = ("all", "same", "nocontrol", "scratch")

# The workbench base: the tiny network and preset, a small text model in the compact layout.
# An 8-channel patch ResNet, as the demo's: the tiny preset's 32 channels spend most of a CPU step
# on the image-caption rows' 16x16 convolutions.
BASE = {"text.vocab_size": 512, "text.corpus_chars": 100_000, "text.compact_ids": True, "data.workers": 2,
        "data.shard_size": 50, "model.resnet_channels": 8, "model.resnet_groups": 4, "eval.agent.prompt": "none",
        "eval.agent.temperature": 1.0, "log_every": 10}


def protocol(held_out: str) -> HeldOut:
    if held_out not in PROTOCOLS:
        raise ValueError(f"unknown held-out task {held_out!r}; expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[held_out]


def pretraining_data(p: HeldOut, variant: str, episodes: int | None = None) -> dict[str, DatasetConfig]:
    """The datasets of a pretraining variant (Gato §5.2): none holds the held-out task.
    `episodes`: per task of every dataset instead of the protocol's (smoke runs)."""
    if variant == "all":
        data = {p.domain: p.same_domain, **p.other, **LANGUAGE}
    elif variant == "same":
        data = {p.domain: p.same_domain}
    elif variant == "nocontrol":
        data = dict(LANGUAGE)
    else:
        raise ValueError(f"pretraining variant {variant!r} has no data (variants with data: all, same, nocontrol)")
    return data if episodes is None else {k: dataclasses.replace(d, episodes=episodes) for k, d in data.items()}


def spec(held_out: str = "assembly", *, episodes: Sequence[int] = (1, 10, 100), variants: Sequence[str] = VARIANTS,
         seeds: Sequence[int] = (0, 1), pretrain_steps: int = 120, finetune_steps: int = 60, eval_episodes: int = 10,
         retrieval: bool = True, pretrain_episodes: int | None = None,
         overrides: Mapping[str, Any] | None = None) -> ExperimentSpec:
    """The fine-tuning experiment of one held-out task (module docstring).

    Args:
      held_out: a key of `PROTOCOLS` ("assembly", "cartpole-swingup").
      episodes: the fine-tuning set sizes K.
      variants: pretraining variants ("scratch": no pretraining, the BC baseline).
      seeds: one pretraining and one fine-tuning run per seed (fine-tuning seed s starts from
        pretraining seed s).
      pretrain_steps, finetune_steps: optimiser steps (fixed: the arms see the same steps).
      eval_episodes: rollouts of the held-out task per cell.
      retrieval: add the `retrieval_k<K>` reference arms.
      pretrain_episodes: episodes per task of every pretraining dataset (None: the protocol's).
      overrides: for every cell (e.g. {"model.num_layers": 4}).
    """
    p = protocol(held_out)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown pretraining variants {unknown}; expected some of {list(VARIANTS)}")
    ks = sorted({int(k) for k in episodes})
    if not ks or ks[0] < 1:
        raise ValueError(f"episodes must name fine-tuning set sizes >= 1, got {list(episodes)}")
    if pretrain_steps < 1 or finetune_steps < 1:
        raise ValueError(f"pretrain_steps and finetune_steps must be >= 1, got {pretrain_steps}, {finetune_steps}")
    # The held-out task's dataset: max(K) episodes, generated once; every K reads its first K.
    finetune_data = {p.domain: DatasetConfig(p.domain, (p.task,), episodes=ks[-1])}
    schedule = lambda steps: {"steps": steps, "optim.warmup_steps": max(1, min(20, steps // 10))}  # noqa: E731
    arms: list[Arm] = []
    for v in variants:
        if v != "scratch":
            arms.append(Arm(f"pre_{v}", {"data.datasets": pretraining_data(p, v, pretrain_episodes), **schedule(pretrain_steps)},
                            evaluate=False, tags={"variant": v, "stage": "pretrain"}))
    for v in variants:
        for k in ks:
            arms.append(Arm(f"{v}_k{k}", {"data.datasets": finetune_data, "mixture.episodes_per_task": k,
                                          **schedule(finetune_steps)},
                            init_from=None if v == "scratch" else f"pre_{v}", tags={"variant": v, "episodes": k}))
    if retrieval:
        for k in ks:
            arms.append(Arm(f"retrieval_k{k}", {"data.datasets": finetune_data, "mixture.episodes_per_task": k,
                                                "eval.policy": "retrieval", **schedule(finetune_steps)},
                            tags={"variant": "retrieval", "episodes": k}))
    baseline = f"scratch_k{ks[len(ks) // 2]}" if "scratch" in variants else next(a.name for a in arms if a.evaluate)
    return ExperimentSpec(
        f"finetune_{held_out.replace('-', '_')}", tuple(arms), config="tiny",
        overrides={**BASE, "eval.tasks": (p.task,), "eval.episodes": eval_episodes, **dict(overrides or {})},
        seeds=tuple(int(s) for s in seeds), baseline=baseline,
        question=f"Gato §5.2 / Figure 10: does pretraining (all data, same domain, no control data) help few-shot "
                 f"fine-tuning on the held-out {p.task} ({', '.join(map(str, ks))} episodes), against behaviour "
                 f"cloning from scratch and 1-NN retrieval on the same episodes?")


def curve(spec: ExperimentSpec, out: str | os.PathLike, reps: int = 2000) -> dict[str, Any]:
    """Figure 10's data from a finished (or partly finished) experiment folder.

    Returns {"task", "metric", "episodes": [K...], "lines": {variant: [{"episodes", "value",
    "ci", "success", "seeds"}...]}, "vs_scratch": {variant: [{"episodes", "value", "ci",
    "distinguishable", "success"}...]}, "expert_return", "random_return", "expert_success_rate"}
    (the data card's levels) -- per point the mean
    over seeds and rollouts of the normalised score ("value", "ci") and, where the task reports
    success, of the success rate ("success": {"value", "ci"}), each with a 95%
    stratified-bootstrap interval over seeds; `vs_scratch` is each variant's difference from BC
    from scratch at the same K. `metric` is what Figure 10 plots for the task: "success" for
    Meta-World, "normalised_score" for DM Control (as the paper).
    """
    rows = collect(spec, out)
    tags = {a.name: a.tags for a in spec.arms if a.evaluate}
    task = spec.overrides["eval.tasks"][0]
    ks = sorted({t["episodes"] for t in tags.values()})
    lines: dict[str, list[dict[str, Any]]] = {}
    vs: dict[str, list[dict[str, Any]]] = {}
    for k in ks:
        arms_k = {a for a, t in tags.items() if t["episodes"] == k}
        rows_k = [r for r in rows if r["arm"] in arms_k]
        complete = {a for a in arms_k if {r["seed"] for r in rows_k if r["arm"] == a} == set(spec.seeds)}
        rows_k = [r for r in rows_k if r["arm"] in complete]
        if not rows_k:
            continue
        base = f"scratch_k{k}" if f"scratch_k{k}" in complete else sorted(complete)[0]
        s = stats.summarize(rows_k, base, reps=reps)
        # The success rate with the same bootstrap: each rollout's success (0/1) in place of its score.
        has_success = all(r["success"] is not None for r in rows_k)
        succ = (stats.summarize([{**r, "normalised_score": float(r["success"])} for r in rows_k], base, reps=reps)
                if has_success else None)
        for a in sorted(complete):
            v = tags[a]["variant"]
            lines.setdefault(v, []).append({"episodes": k, "value": s["arms"][a]["mean"]["value"],
                                            "ci": s["arms"][a]["mean"]["ci"],
                                            "success": succ["arms"][a]["mean"] if succ else None,
                                            "seeds": len(spec.seeds)})
            if base == f"scratch_k{k}" and a != base:
                d = s["difference_from_baseline"][a]["mean"]
                vs.setdefault(v, []).append({"episodes": k, **d,
                                             "success": succ["difference_from_baseline"][a]["mean"] if succ else None})
    ref = load_references().get(task, {})
    held = next((p for p in PROTOCOLS.values() if p.task == task), None)
    metric = "success" if held is not None and held.metric == "success" and all(
        p["success"] is not None for pts in lines.values() for p in pts) else "normalised_score"
    return {"task": task, "metric": metric, "episodes": ks, "lines": lines, "vs_scratch": vs,
            "expert_return": ref.get("expert_return"), "random_return": ref.get("random_return"),
            "expert_success_rate": ref.get("expert_success_rate"), "folder": str(Path(out))}


def provenance(spec: ExperimentSpec, out: str | os.PathLike) -> list[dict[str, Any]]:
    """For every finished fine-tuning run: the parameters it recorded starting from (`init_from.json`)
    against the SHA-256 of its source run's final parameters, read again from that run's checkpoint."""

    all_cells, out_p, rows = cells(spec), Path(out), []
    for c in all_cells:
        if c.init_from is None or train_owner(all_cells, c) is not c:
            continue
        tdir = train_dir(out_p, all_cells, c)
        if not (tdir / INIT_FILE).exists():
            continue  # not started yet
        record = json.loads((tdir / INIT_FILE).read_text())
        source = train_dir(out_p, all_cells, next(s for s in all_cells if s.arm == c.init_from and s.seed == c.seed))
        model, _, meta = load_model(source)
        sha = params_sha256(nnx.to_pure_dict(nnx.state(model)))
        rows.append({"arm": c.arm, "seed": c.seed, "source_arm": c.init_from, "source_step": int(meta["step"]),
                     "recorded_step": int(record["step"]), "recorded_sha256": record["params_sha256"],
                     "source_sha256": sha, "match": sha == record["params_sha256"] and int(meta["step"]) == int(record["step"])})
    return rows


def retrieval_check(spec: ExperimentSpec, out: str | os.PathLike, timesteps: int = 20) -> dict[str, Any]:
    """The retrieval reference of the largest K, replayed on its own stored observations: the fraction
    of the first `timesteps` stored timesteps whose stored action it returns exactly."""

    ref = [c for c in cells(spec) if c.config.eval.policy == "retrieval"]
    if not ref:
        return {"checked": 0, "exact": None}
    cell = max(ref, key=lambda c: c.config.mixture.episodes_per_task or 0)
    task = cell.config.eval.tasks[0]
    retrieval = Retrieval(cell_data(Path(out), cell), cell.config.mixture_config())
    policy, episodes = retrieval.policy(task), retrieval.episodes(task)
    exact = checked = 0
    for e in episodes:
        for t in range(len(e)):
            if checked == timesteps:
                break
            obs, act = e.timestep(t)
            got = policy(None, obs)
            exact += all(np.array_equal(got[k], act[k]) for k in act)
            checked += 1
    return {"arm": cell.arm, "task": task, "stored_episodes": len(episodes), "stored_timesteps": policy.size,
            "checked": checked, "exact": exact / max(checked, 1)}
