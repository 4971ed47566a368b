"""A pass-KV prefill ring as a rank x step recurrence: numpy over the ranks, a loop over the R steps.

Where it applies (``applies``): a plan of one ring only (every other degree 1), one layer, one
micro-batch, prefill, every rank making one attention call per ring step (zigzag, striped, non-causal;
not plain causal, whose blocks above are skipped), and the ring's sends holding links no other send
holds (each rank sends to its successor over its own NVLink or NIC ports): then no transfer ever
shares a link and the engine's rules (``engine.py``) reduce to a max-plus recurrence with the compute
slowdown integrated exactly.  Per rank i and step t (U: the comm unit of a step, its send to i + 1 and
its recv from i - 1 issued together; A: the attention call; M: the merge, or the init at step 0):

* U_t starts at max(the host has issued it, U_{t-1} done, the dependencies the schedule gives it:
  the block it forwards (recv_{t-1}) and, from step 2 on, the buffer it overwrites (A_{t-1} done));
  the transfer i -> i + 1 starts when both ends have started, max(start U_t[i], start U_t[i + 1]),
  and lasts the profile's time of the message (alone on its links: ``est_s`` exactly);
* A_t starts at max(the compute stream free, recv_{t-1} done, host); M_t after A_t; compute runs at
  1 / slowdown of its speed while a transfer of its GPU is in flight (the union of the intervals of the
  transfers that can overlap it: those of steps t - 1 .. t + 1; U_{t+2} waits for A_{t+1}, after M_t);
* the ops before the ring (norm, QKV, RoPE) and after it (finalize, projection, MLP) run on the
  compute stream in order, beside whatever transfer is in flight.

Nothing is extrapolated: every op of every rank gets its start and end.  What is assumed is checked on
a schedule built with only steps 0, 1, 2 and the last (``build_schedule(ring_steps=2)``, a few ops a
rank): op kinds, streams, peers, matches and the exact dependency sets of each op, the message and the
merge the same at every step, and the attention costs of the steps built equal to those the recurrence
takes for them.  A middle step's attention cost depends on the step only through whether its block
comes from a rank below or above (``geometry.ring_blocks``), so each rank's steps 1 and R - 1 stand for
all of its steps.  ``tests/test_sim_ring_recurrence.py`` holds the result to the full simulation (1e-9
of the latency; every rank's and link's figures) on rings of 16 to 128 ranks.
"""

from __future__ import annotations

import time as _time
from types import SimpleNamespace

import numpy as np

from costmodel.build import build_schedule
from costmodel.config import Config
from costmodel.schedule import COMPUTE_KINDS, OpKind
from costmodel.specs import Collective, Phase

from .engine import SimOptions
from .network import Network
from .report import _union_by_rank, link_stats

MIN_RING = 128  # below, the engine runs the ring (fast enough, and its full timeline is there to look at)
RANK_BLOCK = 64  # ranks per block when summing per-rank figures (bounds the memory of the unions)


class _Skip(Exception):
    """The recurrence does not apply (the caller falls back to the engine)."""


def applies(cfg: Config, options: SimOptions | None) -> bool:
    p, wl = cfg.plan, cfg.workload
    return (
        wl.phase == Phase.PREFILL
        and p.ring >= 5
        and p.n_ranks == p.ring
        and p.pp == 1
        and p.microbatches == 1
        and p.chunks == 1
        and cfg.model.layers == 1
        and p.prefill_attn == "pass-kv"  # pass-Q's ring and a prefix cache's two calls a step: the engine
        and not wl.cached_len
        and set(cfg.hardware.comm_gate_kinds) <= {"attention"}  # other gating kinds: the engine
    )


