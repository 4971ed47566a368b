"""Benchmark: simulator speed, building the schedule included (figures, not a timed test).

    python benchmarks/bench_sim.py            # the seed configuration (16 layers, B = 128, L = 100,000,
                                              # h100-sxm), tp=8,pp=2 and ring=16 with 16 micro-batches, on
                                              # ib:2x8 and nvlink-domain:16 (target <= 1 s each) + the
                                              # 1024-GPU ring of one layer at L = 131,072 (coarsened by its
                                              # repeating ring steps)
    python benchmarks/bench_sim.py --long     # + the 1024-GPU ring of one layer at L = 1Mi, zigzag
                                              # (target <= 10 s and <= 1 GB; minutes and GBs today)
    python benchmarks/bench_sim.py --rings    # + rings of one layer on 8-GPU IB nodes, 128 and 256 GPUs
    python benchmarks/bench_sim.py --full     # + the seed ring (nvlink-domain:16) with coarsening off
                                              # (seconds)

Each case runs in a fresh process: ``wall`` and ``cpu`` (that process's CPU time) cover building and
simulating, ``peak`` is the process's peak resident memory (the interpreter and imports included, ~35 MB).
``events`` and events/s count every simulation the run made (coarsening tries included); ``coarsened``
says how: units simulated / total, ring steps, and whether the repeat was exact or within the
tolerance (``sim/run.py``).  The 1024-GPU ring runs on ``ib:128x8``: an NVLink domain holds at most 576 GPUs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor


def _case(plan: str, topo: str, layers: int | None, batch: int, seq: int, coarsen: bool) -> dict:
    from costmodel import presets
    from costmodel.config import Config
    from costmodel.plan import parse_plan
    from costmodel.specs import Workload
    from costmodel.topology import parse_topology
    from sim import run_config

    hw = presets.load_hardware("h100-sxm")
    model = presets.load_model("seed-dense", **({"layers": layers} if layers else {}))
    cfg = Config(
        hardware=hw,
        topology=parse_topology(topo),
        model=model,
        workload=Workload(batch=batch, seq_len=seq),
        plan=parse_plan(plan),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    r = run_config(cfg, coarsen=coarsen)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    how = (
        f"ring steps {r.ring_steps_simulated + 2}/{r.ring_steps_total + 2}"
        if r.ring_steps_total
        else f"units {r.units_simulated}/{r.units_total}"
    )
    if r.coarsened:
        how += " exact" if r.coarsen_exact else f" drift {r.coarsen_drift:.1e} <= {r.coarsen_tolerance:g}"
    return {
        "wall": wall,
        "cpu": cpu,
        "build": r.build_s,
        "events": r.events_all,
        "ev_s": r.events_all / r.sim_s_all if r.sim_s_all else 0.0,
        "how": how,
        "latency": r.latency_s,
        "ops": len(r.result.schedule.ops),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _one(label: str, *args, target_s: float | None = None, target_mb: float | None = None) -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        r = ex.submit(_case, *args).result()
    verdict = ""
    if target_s is not None:
        ok = r["wall"] <= target_s and (target_mb is None or r["peak_mb"] <= target_mb)
        verdict = (
            f"  [target <= {target_s:g} s"
            + (f", <= {target_mb:g} MB" if target_mb else "")
            + f": {'met' if ok else 'MISSED'}{'' if ok or r['cpu'] > target_s else ' (met in CPU time)'}]"
        )
    print(
        f"{label:44s} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s  build {r['build']:6.2f} s  "
        f"ops {r['ops']:>9,}"
        f"  events {r['events']:>9,}  {r['ev_s']:>8,.0f} events/s  peak {r['peak_mb']:6.0f} MB  "
        f"{r['how']:28s}"
        f"  latency {r['latency']:.10g} s{verdict}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--long", action="store_true", help="also the 1024-GPU ring of one layer at L = 1Mi")
    ap.add_argument("--rings", action="store_true", help="also rings of one layer on 128 and 256 GPUs")
    ap.add_argument(
        "--full", action="store_true", help="also the seed ring on nvlink-domain:16 with coarsening off"
    )
    ap.add_argument(
        "--ring1024", action="store_true", help="(kept for old command lines: the 1024-GPU ring always runs)"
    )
    a = ap.parse_args()
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    for topo in ("ib:2x8", "nvlink-domain:16"):
        for plan in ("tp=8,pp=2,mb=16", "ring=16,mb=16"):
            _one(f"seed {plan} ({topo})", plan, topo, None, 128, 100000, True, target_s=1.0)
    if a.full:
        _one(
            "seed ring=16,mb=16 (nvlink-domain:16), no coarsening",
            "ring=16,mb=16",
            "nvlink-domain:16",
            None,
            128,
            100000,
            False,
        )
    for R in ([128, 256] if a.rings else []) + [1024]:
        _one(
            f"ring={R}, 1 layer, L={2 * R * 64} (ib:{R // 8}x8)",
            f"ring={R}",
            f"ib:{R // 8}x8",
            1,
            1,
            2 * R * 64,
            True,
        )
    if a.long:
        _one(
            "ring=1024, 1 layer, L=1Mi (ib:128x8)",
            "ring=1024",
            "ib:128x8",
            1,
            1,
            1 << 20,
            True,
            target_s=10.0,
            target_mb=1024.0,
        )


if __name__ == "__main__":
    main()
