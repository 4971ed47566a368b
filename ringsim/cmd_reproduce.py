"""ringsim reproduce: the seed's experiment checked with physics -> REPORT.md, data/ and figures/."""

from __future__ import annotations

import argparse
import shlex

from ringsim.argtypes import ascii_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="reproduce", help="output folder (REPORT.md, data/, figures/); default ./reproduce"
    )
    p.add_argument(
        "--claims",
        default=None,
        help="claims TOML (default: studies/seed_claims.toml, citing the seed documents)",
    )
    p.add_argument(
        "--sweep-batch", type=ascii_int, default=8, help="batch of the sweeps against L (default 8)"
    )
    p.add_argument("--points", type=ascii_int, default=40, help="lengths per sweep, 4Ki..1Mi (default 40)")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")


def run(a: argparse.Namespace) -> int:
    from studies.reproduce import reproduce

    log = (lambda *x: None) if a.quiet else print
    r = reproduce(
        a.out,
        claims_path=a.claims,
        sweep_batch=a.sweep_batch,
        points=a.points,
        log=log,
        command=f"ringsim reproduce --out {shlex.quote(str(a.out))}",
    )
    if a.quiet:
        print(r["report"])
    else:
        from plots.report import verdict_markdown

        print()
        print(verdict_markdown(r["doc"]))
    return 0
