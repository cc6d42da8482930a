"""`gatolab checkpoint verify RUN`: every step of a run checked against its SHA-256 manifest.

    gatolab checkpoint verify runs/demo/train        # or its checkpoints/ folder, or one step
    step 100: ok
    step 150: DAMAGED checkpoint runs/demo/train/checkpoints/150: state/... has sha256 ..., expected ...

Exit status 0 when every step is intact (or, written before checkpoints carried checksums,
unverifiable), 1 when any is damaged: a script can check a run before resuming or
copying it.
"""

from __future__ import annotations

from gatolab.train.checkpoint import verify_run


def add_cli(sub) -> None:
    p = sub.add_parser("checkpoint", help="checkpoints of a run: verify their checksums")
    csub = p.add_subparsers(dest="checkpoint_cmd", required=True)
    v = csub.add_parser("verify", help="check every step of a run against its SHA-256 manifest")
    v.add_argument("run", help="a run folder, its checkpoints/ folder or one step folder")
    v.set_defaults(func=_verify)


def _verify(args) -> int:
    checks = verify_run(args.run)
    for c in checks:
        name = f"step {c.step}" if c.step is not None else c.path.name
        if c.status == "ok":
            print(f"{name}: ok")
        elif c.status == "damaged":
            print(f"{name}: DAMAGED {c.detail}")
        else:
            print(f"{name}: {c.status} ({c.detail})")
    damaged = sum(c.status == "damaged" for c in checks)
    steps = sum(c.step is not None for c in checks)
    print(f"{steps - damaged} of {steps} steps intact" + (f"; {damaged} damaged" if damaged else ""))
    return 1 if damaged else 0
