"""NCCL exchange and collectives over the whole world, graph-timed by message size: the communication
figures of a group of ``world`` GPUs (the calibration run measures groups of 2).

    torchrun --standalone --nproc-per-node 4 benchmarks/bench_comm_group.py --out raw_comm_g4.json

Writes a raw file in the calibration format (``op: comm`` records with ``group`` = world), fitted with
the calibration run as a supplement: ``ringsim calibrate --from-raw RUN.json ... --from-raw THIS.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, ".")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from real import microbench  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    dist.init_process_group("nccl")
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(dev)
    sizes = [2**k for k in range(10, 31, 2)]  # 1 KiB .. 1 GiB
    res = microbench.bench_comm(dev, sizes, a.reps, graph=True)
    if dist.get_rank() == 0:
        raw = {
            "provenance": microbench.provenance(dev),
            "device": "cuda",
            "results": res,
            "suites": [f"comm-group{dist.get_world_size()}"],
        }
        with open(a.out, "w") as f:
            json.dump(raw, f, indent=1)
        for r in res:
            print(
                f"{r['coll']:14s} g={r['group']} {r['msg_bytes']:>14,.0f} B {r['median_s'] * 1e6:10.1f} us",
                flush=True,
            )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
