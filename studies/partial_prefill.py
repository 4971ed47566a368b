"""Partial prefill: pass-KV against pass-Q by cache-miss rate (issue 13).

A prefill of L new tokens after C cached ones (``--cached C``) on a context-parallel ring: pass-KV moves
each rank's K/V ((C + L)/R tokens of its KV heads) every step, pass-Q moves its new queries (L/R tokens of
its query heads) and returns the partial outputs by an all-to-all.  Which is faster depends on the
cache-miss rate m = L / (C + L): Meta's "Context Parallelism for Scalable Million-Token Inference" (Yang
et al., arXiv 2411.01783, https://arxiv.org/abs/2411.01783) introduces both ring variants for full and
persistent-KV (partial) prefill and picks between them by the KV-cache miss rate: pass-Q when few tokens
are new, pass-KV otherwise.  This study asks the analytic model (``costmodel.analytic``; the
simulator agrees with it on these ops, ``tests/test_partial_prefill.py``) for both over a grid of miss rates
at fixed total lengths T = C + L, on the H100 and H200 presets, for Meta's layout: TP = 8 inside each
8-GPU node, the ring across nodes over InfiniBand (P = 8 x ring GPUs).

``python -m studies.partial_prefill --out docs/figures/partial_prefill`` writes ``partial_prefill.json``
(every point, the specs, the crossover miss rates) and the figure ``partial_prefill_crossover.png``
(``plots/partial_prefill.py``, redrawn by ``ringsim plot partial_prefill.json``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from costmodel import presets
from costmodel.analytic import evaluate
from costmodel.closedform import Setting
from costmodel.config import build_config
from costmodel.errors import SpecError
from costmodel.geometry import seq_multiple
from costmodel.results import ensure_dir, write_json

HARDWARE = ("h100-sxm", "h200-sxm")
MODEL = "llama3-70b"
GPUS = (16, 32, 64)  # tp=8 x ring = P / 8
TOTALS = (128 * 1024, 1024 * 1024)
POINTS = 33  # miss rates from 1/512 to 1, geometric


def miss_grid(total: int, mult: int, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(new tokens L, cached tokens C) with C + L = total, L a multiple of ``mult`` from the smallest one
    to all of them, geometric in L (unique after rounding)."""
    lo = max(mult, total // 512 // mult * mult)
    L = np.unique(np.round(np.geomspace(lo, total, points) / mult).astype(np.int64) * mult)
    return L, total - L


def crossover(m: np.ndarray, ratio: np.ndarray) -> float | None:
    """The miss rate where pass-KV / pass-Q time crosses 1 going up in m (pass-Q faster below), log-
    interpolated; None if it does not cross in the grid."""
    s = ratio - 1.0
    for i in range(len(m) - 1):
        if s[i] > 0 >= s[i + 1]:
            lm = np.log(m[i]) + (np.log(m[i + 1]) - np.log(m[i])) * s[i] / (s[i] - s[i + 1])
            return float(np.exp(lm))
    return None


def run(hardware=HARDWARE, model=MODEL, gpus=GPUS, totals=TOTALS, points=POINTS, batch=1) -> dict:
    curves = []
    for hw_name in hardware:
        for P in gpus:
            R = P // 8
            plan = f"tp=8,ring={R}"
            for T in totals:
                mult = seq_multiple(R, 1, "zigzag")
                L, C = miss_grid(T, mult, points)
                lat = {}
                for pa in ("pass-kv", "pass-q"):
                    cfg = build_config(  # the configuration's rules, at the grid's first point
                        {
                            "hardware": hw_name,
                            "model": model,
                            "topology": f"ib:{P // 8}x8",
                            "plan": plan,
                            "batch": str(batch),
                            "seq": str(int(L[0])),
                            "cached": str(int(C[0])),
                            "prefill_attn": pa,
                        }
                    )
                    st = Setting(
                        phase="prefill",
                        kernel=cfg.kernel,
                        ring_variant=cfg.plan.ring_variant,
                        topo_kind=cfg.topology.kind.value,
                        gpus_per_node=cfg.topology.gpus_per_node,
                        pp_send=cfg.plan.pp_send,
                        cached=C.astype(float),
                        prefill_attn=pa,
                    )
                    o = evaluate(cfg.model, cfg.hardware, st, batch=batch, seq=L.astype(float), tp=8, ring=R)
                    lat[pa] = o
                m = L / T
                ratio = lat["pass-kv"]["latency_s"] / lat["pass-q"]["latency_s"]
                curves.append(
                    {
                        "hardware": hw_name,
                        "P": P,
                        "plan": f"tp=8,ring={R}:zigzag",
                        "total": T,
                        "new": L.tolist(),
                        "cached": C.tolist(),
                        "miss_rate": m.tolist(),
                        "latency_pass_kv_s": lat["pass-kv"]["latency_s"].tolist(),
                        "latency_pass_q_s": lat["pass-q"]["latency_s"].tolist(),
                        "exposed_comm_pass_kv_s": lat["pass-kv"]["t_comm_exposed_s"].tolist(),
                        "exposed_comm_pass_q_s": lat["pass-q"]["t_comm_exposed_s"].tolist(),
                        "ratio_kv_over_q": ratio.tolist(),
                        "crossover_miss_rate": crossover(m, ratio),
                    }
                )
    mdl = presets.load_model(model)
    return {
        "specs": {
            "kind": "partial-prefill",
            "engine": "analytic",
            "model": model,
            "model_heads": {"n_heads": mdl.n_heads, "n_kv_heads": mdl.n_kv_heads, "head_dim": mdl.head_dim},
            "hardware": list(hardware),
            "topology": "ib: 8-GPU nodes, TP = 8 inside a node, the ring across nodes",
            "batch": batch,
            "ring_variant": "zigzag",
            "attn_kernel": "auto",
            "ratio": "latency of pass-KV / latency of pass-Q (> 1: pass-Q is faster)",
            "source": "pass-KV vs pass-Q for partial prefill: Yang et al., 'Context Parallelism for Scalable "
            "Million-Token Inference', arXiv 2411.01783 (https://arxiv.org/abs/2411.01783)",
            "command": "python -m studies.partial_prefill --out docs/figures/partial_prefill",
        },
        "curves": curves,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m studies.partial_prefill", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", required=True, help="output folder (partial_prefill.json and the figure)")
    p.add_argument("--points", type=int, default=POINTS, help="miss rates per curve")
    a = p.parse_args(argv)
    try:
        if not 2 <= a.points <= 1000:
            raise SpecError(f"--points {a.points} is not valid: 2 to 1,000 miss rates per curve")
        out = ensure_dir(a.out)
        doc = run(points=a.points)
        path = write_json(out / "partial_prefill.json", doc)
        from plots.partial_prefill import fig_partial_prefill

        figs = fig_partial_prefill(doc, out, "partial_prefill_crossover")
    except SpecError as e:
        print(f"python -m studies.partial_prefill: error: {e}", file=sys.stderr)
        return 2
    for c in doc["curves"]:
        x = c["crossover_miss_rate"]
        print(
            f"{c['hardware']} P={c['P']} T={c['total']}: pass-Q faster below miss rate "
            + (f"{x:.3f}" if x is not None else "(no crossover in the grid)")
        )
    print("wrote", path, *figs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
