"""What a run produced: per-rank busy / waiting / idle time, link utilisation, the critical path,
a Chrome trace (Perfetto, chrome://tracing) and plain timeline records for plots."""

from __future__ import annotations

import numpy as np

from costmodel.schedule import COMPUTE_KINDS

from .engine import SimResult

# a trace thread (Perfetto track) per lane: sends and receives on tracks of their own, so a send is never
# drawn nested inside the receive it overlaps; a flow arrow joins each send to its receive
LANE_TID = {"compute": 0, "send": 1, "recv": 2, "collective": 3}


def lane(op) -> str:
    """The trace lane of an op: compute, send, recv, or collective (all-reduce, all-gather, ...)."""
    if op.kind in COMPUTE_KINDS:
        return "compute"
    return op.kind if op.kind in ("send", "recv") else "collective"


def _union_by_rank(rank: np.ndarray, a: np.ndarray, b: np.ndarray, n_ranks: int, span: float) -> np.ndarray:
    """Length of the union of intervals [a, b) per rank (vectorised: ranks offset apart in time)."""
    if len(a) == 0:
        return np.zeros(n_ranks)
    off = rank * (2.0 * span + 1.0)
    a2, b2 = a + off, b + off
    order = np.argsort(a2, kind="stable")
    a2, b2, rk = a2[order], b2[order], rank[order]
    reach = np.maximum.accumulate(b2)
    prev = np.concatenate(([-np.inf], reach[:-1]))
    seg = np.maximum(b2 - np.maximum(a2, prev), 0.0)
    return np.bincount(rk, weights=seg, minlength=n_ranks)


def rank_stats(res: SimResult) -> list[dict]:
    """Per rank: busy (a kernel doing work: compute, or a transfer moving), waiting (a comm op issued,
    its partner not there yet, nothing else running), idle (the rest of the phase), and their parts."""
    ops = res.schedule.ops
    n_ranks = res.schedule.n_ranks
    T = res.latency_s
    rank = np.fromiter((o.rank for o in ops), dtype=np.int64, count=len(ops))
    comm = np.fromiter((o.kind not in COMPUTE_KINDS for o in ops), dtype=bool, count=len(ops))
    s, e, x = np.asarray(res.start), np.asarray(res.end), np.asarray(res.xstart)
    cs, ce = s[~comm], e[~comm]
    xs, xe = x[comm], e[comm]
    compute = _union_by_rank(rank[~comm], cs, ce, n_ranks, T)
    transfer = _union_by_rank(rank[comm], xs, xe, n_ranks, T)
    r_all = np.concatenate((rank[~comm], rank[comm]))
    busy = _union_by_rank(r_all, np.concatenate((cs, xs)), np.concatenate((ce, xe)), n_ranks, T)
    r3 = np.concatenate((r_all, rank[comm]))
    issued = _union_by_rank(r3, np.concatenate((cs, xs, s[comm])), np.concatenate((ce, xe, xs)), n_ranks, T)
    overlap = compute + transfer - busy
    return [
        {
            "rank": r,
            "busy_s": float(busy[r]),
            "waiting_s": float(issued[r] - busy[r]),
            "idle_s": float(max(T - issued[r], 0.0)),
            "compute_s": float(compute[r]),
            "transfer_s": float(transfer[r]),
            "overlap_s": float(overlap[r]),
            "utilisation": float(compute[r] / T) if T > 0 else 0.0,
        }
        for r in range(n_ranks)
    ]


def link_stats(res: SimResult) -> list[dict]:
    net, T = res.network, res.latency_s
    out = []
    for lk in range(net.n_links):
        nb = res.link_bytes[lk]
        if nb <= 0:
            continue
        cap = net.cap[lk]
        out.append(
            {
                "link": net.name(lk),
                "type": net.kind(lk),
                "bytes": nb,
                "busy_s": res.link_busy_s[lk],
                "busy_fraction": res.link_busy_s[lk] / T if T > 0 else 0.0,
                "utilisation": nb / (cap * T) if T > 0 else 0.0,
                "capacity_Bps": cap,
            }
        )
    return out


