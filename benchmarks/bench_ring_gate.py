"""The kernel-boundary gate of a transfer beside an SM-filling kernel, as physics (issue 12).

Run on two GPUs: ``torchrun --standalone --nproc-per-node 2 benchmarks/bench_ring_gate.py --out F.json``.

A compute kernel K (cuDNN / flash attention of a ring step's blocks, a large GEMM, a large elementwise
add) is launched on the compute stream; at a controlled host offset ``f * T_K`` after its launch (f < 0:
before it) a communication op is posted on a second stream: the ring's K/V send/recv pair, or an
all-to-all (ulysses).  One profiled session per case (CUPTI kernel timestamps, torch.profiler) gives per
repetition, on each rank:

* ``ready``: the end of the host call that enqueued the NCCL kernel (its stream is idle: it may start);
* ``k_start`` / ``k_end`` and every compute-kernel boundary (K as 1 kernel, or split into n kernels over
  head groups: ``split``), and the NCCL kernel's ``c_start`` / ``c_end``.

Modes (``gate_mode`` in the raw): ``both`` (both ranks run K and post the op at the same host time,
shared CLOCK_MONOTONIC), ``peer`` (only rank 0 runs K; rank 1 posts the op at the same time on an idle
GPU: a send/recv ends only when the neighbour's kernel has run), ``peer_wait`` (both run K; rank 1
posts the op before its K, rank 0 at the offset: rank 1's K runs beside an NCCL kernel that waits for
rank 0's: its ``k_s`` against ``kernel_alone_s``), ``alone`` (the op without K, and K without the
op), ``tie_kernel`` / ``tie_comm`` (the op and K released together by a kernel, or by a first
transfer, as a ring step's recv releases the next send and the attention: who wins the SMs).

What the model takes from it (validation/calibrate.py fits it): which kernel classes gate (the NCCL
kernel starts at the first compute-kernel boundary after it is ready instead of at once), the latency
from that boundary to the NCCL start, and the transfer's duration after it.  Shapes: ring-local lengths
and batches no validation record uses (10Ki, 14Ki, 28Ki at B = 1; 6Ki at B = 3).  Raw samples and
provenance go to ``--out``; nothing is fitted here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from real import (
    kernels,  # noqa: E402
    provenance,  # noqa: E402
)

H, HK, D, DMODEL, DFF = 32, 32, 128, 4096, 16384  # the seed model (costmodel/presets: seed-dense)
DT = {"cuda": torch.bfloat16, "cpu": torch.float32}


def parse_trace(trace: dict) -> list[dict]:
    """Per repetition (CPU annotation ``gate_rep<i>``): the compute kernels' (start, end), the NCCL kernel's
    (start, end) and its launch call's end (``ready``), all in microseconds of the trace's clock."""
    ev = trace.get("traceEvents", trace if isinstance(trace, list) else [])
    reps = sorted(
        (
            e
            for e in ev
            if e.get("ph") == "X"
            and str(e.get("name", "")).startswith("gate_rep")
            and not str(e.get("cat", "")).startswith("gpu")  # the CPU range, not its GPU projection
        ),
        key=lambda e: e["ts"],
    )
    launch = {}
    for e in ev:
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {}):
            launch[e["args"]["correlation"]] = e
    kern = sorted((e for e in ev if e.get("cat") == "kernel" and e.get("ph") == "X"), key=lambda e: e["ts"])
    posts = sorted(
        (e for e in ev if e.get("name") == "gate_post" and not str(e.get("cat", "")).startswith("gpu")),
        key=lambda e: e["ts"],
    )
    out = []
    for i, r in enumerate(reps):
        lo, hi = r["ts"], r["ts"] + r["dur"]
        nxt = reps[i + 1]["ts"] if i + 1 < len(reps) else float("inf")
        rec = {"compute": [], "comm": None, "ready": None, "rep_ts": lo, "spin": [], "release": None}
        post = next((e for e in posts if lo <= e["ts"] <= hi), None)
        ncs = []
        for k in kern:
            la = launch.get(k.get("args", {}).get("correlation"))
            # by its launch call when the trace has it (runtime and driver API), else by when it ran
            inside = (lo <= la["ts"] <= hi) if la is not None else (lo <= k["ts"] < nxt)
            if not inside:
                continue
            span = (k["ts"], k["ts"] + k["dur"])
            if "nccl" in k["name"].lower():
                ready = (
                    la["ts"] + la["dur"] if la is not None else (post["ts"] + post["dur"] if post else None)
                )
                ncs.append((span, ready, k["name"][:80]))
            elif "spin" in k["name"].lower():  # torch.cuda._sleep: the tie modes' predecessor
                rec["spin"].append(span)
            else:
                rec["compute"].append(span)
        if ncs:  # the measured op is the last NCCL kernel; an earlier one released it (mode tie_comm)
            rec["comm"], rec["ready"], rec["comm_name"] = ncs[-1]
            if len(ncs) > 1:
                rec["release"] = ncs[0][0][1]
            elif rec["spin"]:
                rec["release"] = max(e for _, e in rec["spin"])
        out.append(rec)
    return out


def derive(rec: dict) -> dict:
    """Times relative to the compute kernel's end (µs → s) and the first boundary the op could take."""
    d: dict = {}
    comp, comm, ready, t0 = rec["compute"], rec["comm"], rec["ready"], rec["rep_ts"]
    if rec.get("release") is not None:  # tie modes: the op and the kernel were released together
        ready = rec["release"]
        if comp and comm is not None:
            d["tie_kernel_first"] = comp[0][0] < comm[0]
            d["k_start_after_release_s"] = (comp[0][0] - ready) * 1e-6
            d["c_start_after_release_s"] = (comm[0] - ready) * 1e-6
    # relative to the repetition's start (the shared host time t0 on every rank: cross-rank comparable)
    d["rel_s"] = {
        "compute": [((s - t0) * 1e-6, (e - t0) * 1e-6) for s, e in comp],
        "comm": None if comm is None else ((comm[0] - t0) * 1e-6, (comm[1] - t0) * 1e-6),
        "ready": None if ready is None else (ready - t0) * 1e-6,
    }
    if comp:
        d["k_s"] = (comp[-1][1] - comp[0][0]) * 1e-6
        d["boundaries_after_k_start_s"] = [(e - comp[0][0]) * 1e-6 for _, e in comp]
    if comm is None:
        return d
    d["c_dur_s"] = (comm[1] - comm[0]) * 1e-6
    d["start_after_ready_s"] = (comm[0] - ready) * 1e-6
    if comp:
        kend = comp[-1][1]
        d["ready_minus_kend_s"] = (ready - kend) * 1e-6
        d["start_minus_kend_s"] = (comm[0] - kend) * 1e-6
        d["end_minus_kend_s"] = (comm[1] - kend) * 1e-6
        running = [c for c in comp if c[0] <= ready < c[1]]
        if rec.get("release") is not None and not running and comp[0][0] >= ready:
            running = comp[:1]  # a tie: the kernel started as the op became ready
        d["ready_inside_kernel"] = bool(running)
        if running:  # the first boundary at or after ready: the running kernel's end
            b = running[0][1]
            d["start_minus_boundary_s"] = (comm[0] - b) * 1e-6
            d["ready_to_boundary_s"] = (b - ready) * 1e-6
    return d


