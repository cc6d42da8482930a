"""`gatolab eval`: a checkpoint in real environments (normalised scores, Figure 5)."""

from __future__ import annotations

from gatolab.agent import AgentConfig
from gatolab.evaluate.control import evaluate


def add_cli(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint in real environments (normalised scores, Figure 5)")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint path")
    p.add_argument("--tasks", nargs="+", required=True, help="control tasks, e.g. CartPole-v1 BabyAI-GoToRedBall-v0")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--prompt", default="start", choices=["start", "end", "none"])
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--data", nargs="*", default=None, help="datasets for demonstrations (default: the run's own)")
    p.add_argument("--returns", default=None, help="returns.json (default data_cards/returns.json)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--out", default=None)
    p.set_defaults(func=_cli_eval)


def _cli_eval(args) -> int:
    res = evaluate(args.checkpoint, args.tasks, episodes=args.episodes, data=args.data, returns=args.returns,
                   config=AgentConfig(prompt=args.prompt, temperature=args.temperature), max_steps=args.max_steps,
                   out=args.out)
    for r in res.rows:
        if r.get("error"):
            print(f"{r['task']}: FAILED {r['error']}")
        else:
            sr = "" if r["success_rate"] is None else f", success {r['success_rate']:.0%}"
            print(f"{r['domain']}/{r['task']}: return {r['mean_return']:.3f} -> {100 * r['normalised_score']:.1f}% of expert{sr}")
    agg = res.aggregate
    for d, v in agg["per_domain"].items():
        print(f"domain {d}: {100 * v['normalised_score']:.1f}% over {v['tasks']} tasks")
    if agg["overall"] is not None:
        print(f"overall (mean of domain means): {100 * agg['overall']:.1f}%")
    if res.paths:
        print(f"results: {res.paths['json']} and {res.paths['csv']}")
    return 1 if agg["failed"] else 0
