"""A collective's cost inside a forward pass, against back to back (issue 12).

    torchrun --standalone --nproc-per-node 2 benchmarks/bench_comm_in_step.py --out raw_comm_in_step.json

The profiles' communication latency comes from calls replayed back to back in one CUDA graph (10 per
graph): consecutive NCCL kernels hide part of each other's start and end.  In a decode step every
collective sits alone between compute kernels; a graph-decode trace at P = 2 (tp=2, 2026-11-28) showed
its two all-reduces a layer at about 41 us each where the profile gives 16.  This replays, per message
size (16 KiB, 128 KiB, 1 MiB) and collective (all-reduce, all-gather, the ring's send/recv), one graph of
10 x [an elementwise pass over 16 MiB, the collective] and one of the 10 passes alone, both ranks
together; the collective's cost in a step = (first - second) / 10, beside the back-to-back figure (10
collectives alone).  Diagnostic: nothing reads the ``comm_in_step`` and ``rank_start_skew`` records
(``validation.calibrate`` fits none of them).
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

from costmodel.results import atomic_write_text  # noqa: E402
from real.microbench import provenance, time_graph  # noqa: E402

SIZES = (16384, 131072, 1048576)


def run(reps: int) -> list[dict]:
    world, rank = dist.get_world_size(), dist.get_rank()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(dev)
    nxt, prv = (rank + 1) % world, (rank - 1) % world
    buf = torch.randn(8 * 2**20, device=dev, dtype=torch.bfloat16)  # 16 MiB: a few-us elementwise pass
    out = []
    for nbytes in SIZES:
        n = max(nbytes // 2, world)
        n -= n % world
        x = torch.randn(n, device=dev, dtype=torch.bfloat16)
        y = torch.empty_like(x)
        g = torch.empty(n * world, device=dev, dtype=torch.bfloat16)

        def exchange(x=x, y=y):
            ops = [dist.P2POp(dist.isend, x, nxt), dist.P2POp(dist.irecv, y, prv)]
            for r in dist.batch_isend_irecv(ops):
                r.wait()

        cases = {
            "p2p": (exchange, x.numel() * 2),
            "all_reduce": (lambda x=x: dist.all_reduce(x), x.numel() * 2),
            "all_gather": (lambda g=g, x=x: dist.all_gather_into_tensor(g, x), g.numel() * 2),
        }

        def compute():
            buf.mul_(1.0)

        for coll, (fn, msg) in cases.items():

            def step(fn=fn):
                compute()
                fn()

            dist.barrier()
            both = time_graph(step, dev, calls=10, reps=reps, collective=True)
            alone = time_graph(compute, dev, calls=10, reps=reps, collective=True)
            b2b = time_graph(fn, dev, calls=10, reps=reps, collective=True)
            out.append(
                {
                    "op": "comm_in_step",
                    "coll": coll,
                    "group": world,
                    "msg_bytes": float(msg),
                    "step_s": statistics.median(both),
                    "compute_s": statistics.median(alone),
                    "in_step_s": statistics.median(both) - statistics.median(alone),
                    "back_to_back_s": statistics.median(b2b),
                    "samples_step_s": both,
                    "samples_compute_s": alone,
                    "samples_back_to_back_s": b2b,
                }
            )
        x = y = g = None
    # one collective per replay after a pass of compute (as a decode step's first one): the replay that
    # starts first (the barrier releases the ranks' hosts at different times) waits there for the other;
    # per replay, (compute + all-reduce) - compute alone - the all-reduce's cost in a step (above, where
    # 10 per replay spread that wait) = the ranks' start skew
    x = torch.randn(8192, device=dev, dtype=torch.bfloat16)
    big = torch.randn(64 * 2**20, device=dev, dtype=torch.bfloat16)  # 128 MiB: ~60 us a pass

    def work():
        for _ in range(10):
            big.mul_(1.0)

    def work_ar():
        work()
        dist.all_reduce(x)

    dist.barrier()
    one = time_graph(work_ar, dev, calls=1, reps=3 * reps, collective=True)
    alone = time_graph(work, dev, calls=1, reps=3 * reps, collective=True)
    ar = next(r["in_step_s"] for r in out if r["coll"] == "all_reduce" and r["msg_bytes"] == 16384.0)
    out.append(
        {
            "op": "rank_start_skew",
            "group": world,
            "step_s": statistics.median(one),
            "compute_s": statistics.median(alone),
            "all_reduce_in_step_s": ar,
            "skew_s": statistics.median(one) - statistics.median(alone) - ar,
            "samples_step_s": one,
            "samples_compute_s": alone,
        }
    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=7)
    a = p.parse_args()
    dist.init_process_group("nccl")
    res = run(a.reps)
    if dist.get_rank() == 0:
        dev = torch.device("cuda", 0)
        raw = {"provenance": provenance(dev), "device": "cuda", "results": res, "suites": ["comm-in-step"]}
        atomic_write_text(a.out, json.dumps(raw, indent=1))
        for r in res:
            if r["op"] == "rank_start_skew":
                print(
                    f"start skew {r['skew_s'] * 1e6:.1f} us (step {r['step_s'] * 1e6:.1f}, "
                    f"compute {r['compute_s'] * 1e6:.1f})"
                )
                continue
            print(
                f"{r['coll']:10s} {r['msg_bytes']:9.0f} B in a step {r['in_step_s'] * 1e6:6.1f} us, "
                f"back to back "
                f"{r['back_to_back_s'] * 1e6:6.1f} us (compute alone {r['compute_s'] * 1e6:.1f} us)"
            )
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
