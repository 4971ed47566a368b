"""ringsim plot: re-make the figures of a results file (sweep CSV/JSON, crossover.json, timeline JSON,
validation JSON/JSONL, seed_report.json) from the file alone."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="results file(s)")
    p.add_argument(
        "--out", default=None, help="folder for the PNG + SVG figures (default: next to each file)"
    )
    p.add_argument("--name", default=None, help="figure name stem (default: the file's stem; one FILE only)")


def run(a: argparse.Namespace) -> int:
    from costmodel.errors import SpecError
    from plots.files import plot_file

    if a.name and len(a.files) > 1:
        raise SpecError("--name applies to one FILE only")
    for f in a.files:
        for p in plot_file(f, a.out or Path(f).parent, a.name):
            print(p)
    return 0
