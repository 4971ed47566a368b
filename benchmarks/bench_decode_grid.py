"""Decode attention across query heads x KV heads per GPU x batch x context (issue 12).

    python3 benchmarks/bench_decode_grid.py --out raw_decode_grid.json [--quick] [--dry-run]

Runs ``real.microbench.run_decode_grid``: every point of ``real.microbench.DECODE_GRID`` (and the
held-out points of ``DECODE_GRID_HELD_OUT``, never fitted) for the kernels the executor uses in graph
decode (flash, cuDNN), each timed as a CUDA graph replay whose calls rotate over copies of the cache
(each call reads its cache from HBM, as a decode step does, not from L2), and writes a raw file in the
calibration format, to be fitted together with a full calibration run: ``ringsim calibrate --from-raw
RUN.json --from-raw THIS.json ...``.  ``--dry-run`` prints the number of points and an estimate of the
device time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, ".")

from real import microbench  # noqa: E402


def estimate_s(cases: list[dict], kernels: int = 2, bw: float = 3e12, per_point_s: float = 0.03) -> float:
    """Rough device seconds of the grid: bytes at ``bw`` for every timed, warm-up and captured call,
    plus a fixed cost per point and kernel (allocation, capture)."""
    tot = 0.0
    for c in cases:
        hk, b, L = c["kv_heads"], c["batch"], c["kv_len"]
        kvb = 2 * b * L * hk * 128 * 2
        t = max(kvb / bw, 8e-6)
        calls = int(min(20, max(2, math.ceil(1e-3 / t))))
        copies = max(
            1, min(microbench.DECODE_GRID_MAX_CALLS, math.ceil(2 * microbench.DECODE_GRID_COLD / kvb))
        )
        cold = math.ceil(microbench.DECODE_GRID_COLD / kvb)
        calls = min(microbench.DECODE_GRID_MAX_CALLS, max(calls, copies, cold))
        tot += kernels * ((3 + 6 * calls) * t + per_point_s)
    return tot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="a few tiny points (CPU test of the entry point)")
    p.add_argument("--kernels", default="", help="comma separated (default: flash,cudnn on GPU, math on CPU)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=200.0, help="start no new cache after this (0: none)")
    p.add_argument(
        "--subset",
        default="all",
        choices=("all", "gaps", "batches", "items"),
        help="gaps: the corners the first grid missed (1-2 heads, batch 128, 512Ki) and its warm caches; "
        "batches: batches between the grid's (6-40) at 36Ki and 90Ki keys; "
        "items: every batch 1-96 for the presets' TP head pairs at 15Ki and 66Ki keys",
    )
    p.add_argument("--dry-run", action="store_true")
    a = p.parse_args()
    if a.reps < 1:
        p.error(f"--reps {a.reps} is not valid: give 1 or more")
    kernels = [k for k in a.kernels.split(",") if k] or None
    cases = microbench.decode_grid_cases(a.quick, subset=a.subset)
    print(
        f"{len(cases)} points ({sum(c['held_out'] for c in cases)} held out), "
        f"estimated {estimate_s(cases, len(kernels or [0, 0])):.0f} s of device time",
        flush=True,
    )
    if a.dry_run:
        return
    raw = microbench.run_decode_grid(a.quick, kernels, a.reps, a.budget_s, a.subset)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(raw, f, indent=1)
    os.replace(tmp, a.out)
    errs = [r for r in raw["results"] if "error" in r or r["op"] != "decode_attention_grid"]
    for r in raw["results"]:
        if r not in errs:
            print(
                f"{r['kernel']:6s} H={r['heads']:>2d} Hk={r['kv_heads']:>2d} B={r['batch']:>2d} "
                f"S={r['kv_len']:>6d} {r['median_s'] * 1e6:9.1f} us "
                f"{r['kv_bytes'] / r['median_s'] / 1e12:6.2f} TB/s{' held-out' if r['held_out'] else ''}",
                flush=True,
            )
    n = len(raw["results"]) - len(errs)
    print(f"{n} records, {len(errs)} errors or skips, {raw['provenance']['wall_s']} s")
    for r in errs[:20]:
        print("error:", r)


if __name__ == "__main__":
    main()
