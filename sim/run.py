"""One configuration through the simulator: build its schedule, coarsen where that changes nothing,
run, and report in the JSON contract of ``predict`` plus a ``sim`` section of its own.

Coarsening (``coarsen=True``).  Without pipeline stages, a rank's work is ``microbatches x layers``
identical units run back to back (same ops, same costs).  We simulate a few units (``TRIES``: 3, then
12, or ``LONG_TRY`` = 20 where that is at most a quarter of the phase: the seed's ring on an NVLink
domain of 16 settles only after 16 units) and check that the last one repeats the one before it
exactly, shifted in time by a period c (every op of every rank, to 1e-9 of the latency).  The
engine is deterministic and time-invariant and a unit only interacts with its neighbours, so from
then on every unit repeats with the same period; the phase ends
(N - k) * c after the k simulated units.  If the check fails we simulate more units, then all of
them.  Bytes per link scale exactly with the unit count; busy, waiting and idle add one period's
worth per extra unit.

Pipelines (pp > 1, no chunks, m >= 2 (S + 3) micro-batches).  A faster stage runs ahead of the next a
little more each micro-batch, so its ops never repeat with the last stage's period and the check above
fails.  A pipeline's units are its micro-batches (each rank's layers, transfers and LM head of one
micro-batch); k = S + 3 of them are simulated (then 2k, where that is at most half of m): the fill,
middle units and the drain (the last micro-batch, with nothing behind it).  If on the rank of the op
that ends last (the critical path's stage) the middle units repeat exactly with period c (every op,
twice, to 1e-9 of the latency), the phase of m micro-batches ends (m - k) c later: more middle units
only delay the drain, and the latency is that of the full simulation (to 1e-12 in
``tests/test_sim_pipeline_coarsen.py``).  The stages that run ahead are off the critical path: their
ops shift by c to ``PIPELINE_TOLERANCE`` (5e-2) of c, the drift the result reports (``coarsen_exact``
False, ``coarsen_drift``); their busy, compute and transfer times are good to the drift x the latency,
waiting and idle (a stage ahead waits a little longer each micro-batch) to S x the drift x the
latency (what the tests check).  Bytes and busy time per link scale with the micro-batches.

Within a tolerance.  Some ranks settle slowly (an NVLink domain of 16 with 16 micro-batches: a rank
off the critical path drifts by ~1% of the period, shrinking ~5% a unit), so the exact check fails
at every try.  Then a try is accepted if the op that ends last (the latency's) repeats exactly with
period c, every other op's shift is c to ``COARSEN_TOLERANCE`` (1e-2) of c, that drift is smaller
than between the two units before, and ``TOLERANCE_AFTER`` (12) units were simulated (fewer units
than that are only extrapolated when they repeat exactly).  The result says so: ``coarsen_exact``
False, ``coarsen_tolerance`` and the drift observed (``coarsen_drift``) in the ``sim`` section;
per-rank figures are then good to the drift x the phase, the latency to what
``tests/test_sim_coarsen_tolerance.py`` checks against the full simulation.
``run_config(tolerance=0)`` accepts exact repeats only (pipelines included); ``coarsen=False`` runs all.

Ring steps.  A phase of one unit (one layer, one micro-batch, pp == 1) whose pass-KV prefill ring has
R - 2 middle steps (1..R-2) that cost the same on every rank (``build_schedule(ring_steps=k)`` says so)
is built twice with only k and k + p middle steps, A and B (k: a node's worth + RING_SETTLE, p = 4).
B must equal A op by op (start, end, transfer start, every rank, to 1e-9 of the latency) before
step k, repeat itself with one period c from step k - 1 on, and end (its last middle step, the last
ring step and what follows) exactly as A ends shifted by p * c.  Then inserting middle steps only
shifts the end, so the full ring of R - 2 middle steps ends (R - 2 - k) * c after A; per-rank and
per-link figures grow by (R - 2 - k) / p times B - A.
Otherwise k grows once, then the full schedule runs.  The critical path is of B (the simulated part).

Large rings.  A pass-KV prefill ring of ``MIN_RING`` (128) ranks or more, alone in its plan (one layer,
one micro-batch), is not simulated event by event but timed by a rank x step recurrence
(``ring_recurrence.py``): every op of every rank, no extrapolation, equal to the engine's full
simulation (tests/test_sim_ring_recurrence.py), where its sends share no link.  The result says so
(``method`` "recurrence"); ``coarsen=False`` runs the engine.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, replace

import numpy as np

from costmodel.build import build_schedule
from costmodel.config import Config
from costmodel.predict import predict
from costmodel.result import Result
from costmodel.schedule import COMPUTE_KINDS
from costmodel.specs import Phase

from .engine import SimOptions, SimResult, no_gc, simulate
from .report import _union_by_rank, critical_path, link_stats, rank_stats
from .ring_recurrence import MIN_RING, run_ring

TRIES = (3, 12)  # units simulated before falling back to the full schedule
LONG_TRY = 20  # instead of 12 units, where that is at most a quarter of the phase (ranks that settle slowly)
COARSEN_TOLERANCE = 1e-2  # the largest drift of a unit's period (relative) coarsening accepts (docstring)
TOLERANCE_AFTER = 12  # units simulated before a drift within the tolerance is accepted (ranks settle first)
PIPELINE_TRY = 3  # micro-batches beyond the stages a pipeline is simulated with (S + 3: the fill, two
#                   middle units that must repeat, the drain), where it has at least twice as many
PIPELINE_TOLERANCE = 5e-2  # the drift of a stage off the critical path a pipeline's coarsening accepts
RING_SETTLE = 4  # ring steps to settle, beyond a node's worth when hops cross nodes (a slow hop's lag
#                  moves one rank per step, so after a node's worth of steps every rank has felt it)


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
    ring_steps_total: int = 0  # middle ring steps (1..R-2) of the phase when those were coarsened, else 0
    ring_steps_simulated: int = 0  # of them, simulated (in run B)
    coarsen_exact: bool = True  # the simulated part repeats exactly (else to coarsen_drift of the period)
    coarsen_drift: float = 0.0  # largest deviation of an op's shift from the period, relative, when inexact
    coarsen_tolerance: float = 0.0  # the drift the accepted try was allowed (0: exact repeats only)
    events_all: int = 0  # events of every simulation this run made (coarsening tries included)
    sim_s_all: float = 0.0  # their engine wall time (building schedules excluded)
    method: str = "engine"  # or "recurrence": a ring's rank x step recurrence (sim/ring_recurrence.py)
    ops_total: int = 0  # ops the recurrence timed (every op of every rank); 0 for the engine
    critical: dict | None = None  # the critical path, where there is no engine result (result None)
    options: SimOptions | None = None  # the options, where there is no engine result

    @property
    def coarsened(self) -> bool:
        if self.method != "engine":
            return False
        return self.units_simulated < self.units_total or self.ring_steps_simulated < self.ring_steps_total


def _tries(n_units: int) -> tuple[int, ...]:
    """Units to simulate, one try after another: ``TRIES``, its last replaced by ``LONG_TRY`` where that is
    at most a quarter of the phase (a failed try then costs at most a quarter more than the full run)."""
    return (*TRIES[:-1], LONG_TRY) if 4 * LONG_TRY <= n_units else TRIES


def _build(cfg: Config, microbatches: int, layers: int):
    p, wl = cfg.plan, cfg.workload
    mb = wl.batch // p.microbatches
    plan = p.replace(microbatches=microbatches)
    wl2 = replace(wl, batch=mb * microbatches)
    return build_schedule(cfg.model, wl2, plan, cfg.topology, cfg.hardware, kernel=cfg.kernel, layers=layers)


def _unit_slices(res: SimResult, k: int) -> list[list[int]] | None:
    """Op indices of each rank's layers, or None if ranks' ops do not split into k equal units.  Ops
    outside a layer (the LM head) may follow the units (they shift with the last one); between units
    they would make the units unequal: None.  A pipeline's units are its micro-batches (``_mb_slices``).
    Computed once per result and k (the checks and the statistics ask several times)."""
    memo = res.memo.setdefault("unit_slices", {})
    if k not in memo:
        memo[k] = _find_unit_slices(res, k)
    return memo[k]


def _find_unit_slices(res: SimResult, k: int) -> list[list[int]] | None:
    if _is_pipeline(res):
        return _mb_slices(res, k)
    out: list[list[int]] = [[] for _ in range(res.schedule.n_ranks)]
    tail = [False] * res.schedule.n_ranks
    for i, op in enumerate(res.schedule.ops):  # one pass over the ops
        if op.layer < 0:
            tail[op.rank] = True
        elif tail[op.rank]:
            return None
        else:
            out[op.rank].append(i)
    if any(len(idx) % k for idx in out):
        return None
    return out


def _is_pipeline(res: SimResult) -> bool:
    return res.schedule.specs.get("plan", {}).get("pp", 1) > 1


def _mb_slices(res: SimResult, k: int) -> list[list[int]] | None:
    """A pipeline's units: each rank's ops of micro-batch 0, then of 1, ... (its stage's layers, the
    transfers and gathers of that micro-batch, its LM head), or None unless every rank has the same
    number of ops in each of the k micro-batches."""
    n = res.schedule.n_ranks
    per: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(n)]
    for i, op in enumerate(res.schedule.ops):
        if not 0 <= op.mb < k:
            return None
        per[op.rank][op.mb].append(i)
    if any(len(u) != len(units[0]) or not units[0] for units in per for u in units):
        return None
    return [[i for u in units for i in u] for units in per]


def _shifts(res: SimResult, k: int, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(start shift, end shift, op indices) of every op of unit u against unit u - 1, all ranks, or None
    if the ops do not split into k units of the same kinds."""
    per_rank = _unit_slices(res, k)
    if per_rank is None or k < 2:
        return None
    s, e = np.asarray(res.start), np.asarray(res.end)
    ds, de, ix = [], [], []
    for idx in per_rank:
        n = len(idx) // k
        last, prev = np.asarray(idx[u * n : (u + 1) * n]), np.asarray(idx[(u - 1) * n : u * n])
        if not all(res.schedule.ops[a].kind == res.schedule.ops[b].kind for a, b in zip(last[:3], prev[:3])):
            return None
        ds.append(s[last] - s[prev])
        de.append(e[last] - e[prev])
        ix.append(last)
    return np.concatenate(ds), np.concatenate(de), np.concatenate(ix)


