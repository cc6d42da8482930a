"""`gatolab ablate SPEC --out DIR`: run (or resume) an experiment; each unit is also a plain command.

    gatolab ablate prompt_at_eval --out runs/abl budget_minutes=5 eval.episodes=10 --seeds 3
    gatolab ablate prompt_at_eval --out runs/abl --parallel 2                  # local processes
    gatolab ablate prompt_at_eval --out runs/abl --launcher slurm --slurm slurm_partition=gpu gpus_per_node=1
    gatolab ablate prompt_at_eval --out runs/abl --phase train --arm start --seed 0   # one unit (array jobs)
    gatolab ablate --list
"""

from __future__ import annotations

import json

from gatolab.configs import overrides as config_overrides
from gatolab.experiments import runner
from gatolab.experiments import spec as spec_module


def add_cli(sub) -> None:
    p = sub.add_parser("ablate", help="run an experiment: arms x seeds, trained, evaluated, with intervals")
    p.add_argument("spec", nargs="?", default=None, help="a ready ablation (gatolab/configs/ablations/) or an experiment folder")
    p.add_argument("--out", default=None, help="the experiment folder (resumes)")
    p.add_argument("--list", action="store_true", help="list the ready ablations")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 instead of the spec's")
    p.add_argument("--parallel", type=int, default=1, help="units at once (--launcher processes)")
    p.add_argument("--launcher", default="processes", choices=runner.LAUNCHERS)
    p.add_argument("--slurm", nargs="*", default=[], metavar="KEY=VALUE", help="submitit parameters for --launcher slurm")
    p.add_argument("--phase", default=None, choices=["data", "train", "eval", "table"])
    p.add_argument("--arm", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("overrides", nargs="*", help="config overrides for every cell, KEY=VALUE")
    p.set_defaults(func=_ablate)


def _ablate(args) -> int:
    if args.list:
        for name in spec_module.names():
            s = spec_module.load(name)
            print(f"{name:24s} {s.config:10s} arms {', '.join(a.name for a in s.arms)}  -- {s.question}")
        return 0
    if not args.spec or not args.out:
        raise ValueError("gatolab ablate needs SPEC and --out (or --list)")
    res = runner.run(args.spec, args.out, overrides=list(args.overrides),
                     seeds=range(args.seeds) if args.seeds is not None else None, parallel=args.parallel,
                     launcher=args.launcher, phase=args.phase, arm=args.arm, seed=args.seed,
                     slurm=config_overrides.parse(args.slurm))
    if res.get("summary"):
        print(json.dumps(res["summary"]["sentences"], indent=1))
    return 0
