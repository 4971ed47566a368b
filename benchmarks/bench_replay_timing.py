"""How a captured decode step's time depends on the way it is timed (issue 5 follow-up).

    torchrun --standalone --nproc-per-node N benchmarks/bench_replay_timing.py \\
        --plan ... --context ... [predict options]

For one configuration: the step captured as a CUDA graph, then (a) isolated replays, each after a
barrier and a device synchronise (what real.run does), and (b) back-to-back replays with a CUDA event
between each (a serving loop), and the SM/memory clocks nvidia-smi reports before and after.  Prints one
JSON line per configuration (rank 0).
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, ".")
from costmodel.options import config_from_args  # noqa: E402
from real import comm, harness  # noqa: E402
from real.run import build_parser, expand  # noqa: E402


def clocks() -> str:
    try:
        return (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,power.draw", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            .stdout.strip()
            .replace("\n", " | ")
        )
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def main() -> None:
    argv = sys.argv[1:]
    device = harness.local_device()
    harness.init_distributed("nccl", 300.0, device)
    groups = comm.Groups()
    for c in expand(argv + ["--out", "/dev/null"]):
        a = build_parser().parse_args(c)
        cfg = config_from_args(a)
        ex = harness.make_executor(
            cfg, device=device, dtype=torch.bfloat16, kernel="cudnn", seed=0, groups=groups
        )
        ex.run()
        ex.capture()
        for _ in range(3):
            ex.run()
        torch.cuda.synchronize()
        before = clocks()
        iso = []
        for _ in range(15):
            dist.barrier()
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            ex.run()
            e1.record()
            e1.synchronize()
            iso.append(e0.elapsed_time(e1))
        dist.barrier()
        torch.cuda.synchronize()
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(16)]
        ev[0].record()
        for i in range(15):
            ex.run()
            ev[i + 1].record()
        torch.cuda.synchronize()
        b2b = [ev[i].elapsed_time(ev[i + 1]) for i in range(15)]
        after = clocks()
        t = torch.tensor([iso, b2b], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if dist.get_rank() == 0:
            wl = cfg.workload
            print(
                json.dumps(
                    {
                        "plan": cfg.plan.name,
                        "decode_attn": str(cfg.plan.decode_attn),
                        "batch": wl.batch,
                        "context": wl.context,
                        "layers": cfg.model.layers,
                        "isolated_ms": [round(x, 4) for x in t[0].tolist()],
                        "back_to_back_ms": [round(x, 4) for x in t[1].tolist()],
                        "clocks_before": before,
                        "clocks_after": after,
                    }
                ),
                flush=True,
            )
        del ex
        torch.cuda.empty_cache()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
