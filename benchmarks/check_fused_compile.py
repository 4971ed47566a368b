"""The fused mode's torch.compile'd functions against the same maths uncompiled (real/fused.py).

    python benchmarks/check_fused_compile.py        # about a minute on a CPU (compilation), seconds on a GPU

A check that needs a compiler toolchain and a minute of compilation is run here, not in the test suite
(the suite checks the uncompiled functions the CPU path runs).  Exits 1 on a mismatch or a fallback.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from real import buffers, fused  # noqa: E402


def _parts(rows, s=12, b=2, h=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for r in rows:
        q = s if r is None else r.stop - r.start
        out.append(
            buffers.Part(torch.randn(b, h, q, d, generator=g), torch.randn(b, h, q, generator=g) * 3, r)
        )
    return out


def main() -> int:
    k = fused.Kernels(compile=True)
    parts = _parts([None, slice(6, 12)], 12)
    rows = ((0, 12), (6, 12))
    args = ([p.out for p in parts], [p.lse for p in parts], rows, 12, torch.float32, True)
    torch.testing.assert_close(k.merge_parts(*args), fused.merge_parts(*args), rtol=1e-5, atol=1e-6)
    x, w = torch.randn(4, 16), torch.randn(16)
    torch.testing.assert_close(k.rmsnorm(x, w), fused.rmsnorm(x, w), rtol=1e-5, atol=1e-6)
    if k.fallbacks:
        print(f"compiled functions fell back to eager: {k.fallbacks}", file=sys.stderr)
        return 1
    print("fused: compiled merge_parts and rmsnorm equal the uncompiled maths (rtol 1e-5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
