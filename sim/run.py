"""One configuration through the simulator: build its schedule, coarsen where that changes nothing,
run, and report in the JSON contract of ``predict`` plus a ``sim`` section of its own.

Coarsening (``coarsen=True``).  Without pipeline stages, a rank's work is ``microbatches x layers``
identical units run back to back (same ops, same costs).  We simulate a few units and check that the
last one repeats the one before it exactly, shifted in time by a period c (every op of every rank,
to 1e-9 of the latency).  The engine is deterministic and time-invariant and a unit only interacts
with its neighbours, so from then on every unit repeats with the same period; the phase ends
(N - k) * c after the k simulated units.  If the check fails we simulate more units, then all of
them.  Bytes per link scale exactly with the unit count; busy, waiting and idle add one period's
worth per extra unit.  Pipelines (pp > 1) are simulated in full.
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, replace

import numpy as np

from costmodel.build import build_schedule
from costmodel.config import Config
from costmodel.layers import COMPUTE_KINDS
from costmodel.predict import predict
from costmodel.specs import Phase

from .engine import SimOptions, SimResult, no_gc, simulate
from .report import _union_by_rank, critical_path, link_stats, rank_stats

TRIES = (3, 6)  # units simulated before falling back to the full schedule


@dataclass
class SimRun:
    """A run of one configuration: the (possibly coarsened) simulation and the extrapolated figures."""

    result: SimResult
    latency_s: float
    units_total: int  # identical units of the phase (microbatches x layers when pp == 1)
    units_simulated: int
    period_s: float | None  # time per unit once periodic (None: not coarsened)
    ranks: list[dict]
    links: list[dict]
    build_s: float
    wall_s: float

    @property
    def coarsened(self) -> bool:
        return self.units_simulated < self.units_total


def _build(cfg: Config, microbatches: int, layers: int):
    p, wl = cfg.plan, cfg.workload
    mb = wl.batch // p.microbatches
    plan = replace(p, microbatches=microbatches)
    wl2 = replace(wl, batch=mb * microbatches)
    return build_schedule(cfg.model, wl2, plan, cfg.topology, cfg.hardware, kernel=cfg.kernel, layers=layers)


def _unit_slices(res: SimResult, k: int) -> list[list[int]] | None:
    """Op indices of each rank, or None if ranks' ops do not split into k equal units."""
    out = []
    for r in range(res.schedule.n_ranks):
        idx = [i for i, op in enumerate(res.schedule.ops) if op.rank == r]
        if len(idx) % k:
            return None
        out.append(idx)
    return out


def _period(res: SimResult, k: int) -> float | None:
    """c if unit k-1 repeats unit k-2 shifted by c on every op of every rank, else None."""
    per_rank = _unit_slices(res, k)
    if per_rank is None or k < 2:
        return None
    s, e = np.asarray(res.start), np.asarray(res.end)
    tol = 1e-9 * max(res.latency_s, 1e-30)
    c = None
    for idx in per_rank:
        n = len(idx) // k
        last, prev = np.asarray(idx[(k - 1) * n:]), np.asarray(idx[(k - 2) * n:(k - 1) * n])
        tags_ok = all(res.schedule.ops[a].kind == res.schedule.ops[b].kind for a, b in zip(last[:3], prev[:3]))
        if not tags_ok:
            return None
        ds, de = s[last] - s[prev], e[last] - e[prev]
        if c is None:
            c = float(ds[0])
        if np.max(np.abs(ds - c)) > tol or np.max(np.abs(de - c)) > tol:
            return None
    return c


