"""Where one pass of a measured configuration spends its time, op by op, next to the model (issue 12).

    python benchmarks/ring_decompose.py RECORDS.jsonl TRACE_DIR [--match ring=4] [--out table.md]

For each record of ``RECORDS.jsonl`` (written by ``real.run``) whose Chrome traces (``real.run
--profile-dir``; one file per rank) lie in ``TRACE_DIR``, the script reads every rank's GPU activity:
the executor wraps each op in ``record_function(op.tag)``, which the profiler turns into a GPU-side
annotation spanning the kernels that op launched.  It then simulates the same configuration (the
record's specs, the profile the validation judges it with: ``validation.compare.config_of``) without
coarsening, and prints, per op class (attention per ring step, LSE merge, GEMMs, elementwise, the
exchange), the measured GPU time and the model's, summed over the pass, for the slowest rank.

Measured time of an op = the sum of its kernels' durations (on the stream it ran on); ``gap`` = the
compute stream's idle time inside the pass (waits for data, launch gaps).  The model's time of an op =
its simulated duration on that rank (slowdown beside communication included).  Nothing is fitted here.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from costmodel.build import build_schedule
from costmodel.schedule import COMPUTE_KINDS
from costmodel.specs import Phase
from sim.engine import SimOptions, simulate
from validation.compare import config_of, measured_s

_LAYER = re.compile(r"^L\d+/")


def op_class(tag: str) -> str:
    """A tag without its layer, micro-batch, and (for ring steps) step number: 'ring/attn',
    'ring/step0/attn' kept apart because the first step runs before any exchange."""
    t = _LAYER.sub("", tag)
    t = re.sub(r"mb\d+/", "", t)
    m = re.match(r"ring/step(\d+)/(.*)", t)
    if m:
        step = int(m.group(1))
        return f"ring/{'step0' if step == 0 else 'stepN'}/{m.group(2)}"
    return t


# a CUDA graph replay carries no op annotations: its kernels are classed by name (cuBLAS/cuBLASLt GEMMs
# are nvjet/cutlass/xmma kernels on Hopper, attention the SDPA/cuDNN/flash kernels, NCCL its own)
_KERNEL_CLASSES = (
    ("exchange (nccl kernels)", re.compile(r"nccl", re.I)),
    ("attention", re.compile(r"sdpa|flash|fmha|attention", re.I)),
    ("gemm", re.compile(r"nvjet|gemm|cutlass|xmma|splitKreduce|scaled_mm", re.I)),
    ("fp8 quantise", re.compile(r"AbsMax|float8|clamp_sc", re.I)),
)


def kernel_class(name: str) -> str:
    for cls, pat in _KERNEL_CLASSES:
        if pat.search(name):
            return cls
    return "elementwise and copies"


def kind_class(kind: str) -> str:
    """The kernel class of a model op kind (for graph traces)."""
    if kind in ("attention",):
        return "attention"
    if kind == "gemm":
        return "gemm"
    if kind in ("elementwise", "lse_merge"):
        return "elementwise and copies"
    return "exchange (nccl kernels)"


def trace_times(path: str) -> dict:
    """Per op tag: summed kernel time inside its GPU annotation; plus the pass span and the compute
    stream's idle time."""
    with open(path) as f:
        ev = json.load(f)["traceEvents"]
    ann = [e for e in ev if e.get("cat") == "gpu_user_annotation" and "dur" in e]
    ker = [e for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e]
    if not ker:
        raise SystemExit(f"{path}: no GPU kernels in the trace (a CPU run?)")
    # the last profiled pass only: annotations named by op tags, kernels inside their span
    by_tag: dict[str, float] = defaultdict(float)
    ker.sort(key=lambda e: e["ts"])
    starts = [e["ts"] for e in ker]
    import bisect

    for a in ann:
        lo, hi = a["ts"], a["ts"] + a["dur"]
        i = bisect.bisect_left(starts, lo)
        tot = 0.0
        while i < len(ker) and ker[i]["ts"] < hi:
            if ker[i]["tid"] == a["tid"]:
                tot += ker[i]["dur"]
            i += 1
        by_tag[a["name"]] += tot * 1e-6
    compute_tid = max(
        {e["tid"] for e in ker},
        key=lambda t: sum(e["dur"] for e in ker if e["tid"] == t and "nccl" not in e["name"]),
    )
    ck = [e for e in ker if e["tid"] == compute_tid]
    span = (max(e["ts"] + e["dur"] for e in ker) - min(e["ts"] for e in ker)) * 1e-6
    busy = sum(e["dur"] for e in ck) * 1e-6
    cspan = (max(e["ts"] + e["dur"] for e in ck) - min(e["ts"] for e in ck)) * 1e-6
    by_kernel: dict[str, float] = defaultdict(float)
    for e in ker:
        by_kernel[kernel_class(e["name"])] += e["dur"] * 1e-6
    return {
        "by_tag": dict(by_tag),
        "by_kernel": dict(by_kernel),
        "span_s": span,
        "compute_busy_s": busy,
        "compute_gap_s": cspan - busy,
    }


