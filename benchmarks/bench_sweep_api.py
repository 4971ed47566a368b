"""Benchmark: configurations per CPU second of ``costmodel.sweep.run_sweep`` alone (the API), on the grid of
``bench_sweep.py`` (lengths 8Ki..16Mi, --points 60000, P in 8..128, its 10 plan templates: 980,720 prefill
and 882,648 decode points), each phase the least CPU time of ``--repeat`` calls in one process (issue 16:
>= 1e6/s).  ``--against DIR``: the same measured alternately, call by call, on the ``costmodel`` package of
another checkout (``git archive main costmodel | tar -x -C DIR``): on a machine shared with other work the
load changes between runs, and alternating keeps the comparison fair.  A benchmark: it prints, it asserts
nothing.

    python benchmarks/bench_sweep_api.py                       # prefill and decode, coded=True
    python benchmarks/bench_sweep_api.py --repeat 9 --against /tmp/main_checkout
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(phase: str, coded: bool, points: int) -> dict:
    """One run_sweep of ``phase`` on bench_sweep's grid, in this process: points and CPU seconds."""
    sys.path.insert(0, str(HERE))
    from bench_sweep import GPUS, PLANS, SEQ

    from costmodel import presets
    from costmodel.sweep import lcm_multiple, parse_template, run_sweep, seq_grid
    from costmodel.units import parse_range

    hw, model = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
    tpls = [parse_template(t) for t in PLANS]
    gpus = [int(g) for g in GPUS.split(",")]
    seqs = seq_grid(*parse_range(SEQ), points, lcm_multiple(tpls, gpus, "zigzag"))
    kw = dict(
        topo_kind="nvlink-domain",
        phase=phase,
        causal=True,
        kernel="auto",
        ring_variant="zigzag",
        decode_attn="allgather",
        batch=1,
        seqs=seqs,
        gpus=gpus,
        templates=tpls,
        coded=coded,
    )
    run_sweep(model, hw, **kw)  # (imports, first allocations)
    c0 = time.process_time()
    cols, _ = run_sweep(model, hw, **kw)
    return {"points": len(cols["L"]), "cpu_s": time.process_time() - c0}


def child(phase: str, coded: bool, points: int, root: str | None) -> dict:
    """``one`` in a fresh process, on the costmodel package under ``root`` (None: this checkout's)."""
    env = dict(os.environ)
    root = root or str(HERE.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable, __file__, "--one", phase, "--points", str(points)] + (
        ["--coded"] if coded else []
    )
    p = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=root)
    if p.returncode:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="calls of each case (the least CPU is kept)")
    ap.add_argument("--points", type=int, default=60000, help="lengths asked of the grid")
    ap.add_argument("--phases", default="prefill,decode")
    ap.add_argument("--plain", action="store_true", help="string columns decoded (coded=False)")
    ap.add_argument("--against", default=None, help="a directory holding another checkout's costmodel/")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--coded", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.coded, a.points)))
        return
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; CPU seconds, least of {a.repeat}")
    for phase in a.phases.split(","):
        runs: dict[str, list] = {"this": [], "against": []}
        for _ in range(a.repeat):
            runs["this"].append(child(phase, not a.plain, a.points, None))
            if a.against:
                runs["against"].append(child(phase, not a.plain, a.points, a.against))
        for name, rs in runs.items():
            if rs:
                best = min(rs, key=lambda r: r["cpu_s"])
                rate = best["points"] / best["cpu_s"]
                every = " ".join(f"{r['cpu_s']:.3f}" for r in rs)
                print(
                    f"{name:8s} run_sweep {phase:7s} coded={not a.plain}: {best['points']:,} points "
                    f"cpu {best['cpu_s']:.3f} s = {rate:,.0f} configs/s  [target >= 1e6/s: "
                    f"{'met' if rate >= 1e6 else 'MISSED'}]  (all: {every})"
                )


if __name__ == "__main__":
    main()