def _unit_stats(res: SimResult, k: int) -> list[dict]:
    """Per-rank busy / waiting of the last unit alone (its ops' intervals)."""
    per_rank = _unit_slices(res, k)
    ops = res.schedule.ops
    last = [i for idx in per_rank for i in idx[(k - 1) * (len(idx) // k):]]
    rank = np.asarray([ops[i].rank for i in last])
    comm = np.asarray([ops[i].kind not in COMPUTE_KINDS for i in last])
    s, e, x = (np.asarray(v)[last] for v in (res.start, res.end, res.xstart))
    n, T = res.schedule.n_ranks, res.latency_s
    compute = _union_by_rank(rank[~comm], s[~comm], e[~comm], n, T)
    transfer = _union_by_rank(rank[comm], x[comm], e[comm], n, T)
    r_all = np.concatenate((rank[~comm], rank[comm]))
    busy = _union_by_rank(r_all, np.concatenate((s[~comm], x[comm])), np.concatenate((e[~comm], e[comm])), n, T)
    r3 = np.concatenate((r_all, rank[comm]))
    issued = _union_by_rank(r3, np.concatenate((s[~comm], x[comm], s[comm])),
                            np.concatenate((e[~comm], e[comm], x[comm])), n, T)
    return [{"busy_s": busy[r], "waiting_s": issued[r] - busy[r], "compute_s": compute[r],
             "transfer_s": transfer[r], "overlap_s": compute[r] + transfer[r] - busy[r]} for r in range(n)]


def run_config(cfg: Config, options: SimOptions | None = None, coarsen: bool = True) -> SimRun:
    """Simulate one configuration (coarsened where provably unchanged, see the module docstring)."""
    with no_gc():
        return _run_config(cfg, options, coarsen)


def _run_config(cfg: Config, options: SimOptions | None, coarsen: bool) -> SimRun:
    t0 = _time.perf_counter()
    p = cfg.plan
    lps = cfg.model.layers // p.pp
    n_units = p.microbatches * lps if p.pp == 1 else 0
    tries = []  # (micro-batches, layers) to build: whole micro-batches once a micro-batch is too short
    for want in (TRIES if coarsen and p.pp == 1 else ()):
        mk, lk = (1, want) if lps >= want else (-(-want // lps), lps)
        if mk * lk < n_units and (mk, lk) not in tries:
            tries.append((mk, lk))
    build_s = 0.0
    for m, layers in tries:
        k = m * layers
        tb = _time.perf_counter()
        sched = _build(cfg, m, layers)
        build_s += _time.perf_counter() - tb
        res = simulate(sched, cfg.topology, cfg.hardware, options)
        c = _period(res, k)
        if c is None:
            continue
        extra = n_units - k
        latency = res.latency_s + extra * c
        unit = _unit_stats(res, k)
        ranks = rank_stats(res)
        for r, u in zip(ranks, unit):
            for key in ("busy_s", "waiting_s", "compute_s", "transfer_s", "overlap_s"):
                r[key] += extra * float(u[key])
            r["idle_s"] = max(latency - r["busy_s"] - r["waiting_s"], 0.0)
            r["utilisation"] = r["compute_s"] / latency if latency > 0 else 0.0
        links = link_stats(res)
        scale = n_units / k
        for lk in links:
            lk["bytes"] *= scale
            lk["busy_s"] *= latency / res.latency_s if res.latency_s > 0 else 1.0
            lk["busy_fraction"] = lk["busy_s"] / latency if latency > 0 else 0.0
            lk["utilisation"] = lk["bytes"] / (lk["capacity_Bps"] * latency) if latency > 0 else 0.0
        return SimRun(result=res, latency_s=latency, units_total=n_units, units_simulated=k, period_s=c,
                      ranks=ranks, links=links, build_s=build_s, wall_s=_time.perf_counter() - t0)
    tb = _time.perf_counter()
    sched = build_schedule(cfg.model, cfg.workload, p, cfg.topology, cfg.hardware, kernel=cfg.kernel)
    build_s += _time.perf_counter() - tb
    res = simulate(sched, cfg.topology, cfg.hardware, options)
    return SimRun(result=res, latency_s=res.latency_s, units_total=max(n_units, 1),
                  units_simulated=max(n_units, 1), period_s=None, ranks=rank_stats(res), links=link_stats(res),
                  build_s=build_s, wall_s=_time.perf_counter() - t0)


def simulate_json(cfg: Config, run: SimRun, analytic: dict | None = None, path_steps: int | None = 200) -> dict:
    """``predict(cfg)`` with latency, tps, tpot_s, ttft_s and engine replaced by the simulator's,
    plus a ``sim`` dict: the analytic latency beside it, per-rank, per-link and critical-path figures."""
    out = dict(predict(cfg) if analytic is None else analytic)
    a_lat = out["latency_s"]
    lat = run.latency_s
    decode = cfg.workload.phase == Phase.DECODE
    out.update(engine="simulator", latency_s=lat, tps=cfg.workload.tokens / lat if lat > 0 else None,
               tpot_s=lat if decode else None, ttft_s=None if decode else lat)
    res = run.result
    busy = [r["busy_s"] for r in run.ranks]
    cp = critical_path(res, limit=path_steps)
    opt = res.options
    out["sim"] = {
        "latency_s": lat,
        "analytic_latency_s": a_lat,
        "vs_analytic": lat / a_lat - 1 if a_lat else None,
        "ops_simulated": len(res.schedule.ops),
        "events": res.n_events,
        "events_per_s": res.n_events / res.wall_s if res.wall_s > 0 else None,
        "wall_s": run.wall_s,
        "build_s": run.build_s,
        "coarsened": run.coarsened,
        "units_total": run.units_total,
        "units_simulated": run.units_simulated,
        "period_s": run.period_s,
        "busy_max_s": max(busy),
        "busy_min_s": min(busy),
        "imbalance": (max(busy) - min(busy)) / lat if lat > 0 else 0.0,
        "waiting_max_s": max(r["waiting_s"] for r in run.ranks),
        "critical_path_comm_fraction": cp["comm_s"] / lat if lat > 0 else 0.0,
        "options": {"compute_slowdown": opt.compute_slowdown, "expand_collectives": opt.expand_collectives,
                    "nics_per_node": opt.nics_per_node or cfg.topology.gpus_per_node,
                    "compute_slowdown_under_comm": cfg.hardware.compute_slowdown_under_comm},
        "per_rank": run.ranks,
        "links": run.links,
        "critical_path": {**cp, "note": ("of the simulated units (the phase was coarsened)" if run.coarsened
                                         else "of the whole phase")},
    }
    return out