def _period(res: SimResult, k: int, tolerance: float = 0.0) -> tuple[float, float] | None:
    """(c, drift) if unit k-1 repeats unit k-2 shifted by c on every op of every rank, else None.

    Exact (``tolerance`` 0): every op's shift is c to 1e-9 of the latency; drift is 0.  Within a
    tolerance: the op that ends last (the latency's) repeats exactly with c, every other op's shift is c
    to ``tolerance`` x c, and that deviation (drift, relative to c) is smaller than the one of the units
    before (the ranks that drift settle towards the period)."""
    got = _shifts(res, k, k - 1)
    if got is None:
        return None
    ds, de, ix = got
    tol = 1e-9 * max(res.latency_s, 1e-30)
    dev = np.maximum(np.abs(ds - ds[0]), np.abs(de - ds[0]))
    if float(dev.max()) <= tol:
        return float(ds[0]), 0.0
    if tolerance <= 0 or k < 3:
        return None
    e = np.asarray(res.end)[ix]
    crit = int(np.argmax(e))
    c = float(de[crit])
    dev = np.maximum(np.abs(ds - c), np.abs(de - c))
    if c <= 0 or abs(ds[crit] - c) > tol or abs(res.latency_s - e[crit]) > tol:
        return None
    before = _shifts(res, k, k - 2)
    drift = float(dev.max()) / c
    drift_before = float(np.maximum(np.abs(before[0] - c), np.abs(before[1] - c)).max()) / c
    if drift > tolerance or drift >= drift_before:
        return None
    return c, drift


