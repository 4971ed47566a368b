"""Exact timelines of the simulator on tiny hand-checkable schedules (times in ms, checked to 1e-12 s).

Profile: h100-sxm with NVLink p2p at 100 GB/s and no latency, and NVLink ports of 100 GB/s per
direction, so 1e8 bytes take exactly 1 ms alone on a link.
"""

import math

import pytest

from costmodel.errors import SpecError
from costmodel.kernels import comm_time
from costmodel.presets import load_hardware
from costmodel.schedule import Op, Schedule
from costmodel.topology import parse_topology
from sim import SimOptions, chrome_trace, critical_path, rank_stats, simulate, timeline_records

MS = 1e-3
HW_SET = [
    "achievable.comm.nvlink.p2p.bw_GBps=100",
    "achievable.comm.nvlink.p2p.latency_us=0",
    "peak.nvlink_links=4",
    "peak.nvlink_link_GBps=25",
    "achievable.compute_slowdown_under_comm=1.0",
]


@pytest.fixture(scope="module")
def hw():
    return load_hardware("h100-sxm", HW_SET)


class B:
    """A tiny schedule builder: ops get consecutive ids; est_s in ms."""

    def __init__(self):
        self.ops = []

    def c(self, rank, ms, tag, deps=()):
        return self._add(
            rank=rank, stream="compute", kind="gemm", role="qkv", tag=tag, deps=tuple(deps), est_s=ms * MS
        )

    def send(self, rank, dst, nbytes, match, tag, deps=(), batch=-1):
        return self._add(
            rank=rank,
            stream="comm",
            kind="send",
            role="ring_kv",
            tag=tag,
            deps=tuple(deps),
            peers=(dst,),
            match=match,
            batch=batch,
            msg_bytes=nbytes,
            link_bytes=nbytes,
            link="nvlink",
            est_s=nbytes / 100e9,
        )

    def recv(self, rank, src, nbytes, match, tag, deps=(), batch=-1):
        return self._add(
            rank=rank,
            stream="comm",
            kind="recv",
            role="ring_kv",
            tag=tag,
            deps=tuple(deps),
            peers=(src,),
            match=match,
            batch=batch,
            msg_bytes=nbytes,
            link="nvlink",
            est_s=nbytes / 100e9,
        )

    def _add(self, **kw):
        op = Op(id=len(self.ops), **kw)
        self.ops.append(op)
        return op.id

    def schedule(self, n):
        return Schedule(n_ranks=n, ops=self.ops)


def times(res):
    return [(round(s / MS, 9), round(e / MS, 9)) for s, e in zip(res.start, res.end)]


def test_pair_waits_for_both_sides_and_streams_serialise(hw):
    b = B()
    a = b.c(0, 1, "A")
    b.send(0, 1, 1e8, 7, "send", deps=[a])
    rv = b.recv(1, 0, 1e8, 7, "recv")  # posted at t=0, transfer starts when the send starts (1 ms)
    b.c(1, 3, "B")
    b.c(1, 1, "C", deps=[rv])  # C needs the recv (done at 2 ms) and the compute stream (B until 3 ms)
    res = simulate(b.schedule(2), parse_topology("nvswitch:2"), hw)
    assert times(res) == [(0, 1), (1, 2), (0, 2), (0, 3), (3, 4)]
    assert res.xstart[2] == pytest.approx(1 * MS, abs=1e-15)
    assert res.latency_s == pytest.approx(4 * MS, abs=1e-15)
    # critical path: B then C (C was released by B, the later of its two predecessors)
    assert [res.schedule.ops[i].tag for i, _, _ in res.critical_path] == ["B", "C"]


def test_late_receiver_makes_sender_wait(hw):
    b = B()
    a = b.c(0, 1, "A")
    b.send(0, 1, 1e8, 7, "send", deps=[a])
    bb = b.c(1, 3, "B")
    b.recv(1, 0, 1e8, 7, "recv", deps=[bb])
    res = simulate(b.schedule(2), parse_topology("nvswitch:2"), hw)
    assert times(res) == [(0, 1), (1, 4), (0, 3), (3, 4)]
    st = rank_stats(res)
    assert st[0]["busy_s"] == pytest.approx(2 * MS)  # A + the transfer
    assert st[0]["waiting_s"] == pytest.approx(2 * MS)  # send issued at 1, partner at 3
    assert st[0]["idle_s"] == pytest.approx(0, abs=1e-15)
    assert st[1]["busy_s"] == pytest.approx(4 * MS) and st[1]["waiting_s"] == pytest.approx(0, abs=1e-15)
    cp = critical_path(res)
    assert [s["tag"] for s in cp["steps"]] == [
        "B",
        "send",
    ]  # the transfer, released when B let the recv start
    assert cp["compute_s"] == pytest.approx(3 * MS) and cp["comm_s"] == pytest.approx(1 * MS)


def test_batch_group_frees_stream_when_all_done(hw):
    b = B()
    # rank 0: {send 1e8 -> 1, recv 2e8 <- 1} as one group, then a send that must wait for the group
    b.send(0, 1, 1e8, 1, "g/send", batch=5)
    b.recv(0, 1, 2e8, 2, "g/recv", batch=5)
    b.send(0, 1, 1e8, 3, "after")
    b.recv(1, 0, 1e8, 1, "g/recv", batch=6)
    b.send(1, 0, 2e8, 2, "g/send", batch=6)
    b.recv(1, 0, 1e8, 3, "after")
    res = simulate(b.schedule(2), parse_topology("nvswitch:2"), hw)
    assert times(res) == [(0, 1), (0, 2), (2, 3), (0, 1), (0, 2), (2, 3)]


