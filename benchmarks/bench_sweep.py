"""Benchmark: a 10,000-point analytic sweep (L x P x plan) must take well under a second.

    python benchmarks/bench_sweep.py
"""
from __future__ import annotations

import time

import numpy as np

from costmodel import presets
from costmodel.sweep import parse_template, run_sweep, seq_grid

TEMPLATES = ["ring=P", "tp=8,pp=P/8", "tp=8,ring=P/8", "tp=4,ring=P/4", "tp=2,ring=P/2", "ulysses=8,ring=P/8",
             "tp=8,pp=P/8,mb=8", "tp=4,pp=P/4,mb=4", "pp=P/8,ring=8", "tp=2,pp=2,ring=P/4"]
GPUS = [8, 16, 32, 64]


def main() -> None:
    hw, model = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
    seqs = seq_grid(16384, 1 << 20, 250, 128)
    assert len(seqs) == 250, len(seqs)
    tpls = [parse_template(t) for t in TEMPLATES]
    for phase in ("prefill", "decode"):
        best = np.inf
        for _ in range(5):
            t0 = time.perf_counter()
            cols, skipped = run_sweep(model, hw, topo_kind="ib", phase=phase, causal=True, kernel="flash",
                                      ring_variant="zigzag", decode_attn="allgather", batch=8, seqs=seqs, gpus=GPUS,
                                      templates=tpls)
            best = min(best, time.perf_counter() - t0)
        n = len(cols["latency_s"])
        print(f"{phase:8s}: {n} points ({len(seqs)} L x {len(GPUS)} P x {len(TEMPLATES)} plans, "
              f"{len(skipped)} (plan, P) skipped) in {best * 1e3:.1f} ms (best of 5) = {n / best:,.0f} points/s")


if __name__ == "__main__":
    main()
