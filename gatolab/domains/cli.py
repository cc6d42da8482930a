"""`gatolab experts ...` and `gatolab domains`: the domains' RL recipes, the trained experts, the registry.

    gatolab experts train --env Breakout-MinAtar [--steps 5000000] [--minutes 5] [--seed 0] [--root experts]
    gatolab experts evaluate --env Breakout-MinAtar [--episodes 20]   # re-measure vs random, record it
    gatolab experts list [--root experts]
    gatolab domains                                                     # the registry: kinds, weights, trainers

A domain whose experts are learned (not scripted) names its recipe in its registry entry
(`DomainEntry.train_expert`, `(task, *, steps, seed, root, time_limit_s, log) -> Path`);
the recipe evaluates the expert through the gatolab adapter against the random policy
on the same seeds and saves it with its training curve (gatolab/experts/store.py).
`gatolab data generate` then uses it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gatolab.domains import registry
from gatolab.domains.base import evaluate_policies
from gatolab.experts import store


def trainable_owner(task: str) -> str:
    """The domain (with an expert trainer) that has `task`; ValueError naming the trainable domains otherwise."""
    trainable = registry.trainable_names()
    try:
        name = registry.owner(task)
    except ValueError:
        name = None
    if name not in trainable:
        examples = {n: registry.get(n).tasks()[:3] for n in trainable}
        raise ValueError(f"no expert trainer for task {task!r}: trainable domains and example tasks: {examples}")
    return name


def add_cli(sub) -> None:
    p = sub.add_parser("experts", help="RL experts: train, evaluate, list")
    esub = p.add_subparsers(dest="experts_cmd", required=True)
    t = esub.add_parser("train", help="train an expert for one task and save it with its training curve")
    t.add_argument("--env", required=True, help="task, e.g. Breakout-MinAtar, ALE/Pong-v5, cartpole-swingup, coinrun")
    t.add_argument("--steps", type=int, default=None, help="environment steps (default: the domain's budget for the task)")
    t.add_argument("--minutes", type=float, default=None, help="stop training after this long (wall clock)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--root", default=None, help="experts folder (default: $GATOLAB_EXPERTS or the repository's experts/)")
    t.set_defaults(func=_train)
    ev = esub.add_parser("evaluate", help="re-measure an expert against the random policy through the adapter")
    ev.add_argument("--env", required=True)
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=10_000, help="episode i uses seed + i, for both policies")
    ev.add_argument("--root", default=None)
    ev.set_defaults(func=_evaluate)
    ls = esub.add_parser("list", help="the trained experts and their measured returns")
    ls.add_argument("--root", default=None)
    ls.set_defaults(func=_list)
    d = sub.add_parser("domains", help="the registered domains: kind, Table-1 weights, expert trainer")
    d.set_defaults(func=_domains)


def _train(args) -> int:
    train = registry.entry(trainable_owner(args.env)).trainer()
    kwargs = {"steps": args.steps, "seed": args.seed, "root": args.root}
    if args.minutes is not None:
        kwargs["time_limit_s"] = args.minutes * 60
    path = train(args.env, **kwargs)
    meta = json.loads((Path(path) / store.META_FILE).read_text())
    print(f"saved {path}: {json.dumps(meta['evaluation'])}")
    return 0


def evaluate_expert(task: str, episodes: int = 20, seed: int = 10_000, root: str | None = None) -> dict:
    """Expert vs random return over the same seeds through the gatolab adapter; recorded in expert.json."""
    if root is not None:  # the domains load experts from $GATOLAB_EXPERTS
        os.environ["GATOLAB_EXPERTS"] = str(root)
    domain = registry.get(trainable_owner(task))
    evaluation = evaluate_policies(domain, task, {"expert": domain.expert(task), "random": domain.random_policy(task, seed)},
                                   episodes=episodes, seed=seed)
    store.update_evaluation(task, evaluation, root)
    return evaluation


def _evaluate(args) -> int:
    print(json.dumps(evaluate_expert(args.env, args.episodes, args.seed, args.root)))
    return 0


def _list(args) -> int:
    metas = store.list_experts(args.root)
    if not metas:
        print(f"no trained experts under {args.root or store.experts_root()}")
        return 0
    print(f"{'task':28s} {'domain':8s} {'algo':5s} {'steps':>11s} {'expert':>9s} {'random':>9s}")
    for meta in metas:
        ev, curve = meta.get("evaluation", {}), meta.get("curve", [])
        steps = curve[-1]["step"] if curve else 0
        print(f"{meta['task']:28s} {meta['domain']:8s} {meta['algo']:5s} {steps:>11,} "
              f"{ev.get('expert_return_mean', float('nan')):9.2f} {ev.get('random_return_mean', float('nan')):9.2f}")
    return 0


def _domains(args) -> int:
    print(f"{'domain':16s} {'kind':16s} {'datasets (Table-1 weight %)':34s} trainer")
    for e in registry.entries():
        weights = ", ".join(f"{d} {w:g}" for d, w in e.weights.items()) or "-"
        print(f"{e.name:16s} {e.kind:16s} {weights:34s} {'yes' if e.train_expert else '-'}")
    return 0
