"""ringsim predict: the analytic model on one configuration."""

from __future__ import annotations

import argparse

from costmodel.options import add_config_arguments, config_from_args
from costmodel.predict import predict
from costmodel.results import dumps

from .tables import format_result


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(a: argparse.Namespace) -> int:
    from costmodel.envelope import outside_measurements

    cfg = config_from_args(a)
    r = predict(cfg).to_dict()
    r["outside_measurements"] = outside_measurements(cfg)  # what of the answer is extrapolated
    print(dumps(r, indent=2) if a.json else format_result(r))
    return 0