def _comp(s, w, f, win):
    """End of compute ops that start at ``s`` with ``w`` seconds of work, running at 1 / ``f`` of their
    speed while any interval of ``win`` (pairs (a, b) of arrays; a NaN pair is none) is in progress."""
    if not win or np.all(f == 1.0):
        return s + w
    s1 = s[:, None]
    a = np.fmax(np.stack([x for x, _ in win], axis=1), s1)  # clipped to the op's start (NaN: none)
    b = np.fmax(np.stack([y for _, y in win], axis=1), a)
    if not np.any(b > s1):
        return s + w
    # the intervals' ends in time order, each start +1 and each end -1: the running sum is how many
    # transfers are in flight after each point (starts sort before ends at the same time)
    ends = np.concatenate((a, b), axis=1)
    order = np.argsort(ends, axis=1, kind="stable")
    pts = np.take_along_axis(ends, order, 1)
    lab = np.concatenate((np.ones(a.shape, dtype=np.int8), -np.ones(b.shape, dtype=np.int8)), axis=1)
    cov = np.cumsum(np.take_along_axis(lab, order, 1), axis=1, dtype=np.int16)
    lo = np.concatenate((s1, pts[:, :-1]), axis=1)
    hi = pts
    act = np.concatenate((np.zeros_like(s1, dtype=bool), cov[:, :-1] > 0), axis=1)
    rate = np.where(act, f[:, None], 1.0)  # seconds of wall per second of work
    work = (hi - lo) / rate
    cum = np.cumsum(work, axis=1)
    inside = (cum >= w[:, None]) & (work > 0)
    k = np.argmax(inside, axis=1)[:, None]
    lo_k = np.take_along_axis(lo, k, 1)[:, 0]
    before_k = np.take_along_axis(cum - work, k, 1)[:, 0]
    rate_k = np.take_along_axis(rate, k, 1)[:, 0]
    end_in = lo_k + (w - before_k) * rate_k
    end_after = pts[:, -1] + (w - cum[:, -1])
    return np.where(inside.any(axis=1), end_in, end_after)


