"""How cuDNN and flash split a decode call into thread blocks: the kernels' launch grids (issue 12).

    python3 benchmarks/bench_decode_kernel_grid.py --out raw_decode_kernel_grid.json

The decode model (``DecodeAttnModel``) times a call as waves of thread blocks; how many blocks a kernel
launches for (batch, heads, KV heads, keys) is the kernel's own rule (FlashAttention-2 publishes its
``num_splits_heuristic``; cuDNN does not).  A graph-decode trace of 2026-11-28 showed cuDNN at B = 16 with 8
KV heads launching grid (1, 8, 16): one block per sequence and KV head, the keys not split.  This runs one
decode call per shape under torch.profiler (the executor's layout and kernels, ``real.kernels``) and records
each kernel's name, grid, block, registers, shared memory and duration: shapes over work items 1-640
(sequences x KV heads) at keys 8Ki, 32Ki, 36Ki and 512Ki (no record's).  Nothing is fitted here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from costmodel.results import atomic_write_text  # noqa: E402
from real import kernels as K  # noqa: E402
from real.microbench import provenance  # noqa: E402

SHAPES = [  # (batch, query heads, KV heads)
    (1, 1, 1),
    (1, 8, 8),
    (4, 8, 8),
    (6, 8, 8),
    (10, 8, 8),
    (12, 8, 8),
    (16, 8, 8),
    (20, 8, 8),
    (20, 16, 16),
    (24, 16, 16),
    (40, 16, 16),
    (1, 32, 8),
    (10, 32, 8),
    (20, 32, 8),
    (48, 8, 1),
]
KEYS = (8192, 32768, 36864, 524288)


def run(quick: bool) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device("cuda", 0)
    dt = torch.bfloat16
    out = []
    shapes = SHAPES[:3] if quick else SHAPES
    keys = KEYS[:1] if quick else KEYS
    for kern in ("cudnn", "flash"):
        fn = getattr(K, f"attn_{kern}")
        for b, h, hk in shapes:
            for s in keys:
                if 2 * b * s * hk * 128 * 2 > 8 * 2**30:
                    continue
                cache = torch.randn(2, b, s, hk, 128, device=dev, dtype=dt)
                k, v = cache[0].transpose(1, 2), cache[1].transpose(1, 2)
                q = torch.randn(b, 1, h, 128, device=dev, dtype=dt).transpose(1, 2)
                for _ in range(3):
                    fn(q, k, v, False)
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    fn(q, k, v, False)
                    torch.cuda.synchronize()
                with tempfile.NamedTemporaryFile(suffix=".json") as t:
                    prof.export_chrome_trace(t.name)
                    ev = json.load(open(t.name))["traceEvents"]
                ks = [e for e in ev if e.get("cat") == "kernel"]
                out.append(
                    {
                        "op": "decode_kernel_grid",
                        "kernel": kern,
                        "batch": b,
                        "heads": h,
                        "kv_heads": hk,
                        "kv_len": s,
                        "items": b * hk,
                        "kernels": [
                            {
                                "name": e["name"][:200],
                                "grid": e["args"].get("grid"),
                                "block": e["args"].get("block"),
                                "registers": e["args"].get("registers per thread"),
                                "shared_memory": e["args"].get("shared memory"),
                                "blocks_per_sm": e["args"].get("blocks per SM"),
                                "dur_us": e["dur"],
                            }
                            for e in ks
                        ],
                    }
                )
                del cache, k, v, q
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("bench_decode_kernel_grid: needs a GPU (the kernels' launch grids)", file=sys.stderr)
        return 2
    dev = torch.device("cuda", 0)
    raw = {
        "provenance": provenance(dev),
        "device": "cuda",
        "results": run(a.quick),
        "suites": ["decode-kernel-grid"],
    }
    atomic_write_text(a.out, json.dumps(raw, indent=1))
    for r in raw["results"]:
        main_k = max(r["kernels"], key=lambda k: k["dur_us"]) if r["kernels"] else {}
        print(
            f"{r['kernel']:5s} B={r['batch']:3d} H={r['heads']:2d} Hk={r['kv_heads']:2d} "
            f"keys={r['kv_len']:6d} "
            f"items={r['items']:4d} kernels={len(r['kernels'])} grid={main_k.get('grid')} "
            f"bps={main_k.get('blocks_per_sm')} {main_k.get('dur_us', 0):.1f}us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
