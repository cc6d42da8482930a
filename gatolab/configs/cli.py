"""`gatolab config ...`: the named configs, what one resolves to, and every key an override may set.

    gatolab config list
    gatolab config show demo model.num_layers=6 --train-preset paper   # the resolved RunConfig as JSON
    gatolab config keys [demo]
"""

from __future__ import annotations

import json

from gatolab import configs
from gatolab.configs import overrides
from gatolab.train.run import cli_config


def add_cli(sub) -> None:
    p = sub.add_parser("config", help="run configs: list, show (resolved), keys")
    csub = p.add_subparsers(dest="config_cmd", required=True)
    csub.add_parser("list", help="the named configs in gatolab/configs/").set_defaults(func=_list)
    s = csub.add_parser("show", help="the resolved config (a name, run folder or run_config.json, plus overrides)")
    s.add_argument("config")
    s.add_argument("--train-preset", default=None, choices=["tiny", "paper"])
    s.add_argument("overrides", nargs="*")
    s.set_defaults(func=_show)
    k = csub.add_parser("keys", help="every key an override may set")
    k.add_argument("config", nargs="?", default="tiny")
    k.set_defaults(func=_keys)


def _list(args) -> int:
    for name in configs.names():
        c = configs.get(name)
        print(f"{name:12s} model {c.train.preset:10s} datasets {', '.join(c.data.datasets) or '-'}")
    return 0


def _show(args) -> int:
    print(json.dumps(cli_config(args).to_json(), indent=1))
    return 0


def _keys(args) -> int:
    print("\n".join(overrides.keys(configs.load(args.config))))
    return 0