class Case:
    def __init__(self, dev, comm_stream, kind: str, B: int, lr: int, split: int = 1):
        self.kind, self.B, self.lr, self.split = kind, B, lr, split
        bf = torch.bfloat16 if dev.type == "cuda" else torch.float32
        if kind.startswith("attn"):
            _, kern, shape = kind.split("_")  # attn_cudnn_full, attn_cudnn_causal, attn_flash_full
            self.q = torch.randn(B, H, lr, D, device=dev, dtype=bf)
            self.k = torch.randn(B, HK, lr, D, device=dev, dtype=bf)
            self.v = torch.randn_like(self.k)
            fn, causal = kernels.get(kern if dev.type == "cuda" else "math"), shape == "causal"
            self.run = lambda: kernels.split_call(fn, self.q, self.k, self.v, causal, split)
            self.flops = 4.0 * B * H * D * lr * lr * (0.5 if causal else 1.0)
        elif kind == "gemm":  # the MLP's up projection at lr * B rows
            self.a = torch.randn(B * lr, DMODEL, device=dev, dtype=bf)
            self.w = torch.randn(DMODEL, DFF, device=dev, dtype=bf)
            self.run = lambda: torch.mm(self.a, self.w)
            self.flops = 2.0 * B * lr * DMODEL * DFF
        elif kind == "elementwise":  # memory-bound: an add over the MLP's hidden activations
            self.a = torch.randn(B * lr, DFF, device=dev, dtype=bf)
            self.b = torch.randn_like(self.a)
            self.run = lambda: torch.add(self.a, self.b)
            self.flops = 0.0
        else:
            raise ValueError(f"kernel kind {kind!r} is not valid")


def post(op: str, bufs, rank: int, world: int):
    if op == "p2p":  # the ring step's K/V exchange: one send/recv group (one NCCL kernel)
        ops = [
            dist.P2POp(dist.isend, bufs[0], (rank + 1) % world),
            dist.P2POp(dist.irecv, bufs[1], (rank - 1) % world),
        ]
        return dist.batch_isend_irecv(ops)
    return [dist.all_to_all_single(bufs[1], bufs[0], async_op=True)]


def sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def on(stream):
    """The communication stream's context (none on CPU: the gloo smoke run of tests/)."""
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()


