"""Attention throughput beyond the calibration's longest length (issue 5: long-context physics).

    python3 benchmarks/bench_attention_long.py --lengths 262144,524288 --out raw_attention_long.json

Runs ``real.microbench.bench_attention`` (B = 1, the model's heads, square, causal and full; flash and
cuDNN) at the lengths given and writes a raw file in the calibration format, to be fitted together with
a full calibration run: ``ringsim calibrate --from-raw RUN.json --from-raw THIS.json ...``.
"""

from __future__ import annotations

import argparse
import json
import sys

sys.path.insert(0, ".")

import torch  # noqa: E402

from costmodel import presets  # noqa: E402
from real import microbench  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", default="262144,524288")
    p.add_argument("--model", default="seed-dense")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batches", default="1", help="batch sizes, comma separated (each length at each batch)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    dev = torch.device("cuda", torch.cuda.current_device())
    m = presets.load_model(a.model)
    lengths = [int(x) for x in a.lengths.split(",")]
    res = []
    for b in (int(x) for x in a.batches.split(",")):
        res += microbench.bench_attention(
            dev, torch.bfloat16, ["flash", "cudnn"], lengths, m.n_heads, m.head_dim, a.reps, batch=b
        )
    dims = {
        "d_model": m.d_model,
        "d_ff": m.d_ff,
        "q_dim": m.q_dim,
        "kv_dim": m.kv_dim,
        "head_dim": m.head_dim,
    }
    raw = {
        "provenance": microbench.provenance(dev),
        "device": "cuda",
        "model_dims": dims,
        "results": res,
        "suites": ["attention-long"],
    }
    with open(a.out, "w") as f:
        json.dump(raw, f, indent=1)
    for r in res:
        if "error" in r:
            print(r)
        else:
            print(
                f"{r['kernel']:6s} B={r['batch']} causal={r['causal']!s:5s} L={r['kv_len']:>7d} "
                f"{r['flops'] / r['median_s'] / 1e12:7.1f} "
                f"TFLOP/s ({r['median_s']:.3f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
