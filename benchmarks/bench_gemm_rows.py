"""GEMM efficiency between 16Ki and 64Ki rows, where the calibration has no point (issue 12, finding c).

Run on one GPU: ``python3 benchmarks/bench_gemm_rows.py --out F.json`` (about 30 s on an H200).

The calibration's GEMM grid (real/microbench.py ``run_graph``) has rows 16384 and 65536 and nothing
between; ring-local rows of 20Ki-48Ki are interpolated in log(FLOPs) over the four layer GEMMs pooled,
and the x4 traces show the executor's GEMMs there 10-15% faster than the curve.  This bench times the
seed model's four layer GEMMs (tp 1 and 2) at rows on a quarter-octave grid between 16Ki and 64Ki (rows
no validation record has: B x L / P of the stored records are 8Ki, 16Ki, 18Ki, 20Ki, 22Ki, 24Ki, 32Ki,
36Ki, 48Ki, 64Ki, 128Ki), plus the grid's own 16384 and 65536 in the same lease, exactly as ``run_graph``
times them (CUDA graph replay, records ``op`` = gemm, ``mode`` = graph): ``ringsim calibrate --from-raw
<calibration raw> ... --from-raw F.json`` fits them into the curve with the run's own points.

``gemm_interleaved`` records (not fitted): the same GEMM replayed after a memory-bound add of the
layer's activations in one graph, minus the add alone: a GEMM as a layer runs it, between
memory-bound kernels (the power / clock state of back-to-back GEMMs differs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from real import microbench as mb  # noqa: E402

D, FF, QD, KVD = 4096, 16384, 4096, 4096  # the seed model (costmodel/presets: seed-dense)
ROWS = [16384, 19456, 23168, 27520, 31232, 38912, 46336, 55040, 65536]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--rows", default=",".join(map(str, ROWS)))
    p.add_argument("--no-interleaved", action="store_true")
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("bench_gemm_rows: needs a GPU (CUDA graph replays)", file=sys.stderr)
        return 2
    dev = torch.device("cuda", torch.cuda.current_device())
    dt = torch.bfloat16
    t0 = time.monotonic()
    out = []
    for tp in (1, 2):
        for m in (int(x) for x in a.rows.split(",")):
            for name, (n, k) in mb.gemm_shapes(D, FF, QD, KVD, tp).items():
                x = torch.randn(m, k, device=dev, dtype=dt)
                w = torch.randn(n, k, device=dev, dtype=dt) / k**0.5
                s = mb.time_graph(lambda x=x, w=w: F.linear(x, w), dev, calls=2, reps=a.reps)
                r = mb._rec(
                    s, op="gemm", mode="graph", name=name, tp=tp, m=m, n=n, k=k, flops=2.0 * m * n * k
                )
                out.append(r)
                line = f"tp={tp} {name:8s} m={m:6d} {r['flops'] / r['median_s'] / 1e12:6.1f} TFLOP/s"
                if not a.no_interleaved and tp == 1:
                    h = torch.randn(m, D, device=dev, dtype=dt)  # the layer's activations: a residual add

                    def add(h=h):
                        torch.add(h, h, out=h)

                    s_add = mb.time_graph(add, dev, calls=2, reps=a.reps)
                    s_both = mb.time_graph(
                        lambda x=x, w=w: (add(), F.linear(x, w)), dev, calls=2, reps=a.reps
                    )
                    t = [b - c for b, c in zip(sorted(s_both), sorted(s_add))]
                    ri = mb._rec(
                        t,
                        op="gemm_interleaved",
                        mode="graph",
                        name=name,
                        tp=tp,
                        m=m,
                        n=n,
                        k=k,
                        flops=r["flops"],
                    )
                    out.append(ri)
                    line += f" | after an add {ri['flops'] / ri['median_s'] / 1e12:6.1f} TFLOP/s"
                    h = None
                print(line, flush=True)
                x = w = None
    prov = mb.provenance(dev)
    prov["command"] = "python3 benchmarks/bench_gemm_rows.py " + " ".join(sys.argv[1:])
    prov["wall_s"] = time.monotonic() - t0
    raw = {
        "provenance": prov,
        "device": "cuda",
        "model_dims": {"d_model": D, "d_ff": FF, "q_dim": QD, "kv_dim": KVD, "head_dim": 128},
        "results": out,
    }
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=1)
    os.replace(tmp, a.out)
    print(f"wrote {a.out} ({len(out)} records, {prov['wall_s']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
