"""ringsim validate: the analytic model and the simulator against stored measurements."""

from __future__ import annotations

import argparse
import sys

from costmodel.errors import SpecError
from costmodel.results import dumps, ensure_dir, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data", nargs="*", help="JSONL measurement files (default: the stored validation/data/*.jsonl)"
    )
    p.add_argument(
        "--hardware", default=None, help="profile to predict with (default: the one each record names)"
    )
    p.add_argument("--no-sim", action="store_true", help="analytic model only")
    p.add_argument(
        "--out", default=None, help="folder for validation.json and the predicted-vs-measured plot"
    )
    p.add_argument("--json", action="store_true", help="print the rows and summary as JSON")


def run(a: argparse.Namespace) -> int:
    from validation.compare import breakdown, compare, format_table, ideal_vs_fused, summarise
    from validation.stored import DATA_DIR, measurement_files, shown

    paths = a.data or [shown(p) for p in measurement_files()]
    if not paths:
        raise SpecError(f"no validation data given and none found under {shown(DATA_DIR)}/*.jsonl")
    from .progress import bar

    rows = compare(
        paths,
        hardware=a.hardware,
        simulate=not a.no_sim,
        progress=lambda recs: bar(recs, desc="validate", unit="record"),
    )
    for w in rows.warnings:
        print(f"ringsim validate: warning: {w}", file=sys.stderr)
    left = rows.left_out_line()
    if not rows:
        raise SpecError(f"no usable measurement records in {paths}" + (f" ({left})" if left else ""))
    summary = summarise(rows)
    unseen = summarise(rows, unseen=True)
    result = {
        "files": paths,
        "summary": summary,
        "summary_unseen": unseen,
        "unseen_by_model_family": breakdown(rows),
        "ideal_vs_fused": ideal_vs_fused(rows),
        "records": [r.as_dict() for r in rows],
        "left_out": rows.left_out,
        "warnings": rows.warnings,
    }
    if a.out:
        out = ensure_dir(a.out)
        write_json(out / "validation.json", result)
        from plots.validation import fig_validation, normalise

        paths_out = fig_validation(normalise(result["records"]), out, "validation_scatter")
        print("wrote " + ", ".join(str(p) for p in [out / "validation.json", *paths_out]))
    print(
        dumps(result, indent=2)
        if a.json
        else format_table(rows, summary, unseen) + (f"\n{left}" if left else "")
    )
    return 0