def model_times(cfg, rank: int) -> dict:
    sched = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, cfg.hardware, kernel=cfg.kernel)
    res = simulate(sched, cfg.topology, cfg.hardware, SimOptions())
    by_tag: dict[str, float] = defaultdict(float)
    by_kind: dict[str, float] = defaultdict(float)
    comp_busy = 0.0
    first, last = float("inf"), 0.0
    for i, op in enumerate(sched.ops):
        if op.rank != rank:
            continue
        if op.kind in COMPUTE_KINDS:
            first, last = min(first, res.start[i]), max(last, res.end[i])
        d = res.end[i] - (res.xstart[i] if op.kind not in COMPUTE_KINDS and res.xstart[i] else res.start[i])
        by_tag[op.tag] += d * sched.layer_repeat if _LAYER.match(op.tag) else d
        by_kind[kind_class(str(op.kind))] += d * sched.layer_repeat if _LAYER.match(op.tag) else d
        if op.kind in COMPUTE_KINDS:
            comp_busy += (res.end[i] - res.start[i]) * (sched.layer_repeat if _LAYER.match(op.tag) else 1)
    # the compute stream's idle time inside its span on this rank (a schedule of built layers only)
    span = last - first if sched.layer_repeat == 1 else float("nan")
    return {
        "by_tag": dict(by_tag),
        "by_kind": dict(by_kind),
        "latency_s": res.latency_s,
        "compute_busy_s": comp_busy,
        "compute_gap_s": max(span - comp_busy, 0.0),
    }


def decompose(rec: dict, trace_dir: str) -> str | None:
    cfg = config_of(rec)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"trace_{cfg.plan.name}_")
    wl = cfg.workload
    size = f"ctx{wl.context}_" if wl.phase == Phase.DECODE else f"L{wl.seq_len}_"
    files = sorted(glob.glob(os.path.join(trace_dir, name + f"*{size}*rank*.json")))
    b = cfg.workload.batch
    quant = (f"_fp8{cfg.model.fp8}" if cfg.model.fp8 != "none" else "") + (
        f"_kv{cfg.model.kv_dtype}" if cfg.model.kv_dtype != "bf16" else ""
    )
    # names: trace_{plan}[_{model}]_{size}_layers{n}{quant}_{exec}[_{fusion}]_rank{r}.json (model and fusion
    # since 2026-11-28; traces of two models in one folder were one file before)
    tail = re.compile(rf"layers{cfg.model.layers}{quant}_{rec.get('exec', 'eager')}(_[a-z]+)?_rank")
    mname = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.model.name)
    files = [
        f
        for f in files
        if tail.search(f)
        and ("_B" not in f or f"_B{b}_" in f)
        and (
            os.path.basename(f).startswith(name + mname + "_")
            or re.match(re.escape(name) + r"(ctx|L)\d", os.path.basename(f))  # named before the model was
        )
    ]
    if wl.phase == Phase.DECODE:
        files = [f for f in files if f"_{cfg.plan.decode_attn}_" in f]
    if not files:
        return None
    ranks = {int(re.search(r"rank(\d+)\.json$", f).group(1)): trace_times(f) for f in files}
    slow = max(ranks, key=lambda r: ranks[r]["span_s"])
    m = model_times(cfg, slow)
    meas = ranks[slow]
    classes: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if any(not t.startswith(("nccl", "ProfilerStep")) for t in meas["by_tag"]):
        for tag, t in meas["by_tag"].items():  # NCCL's kernels carry their own annotation, not the op's
            if tag.startswith("ProfilerStep"):
                continue
            classes["exchange (nccl kernels)" if tag.startswith("nccl") else op_class(tag)][0] += t
        for tag, t in m["by_tag"].items():
            classes[op_class(tag)][1] += t
    else:  # a graph replay: no op annotations; kernels by name, the model's ops by kind
        for cls, t in meas["by_kernel"].items():
            classes[cls][0] += t
        for cls, t in m["by_kind"].items():
            classes[cls][1] += t
    spans = ", ".join(f"{ranks[r]['span_s'] * 1e3:.2f}" for r in sorted(ranks))
    lines = [
        f"### {cfg.plan.name}, {size.rstrip('_').replace('ctx', 'context ').replace('L', 'L = ')}, "
        f"B = {cfg.workload.batch}, "
        f"layers {cfg.model.layers} "
        f"(rank {slow} of {len(ranks)}; kernel {cfg.kernel})",
        "",
        f"record median {measured_s(rec) * 1e3:.3f} ms; profiled pass span {meas['span_s'] * 1e3:.3f} ms "
        f"(ranks {spans}); "
        f"model latency {m['latency_s'] * 1e3:.3f} ms",
        f"compute stream busy {meas['compute_busy_s'] * 1e3:.3f} ms, idle inside the pass "
        f"{meas['compute_gap_s'] * 1e3:.3f} ms; model compute busy {m['compute_busy_s'] * 1e3:.3f} ms, "
        f"idle {m['compute_gap_s'] * 1e3:.3f} ms",
        "",
        "| op class | measured ms | model ms | model - measured |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k in sorted(classes, key=lambda k: -max(classes[k])):
        a, b = classes[k]
        lines.append(f"| {k} | {a * 1e3:.3f} | {b * 1e3:.3f} | {(b - a) * 1e3:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("records")
    p.add_argument("trace_dir")
    p.add_argument("--match", default="", help="only records whose plan name contains this")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    out = []
    with open(a.records) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("status", "ok") != "ok" or a.match not in json.dumps(
                rec.get("specs", {}).get("plan", {})
            ):
                continue
            t = decompose(rec, a.trace_dir)
            if t:
                out.append(t)
    text = "\n".join(out) or "no record had traces\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
