"""ringsim simulate: the discrete-event simulator on one configuration (same options as predict)."""

from __future__ import annotations

import argparse

from costmodel import generate
from costmodel.errors import SpecError
from costmodel.options import add_config_arguments, config_from_args
from costmodel.results import atomic_write_text, dumps, write_json
from ringsim.argtypes import ascii_int

from .tables import format_result


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    g = p.add_argument_group("simulator")
    g.add_argument(
        "--trace",
        metavar="FILE",
        default=None,
        help="write a Chrome trace (opens in Perfetto / chrome://tracing): one process per rank, "
        "one thread per stream; simulates the whole phase (no coarsening)",
    )
    g.add_argument(
        "--timeline",
        metavar="FILE",
        default=None,
        help='write {"specs": ..., "timeline": [{rank, stream, kind, tag, start_s, end_s}, ...]} for plots',
    )
    g.add_argument(
        "--no-coarsen",
        action="store_true",
        help="simulate every layer, micro-batch and ring step even where identical ones repeat exactly",
    )
    g.add_argument(
        "--no-slowdown",
        action="store_true",
        help="ignore the profile's compute_slowdown_under_comm (compute at full speed beside NCCL)",
    )
    g.add_argument(
        "--expand-collectives",
        action="store_true",
        help="run collectives as their algorithm's steps of point-to-point flows (sharing links) "
        "instead of one calibrated transfer",
    )
    g.add_argument(
        "--nics-per-node",
        type=ascii_int,
        default=None,
        help="InfiniBand NICs per node shared by consecutive GPUs (default: one per GPU)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(a: argparse.Namespace) -> int:
    from sim import SimOptions, chrome_trace, run_config, simulate_json, timeline_records

    if a.nics_per_node is not None and a.nics_per_node < 1:
        raise SpecError(f"--nics-per-node {a.nics_per_node} is not valid: it must be a positive integer")
    for flag, f in (("--trace", a.trace), ("--timeline", a.timeline)):  # checked before simulating
        if f is not None:  # '' too: not a file name
            _writable_file(flag, f)
    cfg = config_from_args(a)
    opts = SimOptions(
        compute_slowdown=not a.no_slowdown,
        expand_collectives=a.expand_collectives,
        nics_per_node=a.nics_per_node,
    )
    full = a.no_coarsen or a.trace or a.timeline
    if generate.steps(cfg) > 1:  # --gen-tokens N: first, middle and last steps simulated (sim/generate.py)
        from sim.generate import simulate_generation

        out, sr = simulate_generation(cfg, opts, coarsen=not full, progress=_progress)
    else:
        sr = run_config(cfg, opts, coarsen=not full, progress=_progress)
        out = simulate_json(cfg, sr)
    from costmodel.envelope import outside_measurements

    out = out.to_dict() if hasattr(out, "to_dict") else dict(out)
    out["outside_measurements"] = outside_measurements(cfg)  # what of the answer is extrapolated
    if a.trace:
        atomic_write_text(
            a.trace,
            dumps(
                chrome_trace(
                    sr.result, label=f"ringsim simulate {cfg.plan.label(cfg.workload.phase, cfg.kernel)}"
                )
            ),
        )
    if a.timeline:
        specs = {
            **cfg.specs(),
            "engine": "simulator",
            "latency_s": sr.latency_s,
            "options": out["sim"]["options"],
        }
        write_json(a.timeline, {"specs": specs, "timeline": timeline_records(sr.result)})
    if a.json:
        print(dumps(out, indent=2))
    else:
        print(format_result(out))
        for f, what in ((a.trace, "Chrome trace"), (a.timeline, "timeline")):
            if f:
                print(f"{what} written to {f}")
    return 0


PROGRESS_MIN_OPS = 200_000  # schedules smaller than this run in seconds: no bar


def _progress(total: int, desc: str):
    """The project's progress bar (``ringsim.progress``: stderr, only on a terminal) for a large
    simulation: ``total`` ops, or ring steps of the recurrence (~4 x ring ops a step); None (no bar,
    and tqdm not even imported) for a small one."""
    big = total >= PROGRESS_MIN_OPS or (desc == "ring steps" and 4 * total * total >= PROGRESS_MIN_OPS)
    if not big:
        return None
    from .progress import bar

    return bar(desc=desc, unit="op" if desc == "simulate" else "step", total=total)


def _writable_file(flag: str, path: str) -> None:
    """``path`` can be written as a file (not a folder; its folder exists or can be made, and is writable)."""
    import os
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise SpecError(f"{flag} {path!r} is a folder: name a file")
    parent = p.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise SpecError(f"{flag} {path!r} cannot be written: {str(parent)!r} is not a writable folder")
