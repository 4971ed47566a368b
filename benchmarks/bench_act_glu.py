"""The MLP activation as the executor runs it, gated (SwiGLU) beside ungated (GELU) (issue 14).

    python3 benchmarks/bench_act_glu.py --out raw_act_glu.json [--quick]

The op-class figures of the '-eager' and '-graph' profiles come from the seed model, whose activation is
one GELU kernel over a contiguous tensor.  llama3-8b's SwiGLU (``real/model.py`` ``activation``: the up
projection's output chunked into gate and up, ``F.silu(gate) * up``) is two kernels over strided halves
(torch's non-vectorised elementwise path): a prefill trace at 28Ki (2026-11-28) showed them at 2.3 ms a
layer where the GELU figures give 0.7.  This times both, each with its ideal fused traffic (GELU: read u,
write a: 2 x tokens x d_ff x 2 bytes; SwiGLU: read gate and up, write a: 3 x tokens x d_ff x 2 bytes):

* ``eager``: CUDA events around one call, at token counts 6Ki, 22Ki and 52Ki (no GEMM rows any record
  has), 7 repetitions;
* ``graph``: replayed from one CUDA graph of 20 calls, at 1, 8, 24 and 40 rows (decode-sized: the
  kernel's fixed cost, the class floor).

Records ``{"op": "act_variant", "variant": "gelu"|"swiglu", "mode", "tokens", "d_ff", "ideal_bytes",
samples}``; ``validation.calibrate`` fits ``achievable.glu_act_traffic`` (the SwiGLU's time per ideal
byte over the GELU's, eager sizes) and ``glu_act_floor_ratio`` (SwiGLU over GELU at the graph sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from costmodel import presets  # noqa: E402
from costmodel.results import atomic_write_text  # noqa: E402
from real import model as M  # noqa: E402
from real.microbench import _rec, provenance, time_fn, time_graph  # noqa: E402

EAGER_TOKENS = (6144, 22528, 53248)
GRAPH_ROWS = (1, 8, 24, 40)


def run(quick: bool) -> list[dict]:
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", 0) if cuda else torch.device("cpu")
    dt = torch.bfloat16 if cuda else torch.float32
    out = []
    for variant, mname in (("gelu", "seed-dense"), ("swiglu", "llama3-8b")):
        model = presets.load_model(mname)
        f = model.d_ff
        width = 2 * f if variant == "swiglu" else f
        units = 3 if variant == "swiglu" else 2
        for tok in (256, 512) if quick else EAGER_TOKENS:
            u = torch.randn(tok, width, device=dev, dtype=dt)
            s = time_fn(lambda model=model, u=u: M.activation(model, u), dev, reps=3 if quick else 7)
            out.append(
                _rec(
                    s,
                    op="act_variant",
                    variant=variant,
                    mode="eager",
                    tokens=tok,
                    d_ff=f,
                    model=mname,
                    ideal_bytes=float(units * tok * f * 2),
                )
            )
            del u
        if cuda:
            for rows in (1, 8) if quick else GRAPH_ROWS:
                u = torch.randn(rows, width, device=dev, dtype=dt)
                s = time_graph(lambda model=model, u=u: M.activation(model, u), dev, calls=20, reps=5)
                out.append(
                    _rec(
                        s,
                        op="act_variant",
                        variant=variant,
                        mode="graph",
                        tokens=rows,
                        d_ff=f,
                        model=mname,
                        ideal_bytes=float(units * rows * f * 2),
                    )
                )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    dev = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    raw = {"provenance": provenance(dev), "device": dev.type, "results": run(a.quick), "suites": ["act-glu"]}
    atomic_write_text(a.out, json.dumps(raw, indent=1))
    for r in raw["results"]:
        print(
            f"{r['variant']:6s} {r['mode']:5s} {r['tokens']:6d} rows {r['median_s'] * 1e6:9.1f} us "
            f"{r['ideal_bytes'] / r['median_s'] / 1e12:6.2f} TB/s ideal"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
