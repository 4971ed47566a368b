"""The executor's small decode kernels by rows: does an op's fixed cost grow with the sequences in a step?
(issue 12, diagnosis).

    python3 benchmarks/bench_op_floor_rows.py --out raw_op_floor_rows.json   (a GPU: CUDA graph replays)

The '-graph' profile's op floors (``op_floor`` records of a calibration run) are measured at one sequence;
a traced P = 2 decode step at 32 sequences (``benchmarks/results/decode_trace_p2_20261128/``) showed the
RMSNorm's reduction at 9 us a call, more than that floor.  This times every op group of one layer's
decode step on one GPU (``real.microbench.bench_executor_ops_graph``: each group captured alone in a CUDA
graph and replayed in place) at ``BATCHES`` sequences for the seed's and llama3-8b's layer shapes, so the
growth of each class's time with rows is seen apart from the bytes it moves.  Records as the calibration
run's ``op_floor`` records, with ``batch`` and ``model``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from costmodel import presets  # noqa: E402
from costmodel.results import atomic_write_text  # noqa: E402
from real.microbench import bench_executor_ops_graph, provenance  # noqa: E402

BATCHES = (1, 4, 8, 16, 24, 32, 48, 64, 96, 128)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if not torch.cuda.is_available():
        p.error("no GPU: the op groups are timed as CUDA graph replays")
    dev, dt = torch.device("cuda", 0), torch.bfloat16
    out = []
    for name in ("seed-dense", "llama3-8b"):
        m = presets.load_model(name)
        dims = {k: getattr(m, k) for k in ("d_model", "d_ff", "q_dim", "kv_dim", "head_dim")}
        for b in BATCHES:
            recs = bench_executor_ops_graph(dev, dt, dims, calls=10, reps=5, batch=b)
            for r in recs:
                r.update(model=name, batch=b)
                print(
                    f"{name:10s} B={b:4d} {r['cls']:12s} {r['tag']:24s} {r['median_s'] * 1e6:8.1f} us",
                    flush=True,
                )
            out += recs
    raw = {"provenance": provenance(dev), "device": dev.type, "results": out, "suites": ["op-floor-rows"]}
    atomic_write_text(a.out, json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