def critical_path(res: SimResult, limit: int | None = None) -> dict:
    """The chain of ops that set the phase's end, and its time by op kind (transfers from their start;
    gaps are latency not owned by any op, e.g. a pipeline transfer waiting on the stream)."""
    ops = res.schedule.ops
    by_kind: dict[str, float] = {}
    steps = []
    t_prev = 0.0
    gaps = 0.0
    for i, a, b in res.critical_path:
        op = ops[i]
        by_kind[op.kind] = by_kind.get(op.kind, 0.0) + (b - a)
        gaps += max(a - t_prev, 0.0)
        t_prev = b
        steps.append(
            {"rank": op.rank, "stream": op.stream, "kind": op.kind, "tag": op.tag, "start_s": a, "end_s": b}
        )
    comm = sum(v for k, v in by_kind.items() if k not in COMPUTE_KINDS)
    return {
        "length_s": res.latency_s,
        "ops": len(steps),
        "compute_s": sum(by_kind.values()) - comm,
        "comm_s": comm,
        "gaps_s": gaps,
        "by_kind_s": by_kind,
        "steps": steps if limit is None else steps[:limit],
    }


def timeline_records(res: SimResult) -> list[dict]:
    """One record per op: {"rank", "stream", "kind", "tag", "start_s", "end_s"} (the plots format)."""
    return [
        {"rank": op.rank, "stream": op.stream, "kind": op.kind, "tag": op.tag, "start_s": s, "end_s": e}
        for op, s, e in zip(res.schedule.ops, res.start, res.end)
    ]


def chrome_trace(res: SimResult, label: str = "ringsim simulate") -> dict:
    """Chrome trace event format (Perfetto, chrome://tracing): one process per rank, one thread per lane
    (compute, send, recv, collective), ops named by tag, and a flow arrow (``ph`` ``s`` -> ``f``, one id per
    transfer) from each send, where its transfer starts, to the matching receive, where it ends."""
    topo = res.network.topo
    ev: list[dict] = []
    for r in range(res.schedule.n_ranks):
        ev.append(
            {
                "name": "process_name",
                "ph": "M",
                "pid": r,
                "args": {"name": f"rank {r} (GPU {r}, node {topo.node_of(r)})"},
            }
        )
        ev.append({"name": "process_sort_index", "ph": "M", "pid": r, "args": {"sort_index": r}})
        for name, tid in LANE_TID.items():
            ev.append({"name": "thread_name", "ph": "M", "pid": r, "tid": tid, "args": {"name": name}})
            ev.append(
                {"name": "thread_sort_index", "ph": "M", "pid": r, "tid": tid, "args": {"sort_index": tid}}
            )
    sends: dict[int, tuple] = {}
    recvs: dict[int, tuple] = {}
    for op, s, e, x in zip(res.schedule.ops, res.start, res.end, res.xstart):
        args = {"op": op.id, "kind": op.kind}
        if op.kind not in COMPUTE_KINDS:
            args.update(waiting_us=(x - s) * 1e6, bytes=op.msg_bytes, link=op.link, peers=list(op.peers))
        else:
            args.update(flops=op.flops, hbm_bytes=op.hbm_bytes, est_us=op.est_s * 1e6)
        ln = lane(op)
        ev.append(
            {
                "name": op.tag,
                "cat": op.kind,
                "ph": "X",
                "pid": op.rank,
                "tid": LANE_TID[ln],
                "ts": s * 1e6,
                "dur": max(e - s, 0.0) * 1e6,
                "args": args,
            }
        )
        if ln == "send":
            sends[op.match] = (op, x, e)
        elif ln == "recv":
            recvs[op.match] = (op, x, e)
    for m, (snd, xs, es) in sends.items():
        if m not in recvs:
            continue
        rcv, xr, er = recvs[m]
        if not all(np.isfinite((xs, es, xr, er))):
            continue
        # inside each slice (a flow binds to the slice around its timestamp): the transfer's start on the
        # send, its last moment on the receive
        t_s = min(xs, es) * 1e6
        t_f = max(xr, er - min(1e-9, max(er - xr, 0.0) / 2)) * 1e6
        common = {"name": "transfer", "cat": "transfer", "id": int(m)}
        ev.append({**common, "ph": "s", "pid": snd.rank, "tid": LANE_TID["send"], "ts": t_s})
        ev.append({**common, "ph": "f", "bp": "e", "pid": rcv.rank, "tid": LANE_TID["recv"], "ts": t_f})
    return {
        "traceEvents": ev,
        "displayTimeUnit": "ms",
        "otherData": {"label": label, "specs": res.schedule.specs},
    }