class _Tpl:
    """The per-rank op slots of the template schedule (steps 0, 1, 2 and the last), checked."""

    def __init__(self, sched, R: int):
        self.sched = sched
        n = sched.n_ranks
        ops = sched.ops
        self.pre: list[list] = []
        self.post: list[list] = []
        self.pos: list[list[dict]] = []  # per rank: 4 step positions {send, recv, attn, acc}
        for r in range(n):
            rops = sched.rank_ops(r)
            k = 0
            pre = []
            while k < len(rops) and rops[k].step < 0:
                pre.append(rops[k])
                k += 1
            steps = []
            while k < len(rops) and rops[k].step >= 0:
                t = rops[k].step
                grp = []
                while k < len(rops) and rops[k].step == t:
                    grp.append(rops[k])
                    k += 1
                steps.append((t, grp))
            post = rops[k:]
            if [t for t, _ in steps] != [0, 1, 2, R - 1]:
                raise _Skip("steps")
            pos = []
            for j, (_, grp) in enumerate(steps):
                kinds = [o.kind for o in grp]
                comm = [OpKind.SEND, OpKind.RECV] if j < 3 else []
                acc = OpKind.ELEMENTWISE if j == 0 else OpKind.LSE_MERGE
                if kinds != comm + [OpKind.ATTN, acc]:
                    raise _Skip("step ops")  # not exactly one attention call per step
                d = dict(zip(("send", "recv") if comm else (), grp))
                d["attn"], d["acc"] = grp[-2], grp[-1]
                pos.append(d)
            if any(o.kind not in COMPUTE_KINDS or o.stream != "compute" for o in pre + post):
                raise _Skip("pre/post")
            self.pre.append(pre)
            self.post.append(post)
            self.pos.append(pos)
        if len({len(x) for x in self.pre}) != 1:
            raise _Skip("pre counts")
        # after the ring, ranks may differ (the LM head runs on the rank holding the last tokens): the
        # shorter lists are padded with None (no op: no work, no time, not counted)
        self.n_pre, self.n_post = len(self.pre[0]), max(len(x) for x in self.post)
        self.n_post_ops = sum(len(x) for x in self.post)
        self.post = [x + [None] * (self.n_post - len(x)) for x in self.post]
        self.ops = ops

    def check(self, nxt: np.ndarray) -> int:
        """Check the dependency sets, streams, batches and matches; returns the index of the pre-ring op
        the first send waits for (the one that wrote the local K/V block)."""
        kvw = None
        for r in range(len(self.pre)):
            pre, pos = self.pre[r], self.pos[r]
            post = [o for o in self.post[r] if o is not None]
            pre_ids = {o.id for o in pre}
            ids = lambda *xs: {x.id for x in xs}  # noqa: E731
            for k, o in enumerate(pre):
                if not set(o.deps) <= ids(*pre[:k]):
                    raise _Skip("pre deps")
            for j, d in enumerate(pos):
                s, a, m = d.get("send"), d["attn"], d["acc"]
                if s is not None:
                    rv = d["recv"]
                    if (
                        s.stream != "comm"
                        or rv.stream != "comm"
                        or s.batch < 0
                        or s.batch != rv.batch
                        or s.peers != (int(nxt[r]),)
                        or self.pos[int(nxt[r])][j]["recv"].match != s.match
                        or self.pos[int(nxt[r])][j]["recv"].peers != (r,)
                    ):
                        raise _Skip("comm unit")
                prev = pos[j - 1] if j else None
                if j == 0:
                    if len(s.deps) != 1 or not set(s.deps) <= pre_ids or rv.deps:
                        raise _Skip("unit 0 deps")
                    w = [o.id for o in pre].index(s.deps[0])
                    if kvw is None:
                        kvw = w
                    elif kvw != w:
                        raise _Skip("unit 0 deps differ")
                    if not set(a.deps) <= pre_ids or set(m.deps) != {a.id}:
                        raise _Skip("step 0 deps")
                    continue
                if s is not None:
                    if set(s.deps) != {prev["recv"].id}:
                        raise _Skip("send deps")
                    want = set() if j == 1 else {pos[j - 2]["recv"].id, prev["send"].id, prev["attn"].id}
                    if set(rv.deps) != want:
                        raise _Skip("recv deps")
                if prev["recv"].id not in a.deps or not set(a.deps) <= pre_ids | ids(
                    prev["recv"], prev["attn"], prev["acc"]
                ):
                    raise _Skip("attn deps")
                if not set(m.deps) <= ids(prev["acc"], a):
                    raise _Skip("merge deps")
            last = pos[-1]["acc"].id
            for k, o in enumerate(post):
                if not set(o.deps) <= pre_ids | ids(*post[:k]) | {last}:
                    raise _Skip("post deps")
        return kvw


def run_ring(cfg: Config, options: SimOptions | None, t0: float, progress=None):
    """The ring by the recurrence, as a ``SimRun``; None where it does not apply (module docstring)."""
    from .run import SimRun  # run.py imports this module

    if not applies(cfg, options):
        return None
    try:
        return _run(cfg, options or SimOptions(), t0, SimRun, progress)
    except _Skip:
        return None


