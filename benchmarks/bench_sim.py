"""Benchmark: simulator speed, building the schedule included (figures, not a timed test).

    python benchmarks/bench_sim.py            # seed configuration, both plans (target <= 2 s each on 2 cores)
                                              # + the 1024-GPU ring of one layer (target <= 30 s)
    python benchmarks/bench_sim.py --rings    # + rings of one layer on 8-GPU IB nodes, 128 and 256 GPUs
    python benchmarks/bench_sim.py --full     # + the seed ring and the 1024-GPU ring with coarsening off (minutes)

The 1024-GPU ring runs on ``ib:128x8``: an NVLink domain holds at most 576 GPUs (topology.py), so
``nvlink-domain:1024`` is not a valid topology.  Its middle ring steps repeat exactly, so the simulator
runs two short rings (k and k + p middle steps) and extrapolates (sim/run.py, tests/test_sim_ring_coarsen.py);
``ops`` is what it simulated, ``stands for`` what the full schedule has.  ``events`` and events/s count
every simulation the run made (both short rings, and any coarsening try that did not repeat).
"""
from __future__ import annotations

import argparse
import os
import time

from costmodel import presets
from costmodel.config import Config
from costmodel.plan import parse_plan
from costmodel.specs import Workload
from costmodel.topology import parse_topology
from sim import run_config


def _one(label: str, cfg: Config, coarsen: bool = True, target_s: float | None = None) -> None:
    t0 = time.perf_counter()
    r = run_config(cfg, coarsen=coarsen)
    total = time.perf_counter() - t0
    res = r.result
    n_ops = len(res.schedule.ops)
    steps = r.ring_steps_total + 2 if r.ring_steps_total else 0
    full_ops = (n_ops * r.units_total // r.units_simulated if not steps else
                _stands_for(res.schedule, r.ring_steps_simulated, r.ring_steps_total))
    verdict = "" if target_s is None else (f"  [target <= {target_s:g} s: {'met' if total <= target_s else 'MISSED'}]")
    how = (f"ring steps {r.ring_steps_simulated + 2}/{steps}" if steps else f"units {r.units_simulated}/{r.units_total}")
    print(f"{label:40s} ops {n_ops:>8,} (stands for {full_ops:>10,})  {how:18s} build {r.build_s:7.2f} s"
          f"  sim {r.sim_s_all:7.2f} s  total {total:7.2f} s  events {r.events_all:>10,}"
          f"  {r.events_all / r.sim_s_all:>9,.0f} events/s  latency {r.latency_s:.10g} s{verdict}", flush=True)


def _stands_for(sched, built: int, total: int) -> int:
    """Ops of the full schedule: each rank's middle-step ops scaled from ``built`` steps to ``total``."""
    mid = sum(1 for op in sched.ops if (t := _step(op.tag)) is not None and 1 <= t <= built)
    return len(sched.ops) + mid * (total - built) // built


def _step(tag: str) -> int | None:
    i = tag.find("/ring/step")
    return int(tag[i + 10:].split("/", 1)[0]) if i >= 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rings", action="store_true", help="also rings of one layer on 128 and 256 GPUs")
    ap.add_argument("--ring1024", action="store_true", help="(kept for old command lines: the 1024-GPU ring always runs)")
    ap.add_argument("--full", action="store_true", help="also the seed ring and the 1024-GPU ring with coarsening off")
    a = ap.parse_args()
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    hw, seed = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
    topo = parse_topology("ib:2x8")
    wl = Workload(batch=128, seq_len=100000)
    for plan, label in (("tp=8,pp=2,mb=16", "seed tp=8,pp=2 m=16 (ib:2x8)"),
                        ("ring=16,mb=16", "seed ring=16 m=16 (ib:2x8)"),
                        ("ring=16", "seed ring=16 m=1 (ib:2x8)")):
        cfg = Config(hardware=hw, topology=topo, model=seed, workload=wl, plan=parse_plan(plan))
        _one(label, cfg, target_s=2.0)
    if a.full:
        cfg = Config(hardware=hw, topology=topo, model=seed, workload=wl, plan=parse_plan("ring=16,mb=16"))
        _one("seed ring=16 m=16, coarsening off", cfg, coarsen=False)
    one = presets.load_model("seed-dense", layers=1)
    for R in ([128, 256] if a.rings else []) + [1024]:
        cfg = Config(hardware=hw, topology=parse_topology(f"ib:{R // 8}x8"), model=one,
                     workload=Workload(batch=1, seq_len=2 * R * 64), plan=parse_plan(f"ring={R}"))
        _one(f"ring={R}, 1 layer (ib:{R // 8}x8)", cfg, target_s=30.0 if R == 1024 else None)
        if a.full and R == 1024:
            _one(f"ring={R}, 1 layer, coarsening off", cfg, coarsen=False)


if __name__ == "__main__":
    main()
