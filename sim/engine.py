"""The discrete-event engine: executes a ``costmodel.schedule.Schedule`` on a topology with simpy.

It implements the IR's semantics (``costmodel/schedule.py``) exactly:

* each rank has a ``compute`` and a ``comm`` stream; a stream runs its ops in list order, one issue
  unit at a time; a unit is one op, or all the ops of that rank and stream sharing a ``batch`` id >= 0
  (one NCCL group), issued together; the stream is free when every op of the unit is done;
* a unit is issued when its stream is free and the ``deps`` of all its ops are done;
* a send and the recv with the same ``match`` form a pair: the transfer starts when both have started
  and both complete together; the ops of one collective (same ``match``) start their transfer when all
  have started and complete together;
* compute ops last ``est_s``, stretched by ``hw.attention_slowdown_under_comm`` (attention) or
  ``hw.compute_slowdown_under_comm`` (every other kernel) for the part of them
  that runs while a communication op of the same GPU is in flight (started and not done: NCCL kernels
  occupy SMs while they wait for a peer, too);
* transfers move their bytes over the links they hold (``network.py``), sharing bandwidth with the
  transfers that overlap them; alone on their links they take exactly ``est_s``;
* the kernel-boundary gate (``hw.comm_gate_kinds``, issue 12): a comm op issued while a compute op of a
  gating kind runs on its GPU, or as one starts there (ties go to the kernel: the check runs after
  every other event of the instant), starts only when that kernel has ``hw.comm_gate_lead_s`` of its
  work left (its last wave frees SMs), wherever its stretch beside other transfers puts that moment.

Events live in simpy's queue, ordered by (time, priority, sequence number): the same inputs give the
same timeline, always.  Everything that happens at an instant without taking time (an op finishing
releases its dependants, a stream issues its next unit) runs inline in the event that caused it.
"""

from __future__ import annotations

import contextlib
import gc
import time as _time
from dataclasses import dataclass, field
from heapq import heappush

import simpy
from simpy.events import NORMAL, Event

from costmodel.errors import SpecError
from costmodel.schedule import COMPUTE_KINDS, OpKind, Schedule
from costmodel.specs import Collective, Hardware
from costmodel.topology import Topology

from .network import Network

_P2P = (OpKind.SEND, OpKind.RECV)
LATE = NORMAL + 1  # after every NORMAL event of the same instant (the gate's check: ties go to the kernel)
PROGRESS_EVERY = 1 << 13  # ops finished between two updates of a progress bar


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic garbage collector: building and running a schedule allocates millions of
    acyclic objects, and its repeated full scans made large runs superlinear (3x slower at 256 ranks)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True, kw_only=True)
class SimOptions:
    """How the engine models what the IR leaves to the interpreter."""

    compute_slowdown: bool = True  # apply hw.compute_slowdown_under_comm while comm runs on the GPU
    expand_collectives: bool = False  # collectives as their algorithm's steps (ring / pairwise) of flows
    nics_per_node: int | None = None  # None: one NIC per GPU


@dataclass
class SimResult:
    """Raw outcome of one run; ``report.py`` turns it into summaries, traces and timelines."""

    schedule: Schedule
    network: Network
    latency_s: float
    start: list[float]
    end: list[float]
    xstart: list[float]  # comm ops: when their transfer started (all partners had started)
    link_bytes: list[float]
    link_busy_s: list[float]
    critical_path: list[tuple[int, float, float]]  # (op index, start, end) of each step, in time order
    n_events: int
    wall_s: float
    options: SimOptions = field(default_factory=SimOptions)
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # figures derived from it (run.py)


class _Wake(Event):
    """A pre-triggered simpy event carrying one callback (cheaper than a Timeout + process): it holds
    only what ``Environment.step`` reads (``callbacks``, ``_ok``) and its value."""

    _ok = True

    def __init__(self, fn, arg):  # noqa: D401 - deliberately skips Event.__init__
        self.callbacks = [fn]
        self._value = arg