def _pipeline_period(res: SimResult, k: int, tolerance: float) -> tuple[float, float] | None:
    """(c, drift) if a pipeline of k micro-batches has reached its period c: on the rank of the op that
    ends last, the middle units k-4 -> k-3 -> k-2 repeat exactly (every op shifted by the same c, to
    1e-9 of the latency), and on every rank every op of unit k-2 is shifted from unit k-3 by c to
    ``tolerance`` x c (drift: the largest such deviation, relative to c).  Unit k - 1 is the drain (the
    last micro-batch, nothing behind it), so the phase of m micro-batches ends (m - k) c after these k:
    inserting middle units only delays the drain (module docstring)."""
    if k < 4:
        return None
    now, before = _shifts(res, k, k - 2), _shifts(res, k, k - 3)
    if now is None or before is None:
        return None
    ops, e = res.schedule.ops, np.asarray(res.end)
    crit = ops[int(np.argmax(e))].rank
    mine = np.asarray([ops[i].rank == crit for i in now[2]])
    tol = 1e-9 * max(res.latency_s, 1e-30)
    c = float(now[1][mine][-1])
    for ds, de, _ in (now, before):
        if c <= 0 or max(np.abs(ds[mine] - c).max(), np.abs(de[mine] - c).max()) > tol:
            return None
    ds, de, _ = now
    dev = float(np.maximum(np.abs(ds - c), np.abs(de - c)).max())
    if dev <= tol:
        return c, 0.0
    return (c, dev / c) if dev <= tolerance * c else None


