"""ringsim reproduce: the seed's claims checked with physics, plus the seed's experiment file and the
seed's question for Llama 3.1 70B/405B run through ``explore`` -> REPORT.md, data/, figures/, explore/,
questions/."""

from __future__ import annotations

import argparse
import shlex
import sys

from tqdm import tqdm

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
        "--experiment",
        default=None,
        help="the seed's experiment file (default: studies/experiments/seed.toml; keys as ringsim explore)",
    )
    p.add_argument(
        "--sweep-batch",
        type=ascii_int,
        default=None,
        help="batch of the maps (default: the experiment's, 1 and 8)",
    )
    p.add_argument(
        "--points", type=ascii_int, default=None, help="lengths per map (default: the experiment's, 25)"
    )
    p.add_argument(
        "--no-questions",
        action="store_true",
        help="leave out the Llama 3.1 70B/405B section (its four experiment files)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the report's path")


def run(a: argparse.Namespace) -> int:
    from ringsim import __version__
    from studies.reproduce import QUESTIONS, reproduce

    log = (lambda *x: None) if a.quiet else print
    quiet = a.quiet or not sys.stderr.isatty()
    progress = (
        None if quiet else (lambda it: tqdm(it, desc="explore", unit="row", file=sys.stderr, leave=False))
    )
    r = reproduce(
        a.out,
        claims_path=a.claims,
        experiment=a.experiment,
        sweep_batch=a.sweep_batch,
        points=a.points,
        questions=() if a.no_questions else QUESTIONS,
        log=log,
        progress=progress,
        version=__version__,
        command=f"ringsim reproduce --out {shlex.quote(str(a.out))}",
    )
    if a.quiet:
        print(r["report"])
    else:
        from plots.report import verdict_markdown

        print()
        print(verdict_markdown(r["doc"]))
    return 0