class _Flow:
    """Bytes moving over a set of links at a shared rate; ``ops`` complete when it is done."""

    __slots__ = ("links", "demand", "left", "bytes", "rate", "t", "ver", "done")

    def __init__(self, links, demand, nbytes, done):
        self.links, self.demand, self.left, self.bytes, self.done = links, demand, nbytes, nbytes, done
        self.rate, self.t, self.ver = 0.0, 0.0, 0


class Engine:
    def __init__(
        self,
        sched: Schedule,
        topo: Topology,
        hw: Hardware,
        options: SimOptions | None = None,
        progress=None,
    ):
        """``progress``: None, or ``progress(total, desc)`` returning a bar (``update(n)``, ``close()``,
        e.g. a ``tqdm``; or None: no bar) that is told how many of the ``total`` ops have finished."""
        self.s, self.topo, self.hw = sched, topo, hw
        self.progress = progress
        self.opt = options or SimOptions()
        self.net = Network(topo, hw, self.opt.nics_per_node)
        if sched.n_ranks > topo.n_gpus:
            raise SpecError(
                f"schedule has {sched.n_ranks} ranks but topology {topo.spec} has {topo.n_gpus} GPUs"
            )
        on = self.opt.compute_slowdown
        s_attn = hw.attention_slowdown_under_comm if on else 1.0
        s_other = hw.compute_slowdown_under_comm if on else 1.0
        ops = sched.ops
        attn = OpKind.ATTN
        # per op: how much slower it runs while a transfer is in flight on its GPU
        self.slow_of = [s_attn if op.kind is attn else s_other for op in ops]
        self.slow = max(s_attn, s_other)  # 1.0: no op is ever slowed, nothing to rescale
        # the kernel-boundary gate: which compute ops hold a comm op that becomes ready beside them
        self.gated = bool(hw.comm_gate_kinds)
        self.gate_lead = hw.comm_gate_lead_s
        self.gates = (
            [
                op.kind.is_compute
                and hw.gates_comm(op.kind.value, op.shape[2] if op.kind == attn and len(op.shape) > 2 else 2)
                for op in ops
            ]
            if self.gated
            else [False] * len(ops)
        )
        self._index()

    # -- static structure ----------------------------------------------------------------------
    def _index(self) -> None:
        ops = self.s.ops
        n = len(ops)
        n_ranks = self.s.n_ranks
        pos = None if [op.id for op in ops] == list(range(n)) else {op.id: i for i, op in enumerate(ops)}
        self.rank = rank = [op.rank for op in ops]
        self.is_comm = [op.kind not in COMPUTE_KINDS for op in ops]
        self.est = [op.est_s for op in ops]
        # issue units per (rank, stream), in list order; the host of a rank issues its ops in list order,
        # ahead of the GPU: a unit cannot start before the host has issued all of its ops (cumulative
        # issue time of the rank's ops up to them; a captured graph's launch delays the first op)
        unit_of = [0] * n
        units: list[list[int]] = []
        stream_units: list[list[int]] = [[] for _ in range(2 * n_ranks)]
        open_batch: dict[tuple[int, int], int] = {}
        host_clock = [self.s.launch_s] * n_ranks
        host_ready: list[float] = []
        for i, op in enumerate(ops):
            r, stream = op.rank, op.stream
            if stream == "comm":
                st = 2 * r + 1
            elif stream == "compute":
                st = 2 * r
            else:
                raise SpecError(
                    f"op {op.id} ({op.tag}) has stream {stream!r}: valid are 'compute' and 'comm'"
                )
            if not 0 <= r < n_ranks:
                raise SpecError(f"op {op.id} ({op.tag}) has rank {r}: valid are 0..{n_ranks - 1}")
            b = op.batch
            u = open_batch.get((st, b)) if b >= 0 else None
            if u is None:
                u = len(units)
                if b >= 0:
                    open_batch[(st, b)] = u
                units.append([i])
                stream_units[st].append(u)
                host_ready.append(0.0)
            else:
                units[u].append(i)
            unit_of[i] = u
            c = host_clock[r] = host_clock[r] + op.issue_s
            if c > host_ready[u]:
                host_ready[u] = c
        pend = [0] * len(units)
        dependents: list[list[int]] = [[] for _ in range(n)]
        for i, op in enumerate(ops):
            deps = op.deps
            if not deps:
                continue
            ui, r = unit_of[i], rank[i]
            for d in deps:
                j = d if pos is None else pos.get(d)
                if j is None or not 0 <= j < n or rank[j] != r:
                    raise SpecError(
                        f"op {op.id} ({op.tag}) depends on op {d}, which is not an op of rank {op.rank}"
                    )
                if unit_of[j] != ui:
                    dependents[j].append(i)
                    pend[ui] += 1
        self.unit_of, self.units, self.stream_units, self.pend, self.dependents = (
            unit_of,
            units,
            stream_units,
            pend,
            dependents,
        )
        self.host_ready = host_ready

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> SimResult:
        t0 = _time.perf_counter()
        n = len(self.s.ops)
        self.env = env = simpy.Environment()
        self.start = [float("nan")] * n
        self.end = [float("nan")] * n
        self.xstart = [float("nan")] * n
        self.xlast = [-1] * n  # comm ops: the partner whose start let the transfer begin
        self.rem = [len(u) for u in self.units]
        self.trigger = [-1] * len(self.units)
        self.head = [0] * len(self.stream_units)
        self.busy = [False] * len(self.stream_units)
        self.host_wait = [False] * len(self.stream_units)
        self.comm_active = [0] * self.s.n_ranks
        self.running: list[list[int]] = [[] for _ in range(self.s.n_ranks)]  # compute ops in flight
        self.c_state: dict[int, list] = {}  # op -> [remaining uncontended s, since, factor, version]
        self.gate_wait: dict[int, list[int]] = {}  # gating compute op -> comm ops waiting for its last wave
        self.matched: dict[int, list[int]] = {}
        L = self.net.n_links
        self.demand = [0.0] * L
        self.flows_on: list[list[_Flow]] = [[] for _ in range(L)]
        self.link_bytes = [0.0] * L
        self.link_busy = [0.0] * L
        self.link_since = [0.0] * L
        self.n_events = 0
        self._n_done, self._tick, self._bar = 0, float("inf"), None
        if self.progress is not None:
            self._bar = self.progress(n, "simulate")  # None: no bar for this one
            if self._bar is not None:
                self._tick = PROGRESS_EVERY
        try:
            for st in range(len(self.stream_units)):
                self._try_issue(st, -1)
            env.run()
        finally:
            if self._bar is not None:
                self._bar.update(self._n_done - (self._tick - PROGRESS_EVERY))
                self._bar.close()
        self._check_done()
        latency = max(self.end) if n else 0.0
        path = self._critical_path()
        return SimResult(
            schedule=self.s,
            network=self.net,
            latency_s=latency,
            start=self.start,
            end=self.end,
            xstart=self.xstart,
            link_bytes=self.link_bytes,
            link_busy_s=self.link_busy,
            critical_path=path,
            n_events=self.n_events,
            wall_s=_time.perf_counter() - t0,
            options=self.opt,
        )

    def _post(self, delay: float, fn, arg) -> None:
        """``env.schedule(_Wake(fn, arg), NORMAL, delay)``, inlined (the engine's most frequent call)."""
        env = self.env
        heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), _Wake(fn, arg)))

    def _check_done(self) -> None:
        stuck = [i for i, e in enumerate(self.end) if e != e]
        if stuck:
            op = self.s.ops[stuck[0]]
            started = self.start[stuck[0]] == self.start[stuck[0]]
            raise SpecError(
                f"the schedule deadlocks: {len(stuck)} ops never finish, the first is op {op.id} "
                f"({op.tag}, rank {op.rank}, {op.stream}), "
                + (
                    "started but its partner(s) never did"
                    if started
                    else "never started (a dependency or an earlier op of its stream never finished)"
                )
            )

    # -- streams and ops -----------------------------------------------------------------------
    def _try_issue(self, st: int, trig: int) -> None:
        if self.busy[st]:
            return
        us = self.stream_units[st]
        h = self.head[st]
        if h >= len(us):
            return
        u = us[h]
        if self.pend[u]:
            return
        wait = self.host_ready[u] - self.env._now
        if wait > 1e-15:  # the GPU is ahead of the host: come back when the host has issued the unit
            if not self.host_wait[st]:
                self.host_wait[st] = True
                self._post(wait, self._host_issued, (st, trig))
            return
        self.busy[st] = True
        self.trigger[u] = trig
        for i in self.units[u]:
            self._start_op(i)

    def _host_issued(self, ev) -> None:
        st, trig = ev._value
        self.n_events += 1
        self.host_wait[st] = False
        self._try_issue(st, trig)

    def _start_op(self, i: int) -> None:
        now = self.env._now
        r = self.rank[i]
        if not self.is_comm[i]:
            self.start[i] = now
            f = self.slow_of[i] if self.comm_active[r] else 1.0
            est = self.est[i]
            self.c_state[i] = [est, now, f, 0]
            self.running[r].append(i)
            env = self.env  # self._post(est * f, self._compute_done, (i, 0)), inlined
            heappush(env._queue, (now + est * f, NORMAL, next(env._eid), _Wake(self._compute_done, (i, 0))))
            return
        if self.gated:  # decided once every other event of this instant has run (a kernel starting now)
            self.env.schedule(_Wake(self._gate_check, i), LATE, 0.0)
            return
        self._comm_begin(i)

    # -- the kernel-boundary gate ----------------------------------------------------------------
    def _gate_check(self, ev) -> None:
        """Comm op ``i`` is ready: wait for the last wave of a gating kernel running on its GPU."""
        i = ev._value
        self.n_events += 1
        now = self.env._now
        for k in self.running[self.rank[i]]:
            if self.gates[k]:
                st = self.c_state[k]
                left = st[0] - (now - st[1]) / st[2]  # uncontended work still to do
                if left > self.gate_lead:
                    w = self.gate_wait.get(k)
                    if w is None:
                        self.gate_wait[k] = w = []
                        self._post((left - self.gate_lead) * st[2], self._gate_open, (k, st[3]))
                    w.append(i)
                    return
        self._comm_begin(i)

    def _gate_open(self, ev) -> None:
        k, ver = ev._value
        self.n_events += 1
        st = self.c_state.get(k)
        if k not in self.gate_wait or (st is not None and st[3] != ver):
            return  # released already, or superseded by a rescale (which posted the new moment)
        self._gate_release(k)

    def _gate_release(self, k: int) -> None:
        for i in self.gate_wait.pop(k):
            self.trigger[self.unit_of[i]] = k  # the critical path runs through the kernel that held it
            self._comm_begin(i)

    def _comm_begin(self, i: int) -> None:
        now = self.env._now
        self.start[i] = now
        op = self.s.ops[i]
        m = op.match
        if m < 0:
            raise SpecError(f"op {op.id} ({op.tag}) is a {op.kind} without a match id")
        got = self.matched.get(m)
        if got is None:
            got = self.matched[m] = []
        got.append(i)
        need = 2 if op.kind in _P2P else len(op.peers)
        if len(got) == need:
            del self.matched[m]
            for j in got:
                self.xstart[j] = now
                self.xlast[j] = i
                # compute is slowed while data moves, not while a posted NCCL op waits for its peer
                rj = self.rank[j]
                self.comm_active[rj] += 1
                if self.comm_active[rj] == 1 and self.slow != 1.0:
                    self._rescale(rj)
            if op.kind in _P2P:
                self._start_p2p(got)
            else:
                self._start_collective(got)

    def _compute_done(self, ev) -> None:
        i, ver = ev._value
        self.n_events += 1
        st = self.c_state.get(i)
        if st is None or st[3] != ver:
            return  # superseded by a rescale
        del self.c_state[i]
        self.running[self.rank[i]].remove(i)
        if i in self.gate_wait:  # its last wave is over: the comm ops waiting for it begin first
            self._gate_release(i)
        self._finish(i)

    def _rescale(self, r: int) -> None:
        """The GPU's comm activity switched on or off: stretch or shrink its running compute."""
        env = self.env
        now = env._now
        active = bool(self.comm_active[r])
        slow_of, c_state, queue, eid, done = (
            self.slow_of,
            self.c_state,
            env._queue,
            env._eid,
            self._compute_done,
        )
        for i in self.running[r]:
            f_new = slow_of[i] if active else 1.0
            st = c_state[i]
            st[0] = max(st[0] - (now - st[1]) / st[2], 0.0)
            st[1], st[2] = now, f_new
            st[3] += 1
            # self._post(st[0] * f_new, self._compute_done, (i, st[3])), inlined
            heappush(queue, (now + st[0] * f_new, NORMAL, next(eid), _Wake(done, (i, st[3]))))
            if i in self.gate_wait:  # the moment its last wave begins moved with it
                self._post(max(st[0] - self.gate_lead, 0.0) * f_new, self._gate_open, (i, st[3]))

    def _finish(self, i: int) -> None:
        self.end[i] = self.env._now
        self._n_done += 1
        if self._n_done >= self._tick:
            self._bar.update(PROGRESS_EVERY)
            self._tick += PROGRESS_EVERY
        r = self.rank[i]
        if self.is_comm[i]:
            self.comm_active[r] -= 1
            if self.comm_active[r] == 0 and self.slow != 1.0:
                self._rescale(r)
        pend, unit_of = self.pend, self.unit_of
        for d in self.dependents[i]:
            u = unit_of[d]
            pend[u] -= 1
            if pend[u] == 0:
                self._try_issue(2 * r + self.is_comm[d], i)
        u = unit_of[i]
        self.rem[u] -= 1
        if self.rem[u] == 0:
            st = 2 * r + self.is_comm[i]
            self.busy[st] = False
            self.head[st] += 1
            self._try_issue(st, i)

    # -- transfers -----------------------------------------------------------------------------
    def _start_p2p(self, pair: list[int]) -> None:
        ops = self.s.ops
        snd = pair[0] if ops[pair[0]].kind == OpKind.SEND else pair[1]
        op = ops[snd]
        dst = op.peers[0]
        fig = self.hw.comm[op.link][Collective.P2P]
        nbytes = op.msg_bytes
        lat = max(op.est_s - nbytes / fig.bw_Bps, 0.0)
        self._flow_after(lat, self.net.path(op.rank, dst), fig.bw_Bps, nbytes, ("ops", tuple(pair)))

    def _start_collective(self, members: list[int]) -> None:
        ops = self.s.ops
        op = ops[members[0]]
        fig = self.hw.comm[op.link][op.kind]
        nbytes = op.link_bytes
        lat = max(op.est_s - nbytes / fig.bw_Bps, 0.0)
        if not self.opt.expand_collectives or len(op.peers) < 2 or nbytes <= 0:
            self._flow_after(
                lat, self.net.group_links(op.peers, op.link), fig.bw_Bps, nbytes, ("ops", tuple(members))
            )
            return
        # expanded: its algorithm's steps, each a set of p2p flows; step k+1 after all of step k
        g = len(op.peers)
        n_steps = g - 1 if op.kind != Collective.ALL_REDUCE else 2 * (g - 1)
        hop = fig.hop_latency_s
        first = max(lat - n_steps * hop, 0.0)
        coll = {
            "members": tuple(members),
            "peers": op.peers,
            "step": 0,
            "n_steps": n_steps,
            "left": 0,
            "bytes": nbytes / n_steps,
            "bw": fig.bw_Bps,
            "hop": hop,
            "a2a": op.kind == Collective.ALL_TO_ALL,
        }
        self._post(first, self._coll_step, coll)

    def _coll_step(self, ev) -> None:
        if isinstance(ev, Event):
            self.n_events += 1
            c = ev._value
        else:
            c = ev
        g = len(c["peers"])
        shift = c["step"] + 1 if c["a2a"] else 1
        c["left"] = g
        for k, src in enumerate(c["peers"]):
            dst = c["peers"][(k + shift) % g]
            self._flow_after(c["hop"], self.net.path(src, dst), c["bw"], c["bytes"], ("coll", c))

    def _flow_after(self, lat: float, links, demand: float, nbytes: float, done) -> None:
        f = _Flow(links, demand, nbytes, done)
        if lat > 0:
            self._post(lat, self._flow_begin, f)
        else:
            self._flow_begin(f)

    def _flow_begin(self, ev) -> None:
        if isinstance(ev, _Flow):
            f = ev
        else:
            f = ev._value
            self.n_events += 1
        now = self.env._now
        f.t = now
        if f.left <= 0:
            self._flow_done_now(f)
            return
        demand, flows_on = self.demand, self.flows_on
        over = False
        for lk in f.links:
            if not flows_on[lk]:
                self.link_since[lk] = now
            flows_on[lk].append(f)
            demand[lk] += f.demand
            if demand[lk] > self._eff(lk) * (1 + 1e-12):
                over = True
        if over:
            self._reshare(f.links, now)
        else:
            f.rate = f.demand
            self._post(f.left / f.rate, self._flow_end, (f, f.ver))

    def _eff(self, lk: int) -> float:
        """A link's capacity for sharing: its line rate, or the largest calibrated rate of a flow on it
        if that is higher (a calibrated figure alone on its links is always achieved)."""
        c = self.net.cap[lk]
        for g in self.flows_on[lk]:
            if g.demand > c:
                c = g.demand
        return c

    def _rate(self, f: _Flow) -> float:
        s = 1.0
        demand = self.demand
        for lk in f.links:
            d = demand[lk]
            if d > f.demand:
                c = self._eff(lk)
                if d > c * (1 + 1e-12):
                    s = min(s, c / d)
        return f.demand * s

    def _reshare(self, links, now: float) -> None:
        """Recompute the rates of every flow on ``links`` (order: deterministic, by first appearance)."""
        seen: dict[int, _Flow] = {}
        for lk in links:
            for f in self.flows_on[lk]:
                seen.setdefault(id(f), f)
        for f in seen.values():
            new = self._rate(f)
            if f.rate > 0:
                f.left = max(f.left - f.rate * (now - f.t), 0.0)
            if new != f.rate or f.rate == 0:
                f.t, f.rate = now, new
                f.ver += 1
                self._post(f.left / new, self._flow_end, (f, f.ver))
            else:
                f.t = now

    def _flow_end(self, ev) -> None:
        f, ver = ev._value
        self.n_events += 1
        if ver != f.ver:
            return
        now = self.env._now
        demand, flows_on = self.demand, self.flows_on
        was_over = False
        for lk in f.links:
            if demand[lk] > f.demand and demand[lk] > self._eff(lk) * (1 + 1e-12):
                was_over = True
            flows_on[lk].remove(f)
            demand[lk] -= f.demand
            self.link_bytes[lk] += f.bytes
            if not flows_on[lk]:
                demand[lk] = 0.0
                self.link_busy[lk] += now - self.link_since[lk]
        if was_over:
            self._reshare(f.links, now)
        self._flow_done_now(f)

    def _flow_done_now(self, f: _Flow) -> None:
        what, x = f.done
        if what == "ops":
            for i in x:
                self._finish(i)
            return
        x["left"] -= 1
        if x["left"] == 0:
            x["step"] += 1
            if x["step"] < x["n_steps"]:
                self._coll_step(x)
            else:
                for i in x["members"]:
                    self._finish(i)

    # -- critical path -------------------------------------------------------------------------
    def _critical_path(self) -> list[tuple[int, float, float]]:
        """Walk back from the op that ends last: each op was released by the completion that issued
        its unit (a dependency or the stream's previous unit); a transfer by its last partner's start."""
        if not self.end:
            return []
        end = self.end
        i = max(range(len(end)), key=lambda k: (end[k], -k))
        path: list[tuple[int, float, float]] = []
        guard = len(end) + 1
        while i >= 0 and guard:
            guard -= 1
            if self.is_comm[i]:
                path.append((i, self.xstart[i], end[i]))
                j = self.xlast[i]
                i = self.trigger[self.unit_of[j if j >= 0 else i]]
            else:
                path.append((i, self.start[i], end[i]))
                i = self.trigger[self.unit_of[i]]
        path.reverse()
        return path


def simulate(
    sched: Schedule, topo: Topology, hw: Hardware, options: SimOptions | None = None, progress=None
) -> SimResult:
    """Execute ``sched`` on ``topo`` with the profile ``hw``; see the module docstring (``progress``:
    ``Engine``'s)."""
    with no_gc():
        return Engine(sched, topo, hw, options, progress).run()
