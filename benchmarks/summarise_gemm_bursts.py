"""Summary of a ``bench_gemm_bursts.py`` raw file: per kernel its steady (back-to-back) call time, the call
time right after idling, their ratio, and per busy period and duty the median call and the fast window (the
busy time before the calls slow past half way from the fast time to the steady one, median over cycles).

    python benchmarks/summarise_gemm_bursts.py \
        validation/data/calibration/h200x1_gemm_bursts_raw_20261129.json
"""

from __future__ import annotations

import json
import statistics as st
import sys


def fast_window(cycle: list[float], fast: float, steady: float) -> float | None:
    """Busy seconds before the first call slower than half way from ``fast`` to ``steady`` (None: none)."""
    mid, t = (fast + steady) / 2, 0.0
    for c in cycle:
        if c > mid:
            return t
        t += c
    return None


def main(path: str) -> None:
    d = json.load(open(path))
    rs = d["results"]
    print(f"# {path}: {d['provenance']['gpu']}, {d['provenance']['date']}")
    for name in dict.fromkeys(r["name"] for r in rs):
        mine = [r for r in rs if r["name"] == name]
        steady = st.median([r["median_last_half_s"] for r in mine if r["mode"] == "steady"])
        first = [c[0] for r in mine if r["mode"] == "cycle" and r["duty"] <= 0.5 for c in r["samples_s"]]
        fast = st.median(first)
        print(
            f"{name}: steady {steady * 1e3:.3f} ms, first call after idle {fast * 1e3:.3f} ms, "
            f"ratio {steady / fast:.3f}"
        )
        for r in mine:
            if r["mode"] != "cycle":
                continue
            ws = [fast_window(c, fast, steady) for c in r["samples_s"][1:]]
            w = [x for x in ws if x is not None]
            busy = st.median([sum(c) for c in r["samples_s"]])
            print(
                f"  busy {busy * 1e3:6.1f} ms ({r['calls_per_busy']:3d} calls) duty {r['duty']:.2f}: "
                "median call "
                f"{r['median_last_half_s'] * 1e3:.3f} ms ({steady / r['median_last_half_s']:.3f}x steady); "
                + (
                    f"fast window {st.median(w) * 1e3:.0f} ms"
                    if len(w) * 2 > len(ws)
                    else "no slow-down in most busy periods"
                )
            )


if __name__ == "__main__":
    main(sys.argv[1])
