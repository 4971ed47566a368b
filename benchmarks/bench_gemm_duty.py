"""GEMM throughput by what runs around it: a sustained burst vs the mix of a transformer layer (issue 12).

    python3 benchmarks/bench_gemm_duty.py --out raw_gemm_duty.json [--quick]

The calibration's GEMM curve is measured back to back; in a layer's trace (P = 2 and 4, 2026-11-28) the
same GEMMs ran 10-15% faster.  A GPU held at full tensor-core load draws its power limit and lowers its
clock; a GEMM between attention and elementwise kernels may not.  For each GEMM shape (the seed model's
and llama3-8b's up projection and QKV at row counts no validation record has) this times the GEMM

* ``burst``: 40 calls back to back (the calibration's way; the last 30 timed);
* ``after_attention``: each call right after a causal attention call (cuDNN, 32 heads x 128) of about
  the GEMM's duration, as in a prefill layer;
* ``after_elementwise``: each call after a memory-bound pass (an add over a 1 GiB tensor);
* ``after_idle``: each call after the GPU spun idle (``torch.cuda._sleep``) about the GEMM's duration;

with CUDA events around the GEMM alone, and the SM clock and power read through NVML where torch can
(``torch.cuda.clock_rate``/``power_draw``; absent: null).  Raw samples and provenance; nothing fitted here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from real.microbench import provenance, sdpa_lse  # noqa: E402

SHAPES = {  # (n, k): seed-dense and llama3-8b layer GEMMs at tp = 1
    "seed_mlp_up": (16384, 4096),
    "seed_qkv": (12288, 4096),
    "llama_mlp_up": (28672, 4096),
}
ROWS = (18432, 34816, 61440)  # no validation record's GEMM rows


def _nvml(dev) -> dict:
    out = {}
    for k, fn in (("sm_clock_mhz", "clock_rate"), ("power_mw", "power_draw")):
        try:
            out[k] = getattr(torch.cuda, fn)(dev)
        except Exception:  # noqa: BLE001 - NVML missing on this machine: record nothing
            out[k] = None
    return out


def run(quick: bool) -> list[dict]:
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", 0) if cuda else torch.device("cpu")
    dt = torch.bfloat16 if cuda else torch.float32
    rows = (256, 512) if quick else ROWS
    shapes = dict(list(SHAPES.items())[:1]) if quick else SHAPES
    calls, skip = (4, 1) if quick else (40, 10)
    big = torch.zeros((64 if quick else 256) * 2**20, device=dev, dtype=torch.float32)  # 1 GiB on GPU
    out = []
    for name, (n, k) in shapes.items():
        w = torch.randn(n, k, device=dev, dtype=dt) / math.sqrt(k)
        for m in rows:
            x = torch.randn(m, k, device=dev, dtype=dt)
            gemm = lambda x=x, w=w: F.linear(x, w)  # noqa: E731
            # size the companions to the GEMM's duration
            for _ in range(3):
                gemm()
            if cuda:
                torch.cuda.synchronize()
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                gemm()
                b.record()
                b.synchronize()
                t_g = a.elapsed_time(b) * 1e-3
            else:
                t_g = 1e-3
            L = int(min(65536, max(1024, 2 ** round(math.log2(max(1.0, (t_g / 1.1e-3) ** 0.5 * 8192))))))
            q = torch.randn(
                1, 32 if cuda else 2, L if cuda else 64, 128 if cuda else 16, device=dev, dtype=dt
            )
            attn = lambda q=q: sdpa_lse("cudnn" if cuda else "math", q, q, q, True)  # noqa: E731
            ew = lambda: big.add_(1.0)  # noqa: E731
            cycles = int(t_g * 1.98e9)
            idle = (lambda c=cycles: torch.cuda._sleep(c)) if cuda else (lambda: None)
            for mode, before in (
                ("burst", None),
                ("after_attention", attn),
                ("after_elementwise", ew),
                ("after_idle", idle),
                ("burst", None),  # again: is the first burst's clock the same as the last's
            ):
                ts, comp = [], []
                for i in range(calls):
                    if cuda:
                        c0 = torch.cuda.Event(enable_timing=True)
                        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        c0.record()
                        if before is not None:
                            before()
                        a.record()
                        gemm()
                        b.record()
                        if i >= skip:
                            ts.append((a, b, c0))
                    else:
                        if before is not None:
                            before()
                        gemm()
                if cuda:
                    torch.cuda.synchronize()
                    samples = [a.elapsed_time(b) * 1e-3 for a, b, _ in ts]
                    comp = [c0.elapsed_time(a) * 1e-3 for a, _, c0 in ts]
                else:
                    samples, comp = [1.0], [0.0]
                rec = {
                    "op": "gemm_duty",
                    "name": name,
                    "mode": mode,
                    "m": m,
                    "n": n,
                    "k": k,
                    "flops": 2.0 * m * n * k,
                    "median_s": statistics.median(samples),
                    "min_s": min(samples),
                    "max_s": max(samples),
                    "samples_s": samples,
                    "companion_median_s": statistics.median(comp),
                    "attention_len": L if mode == "after_attention" else None,
                    **(_nvml(dev) if cuda else {}),
                }
                out.append(rec)
                if cuda:
                    eff = rec["flops"] / rec["median_s"] / 989.4e12
                    print(
                        f"{name:13s} m={m:6d} {mode:18s} {rec['median_s'] * 1e3:8.3f} ms  eff {eff:.3f}  "
                        f"companion {rec['companion_median_s'] * 1e3:7.3f} ms  "
                        f"clock {rec.get('sm_clock_mhz')}",
                        flush=True,
                    )
            x = q = None
        w = None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    res = run(a.quick)
    raw = {"provenance": provenance(dev), "device": dev.type, "results": res, "suites": ["gemm-duty"]}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(raw, f, indent=1)
    os.replace(tmp, a.out)
    print(f"wrote {a.out} ({len(res)} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
