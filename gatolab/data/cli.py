"""`gatolab data ...`: generate datasets, verify them, write data cards.

    gatolab data generate --domain classic [--tasks CartPole-v1 ...] --episodes 100 --workers 2 [--out data]
    gatolab data verify   --data data/classic
    gatolab data card     --data data/classic [--data data/babyai ...] [--random-episodes 20] [--out data_cards]
    gatolab data summary  [--cards data_cards]
    gatolab data import   --format minari|jat --src PATH [--task T] [--name N] [--out data]
"""

from __future__ import annotations

from gatolab.configs import overrides
from gatolab.data import cards
from gatolab.data.generation import generate
from gatolab.data.importers import import_dataset
from gatolab.data.storage import EpisodeDataset


def add_cli(sub) -> None:
    p = sub.add_parser("data", help="datasets: generate, verify, data cards")
    dsub = p.add_subparsers(dest="data_cmd", required=True)

    g = dsub.add_parser("generate", help="generate (or resume) expert episodes for a domain")
    g.add_argument("--domain", required=True, help="a registered domain (`gatolab domains` lists them)")
    g.add_argument("--tasks", nargs="*", default=None, help="default: every task of the domain")
    g.add_argument("--episodes", type=int, required=True, help="episodes per task")
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--shard-size", type=int, default=50)
    g.add_argument("--name", default=None, help="dataset name (default: the domain)")
    g.add_argument("--out", default="data")
    g.add_argument("--launcher", default="processes", choices=["processes", "submitit-local", "slurm"],
                   help="where shards are generated: local processes (--workers at a time) or one submitit job each")
    g.add_argument("--slurm", nargs="*", default=[], metavar="KEY=VALUE", help="submitit parameters, e.g. slurm_partition=cpu")
    g.set_defaults(func=_generate)

    v = dsub.add_parser("verify", help="check every shard's checksums")
    v.add_argument("--data", nargs="+", required=True)
    v.set_defaults(func=_verify)

    c = dsub.add_parser("card", help="measure datasets and write their data cards (+ the summary)")
    c.add_argument("--data", nargs="+", required=True)
    c.add_argument("--random-episodes", type=int, default=20)
    c.add_argument("--random-seed", type=int, default=1_000_000)
    c.add_argument("--text-vocab", type=int, default=32_000)
    c.add_argument("--workers", type=int, default=1, help="processes for the random-policy rollouts")
    c.add_argument("--out", default="data_cards")
    c.set_defaults(func=_card)

    s = dsub.add_parser("summary", help="regenerate data_cards/README.md from the cards")
    s.add_argument("--cards", default="data_cards")
    s.set_defaults(func=_summary)

    i = dsub.add_parser("import", help="import a local Minari dataset or JAT parquet files (gatolab/data/importers.py)")
    i.add_argument("--format", required=True, choices=("minari", "jat"))
    i.add_argument("--src", required=True, nargs="+", help="Minari dataset folder; JAT parquet file(s) or folder")
    i.add_argument("--task", default=None, help="task name (required for jat; minari: default the recorded env id)")
    i.add_argument("--name", default=None, help="dataset name (default: minari dataset id / jat-<task>)")
    i.add_argument("--shard-size", type=int, default=50)
    i.add_argument("--clip", action="store_true", help="continuous values beyond their range saturate at tokenization")
    i.add_argument("--out", default="data")
    i.set_defaults(func=_import)


def _generate(args) -> int:
    m = generate(args.domain, args.out, tasks=args.tasks, episodes=args.episodes, workers=args.workers, seed=args.seed,
                 shard_size=args.shard_size, dataset_name=args.name, launcher=args.launcher,
                 launcher_params=overrides.parse(args.slurm))
    print(f"{args.out}/{m['dataset']}: {len(m['tasks'])} tasks, {m['num_episodes']} episodes, {m['num_timesteps']} timesteps, "
          f"{len(m['shards'])} shards")
    return 0


def _verify(args) -> int:
    for path in args.data:
        n = EpisodeDataset(path).verify_all()
        print(f"{path}: {n} shards OK")
    return 0


def _card(args) -> int:
    for path in args.data:
        ds = EpisodeDataset(path)
        random_episodes = args.random_episodes
        if ds.manifest.get("imported"):  # gatolab/data/importers/: no environment to run a random policy in
            random_episodes = 0
            print(f"{path}: imported dataset without an environment: random-policy returns are not measured")
        card = cards.write_card(ds, args.out, random_episodes=random_episodes, random_seed=args.random_seed,
                                tokenizer=cards.default_tokenizer(ds, args.text_vocab), workers=args.workers)
        print(f"{args.out}/{card['dataset']}.md: {card['num_tasks']} tasks, {card['num_episodes']} episodes, {card['num_tokens']} tokens")
    return 0


def _import(args) -> int:
    src = args.src[0] if len(args.src) == 1 else args.src
    if args.format == "minari" and len(args.src) > 1:
        raise ValueError("--format minari takes one --src folder")
    m = import_dataset(args.format, src, args.out, task=args.task, name=args.name, shard_size=args.shard_size,
                       out_of_range="clip" if args.clip else "error")
    print(f"{args.out}/{m['dataset']}: {len(m['tasks'])} task(s), {m['num_episodes']} episodes, {m['num_timesteps']} timesteps, "
          f"{len(m['shards'])} shards")
    return 0


def _summary(args) -> int:
    rows = cards.write_summary(args.cards)
    print(f"{args.cards}/README.md: {len(rows)} datasets")
    return 0
