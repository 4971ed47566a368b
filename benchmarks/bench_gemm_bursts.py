"""Compute-bound kernels in busy periods separated by idle ones: how fast they run by the length of the busy
period and the fraction of time busy (the pipeline duty effect, issue 12).

    python3 benchmarks/bench_gemm_bursts.py --out raw_gemm_bursts.json [--quick]

``bench_gemm_duty.py`` (2026-11-28) found a GEMM ~16% faster right after the GPU idled as long as the GEMM
than in a back-to-back burst (the SM clock 1,965 against 1,455 MHz: a GPU at full tensor-core load draws
its power limit and lowers its clock).  A pipeline stage whose plan leaves it idle part of the pass (PP with
few micro-batches) works in one long busy period per pass and then waits: does the clock recover over that
period, and how fast does it drop again once work resumes?  For each kernel (the seed model's MLP-up GEMM
at 34,816 rows, llama3-8b's at 18,432, a causal cuDNN attention call of 32 heads x 128 at 16Ki) this runs

* ``steady``: the kernel back to back for ~3 s (the calibration's condition, longer);
* ``cycle``: busy periods of ``busy_ms`` (the kernel back to back) each followed by ``torch.cuda._sleep``
  for ``busy_ms * (1 - duty) / duty``, for busy periods of 1 call to ~600 ms and duties 0.25, 0.5, 0.75,
  over ~3 s of cycles (at least 3);

timing every call with CUDA events (its place in its busy period kept), and the SM clock and power through
NVML after each busy period where torch can read them (else null).  Raw samples and provenance; nothing
fitted here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from real.microbench import provenance, sdpa_lse  # noqa: E402

BUSY_MS = (0, 30, 120, 600)  # 0: one call per busy period
DUTIES = (0.25, 0.5, 0.75)
SPAN_S = 3.0  # seconds of cycles per (kernel, busy period, duty)


def _nvml(dev) -> dict:
    out = {}
    for k, fn in (("sm_clock_mhz", "clock_rate"), ("power_mw", "power_draw")):
        try:
            out[k] = getattr(torch.cuda, fn)(dev)
        except Exception:  # noqa: BLE001 - NVML missing on this machine: record nothing
            out[k] = None
    return out


def kernels(dev, dt, quick: bool) -> dict:
    cuda = dev.type == "cuda"
    out = {}
    for name, (m, n, k) in {
        "seed_mlp_up": (34816, 16384, 4096),
        "llama_mlp_up": (18432, 28672, 4096),
    }.items():
        if quick:
            m, n, k = 256, 512, 256
        x = torch.randn(m, k, device=dev, dtype=dt)
        w = torch.randn(n, k, device=dev, dtype=dt) / math.sqrt(k)
        out[name] = (
            lambda x=x, w=w: F.linear(x, w),
            {"kind": "gemm", "m": m, "n": n, "k": k, "flops": 2.0 * m * n * k},
        )
    L, H, D = (16384, 32, 128) if not quick else (256, 2, 16)
    q = torch.randn(1, H, L, D, device=dev, dtype=dt)
    out["attn_causal_16k"] = (
        lambda q=q: sdpa_lse("cudnn" if cuda else "math", q, q, q, True),
        {"kind": "attention", "L": L, "heads": H, "head_dim": D, "flops": 2.0 * 2 * H * L * L * D / 2},
    )
    return out


def timed_calls(fn, n: int, cuda: bool) -> list:
    ev = []
    for _ in range(n):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            ev.append((a, b))
        else:
            t = time.perf_counter()
            fn()
            ev.append(time.perf_counter() - t)
    return ev


def _times(ev, cuda: bool) -> list[float]:
    return [a.elapsed_time(b) * 1e-3 for a, b in ev] if cuda else list(ev)


def run(quick: bool) -> list[dict]:
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", 0) if cuda else torch.device("cpu")
    dt = torch.bfloat16 if cuda else torch.float32
    span = 0.05 if quick else SPAN_S
    hz = 1.98e9  # torch.cuda._sleep counts cycles of the SM clock (idle: at its maximum, 1,980 MHz)
    out = []
    for name, (fn, meta) in kernels(dev, dt, quick).items():
        for _ in range(3):
            fn()
        if cuda:
            torch.cuda.synchronize()
        t1 = statistics.median(_times(timed_calls(fn, 5, cuda), cuda)) if not cuda else None
        if cuda:
            ev = timed_calls(fn, 5, cuda)
            torch.cuda.synchronize()
            t1 = statistics.median(_times(ev, cuda))
        # steady: back to back for ``span`` seconds
        n = max(3, int(span / t1))
        ev = timed_calls(fn, n, cuda)
        if cuda:
            torch.cuda.synchronize()
        samples = _times(ev, cuda)
        rec = {"op": "gemm_bursts", "name": name, **meta, "mode": "steady", "busy_ms": None, "duty": 1.0}
        rec.update(samples_s=samples, median_last_half_s=statistics.median(samples[len(samples) // 2 :]))
        rec.update(_nvml(dev) if cuda else {})
        out.append(rec)
        print(f"{name:16s} steady        {rec['median_last_half_s'] * 1e3:8.3f} ms  n={n}", flush=True)
        for busy_ms in BUSY_MS:
            calls = max(1, round(busy_ms * 1e-3 / t1))
            for duty in DUTIES:
                idle_s = calls * t1 * (1 - duty) / duty
                cycles = max(3, int(span / (calls * t1 / duty)))
                per, clocks, starts, idles = [], [], [], []
                sync_each = busy_ms >= 120  # NVML read after each busy period (its host gap is small there)
                for c in range(cycles):
                    if cuda:
                        st = torch.cuda.Event(enable_timing=True)
                        st.record()
                        starts.append(st)
                    ev = timed_calls(fn, calls, cuda)
                    if cuda:
                        s0, s1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s0.record()
                        torch.cuda._sleep(int(idle_s * hz))
                        s1.record()
                        idles.append((s0, s1))
                        if sync_each or c == cycles - 1:
                            s0.synchronize()  # the busy period is done: the clock it ended at
                            clocks.append(_nvml(dev))
                    else:
                        time.sleep(idle_s)
                    per.append(ev)
                if cuda:
                    torch.cuda.synchronize()
                    idles = [a.elapsed_time(b) * 1e-3 for a, b in idles]
                    periods = [a.elapsed_time(b) * 1e-3 for a, b in zip(starts, starts[1:])]
                else:
                    periods = []
                per = [_times(ev, cuda) for ev in per]
                later = [t for cyc in per[len(per) // 2 :] for t in cyc]
                rec = {"op": "gemm_bursts", "name": name, **meta, "mode": "cycle", "busy_ms": busy_ms}
                rec.update(
                    duty=duty,
                    calls_per_busy=calls,
                    idle_asked_s=idle_s,
                    idle_s=idles,
                    period_s=periods,
                    cycles=cycles,
                    samples_s=per,
                    median_last_half_s=statistics.median(later),
                    after_busy=clocks,
                )
                out.append(rec)
                print(
                    f"{name:16s} busy {calls:4d} calls duty {duty:.2f}  "
                    f"{rec['median_last_half_s'] * 1e3:8.3f} ms"
                    f"  first-call median {statistics.median([c[0] for c in per]) * 1e3:8.3f} ms"
                    f"  clock {clocks[-1].get('sm_clock_mhz') if clocks else None}",
                    flush=True,
                )
        # steady again: the same GPU state as the first
        ev = timed_calls(fn, n, cuda)
        if cuda:
            torch.cuda.synchronize()
        samples = _times(ev, cuda)
        rec = {"op": "gemm_bursts", "name": name, **meta, "mode": "steady", "busy_ms": None, "duty": 1.0}
        rec.update(samples_s=samples, median_last_half_s=statistics.median(samples[len(samples) // 2 :]))
        rec.update(_nvml(dev) if cuda else {})
        out.append(rec)
        print(f"{name:16s} steady again  {rec['median_last_half_s'] * 1e3:8.3f} ms", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    res = run(a.quick)
    raw = {"provenance": provenance(dev), "device": dev.type, "results": res, "suites": ["gemm-bursts"]}
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(raw, f)
    os.replace(tmp, a.out)
    print(f"wrote {a.out} ({len(res)} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