def test_transfers_share_an_ingress_port(hw):
    b = B()
    b.send(0, 2, 1e8, 1, "a")
    b.send(1, 2, 0.5e8, 2, "b")
    b.recv(2, 0, 1e8, 1, "ra", batch=9)
    b.recv(2, 1, 0.5e8, 2, "rb", batch=9)
    res = simulate(b.schedule(3), parse_topology("nvswitch:4"), hw)
    # both at 50 GB/s until the small one is done (1 ms), then the big one alone: 0.5e8 more at 100 GB/s
    assert times(res) == [(0, 1.5), (0, 1), (0, 1.5), (0, 1)]
    (port,) = [lk for lk in range(res.network.n_links) if res.network.name(lk) == "gpu2/nvlink/in"]
    assert res.link_bytes[port] == pytest.approx(1.5e8)
    assert res.link_busy_s[port] == pytest.approx(1.5 * MS)


def test_compute_slows_while_comm_is_in_flight():
    hw = load_hardware("h100-sxm", HW_SET[:-1] + ["achievable.compute_slowdown_under_comm=1.5"])
    b = B()
    b.c(0, 2, "work")
    b.send(0, 1, 1e8, 1, "send")  # issued at 0, waits for its peer until 1 ms, transfer 1..2 ms
    k = b.c(1, 1, "k")
    b.recv(1, 0, 1e8, 1, "recv", deps=[k])
    res = simulate(b.schedule(2), parse_topology("nvswitch:2"), hw)
    # rank 0 computes at 1/1.5 speed only while data moves (1..2 ms), not while its posted send waits
    # for the peer: 1 ms of work by 1 ms, 2/3 ms more by 2 ms, the last 1/3 ms at full speed -> 7/3 ms
    assert res.end[0] == pytest.approx(7 / 3 * MS, rel=1e-12)
    off = simulate(b.schedule(2), parse_topology("nvswitch:2"), hw, SimOptions(compute_slowdown=False))
    assert off.end[0] == pytest.approx(2 * MS, rel=1e-12)


def test_collective_completes_together_after_last_member(hw):
    b = B()
    g = (0, 1, 2)
    est = float(comm_time(hw, "nvlink", "all_reduce", 3e8, 3))
    for r, ms in zip(g, (1, 2, 4)):
        c = b.c(r, ms, f"c{r}")
        b._add(
            rank=r,
            stream="comm",
            kind="all_reduce",
            role="tp_all_reduce",
            tag="ar",
            deps=(c,),
            peers=g,
            match=5,
            msg_bytes=3e8,
            link_bytes=2 * 2 / 3 * 3e8,
            link="nvlink",
            est_s=est,
        )
    res = simulate(b.schedule(3), parse_topology("nvswitch:4"), hw)
    for i in (1, 3, 5):
        assert res.end[i] == pytest.approx(4 * MS + est, rel=1e-12)
        assert res.xstart[i] == pytest.approx(4 * MS, rel=1e-12)
    ex = simulate(b.schedule(3), parse_topology("nvswitch:4"), hw, SimOptions(expand_collectives=True))
    assert ex.latency_s == pytest.approx(res.latency_s, rel=1e-9)  # uncontended: the same time


def test_deadlock_is_reported_in_one_sentence(hw):
    b = B()
    b.send(0, 1, 1e8, 1, "lonely")
    with pytest.raises(SpecError, match="deadlocks.*op 0 \\(lonely, rank 0, comm\\)"):
        simulate(b.schedule(2), parse_topology("nvswitch:2"), hw)


def test_deterministic_and_exports(hw):
    b = B()
    for r in range(4):
        b.c(r, 1 + r, f"c{r}")
        b.send(r, (r + 1) % 4, 1e8, 10 + r, f"s{r}", batch=r, deps=[len(b.ops) - 1])
        b.recv(r, (r - 1) % 4, 1e8, 10 + (r - 1) % 4, f"r{r}", batch=r)
    s = b.schedule(4)
    t = parse_topology("nvswitch:4")
    r1, r2 = simulate(s, t, hw), simulate(s, t, hw)
    assert r1.start == r2.start and r1.end == r2.end and r1.critical_path == r2.critical_path
    recs = timeline_records(r1)
    assert len(recs) == len(s.ops)
    assert all(set(x) == {"rank", "stream", "kind", "tag", "start_s", "end_s"} for x in recs)
    tr = chrome_trace(r1)
    meta = [e for e in tr["traceEvents"] if e["ph"] == "M"]
    assert {e["pid"] for e in meta if e["name"] == "process_name"} == {0, 1, 2, 3}
    assert {(e["pid"], e["tid"], e["args"]["name"]) for e in meta if e["name"] == "thread_name"} == {
        (r, t, n) for r in range(4) for t, n in ((0, "compute"), (1, "send"), (2, "recv"), (3, "collective"))
    }
    xs = [e for e in tr["traceEvents"] if e["ph"] == "X"]
    assert sorted(e["name"] for e in xs) == sorted(o.tag for o in s.ops)
    assert all(e["dur"] >= 0 and not math.isnan(e["ts"]) for e in xs)
