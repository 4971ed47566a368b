"""GEMMs of few rows with their weights read from HBM, not L2 (issues 12 and 14).

    python3 benchmarks/bench_gemm_stream.py --out raw_gemm_stream.json [--quick]

A GEMM of 1-64 rows streams its weight.  The calibration suites time one weight call after call, so a
weight that fits in the 50 MB L2 a few times over is served from L2 (the H100's fitted 33.5 MB figure,
3.55 TB/s, is above its HBM's 3.35): a decode step reads each layer's weights once, from HBM.  This times
the layer GEMMs of seed-dense, llama3-8b and llama3-70b on one TP rank (tp 1, 2, 4, 8) at 1, 8, 32 and 64
rows, BF16 (``F.linear``) and FP8 (``torch._scaled_mm``, e4m3, row-wise scales: the executor's), replayed
from a CUDA graph whose calls rotate over copies of the weight (at least 256 MB between reuses).  Records
``{"op": "gemm_stream", "dtype": "bf16"|"fp8", "m", "n", "k", "weight_bytes", "copies", samples}``;
``validation.calibrate.fit_gemm`` fits the weight-streaming bandwidth from them when a raw file has them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from costmodel import layers as Lr  # noqa: E402
from costmodel import presets  # noqa: E402
from costmodel.results import atomic_write_text  # noqa: E402
from real import model as M  # noqa: E402
from real.microbench import _rec, gemm_shapes, provenance, time_fn, time_graph  # noqa: E402

MODELS = ("seed-dense", "llama3-8b", "llama3-70b")
# --big: weights of 1-4.8 GB (BF16), beyond the largest layer GEMM above (llama3-70b's 940 MB up
# projection): a dense model served at TP 1-2 (70B-405B class) or an LM head of 128k words streams such
# weights.  Shapes (n, k) of no preset's layer or LM head, so that records of those models stay unseen.
BIG = (
    (40960, 12288),
    (12288, 65536),
    (65536, 12288),
    (49152, 24576),
    (24576, 81920),
    (90112, 20480),
    (131072, 18432),
)
TPS = (1, 2, 4, 8)
ROWS = (1, 8, 32, 64)
COLD_BYTES = 256 * 2**20  # bytes read between two uses of one weight copy
MAX_COPIES = 64


def _weights(role: str, n: int, k: int, fp8: bool, dev, dt) -> tuple[float, int, list]:
    """The weight's bytes (the cost model's count), how many copies keep COLD_BYTES between two reads of
    one, and the copies (FP8: quantised with their scales)."""
    wb = Lr.gemm(role, 1, n, k, 2, (), (), fp8).weight_bytes
    copies = int(min(MAX_COPIES, max(2, math.ceil(COLD_BYTES / wb))))
    ws = []
    for _ in range(copies):
        w = torch.randn(n, k, device=dev, dtype=dt) / math.sqrt(k)
        ws.append(M.quantize_weight(w) if fp8 else w)
        del w
    return wb, copies, ws


def _calls(ws: list, m: int, k: int, fp8: bool, dev, dt):
    """One call of m rows against every copy in turn (BF16 ``F.linear``; FP8 ``torch._scaled_mm`` on rows
    quantised once, as the executor's)."""
    x = torch.randn(m, k, device=dev, dtype=dt)
    if fp8:
        x8, sa = M.quantize_rows(x)

        def calls():
            for wq in ws:
                torch._scaled_mm(x8, wq.w8.t(), scale_a=sa, scale_b=wq.scale, out_dtype=dt)

        return calls

    def calls():
        for w in ws:
            F.linear(x, w)

    return calls


def run_big(quick: bool) -> list[dict]:
    """The ``BIG`` weights at ROWS rows, BF16 and FP8, each timed from a CUDA graph (``gemm_stream``, as the
    layer GEMMs) and, as a diagnostic the fit does not read, the same calls issued eagerly
    (``gemm_stream_eager``: cuBLAS may choose another kernel, e.g. split-K, outside a capture)."""
    dev = torch.device("cuda", 0)
    dt = torch.bfloat16
    out = []
    for n, k in BIG[:1] if quick else BIG:
        for fp8 in (False, True):
            wb, copies, ws = _weights("mlp_up", n, k, fp8, dev, dt)
            for m in (1, 8) if quick else ROWS:
                calls = _calls(ws, m, k, fp8, dev, dt)
                for op, s in (
                    ("gemm_stream", time_graph(calls, dev, calls=1, reps=5)),
                    ("gemm_stream_eager", time_fn(calls, dev, reps=5)),
                ):
                    out.append(
                        _rec(
                            [v / copies for v in s],
                            op=op,
                            mode="graph" if op == "gemm_stream" else "eager",
                            dtype="fp8" if fp8 else "bf16",
                            model="big",
                            name=f"n{n}_k{k}",
                            tp=1,
                            m=m,
                            n=n,
                            k=k,
                            flops=2.0 * m * n * k,
                            weight_bytes=float(wb),
                            copies=copies,
                        )
                    )
            del ws
            torch.cuda.empty_cache()
    return out


def run(quick: bool) -> list[dict]:
    dev = torch.device("cuda", 0)
    dt = torch.bfloat16
    out = []
    models = MODELS[:1] if quick else MODELS
    for mname in models:
        md = presets.load_model(mname)
        up = 2 if md.mlp_mats == 3 else 1
        for tp in (1, 2) if quick else TPS:
            shapes = gemm_shapes(md.d_model, md.d_ff, md.q_dim, md.kv_dim, tp, up)
            for name, (n, k) in shapes.items():
                for fp8 in (False, True):
                    wb, copies, ws = _weights(name, n, k, fp8, dev, dt)
                    for m in (1, 8) if quick else ROWS:
                        calls = _calls(ws, m, k, fp8, dev, dt)
                        s = time_graph(calls, dev, calls=1, reps=5)
                        s = [v / copies for v in s]
                        out.append(
                            _rec(
                                s,
                                op="gemm_stream",
                                mode="graph",
                                dtype="fp8" if fp8 else "bf16",
                                model=mname,
                                name=name,
                                tp=tp,
                                m=m,
                                n=n,
                                k=k,
                                flops=2.0 * m * n * k,
                                weight_bytes=float(wb),
                                copies=copies,
                            )
                        )
                    del ws
                    torch.cuda.empty_cache()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--big", action="store_true", help="the BIG weights (1-4.8 GB) instead of the presets' layer GEMMs"
    )
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("bench_gemm_stream: needs a GPU (HBM streaming)", file=sys.stderr)
        return 2
    dev = torch.device("cuda", 0)
    raw = {
        "provenance": provenance(dev),
        "device": "cuda",
        "results": run_big(a.quick) if a.big else run(a.quick),
        "suites": ["gemm-stream"],
    }
    atomic_write_text(a.out, json.dumps(raw, indent=1))
    for r in raw["results"]:
        print(
            f"{r['op']:17s} {r['dtype']:4s} {r['model']:10s} tp={r['tp']} {r['name']:8s} m={r['m']:3d} "
            f"{r['weight_bytes'] / 1e6:8.1f} MB x{r['copies']:2d} {r['median_s'] * 1e6:8.1f} us "
            f"{r['weight_bytes'] / r['median_s'] / 1e12:5.2f} TB/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