def _run(cfg: Config, opt: SimOptions, t0: float, SimRun, progress=None):
    p, topo, hw = cfg.plan, cfg.topology, cfg.hardware
    R = p.ring
    tb = _time.perf_counter()
    sched = build_schedule(cfg.model, cfg.workload, p, topo, hw, kernel=cfg.kernel, ring_steps=2)
    build_s = _time.perf_counter() - tb
    if sched.ring_steps_built != 2 or sched.n_ranks != R:
        raise _Skip("not built with 2 middle steps")
    tpl = _Tpl(sched, R)
    n = R
    nxt = np.array([tpl.pos[r][0]["send"].peers[0] for r in range(n)])
    prv = np.empty(n, dtype=np.int64)
    prv[nxt] = np.arange(n)
    if sorted(nxt.tolist()) != list(range(n)):
        raise _Skip("not a ring")
    kvw = tpl.check(nxt)
    net = Network(topo, hw, opt.nics_per_node)
    paths = [net.path(r, int(nxt[r])) for r in range(n)]
    held = [lk for pth in paths for lk in pth]
    if len(held) != len(set(held)):
        raise _Skip("sends share a link")
    ring_idx = np.array([p.coords(r)["ring"] for r in range(n)])

    def col(f, rows):
        return np.array([f(x) for x in rows], dtype=float)

    pos = tpl.pos
    # the message: the same at every step (checked), its time alone on its links as the engine takes it
    send = [[d["send"] for d in pos[r][:3]] for r in range(n)]
    if any(len({(o.est_s, o.msg_bytes, o.link) for o in row}) != 1 for row in send):
        raise _Skip("messages differ by step")
    nbytes = col(lambda row: row[0].msg_bytes, send)
    if not np.all(nbytes > 0):
        raise _Skip("empty messages")
    bw = col(lambda row: hw.comm[row[0].link][Collective.P2P].bw_Bps, send)
    lat = np.maximum(col(lambda row: row[0].est_s, send) - nbytes / bw, 0.0)
    xfer = nbytes / bw
    # the kernel-boundary gate (engine.py): a unit ready as or while a step's attention runs starts at
    # that call's last wave (``lead`` of its work left)
    gate = hw.gates_comm("attention")
    lead = hw.comm_gate_lead_s
    if gate:
        if kvw != tpl.n_pre - 1:
            raise _Skip("gate: ops between the K/V block's write and the ring")
        if any(d["attn"].shape[2] <= 1 for row in tpl.pos for d in row):
            raise _Skip("gate: a decode-shaped ring attention")
    on = opt.compute_slowdown
    f_attn = hw.attention_slowdown_under_comm if on else 1.0
    f_other = hw.compute_slowdown_under_comm if on else 1.0
    fa = np.full(n, float(f_attn))
    fo = np.full(n, float(f_other))

    def slow(kind):
        return fa if kind == OpKind.ATTN else fo

    # costs by step position; middle steps: by the side the block comes from (module docstring)
    est = {
        (j, key): col(lambda d, key=key, j=j: d[j][key].est_s, pos)
        for j in range(4)
        for key in ("attn", "acc")
    }
    iss = {
        (j, key): col(lambda d, key=key, j=j: d[j][key].issue_s if key in d[j] else 0.0, pos)
        for j in range(4)
        for key in ("send", "recv", "attn", "acc")
    }
    for key in ("send", "recv", "attn", "acc"):
        if not np.array_equal(iss[(1, key)], iss[(2, key)]):
            raise _Skip("issue times differ by step")
    if not (
        np.array_equal(est[(1, "acc")], est[(2, "acc")]) and np.array_equal(est[(2, "acc")], est[(3, "acc")])
    ):
        raise _Skip("merges differ by step")
    i = ring_idx
    below = np.where(i >= 1, est[(1, "attn")], np.nan)  # step 1: the block of i - 1 (below) if i >= 1
    above = np.where(i <= R - 2, est[(3, "attn")], np.nan)  # step R - 1: the block of i + 1 (above)
    # step 2's call is of the same side as step 1's, or of step R - 1's for i < 2: the recurrence's
    # costs for the steps built must be the template's
    side2 = np.where(i >= 2, below, above)
    if not np.array_equal(side2, est[(2, "attn")]):
        raise _Skip("step 2 is not its side's cost")

    def attn_est(t):
        if t == 0:
            return est[(0, "attn")]
        if t == R - 1:
            return est[(3, "attn")]
        return np.where(t <= i, below, above)

    def pos_of(t):
        return 0 if t == 0 else 1 if t == 1 else 3 if t == R - 1 else 2

    n_steps = R
    # per (step, rank): kept for the per-rank figures and the critical path
    S = np.full((R - 1, n), np.nan)  # comm unit start
    X = np.full((R - 1, n), np.nan)  # transfer of rank i's send (to i + 1) starts
    E = np.full((R - 1, n), np.nan)  # ... and ends (with the recv on i + 1)
    AS, AE = np.empty((n_steps, n)), np.empty((n_steps, n))
    MS, ME = np.empty((n_steps, n)), np.empty((n_steps, n))
    # what released a unit: 0 stream, 1 recv, 2 attn (the step before), 3 dep, 4 its step's attention (gate)
    trig_u = np.zeros((R - 1, n), dtype=np.int8)
    trig_a = np.zeros((n_steps, n), dtype=np.int8)  # 0 compute stream, 1 recv
    pre_s, pre_e = np.empty((tpl.n_pre, n)), np.empty((tpl.n_pre, n))
    post_s, post_e = np.empty((tpl.n_post, n)), np.empty((tpl.n_post, n))

    # host clocks: each op issued after the ones before it in the rank's list (incremental, as the engine)
    H = np.full(n, float(sched.launch_s))
    h_pre = []
    for k in range(tpl.n_pre):
        H = H + col(lambda x, k=k: x[k].issue_s, tpl.pre)
        h_pre.append(H)

    def unit(t, dep, hready):
        s = np.maximum(dep, hready)
        x = np.maximum(s, s[nxt])
        e1 = x + lat
        e = np.where(nbytes > 0, e1 + xfer, e1)
        S[t], X[t], E[t] = s, x, e
        return e

    def win(t):
        """Transfer intervals of rank i in comm unit t: its send, its recv (the send of i - 1)."""
        if t < 0 or t > R - 2:
            return []
        return [(X[t], E[t]), (X[t][prv], E[t][prv])]

    def unit_end(t):
        return np.maximum(E[t], E[t][prv])

    def gate_at(s, a_s, w, wins):
        """Start of a unit ready at ``s`` on ranks whose attention (start ``a_s``, ``w`` of work, beside
        ``wins``) runs at ``s`` (or starts then) and has more than ``lead`` left: its last wave."""
        rest = w - lead
        tg = np.where(rest > 0, _comp(a_s, np.maximum(rest, 0.0), fa, wins), a_s)
        held = (a_s <= s) & (s < tg)
        return np.where(held, tg, s), held

    # before the ring, up to the op that wrote the K/V block: no transfer yet
    c_end = np.zeros(n)
    done_units = -1
    for k in range(tpl.n_pre):
        w = col(lambda x, k=k: x[k].est_s, tpl.pre)
        kind = tpl.pre[0][k].kind
        s = np.maximum(c_end, h_pre[k])
        wins = win(0) + win(1) if done_units >= 1 else []
        c_end = _comp(s, w, slow(kind), wins)
        pre_s[k], pre_e[k] = s, c_end
        if k == kvw:
            # unit 0 (its send waits for the K/V block), then unit 1 (waits for unit 0 only)
            h0 = h = h_pre[-1] + iss[(0, "send")] + iss[(0, "recv")]
            if gate:  # step 0's attention starts with it (the K/V block's write is the last op before)
                a0s = np.maximum(c_end, h + iss[(0, "attn")])
                S0, held0 = gate_at(np.maximum(c_end, h), a0s, est[(0, "attn")], [])
                unit(0, S0, h)
                trig_u[0] = np.where(held0, 4, 3)
            else:
                unit(0, c_end, h)
                trig_u[0] = 3
            h = h + iss[(0, "attn")] + iss[(0, "acc")] + iss[(1, "send")] + iss[(1, "recv")]
            if R - 2 >= 1:
                u0 = unit_end(0)
                if gate:
                    # ready inside step 0's attention, or as step 1's starts (the block arrived last):
                    # step 1's start is taken without unit 1's transfers, which (held) begin after it
                    s1 = np.maximum(u0, h)
                    S1, by0 = gate_at(s1, a0s, est[(0, "attn")], win(0))
                    h_acc = h0 + iss[(0, "attn")] + iss[(0, "acc")]
                    ae0 = _comp(a0s, est[(0, "attn")], fa, win(0))
                    ie0 = _comp(np.maximum(ae0, h_acc), est[(0, "acc")], fo, win(0))
                    a1s = np.maximum(np.maximum(ie0, E[0][prv]), h + iss[(1, "attn")])
                    S1b, by1 = gate_at(s1, a1s, attn_est(1), win(0))
                    unit(1, np.where(by0, S1, S1b), h)
                    trig_u[1] = np.where(by0, 2, np.where(by1, 4, 0))
                else:
                    unit(1, u0, h)
                    trig_u[1] = 0
            done_units = 1
    H = h_pre[-1] + iss[(0, "send")] + iss[(0, "recv")]
    bar = progress(n_steps, "ring steps") if progress is not None else None
    for t in range(n_steps):
        if bar is not None and t % 64 == 63:
            bar.update(64)
        j = pos_of(t)
        if t >= 1 and t <= R - 2:
            H = H + iss[(j, "send")] + iss[(j, "recv")]
        H = H + iss[(j, "attn")]
        r_prev = E[t - 1][prv] if t >= 1 else np.full(n, -np.inf)
        s = np.maximum(np.maximum(c_end, r_prev), H)
        trig_a[t] = r_prev > c_end
        # transfers in flight beside it: units t - 1 and t (and unit 1 at step 0, which waits for unit 0
        # only); unit t + 1 >= 2 waits for this attention
        a_end = _comp(s, attn_est(t), fa, win(t - 1) + win(t) + (win(1) if t == 0 else []))
        AS[t], AE[t] = s, a_end
        if 2 <= t + 1 <= R - 2:  # the next unit: after this one, its block (recv t) and this attention
            hn = H + iss[(j, "acc")] + iss[(pos_of(t + 1), "send")] + iss[(pos_of(t + 1), "recv")]
            u_prev = unit_end(t)
            dep = np.maximum(u_prev, a_end)
            trig_u[t + 1] = np.where(a_end > u_prev, 2, 0)
            if gate:  # ready as the next attention starts (its block arrived last): its last wave
                jn = pos_of(t + 1)
                h_acc = H + iss[(j, "acc")]
                me0 = _comp(np.maximum(a_end, h_acc), est[(j, "acc")], fo, win(t - 1) + win(t))
                an_s = np.maximum(
                    np.maximum(me0, E[t][prv]),
                    h_acc + iss[(jn, "send")] + iss[(jn, "recv")] + iss[(jn, "attn")],
                )
                dep, held = gate_at(np.maximum(dep, hn), an_s, attn_est(t + 1), win(t))
                trig_u[t + 1] = np.where(held, 4, trig_u[t + 1])
            unit(t + 1, dep, hn)
        H = H + iss[(j, "acc")]
        ms = np.maximum(a_end, H)
        c_end = _comp(ms, est[(j, "acc")], fo, win(t - 1) + win(t) + win(t + 1))
        MS[t], ME[t] = ms, c_end
    if bar is not None:
        bar.update(n_steps - n_steps // 64 * 64)
        bar.close()
    for k in range(tpl.n_post):
        w = col(lambda x, k=k: x[k].est_s if x[k] is not None else 0.0, tpl.post)
        H = H + col(lambda x, k=k: x[k].issue_s if x[k] is not None else 0.0, tpl.post)
        f = col(lambda x, k=k: f_attn if x[k] is not None and x[k].kind == OpKind.ATTN else f_other, tpl.post)
        s = np.maximum(c_end, H)
        c_end = _comp(s, w, f, win(R - 3) + win(R - 2))
        post_s[k], post_e[k] = s, c_end
    latency = float(c_end.max())
    if R - 2 >= 0:
        latency = max(latency, float(np.nanmax(E)))

    ranks = _rank_figures(n, latency, S, X, E, prv, (pre_s, pre_e), (AS, AE), (MS, ME), (post_s, post_e))
    link_bytes = [0.0] * net.n_links
    link_busy = [0.0] * net.n_links
    busy_each = np.nansum(E - (X + lat), axis=0)  # a flow holds its links from its start (after the latency)
    for r, pth in enumerate(paths):
        for lk in pth:
            link_bytes[lk] = float(nbytes[r]) * (R - 1)
            link_busy[lk] = float(busy_each[r])
    links = link_stats(
        SimpleNamespace(network=net, latency_s=latency, link_bytes=link_bytes, link_busy_s=link_busy)
    )
    cp = _critical_path(
        tpl,
        n,
        R,
        latency,
        S,
        X,
        E,
        AS,
        AE,
        MS,
        ME,
        trig_u,
        trig_a,
        (pre_s, pre_e),
        (post_s, post_e),
        nxt,
        prv,
        kvw,
    )
    n_ops = n * (tpl.n_pre + 2 * R + 2 * (R - 1)) + tpl.n_post_ops
    wall = _time.perf_counter() - t0
    return SimRun(
        result=None,
        latency_s=latency,
        units_total=1,
        units_simulated=1,
        period_s=None,
        ranks=ranks,
        links=links,
        build_s=build_s,
        wall_s=wall,
        method="recurrence",
        ops_total=n_ops,
        critical=cp,
        options=opt,
        sim_s_all=wall - build_s,
    )


def _rank_figures(n, T, S, X, E, prv, pre, attn, merge, post) -> list[dict]:
    """busy / waiting / idle / compute / transfer / overlap per rank, as ``report.rank_stats`` takes
    them (unions of intervals), a block of ranks at a time; each rank's intervals are laid out in time
    order (runs the stable sort merges in linear time)."""
    out = []
    for lo in range(0, n, RANK_BLOCK):
        rk = np.arange(lo, min(lo + RANK_BLOCK, n))
        nb = len(rk)

        def runs(*arrs, rk=rk, nb=nb):
            """(nb, m) per rank, the arrays' rows (steps) side by side in the given order."""
            return np.concatenate([x[:, rk].T.reshape(nb, -1) for x in arrs], axis=1)

        def steps(a, b, rk=rk, nb=nb):
            """Two (steps, ranks) arrays interleaved step by step: a_0, b_0, a_1, b_1 ..."""
            return np.stack((a[:, rk].T, b[:, rk].T), axis=2).reshape(nb, -1)

        cs = np.concatenate((runs(pre[0]), steps(attn[0], merge[0]), runs(post[0])), axis=1)
        ce = np.concatenate((runs(pre[1]), steps(attn[1], merge[1]), runs(post[1])), axis=1)
        # comm ops of rank i: its send (issued S[i], moving X[i]..E[i]) and its recv (the send of i - 1)
        xs = np.concatenate((X[:, rk].T, X[:, prv[rk]].T), axis=1)
        xe = np.concatenate((E[:, rk].T, E[:, prv[rk]].T), axis=1)
        ps = np.concatenate((S[:, rk].T, S[:, rk].T), axis=1)

        def u(a_list, b_list, nb=nb):
            a = np.concatenate(a_list, axis=1)
            b = np.concatenate(b_list, axis=1)
            return _union_by_rank(np.repeat(np.arange(nb), a.shape[1]), a.ravel(), b.ravel(), nb, T)

        compute_t = u([cs], [ce])
        transfer = u([xs], [xe])
        busy = u([cs, xs], [ce, xe])
        issued = u([cs, xs, ps], [ce, xe, xs])
        for q, r in enumerate(rk):
            out.append(
                {
                    "rank": int(r),
                    "busy_s": float(busy[q]),
                    "waiting_s": float(issued[q] - busy[q]),
                    "idle_s": float(max(T - issued[q], 0.0)),
                    "compute_s": float(compute_t[q]),
                    "transfer_s": float(transfer[q]),
                    "overlap_s": float(compute_t[q] + transfer[q] - busy[q]),
                    "utilisation": float(compute_t[q] / T) if T > 0 else 0.0,
                }
            )
    return out


def _critical_path(
    tpl, n, R, T, S, X, E, AS, AE, MS, ME, trig_u, trig_a, pre, post, nxt, prv, kvw, limit=200
):
    """The chain of ops that set the end, walked back as ``Engine._critical_path`` walks it: a compute op
    from what released it (the compute stream or the block it reads), a transfer from the later of its
    two ends' units, a unit from what released it (its stream, the block it forwards, the attention
    whose buffer it overwrites, or the op that wrote the K/V block).  Ties go to the stream."""
    pre_s, pre_e = pre
    post_s, post_e = post
    path = []  # (kind, rank, stream, tag, start, end)
    tag = lambda r, op, t=None: op.tag if t is None else op.tag.replace(f"/step{op.step}/", f"/step{t}/")  # noqa: E731
    pos_of = lambda t: 0 if t == 0 else 1 if t == 1 else 3 if t == R - 1 else 2  # noqa: E731
    r = int(np.argmax(post_e[-1])) if tpl.n_post else int(np.argmax(ME[-1]))
    state = ("post", tpl.n_post - 1) if tpl.n_post else ("acc", R - 1)
    guard = 10 * n * R
    while state is not None and guard:
        guard -= 1
        what, k = state
        if what == "post":
            op = tpl.post[r][k]
            if op is not None:  # padding: no op
                path.append((op.kind, r, "compute", op.tag, post_s[k, r], post_e[k, r]))
            state = ("post", k - 1) if k > 0 else ("acc", R - 1)
        elif what == "acc":
            op = tpl.pos[r][pos_of(k)]["acc"]
            path.append((op.kind, r, "compute", tag(r, op, k), MS[k, r], ME[k, r]))
            state = ("attn", k)
        elif what == "attn":
            op = tpl.pos[r][pos_of(k)]["attn"]
            path.append((op.kind, r, "compute", tag(r, op, k), AS[k, r], AE[k, r]))
            if trig_a[k, r] and k >= 1:
                state = ("recv", k - 1)
            elif k >= 1:
                state = ("acc", k - 1)
            else:
                state = ("pre", tpl.n_pre - 1)
        elif what == "pre":
            if k < 0:
                break
            op = tpl.pre[r][k]
            path.append((op.kind, r, "compute", op.tag, pre_s[k, r], pre_e[k, r]))
            state = ("pre", k - 1)
        else:  # a transfer: "recv" on r is the send of prv[r]; "send" of r
            snd = int(prv[r]) if what == "recv" else r
            op = tpl.pos[r][pos_of(k)][what]
            path.append((op.kind, r, "comm", tag(r, op, k), X[k, snd], E[k, snd]))
            # the unit whose start let the transfer begin: the later of the sender's and the receiver's
            rcv = int(nxt[snd])
            r = rcv if S[k, rcv] > S[k, snd] else snd
            c = trig_u[k, r]
            if c == 4:  # held to the last wave of its own step's attention (the kernel-boundary gate)
                state = ("attn", k)
            elif k == 0:
                state = ("pre", kvw)
            elif c == 2:
                state = ("attn", k - 1)
            else:
                state = ("recv", k - 1) if c == 1 else ("unit", k - 1)
        if state is not None and state[0] == "unit":
            # the stream: the previous unit ended with its later op (the send, or the recv of prv)
            k = state[1]
            state = ("send", k) if E[k, r] >= E[k, int(prv[r])] else ("recv", k)
    path.reverse()
    by_kind: dict[str, float] = {}
    gaps, t_prev = 0.0, 0.0
    steps = []
    for kind, rr, stream, tg, a, b in path:
        by_kind[kind] = by_kind.get(kind, 0.0) + (b - a)
        gaps += max(a - t_prev, 0.0)
        t_prev = b
        steps.append({"rank": rr, "stream": stream, "kind": kind, "tag": tg, "start_s": a, "end_s": b})
    comm = sum(v for k, v in by_kind.items() if k not in COMPUTE_KINDS)
    return {
        "length_s": T,
        "ops": len(steps),
        "compute_s": sum(by_kind.values()) - comm,
        "comm_s": comm,
        "gaps_s": gaps,
        "by_kind_s": by_kind,
        "steps": steps[:limit],
    }