def _unit_stats(res: SimResult, k: int, u: int | None = None) -> list[dict]:
    """Per-rank busy / waiting of unit u alone (its ops' intervals; default the last)."""
    per_rank = _unit_slices(res, k)
    ops = res.schedule.ops
    u = k - 1 if u is None else u
    last = [i for idx in per_rank for i in idx[u * (len(idx) // k) : (u + 1) * (len(idx) // k)]]
    rank = np.asarray([ops[i].rank for i in last])
    comm = np.asarray([ops[i].kind not in COMPUTE_KINDS for i in last])
    s, e, x = (np.asarray(v)[last] for v in (res.start, res.end, res.xstart))
    n, T = res.schedule.n_ranks, res.latency_s
    compute = _union_by_rank(rank[~comm], s[~comm], e[~comm], n, T)
    transfer = _union_by_rank(rank[comm], x[comm], e[comm], n, T)
    r_all = np.concatenate((rank[~comm], rank[comm]))
    busy = _union_by_rank(
        r_all, np.concatenate((s[~comm], x[comm])), np.concatenate((e[~comm], e[comm])), n, T
    )
    r3 = np.concatenate((r_all, rank[comm]))
    issued = _union_by_rank(
        r3, np.concatenate((s[~comm], x[comm], s[comm])), np.concatenate((e[~comm], e[comm], x[comm])), n, T
    )
    return [
        {
            "busy_s": busy[r],
            "waiting_s": issued[r] - busy[r],
            "compute_s": compute[r],
            "transfer_s": transfer[r],
            "overlap_s": compute[r] + transfer[r] - busy[r],
        }
        for r in range(n)
    ]


def _ring_segments(res: SimResult, k: int) -> list[tuple[list[int], list[list[int]], list[int]]] | None:
    """Per rank: (ops before middle step 1, ops of middle steps 1..k, the rest), or None if a rank's ops
    do not split that way with the same number of ops in every middle step."""
    out = [([], [[] for _ in range(k)], []) for _ in range(res.schedule.n_ranks)]
    for i, op in enumerate(res.schedule.ops):
        pre, mid, tail = out[op.rank]
        t = op.step
        if 1 <= t <= k:
            if tail:
                return None
            mid[t - 1].append(i)
        elif tail or mid[0]:
            tail.append(i)
        else:
            pre.append(i)
    for _, mid, _ in out:
        if any(len(m) != len(mid[0]) for m in mid) or not mid[0]:
            return None
    return out


def _ring_period(a: SimResult, b: SimResult, k: int, p: int) -> float | None:
    """c if run B (k + p middle steps) is run A (k) with p steps of period c inserted (module docstring)."""
    sa, sb = _ring_segments(a, k), _ring_segments(b, k + p)
    if sa is None or sb is None or len(sa) != len(sb):
        return None
    tol = 1e-9 * max(b.latency_s, 1e-30)
    A = [np.asarray(v, dtype=float) for v in (a.start, a.end, a.xstart)]
    B = [np.asarray(v, dtype=float) for v in (b.start, b.end, b.xstart)]
    oa, ob = a.schedule.ops, b.schedule.ops
    c = B[0][sb[0][1][k - 1][0]] - B[0][sb[0][1][k - 2][0]]
    src, J, S = [], [], []  # B op J[n] must happen at A op src[n] (or B op src[n]) shifted by S[n]
    ia, ib = [], []  # pairs within B (periodicity)
    for (pa, ma, ta), (pb, mb, tb) in zip(sa, sb):
        if len(pa) != len(pb) or len(ta) != len(tb) or len(ma[0]) != len(mb[0]):
            return None
        before = pa + [i for m in ma[: k - 1] for i in m]
        src += before + ma[k - 1] + ta
        J += pb + [i for m in mb[: k - 1] for i in m] + mb[k + p - 1] + tb
        S += [0.0] * len(before) + [p * c] * (len(ma[k - 1]) + len(ta))
        for j in range(k - 2, k + p - 2):
            ia += mb[j]
            ib += mb[j + 1]
    if any(oa[i].kind != ob[j].kind or oa[i].est_s != ob[j].est_s for i, j in zip(src, J)):
        return None
    src, J, S = np.asarray(src), np.asarray(J), np.asarray(S)
    ia, ib = np.asarray(ia), np.asarray(ib)
    for x, y in zip(A, B):
        if not (_close(y[J], x[src] + S, tol) and _close(y[ib], y[ia] + c, tol)):
            return None
    if abs(b.latency_s - a.latency_s - p * c) > tol:
        return None
    return float(c)


def _close(x: np.ndarray, y: np.ndarray, tol: float) -> bool:
    both_nan = np.isnan(x) & np.isnan(y)
    return bool(np.all(both_nan | (np.abs(x - y) <= tol)))


def _run_ring_steps(cfg: Config, options: SimOptions | None, t0: float, tally: list) -> SimRun | None:
    """The ring-step coarsening of the module docstring, or None where it does not apply or hold."""
    build_s = 0.0
    topo = cfg.topology
    g = RING_SETTLE + (topo.gpus_per_node if topo.nodes > 1 else 0)
    for k, p in ((g, 4), (2 * g, 8)):  # (k, p) middle ring steps of runs A and B
        if 2 * k + p > cfg.plan.ring - 2:
            break  # simulating A and B would cost more than the whole ring
        runs = []
        for steps in (k, k + p):
            tb = _time.perf_counter()
            sched = build_schedule(
                cfg.model,
                cfg.workload,
                cfg.plan,
                cfg.topology,
                cfg.hardware,
                kernel=cfg.kernel,
                ring_steps=steps,
            )
            build_s += _time.perf_counter() - tb
            if not sched.ring_steps_built or not sched.ring_steps_uniform:
                return None  # too few steps to gain, or steps that differ: nothing to extrapolate
            runs.append(_simulate(tally, sched, cfg, options))
        a, b = runs
        c = _ring_period(a, b, k, p)
        if c is None:
            continue
        total = cfg.plan.ring - 2
        f = (total - k) / p  # B - A, f times, on top of A
        latency = a.latency_s + (total - k) * c
        ranks = rank_stats(b)
        for r, ra in zip(ranks, rank_stats(a)):
            for key in ("busy_s", "waiting_s", "compute_s", "transfer_s", "overlap_s"):
                r[key] = ra[key] + f * (r[key] - ra[key])
            r["idle_s"] = max(latency - r["busy_s"] - r["waiting_s"], 0.0)
            r["utilisation"] = r["compute_s"] / latency if latency > 0 else 0.0
        links, la = link_stats(b), link_stats(a)
        if [x["link"] for x in links] != [x["link"] for x in la]:
            continue
        for lk, lka in zip(links, la):
            for key in ("bytes", "busy_s"):
                lk[key] = lka[key] + f * (lk[key] - lka[key])
            lk["busy_fraction"] = lk["busy_s"] / latency if latency > 0 else 0.0
            lk["utilisation"] = lk["bytes"] / (lk["capacity_Bps"] * latency) if latency > 0 else 0.0
        return SimRun(
            result=b,
            latency_s=latency,
            units_total=1,
            units_simulated=1,
            period_s=c,
            ranks=ranks,
            links=links,
            build_s=build_s,
            wall_s=_time.perf_counter() - t0,
            ring_steps_total=total,
            ring_steps_simulated=k + p,
        )
    return None


def _run_pipeline(
    cfg: Config, options: SimOptions | None, t0: float, tally: list, tolerance: float
) -> SimRun | None:
    """A pipeline of m micro-batches from k = S + ``PIPELINE_TRY`` of them, then (where the stages ahead
    have not settled yet) 2k, each where it is at most half of m (``_pipeline_period``); or None."""
    m, build_s = cfg.plan.microbatches, 0.0
    for k in (cfg.plan.pp + PIPELINE_TRY, 2 * (cfg.plan.pp + PIPELINE_TRY)):
        if 2 * k > m:
            break
        tb = _time.perf_counter()
        sched = _build(cfg, k, cfg.model.layers)
        build_s += _time.perf_counter() - tb
        res = _simulate(tally, sched, cfg, options)
        got = _pipeline_period(res, k, tolerance)
        if got is not None:
            c, drift = got
            return _extrapolated(res, k, m, c, drift, tolerance if drift else 0.0, build_s, t0, u=k - 2)
    return None


def run_config(
    cfg: Config,
    options: SimOptions | None = None,
    coarsen: bool = True,
    tolerance: float | None = None,
    progress=None,
) -> SimRun:
    """Simulate one configuration (coarsened where provably unchanged, or where the period repeats to
    ``tolerance``: see the module docstring; None: ``COARSEN_TOLERANCE`` for units of layers,
    ``PIPELINE_TOLERANCE`` for a pipeline's micro-batches; 0 accepts exact repeats only).
    ``progress``: None, or ``progress(total, desc)`` returning a bar (``update``, ``close``) each
    simulation reports to (ops finished; ring steps for the recurrence)."""
    with no_gc():
        tally = [0, 0.0, progress]
        run = _run_config(cfg, options, coarsen, tally, tolerance)
    if run.method == "engine":
        run.events_all, run.sim_s_all = tally[:2]
    return run


def _simulate(tally: list, sched, cfg: Config, options: SimOptions | None) -> SimResult:
    res = simulate(sched, cfg.topology, cfg.hardware, options, progress=tally[2])
    tally[0] += res.n_events
    tally[1] += res.wall_s
    return res


def _extrapolated(
    res: SimResult,
    k: int,
    n_units: int,
    c: float,
    drift: float,
    tol: float,
    build_s: float,
    t0: float,
    u: int | None = None,
) -> SimRun:
    """The phase of ``n_units`` units from the k simulated ones and their period c: the latency grows by
    c per extra unit, per-rank figures by unit u's (default the last), bytes per link in proportion, and
    the time links are busy in proportion to the latency (units of layers) or, given u (a pipeline's
    micro-batches: the fill and drain are not busier), to the units."""
    extra = n_units - k
    latency = res.latency_s + extra * c
    unit = _unit_stats(res, k, u)
    ranks = rank_stats(res)
    for r, one in zip(ranks, unit):
        for key in ("busy_s", "waiting_s", "compute_s", "transfer_s", "overlap_s"):
            r[key] += extra * float(one[key])
        r["idle_s"] = max(latency - r["busy_s"] - r["waiting_s"], 0.0)
        r["utilisation"] = r["compute_s"] / latency if latency > 0 else 0.0
    links = link_stats(res)
    scale = n_units / k
    for lk in links:
        lk["bytes"] *= scale
        lk["busy_s"] *= scale if u is not None else latency / res.latency_s if res.latency_s > 0 else 1.0
        lk["busy_fraction"] = lk["busy_s"] / latency if latency > 0 else 0.0
        lk["utilisation"] = lk["bytes"] / (lk["capacity_Bps"] * latency) if latency > 0 else 0.0
    return SimRun(
        result=res,
        latency_s=latency,
        units_total=n_units,
        units_simulated=k,
        period_s=c,
        ranks=ranks,
        links=links,
        build_s=build_s,
        wall_s=_time.perf_counter() - t0,
        coarsen_exact=drift == 0.0,
        coarsen_drift=drift,
        coarsen_tolerance=tol,
    )


def _run_config(
    cfg: Config, options: SimOptions | None, coarsen: bool, tally: list, tolerance: float | None
) -> SimRun:
    t0 = _time.perf_counter()
    p = cfg.plan
    lps = cfg.model.layers // p.pp
    # pipelines: their micro-batches (_run_pipeline); the units below are identical layers (pp == 1)
    n_units = p.microbatches * lps if p.pp == 1 else 0
    if coarsen and p.ring >= MIN_RING:
        run = run_ring(
            cfg, options, t0, progress=tally[2]
        )  # every op timed by a recurrence (sim/ring_recurrence.py)
        if run is not None:
            return run
    if coarsen and n_units == 1 and p.ring > 2 and cfg.workload.phase == Phase.PREFILL:
        run = _run_ring_steps(cfg, options, t0, tally)
        if run is not None:
            return run
    if coarsen and p.pp > 1 and p.chunks == 1 and p.microbatches >= 2 * (p.pp + PIPELINE_TRY):
        tol = PIPELINE_TOLERANCE if tolerance is None else tolerance
        run = _run_pipeline(cfg, options, t0, tally, tol)
        if run is not None:
            return run
    tries = []  # (micro-batches, layers) to build
    for want in _tries(n_units) if coarsen and p.pp == 1 else ():
        if lps >= want:
            mk, lk = 1, want
        else:  # several micro-batches of the same (fewer) layers
            mk = -(-want // lps)
            lk = -(-want // mk)
        if mk * lk < n_units and (mk, lk) not in tries:
            tries.append((mk, lk))
    build_s = 0.0
    for m, layers in tries:
        k = m * layers
        tb = _time.perf_counter()
        sched = _build(cfg, m, layers)
        build_s += _time.perf_counter() - tb
        res = _simulate(tally, sched, cfg, options)
        tol_k = (COARSEN_TOLERANCE if tolerance is None else tolerance) if k >= TOLERANCE_AFTER else 0.0
        got = _period(res, k, tol_k)
        if got is None:
            continue
        c, drift = got
        return _extrapolated(res, k, n_units, c, drift, tol_k, build_s, t0)
    tb = _time.perf_counter()
    sched = build_schedule(cfg.model, cfg.workload, p, cfg.topology, cfg.hardware, kernel=cfg.kernel)
    build_s += _time.perf_counter() - tb
    res = _simulate(tally, sched, cfg, options)
    return SimRun(
        result=res,
        latency_s=res.latency_s,
        units_total=max(n_units, 1),
        units_simulated=max(n_units, 1),
        period_s=None,
        ranks=rank_stats(res),
        links=link_stats(res),
        build_s=build_s,
        wall_s=_time.perf_counter() - t0,
    )


def simulate_json(
    cfg: Config, run: SimRun, analytic: Result | None = None, path_steps: int | None = 200
) -> Result:
    """The simulator's ``Result``: its own latency, time breakdown and bottleneck (from the critical
    path it ran), the configuration-level figures the engines share (FLOPs, bytes, memory, roofline:
    they do not depend on timing), and a ``sim`` section: the analytic latency beside it, per-rank,
    per-link and critical-path figures."""
    a = predict(cfg) if analytic is None else analytic
    a_lat = a.latency_s
    lat = run.latency_s
    decode = cfg.workload.phase == Phase.DECODE
    res = run.result
    busy = [r["busy_s"] for r in run.ranks]
    if res is None:  # the recurrence: its own critical path, no engine events
        cp = dict(run.critical, steps=run.critical["steps"][:path_steps])
        opt = run.options
        n_ops, n_events, ev_s = run.ops_total, 0, None
    else:
        cp = critical_path(res, limit=path_steps)
        opt = res.options
        n_ops, n_events = len(res.schedule.ops), res.n_events
        ev_s = res.n_events / res.wall_s if res.wall_s > 0 else None
    # the critical path's shares, scaled to the whole phase when it was coarsened
    length = cp["compute_s"] + cp["comm_s"] + cp["gaps_s"]
    k = lat / length if length > 0 else 0.0
    breakdown = {
        "critical_path_compute": cp["compute_s"] * k,
        "critical_path_communication": cp["comm_s"] * k,
        "critical_path_gaps": cp["gaps_s"] * k,
    }
    names = {
        "critical_path_compute": "compute",
        "critical_path_communication": "communication",
        "critical_path_gaps": "waiting",
    }
    bottleneck = names[max(breakdown, key=breakdown.get)]
    sim = {
        "latency_s": lat,
        "analytic_latency_s": a_lat,
        "vs_analytic": lat / a_lat - 1 if a_lat else None,
        "method": run.method,
        "ops_simulated": n_ops,
        "events": n_events,
        "events_per_s": ev_s,
        "events_all": run.events_all,
        "events_per_s_all": run.events_all / run.sim_s_all if run.sim_s_all > 0 and run.events_all else None,
        "ops_per_s": run.ops_total / run.sim_s_all if res is None and run.sim_s_all > 0 else None,
        "wall_s": run.wall_s,
        "build_s": run.build_s,
        "coarsened": run.coarsened,
        "units_total": run.units_total,
        "units_simulated": run.units_simulated,
        "period_s": run.period_s,
        "period_of": None if run.period_s is None else ("ring step" if run.ring_steps_total else "unit"),
        "ring_steps_total": run.ring_steps_total,
        "ring_steps_simulated": run.ring_steps_simulated,
        "coarsen_exact": run.coarsen_exact,
        "coarsen_tolerance": run.coarsen_tolerance,
        "coarsen_drift": run.coarsen_drift,
        "busy_max_s": max(busy),
        "busy_min_s": min(busy),
        "imbalance": (max(busy) - min(busy)) / lat if lat > 0 else 0.0,
        "waiting_max_s": max(r["waiting_s"] for r in run.ranks),
        "critical_path_comm_fraction": cp["comm_s"] / lat if lat > 0 else 0.0,
        "options": {
            "compute_slowdown": opt.compute_slowdown,
            "expand_collectives": opt.expand_collectives,
            "nics_per_node": opt.nics_per_node or cfg.topology.gpus_per_node,
            "compute_slowdown_under_comm": cfg.hardware.compute_slowdown_under_comm,
            "attention_slowdown_under_comm": cfg.hardware.attention_slowdown_under_comm,
        },
        "per_rank": run.ranks,
        "links": run.links,
        "critical_path": {
            **cp,
            "note": (
                "of the simulated units (the phase was coarsened)" if run.coarsened else "of the whole phase"
            ),
        },
    }
    return replace(
        a,
        engine="simulator",
        latency_s=lat,
        tps=cfg.workload.tokens / lat if lat > 0 else None,
        tpot_s=lat if decode else None,
        ttft_s=None if decode else lat,
        bottleneck=bottleneck,
        time_breakdown_s=breakdown,
        sim=sim,
    )
