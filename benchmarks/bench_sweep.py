"""Benchmark: configurations per second of the analytic sweep, through the API and end to end through
``ringsim sweep`` (compute + writing sweep.npz, sweep.csv and the manifest), with wall time, CPU time and
peak memory of each case.  A benchmark, not a test: it prints, it asserts nothing about speed.

    python benchmarks/bench_sweep.py            # ~1e6 points a case (a few minutes on 2 cores)
    python benchmarks/bench_sweep.py --quick    # ~2.4e4 points a case

Each case runs in a fresh process, so its peak RSS (from wait4) is its own.  The grid: lengths 8Ki..16M
(--points geometric, rounded to a multiple of 256, so 60000 asked -> 24197 distinct lengths) x
P in {8, 16, 32, 64, 128} x 10 plan templates, of which 40 (plan, P) pairs place: 967,880 points.
CPU time next to wall time shows how much of the wall a shared machine took away.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PLANS = [
    "ring=P",
    "tp=8,pp=P/8",
    "tp=8,ring=P/8",
    "ulysses=8,ring=P/8",
    "tp=4,ring=P/4",
    "tp=2,ring=P/2",
    "tp=8,pp=P/8,mb=8",
    "pp=P/8,ring=8",
    "tp=2,pp=2,ring=P/4",
    "tp=4,pp=P/4,mb=4",
]
GPUS = "8,16,32,64,128"
SEQ = "8Ki:16Mi"  # ends every plan can split: the grid holds both (costmodel.units.length_grid)
REPO = Path(__file__).resolve().parent.parent


def sweep_argv(phase: str, points: int, out: str, csv: bool = True) -> list[str]:
    return [
        "sweep",
        "--seq",
        SEQ,
        "--points",
        str(points),
        "--gpus",
        GPUS,
        "--phase",
        phase,
        "--quiet",
        "--out",
        out,
        "--plans",
        *PLANS,
    ] + ([] if csv else ["--no-csv"])


def api_case(phase: str, points: int) -> dict:
    """Runs inside the child: run_sweep alone, as `ringsim sweep` calls it."""
    from costmodel import presets
    from costmodel.sweep import lcm_multiple, parse_template, run_sweep, seq_grid
    from costmodel.units import parse_range

    hw, model = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
    tpls = [parse_template(t) for t in PLANS]
    gpus = [int(g) for g in GPUS.split(",")]
    seqs = seq_grid(*parse_range(SEQ), points, lcm_multiple(tpls, gpus, "zigzag"))
    t0, c0 = time.perf_counter(), time.process_time()
    cols, _ = run_sweep(
        model,
        hw,
        topo_kind="nvlink-domain",
        phase=phase,
        causal=True,
        kernel="flash",
        ring_variant="zigzag",
        decode_attn="allgather",
        batch=1,
        seqs=seqs,
        gpus=gpus,
        templates=tpls,
    )
    return {"points": len(cols["L"]), "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def run_child(argv: list[str]) -> tuple[dict, float, float, int]:
    """Start argv, wait for it with wait4 (its own rusage), then read what it printed."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        p = subprocess.Popen(argv, stdout=so, stderr=se, cwd=REPO, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        so.seek(0)
        se.seek(0)
        out, err = so.read(), se.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}):\n{err}")
    last = out.strip().splitlines()[-1] if out.strip() else "{}"
    try:
        info = json.loads(last)
    except ValueError:
        info = {}
    return info, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024


def points_of(out: Path) -> int:
    return int(json.loads((out / "sweep.json").read_text())["points"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (~2.4e4 points a case)")
    ap.add_argument(
        "--points", type=int, default=None, help="lengths asked of the grid (default 60000; quick 600)"
    )
    ap.add_argument("--api-case", default=None, help=argparse.SUPPRESS)  # internal: run one API case here
    a = ap.parse_args(argv)
    points = a.points or (600 if a.quick else 60000)
    if a.api_case:
        print(json.dumps(api_case(a.api_case, points)))
        return
    print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.system()} {platform.release()}; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    print(f"grid: --seq {SEQ} --points {points} --gpus {GPUS} --plans {' '.join(repr(p) for p in PLANS)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for phase in ("prefill", "decode"):
            info, wall, cpu, rss = run_child(
                [sys.executable, __file__, "--api-case", phase, "--points", str(points)]
            )
            rows.append((f"API run_sweep, {phase}", info["points"], info["wall_s"], info["cpu_s"], rss))
            for csv in (True, False):
                out = Path(tmp) / f"{phase}_{csv}"
                _, wall, cpu, rss = run_child(
                    [sys.executable, "-m", "ringsim", *sweep_argv(phase, points, str(out), csv)]
                )
                label = f"ringsim sweep, {phase}" + ("" if csv else " --no-csv")
                rows.append((label, points_of(out), wall, cpu, rss))
    print(
        f"{'case':34s} {'points':>9s} {'configs/s (wall)':>16s} {'wall s':>8s} {'CPU s':>7s} {'peak RSS':>9s}"
    )
    for label, n, wall, cpu, rss in rows:
        print(f"{label:34s} {n:9,d} {n / wall:16,.0f} {wall:8.2f} {cpu:7.2f} {rss / 2**30:7.2f} GiB")
    print(
        "API: run_sweep's wall and CPU only (peak RSS: the whole child process); ringsim sweep: the whole "
        "process (start-up, compute, files)."
    )


if __name__ == "__main__":
    main()
