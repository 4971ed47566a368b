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
    from .progress import bar

    paths = []
    with bar(desc="plot", unit="figure") as b:
        for f in a.files:
            b.set_postfix_str(Path(f).name)
            n0 = b.n
            got = plot_file(f, a.out or Path(f).parent, a.name, step=b.update)
            b.update(max(0, len({p.with_suffix("") for p in got}) - (b.n - n0)))
            paths += got
    for p in paths:
        print(p)
    return 0