def spin_until(t: float) -> None:
    while time.monotonic() < t:
        pass


def common_t0(dev, margin_s: float = 0.003) -> float:
    t = torch.tensor([time.monotonic() + margin_s], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


SPIN_CYCLES = 2_000_000  # torch.cuda._sleep before the tie modes' release: ~1 ms, the host runs ahead


def run_case(
    case: Case | None,
    op: str | None,
    frac: float,
    mode: str,
    t_k: float,
    reps: int,
    dev,
    comm,
    bufs,
    small=None,
):
    """``reps`` repetitions under one profiler session; returns per-rep derived figures of this rank."""
    rank, world = dist.get_rank(), dist.get_world_size()
    runs_k = case is not None and (mode != "peer" or rank == 0)
    acts = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        for i in range(reps):
            sync(dev)
            t0 = common_t0(dev)
            sync(dev)
            spin_until(t0)
            with torch.profiler.record_function(f"gate_rep{i}"):
                works = []
                if mode == "tie_kernel":  # a kernel releases the op and K together (the ring's recv does)
                    torch.cuda._sleep(SPIN_CYCLES)
                    ev = torch.cuda.Event()
                    ev.record()
                    comm.wait_event(ev)
                    with on(comm), torch.profiler.record_function("gate_post"):
                        works = post(op, bufs, rank, world)
                    case.run()
                    for w in works:
                        w.wait()
                    continue
                if mode == "tie_comm":  # a transfer releases the next one and K (a ring step's recv)
                    with on(comm):
                        torch.cuda._sleep(SPIN_CYCLES)
                        first = post(op, small, rank, world)
                        with torch.profiler.record_function("gate_post"):
                            works = post(op, bufs, rank, world)
                    for w in first:
                        w.wait()  # the compute stream waits for the first transfer
                    case.run()
                    for w in works:
                        w.wait()
                    continue
                # peer_wait: rank 1 posts first and then runs K beside its NCCL kernel, which waits for
                # rank 0's (held by rank 0's K): does a waiting NCCL kernel slow the compute beside it?
                first = frac < 0 or (mode == "peer_wait" and rank == 1)
                if op is not None and first:
                    with on(comm), torch.profiler.record_function("gate_post"):
                        works = post(op, bufs, rank, world)
                if runs_k:
                    case.run()
                if op is not None and not first:
                    spin_until(t0 + frac * t_k)
                    with on(comm), torch.profiler.record_function("gate_post"):
                        works = post(op, bufs, rank, world)
                for w in works:
                    w.wait()
            sync(dev)
    with tempfile.TemporaryDirectory() as td:
        path = os.path.join(td, f"trace{rank}.json")
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as f:
            trace = json.load(f)
    return [derive(r) for r in parse_trace(trace)]


def kernel_alone(case: Case, reps: int, dev) -> float:
    for _ in range(2):
        case.run()
    sync(dev)
    ts = []
    for _ in range(reps):
        if dev.type != "cuda":
            t = time.perf_counter()
            case.run()
            ts.append(time.perf_counter() - t)
            continue
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        case.run()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return statistics.median(ts)


def gather(x):
    allx = [None] * dist.get_world_size()
    dist.all_gather_object(allx, x)
    return allx


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument(
        "--fracs", default="-1,0.25,0.6", help="post offsets as fractions of K's time (<0: before K)"
    )
    p.add_argument("--quick", action="store_true", help="one kernel per class (a smoke run)")
    p.add_argument("--scale", type=int, default=1, help="divide every length by this (CPU smoke runs)")
    a = p.parse_args()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    comm = torch.cuda.Stream(dev) if cuda else None
    fracs = [float(x) for x in a.fracs.split(",")]
    t_begin = time.monotonic()
    # (kernel kind, B, lr, split, ops, modes): ring-local lengths / batches no validation record uses
    plan = [
        (
            "attn_cudnn_full",
            1,
            14336,
            1,
            ("p2p", "a2a"),
            ("both", "peer", "peer_wait", "tie_kernel", "tie_comm"),
        ),
        ("attn_cudnn_full", 1, 10240, 1, ("p2p",), ("both",)),
        ("attn_cudnn_full", 1, 28672, 1, ("p2p",), ("both",)),
        ("attn_cudnn_full", 3, 6144, 1, ("p2p",), ("both",)),
        ("attn_cudnn_causal", 1, 14336, 1, ("p2p", "a2a"), ("both", "tie_comm")),
        ("attn_flash_full", 1, 14336, 1, ("p2p",), ("both", "tie_comm")),
        ("attn_cudnn_full", 1, 14336, 2, ("p2p",), ("both",)),
        ("attn_cudnn_full", 1, 14336, 4, ("p2p",), ("both",)),
        ("gemm", 1, 14336, 1, ("p2p", "a2a"), ("both", "peer", "tie_kernel", "tie_comm")),
        ("gemm", 1, 28672, 1, ("p2p",), ("both",)),
        ("elementwise", 1, 14336, 1, ("p2p",), ("both", "tie_comm")),
    ]
    if a.quick:
        plan = [x for x in plan if x[2] == 14336 and x[3] in (1, 2)]
    out = []
    bufs_cache: dict = {}
    small_bufs = {}  # the tie_comm mode's first transfer: 1 MiB
    for op in ("p2p", "a2a"):
        n = 2**19
        small_bufs[op] = (
            torch.randn(n, device=dev, dtype=DT[dev.type]),
            torch.empty(n, device=dev, dtype=DT[dev.type]),
        )
        for w in post(op, small_bufs[op], rank, world):
            w.wait()
    sync(dev)
    for kind, B, lr, split, ops, modes in plan:
        lr //= a.scale
        case = Case(dev, comm, kind, B, lr, split)
        t_k = max(gather(kernel_alone(case, 5, dev)))
        for op in ops:
            # the bytes a ring step moves (K and V of lr tokens) / an all-to-all of the same size
            nbytes = 2 * B * lr * HK * D * 2
            key = (op, nbytes)
            if key not in bufs_cache:
                bufs_cache.clear()
                n = nbytes // 2
                bufs_cache[key] = (
                    torch.randn(n, device=dev, dtype=DT[dev.type]),
                    torch.empty(n, device=dev, dtype=DT[dev.type]),
                )
                for w in post(op, bufs_cache[key], rank, world):  # warm-up: communicator, buffers
                    w.wait()
                sync(dev)
            bufs = bufs_cache[key]
            if not out:  # the first profiled session pays CUPTI's start-up: one thrown away
                run_case(case, op, 0.5, "both", t_k, 2, dev, comm, bufs)
            base = {"kernel": kind, "batch": B, "ring_len": lr, "split": split, "op": "comm_gate"}
            base.update(comm_op=op, comm_bytes=float(nbytes), kernel_alone_s=t_k, flops=case.flops)
            # the op alone (no compute kernel), then beside K at each offset and mode
            runs = [("alone", None, 0.0)] + [
                (m, case, f) for m in modes for f in ([0.0] if m.startswith("tie") else fracs)
            ]
            for mode, c, f in runs:
                if mode.startswith("tie") and not cuda:
                    continue  # torch.cuda._sleep: GPU only
                per_rep = run_case(c, op, f, mode, t_k, a.reps, dev, comm, bufs, small_bufs[op])
                ranks = gather(per_rep)
                r = dict(base, gate_mode=mode, frac=f, ranks=ranks)
                out.append(r)
                if rank == 0:

                    def med(key, rr):
                        v = [x[key] for x in rr if key in x]
                        return f"{statistics.median(v) * 1e3:7.3f}" if v else "    -  "

                    print(
                        f"{kind:17s} B={B} lr={lr:5d} split={split} {op:3s} {mode:10s} f={f:+.1f} "
                        f"K {t_k * 1e3:6.3f} ms | rank0 ready-kend {med('ready_minus_kend_s', ranks[0])} "
                        f"start-kend {med('start_minus_kend_s', ranks[0])} "
                        f"start-boundary {med('start_minus_boundary_s', ranks[0])} "
                        f"dur {med('c_dur_s', ranks[0])} | "
                        f"rank1 start-ready {med('start_after_ready_s', ranks[1])} "
                        f"dur {med('c_dur_s', ranks[1])} ms"
                        + (
                            f" | tie: kernel first {sum(x.get('tie_kernel_first', 0) for x in ranks[0])}"
                            f"/{len(ranks[0])}"
                            if mode.startswith("tie")
                            else ""
                        ),
                        flush=True,
                    )
        # K alone, profiled (its kernel count and duration without a transfer)
        out.append(
            dict(
                {"kernel": kind, "batch": B, "ring_len": lr, "split": split, "op": "comm_gate"},
                comm_op=None,
                gate_mode="kernel_alone",
                frac=None,
                kernel_alone_s=t_k,
                flops=case.flops,
                ranks=gather(run_case(case, None, 0.0, "both", t_k, 3, dev, comm, None)),
            )
        )
        del case
        torch.cuda.empty_cache()
    per_rank = gather(provenance.local())
    if rank == 0:
        prov = provenance.collect(per_rank)
        prov["command"] = (
            "torchrun --standalone --nproc-per-node 2 benchmarks/bench_ring_gate.py " + " ".join(sys.argv[1:])
        )
        prov["wall_s"] = time.monotonic() - t_begin
        tmp = a.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"provenance": prov, "bench": "ring_gate", "results": out}, f, indent=1)
        os.replace(tmp, a.out)
        print(f"wrote {a.out} ({len(out)} records, {prov['wall_s']:.0f} s)", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
