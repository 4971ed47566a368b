"""Where a ring layer's time goes that the calibrated square calls do not show (issue 12).

Run on two GPUs: ``torchrun --standalone --nproc-per-node 2 benchmarks/bench_ring_causes.py --out F.json``.

For every shape a pass-KV ring step makes (the diagonal causal block, zigzag's two half-blocks, a full
off-diagonal block) at several ring-local lengths and batches, both ranks together:

* ``alone``: the attention call by itself (CUDA events around the kernel, median of ``--reps``);
* ``beside``: the same call while both ranks exchange the K/V block of that length (one NCCL
  send/recv group on a second stream, started just before the call): the attention's time, the
  transfer's time and how long they overlapped;
* ``xfer_alone``: the exchange by itself.

From these, ``slowdown = 1 + (t_beside - t_alone) / overlap``: how much slower attention runs while
NCCL's kernels share the GPU.  Raw samples and provenance go to ``--out``; nothing is fitted here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from real import (
    kernels,  # noqa: E402
    provenance,  # noqa: E402
)

H, D = 32, 128


def _events():
    return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)


def measure(kernel: str, B: int, lr: int, q_len: int, kv_len: int, causal: bool, reps: int, dev) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    fn = kernels.get(kernel)
    q = torch.randn(B, H, q_len, D, device=dev, dtype=torch.bfloat16)
    k = torch.randn(B, H, kv_len, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    blk = torch.randn(2, B, lr, H, D, device=dev, dtype=torch.bfloat16)  # the K/V block a ring step moves
    rbuf = torch.empty_like(blk)
    comm = torch.cuda.Stream(dev)
    cur = torch.cuda.current_stream(dev)

    def xfer():
        ops = [
            dist.P2POp(dist.isend, blk, (rank + 1) % world),
            dist.P2POp(dist.irecv, rbuf, (rank - 1) % world),
        ]
        for w in dist.batch_isend_irecv(ops):
            w.wait()

    for _ in range(3):  # warm-up: kernel plans, NCCL communicator
        fn(q, k, v, causal)
        xfer()
    torch.cuda.synchronize(dev)
    alone, xalone, beside, xbeside, overlap = [], [], [], [], []
    for _ in range(reps):
        dist.barrier()
        torch.cuda.synchronize(dev)
        a, b = _events()
        a.record()
        fn(q, k, v, causal)
        b.record()
        b.synchronize()
        alone.append(a.elapsed_time(b) / 1e3)
        dist.barrier()
        torch.cuda.synchronize(dev)
        a, b = _events()
        a.record()
        xfer()
        b.record()
        b.synchronize()
        xalone.append(a.elapsed_time(b) / 1e3)
        dist.barrier()
        torch.cuda.synchronize(dev)
        xa, xb = _events()
        a, b = _events()
        comm.wait_stream(cur)
        with torch.cuda.stream(comm):
            xa.record()
            xfer()
            xb.record()
        a.record()
        fn(q, k, v, causal)
        b.record()
        torch.cuda.synchronize(dev)
        t_a, t_x = a.elapsed_time(b) / 1e3, xa.elapsed_time(xb) / 1e3
        start_gap = xa.elapsed_time(a) / 1e3  # attention start minus transfer start
        ov = max(0.0, min(t_a, t_x - start_gap) if start_gap >= 0 else min(t_a + start_gap, t_x))
        beside.append(t_a)
        xbeside.append(t_x)
        overlap.append(ov)
    t = torch.tensor([alone, xalone, beside, xbeside, overlap], dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    alone, xalone, beside, xbeside, overlap = t.tolist()
    med = statistics.median
    flops = (
        4.0 * B * H * D * (((kv_len - q_len) * q_len + q_len * (q_len + 1) / 2) if causal else q_len * kv_len)
    )
    ov = med(overlap)
    return {
        "kernel": kernel,
        "batch": B,
        "heads": H,
        "head_dim": D,
        "ring_len": lr,
        "q_len": q_len,
        "kv_len": kv_len,
        "causal": causal,
        "flops": flops,
        "block_bytes": float(blk.numel() * 2),
        "alone_s": alone,
        "xfer_alone_s": xalone,
        "beside_s": beside,
        "xfer_beside_s": xbeside,
        "overlap_s": overlap,
        "median_alone_s": med(alone),
        "median_beside_s": med(beside),
        "median_overlap_s": ov,
        "tflops_alone": flops / med(alone) / 1e12,
        "slowdown": 1.0 + (med(beside) - med(alone)) / ov if ov > 0 else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--kernels", default="cudnn,flash")
    p.add_argument("--lengths", default="8192,20480,49152", help="ring-local lengths lr (tokens per rank)")
    p.add_argument("--batches", default="1,2")
    a = p.parse_args()
    dist.init_process_group("nccl")
    rank = dist.get_rank()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(dev)
    out = []
    for kern in a.kernels.split(","):
        for B in (int(x) for x in a.batches.split(",")):
            for lr in (int(x) for x in a.lengths.split(",")):
                h = lr // 2
                for name, ql, kl, c in (
                    ("diagonal", lr, lr, True),
                    ("half_kv", lr, h, False),
                    ("half_q", h, lr, False),
                    ("full", lr, lr, False),
                ):
                    r = measure(kern, B, lr, ql, kl, c, a.reps, dev)
                    r["block"] = name
                    out.append(r)
                    if rank == 0:
                        print(
                            f"{kern} B={B} lr={lr} {name:8s} alone {r['median_alone_s'] * 1e6:9.1f} us "
                            f"({r['tflops_alone']:.0f} TFLOP/s) beside {r['median_beside_s'] * 1e6:9.1f} us "
                            f"overlap {r['median_overlap_s'] * 1e6:9.1f} us slowdown {r['slowdown']}",
                            flush=True,
                        )
    per_rank = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, provenance.local())
    if rank == 0:
        prov = provenance.collect(per_rank)
        prov["command"] = (
            "torchrun --standalone --nproc-per-node 2 benchmarks/bench_ring_causes.py "
            + " ".join(sys.argv[1:])
        )
        with open(a.out, "w") as f:
            json.dump({"provenance": prov, "results": out}, f, indent=1)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
