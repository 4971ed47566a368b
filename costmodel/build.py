"""Plan -> Schedule: the per-rank op graph of a forward pass (prefill) or of one decode step.

The builder is a driver: the pipeline strategy lays out a rank's micro-batches and stages, the dense
(TP) strategy emits each layer's kernels and all-reduces, and the attention strategies chosen for the
plan (``strategies.attention_for``) emit the attention block.  What each strategy emits, what it
costs in closed form and when it is allowed live together in ``costmodel/strategies/``; who holds
which tokens and heads, and the size of each message, come from ``geometry.py``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from . import kernels, strategies
from . import layers as Lr
from .geometry import Geometry
from .layers import Work
from .plan import Plan
from .schedule import Op, OpKind, Role, Schedule, make_op
from .specs import Hardware, Model, Workload
from .topology import Topology

COMPUTE, COMM = "compute", "comm"
_P2P = OpKind.SEND.collective  # the profile's figures of a send/recv pair


@dataclass(frozen=True)
class Site:
    """Where ops are being emitted: the rank's program, the layer and micro-batch, the tag prefix."""

    prog: Prog
    rank: int
    layer: int
    mb: int
    tag: str
    chunk: int = -1  # chunked prefill: the chunk of this unit (-1: no chunks)

    def fields(self, **kw) -> dict:
        if self.chunk >= 0:
            return {"layer": self.layer, "mb": self.mb, "chunk": self.chunk, **kw}
        return {"layer": self.layer, "mb": self.mb, **kw}


class Prog:
    """One rank's op list; derives deps from the buffers each op reads and writes."""

    def __init__(self, b: Builder, rank: int):
        self.b, self.rank = b, rank
        self.writer: dict[str, int] = {}
        self.readers: dict[str, list[int]] = {}

    def add(
        self,
        *,
        stream: str,
        kind: OpKind,
        role: Role,
        tag: str,
        reads=(),
        writes=(),
        layer: int = -1,
        mb: int = -1,
        step: int = -1,
        call: int = 0,
        chunk: int = -1,
        flops: float = 0.0,
        hbm_bytes: float = 0.0,
        link_bytes: float = 0.0,
        msg_bytes: float = 0.0,
        link: str = "",
        peers: tuple = (),
        match: int = -1,
        batch: int = -1,
        shape: tuple = (),
        causal: bool = False,
        est_s: float = 0.0,
        issue_s: float = 0.0,
    ) -> Op:
        """Append an op (the fields of ``Op``; ``deps`` derived from the buffers it reads and writes)."""
        return self._add(
            stream,
            kind,
            role,
            tag,
            tuple(reads),
            tuple(writes),
            layer,
            mb,
            step,
            call,
            chunk,
            flops,
            hbm_bytes,
            link_bytes,
            msg_bytes,
            link,
            peers,
            match,
            batch,
            shape,
            causal,
            est_s,
            issue_s,
        )

    def _add(
        self,
        stream,
        kind,
        role,
        tag,
        reads: tuple,
        writes: tuple,
        layer,
        mb,
        step,
        call,
        chunk,
        flops,
        hbm_bytes,
        link_bytes,
        msg_bytes,
        link,
        peers,
        match,
        batch,
        shape,
        causal,
        est_s,
        issue_s,
    ) -> Op:
        """``add`` with every field given, in order (the emitters' fast path: no keywords to bind)."""
        writer, readers = self.writer, self.readers
        deps = set()
        for x in reads:
            w = writer.get(x)
            if w is not None:
                deps.add(w)
        for x in writes:
            rd = readers.get(x)
            if rd:
                deps.update(rd)
            w = writer.get(x)
            if w is not None:
                deps.add(w)
        ops = self.b.ops
        i = len(ops)
        op = make_op(
            i,
            self.rank,
            stream,
            kind,
            role,
            tag,
            layer,
            mb,
            step,
            call,
            chunk,
            tuple(sorted(deps)) if len(deps) > 1 else tuple(deps),
            flops,
            hbm_bytes,
            link_bytes,
            msg_bytes,
            link,
            peers,
            match,
            batch,
            shape,
            causal,
            reads,
            writes,
            est_s,
            issue_s,
        )
        ops.append(op)
        for x in reads:
            rd = readers.get(x)
            if rd is None:
                readers[x] = [i]
            else:
                rd.append(i)
        for x in writes:
            writer[x] = i
            readers[x] = []
        return op

    def work(
        self,
        w: Work,
        tag: str,
        rename: dict[str, str] | None = None,
        label: str | None = None,
        *,
        layer: int = -1,
        mb: int = -1,
        step: int = -1,
        call: int = 0,
        chunk: int = -1,
    ) -> Op:
        """A compute kernel; its tag is ``tag/label`` (label: the role's name unless given)."""
        b = self.b
        got = b._op_memo.get(id(w))  # the same Work objects recur (strategies memoise them)
        if got is None or got[0] is not w:
            shape, flops, hbm, est = b.work_cost(w)
            issue = b.hw.op(w.role.op_class).issue_s if b.hw else 0.0
            got = b._op_memo[id(w)] = (
                w,
                w.kind,
                w.role,
                w.causal,
                shape,
                flops,
                hbm,
                est,
                issue,
                w.role.value,
                tuple(w.reads),
                tuple(w.writes),
            )
        _, kind, role, causal, shape, flops, hbm, est, issue, role_name, reads, writes = got
        if rename:
            reads = tuple([rename.get(x, x) for x in reads])
            writes = tuple([rename.get(x, x) for x in writes])
        return self._add(
            COMPUTE,
            kind,
            role,
            f"{tag}/{label or role_name}",
            reads,
            writes,
            layer,
            mb,
            step,
            call,
            chunk,
            flops,
            hbm,
            0.0,
            0.0,
            "",
            (),
            -1,
            -1,
            shape,
            causal,
            est,
            issue,
        )

    def collective(
        self,
        kind: OpKind,
        role: Role,
        group: tuple[int, ...],
        msg_bytes: float,
        tag: str,
        reads,
        writes,
        *,
        layer: int = -1,
        mb: int = -1,
        step: int = -1,
        call: int = 0,
        chunk: int = -1,
    ) -> Op | None:
        if len(group) <= 1:
            return None
        b = self.b
        link = b.group_link(group)
        coll = kind.collective
        return self._add(
            COMM,
            kind,
            role,
            tag,
            tuple(reads),
            tuple(writes),
            layer,
            mb,
            step,
            call,
            chunk,
            0.0,
            0.0,
            b.sent(coll, msg_bytes, len(group)),
            float(msg_bytes),
            link.value,
            group,
            b.key(f"{tag}|{group}"),
            -1,
            (),
            False,
            b.comm_est(link, coll, msg_bytes, len(group)),
            b.comm_issue_s,
        )

    def sendrecv(
        self,
        role: Role,
        tag: str,
        send_to: int | None,
        send_buf: str | None,
        recv_from: int | None,
        recv_buf: str | None,
        nbytes: float,
        recv_tag: str | None = None,
        recv_fields: dict | None = None,
        exchange: int = 2,
        *,
        layer: int = -1,
        mb: int = -1,
        step: int = -1,
        call: int = 0,
        chunk: int = -1,
    ) -> None:
        """A send and/or a recv issued together (one NCCL group) on the comm stream; ``exchange``: how many
        ranks exchange at once (a ring's size), which picks the profile's figures for the transfer.
        The recv has the send's fields (layer, mb, step, call, chunk) unless ``recv_fields`` gives its own."""
        b = self.b
        batch = b.next_batch()
        fb = float(nbytes)
        me = self.rank
        if send_to is not None:
            link, est = b.p2p(me, send_to, nbytes, exchange)
            self._add(
                COMM,
                OpKind.SEND,
                role,
                f"{tag}/send",
                (send_buf,),
                (),
                layer,
                mb,
                step,
                call,
                chunk,
                0.0,
                0.0,
                fb,
                fb,
                link,
                (send_to,),
                b.key(f"{tag}|{me}->{send_to}"),
                batch,
                (),
                False,
                est,
                b.comm_issue_s,
            )
        if recv_from is not None:
            link, est = b.p2p(recv_from, me, nbytes, exchange)
            rtag = recv_tag or tag
            if recv_fields is not None:
                f = {"layer": -1, "mb": -1, "step": -1, "call": 0, "chunk": -1, **recv_fields}
                if len(f) > 5:
                    raise TypeError(
                        f"recv_fields {sorted(recv_fields)}: valid are layer, mb, step, call, chunk"
                    )
                layer, mb, step, call, chunk = f["layer"], f["mb"], f["step"], f["call"], f["chunk"]
            self._add(
                COMM,
                OpKind.RECV,
                role,
                f"{rtag}/recv",
                (),
                (recv_buf,),
                layer,
                mb,
                step,
                call,
                chunk,
                0.0,
                0.0,
                0.0,
                fb,
                link,
                (recv_from,),
                b.key(f"{rtag}|{recv_from}->{me}"),
                batch,
                (),
                False,
                est,
                b.comm_issue_s,
            )


def _num(v):
    if type(v) is int:  # scalar fast path (the builder's usual case)
        return v
    if type(v) is float:
        return int(v) if v.is_integer() else v
    a = np.asarray(v)
    return int(a) if float(a).is_integer() else float(a)


class Builder:
    """Builds every rank's program; memoises the costs of kernels and messages that recur."""

    def __init__(
        self,
        model: Model,
        wl: Workload,
        plan: Plan,
        topo: Topology,
        hw: Hardware | None,
        kernel: str,
        layers: int | None,
        ring_steps: int | None = None,
    ):
        self.model, self.wl, self.plan, self.topo, self.hw, self.kernel = model, wl, plan, topo, hw, kernel
        self.geo = Geometry.of(model, wl, plan)
        self.attn_strategies = strategies.attention_for(plan, wl.phase)
        self.ring_steps = ring_steps  # None: every ring step; k: steps 0..k and the last (ring_prefill)
        self.ring_steps_built = 0  # middle steps (1..R-2) built per ring when coarsened, else 0
        self.ring_uniform = True  # every middle step of every rank has the same op costs
        self.memo: dict = {}  # strategies' own memo tables
        self.kernels_used: set[str] = set()  # attention kernels the ops' est_s assumed
        self.ops: list[Op] = []
        self._keys: dict[str, int] = {}
        self._batch = 0
        per_stage = model.layers // plan.pp
        self.layers_per_stage = per_stage if layers is None else max(1, min(layers, per_stage))
        self.comm_issue_s = hw.op("comm").issue_s if hw else 0.0
        # memo tables: the same kernels and messages recur on every rank, layer and step
        self._work_memo: dict[tuple, tuple] = {}
        self._comm_memo: dict[tuple, float] = {}
        self._sent_memo: dict[tuple, float] = {}
        self._p2p_memo: dict[tuple, tuple] = {}
        self._group_link_memo: dict[tuple, object] = {}
        self._attn_memo: dict[tuple, Work] = {}
        self._op_memo: dict[int, tuple] = {}  # id(Work) -> (the Work, its op's cost fields)

    def attention(self, *args, **kw) -> Work:
        """``layers.attention`` memoised on its arguments (a ring makes the same few calls many times)."""
        key = (args[0],) + args[2:] + tuple(sorted(kw.items()))
        w = self._attn_memo.get(key)
        if w is None:
            w = self._attn_memo[key] = Lr.attention(*args, **kw)
        return w

    def work_cost(self, w: Work) -> tuple:
        """(shape, flops, hbm_bytes, est_s) of a compute kernel, memoised on its cost inputs."""
        shape = (w.m, w.n, w.k) if w.kind == OpKind.GEMM else w.shape
        try:
            key = (
                w.kind,
                w.role,
                w.flops,
                w.hbm_bytes,
                w.m,
                w.kv_len,
                w.q_len,
                w.causal,
                shape,
                w.dims,
                w.fp8,
                w.quant_bytes,
                w.glu,
                w.weight_bytes,
            )  # every field work_time reads (not the buffers' names)
            hash(key)
        except TypeError:  # array-valued fields: no memo
            key = None
        if key is not None and key in self._work_memo:
            return self._work_memo[key]
        est = float(Lr.work_time(self.hw, w, self.kernel)) if self.hw else 0.0
        if w.kind == OpKind.ATTN and self.hw:
            names = self.hw.attn_names(self.kernel)
            pick = (
                int(
                    kernels.attn_choice(self.hw, w.flops, w.hbm_bytes, w.kv_len, w.causal, w.q_len, w.dims)[1]
                )
                if self.kernel == "auto"
                else 0
            )
            self.kernels_used.add(names[pick])
        out = (tuple(_num(v) for v in shape), float(w.flops), float(w.hbm_bytes), est)
        if key is not None:
            self._work_memo[key] = out
        return out

    def comm_est(self, link, coll: str, msg_bytes: float, group: int) -> float:
        if not self.hw:
            return 0.0
        key = (str(link), str(coll), msg_bytes, group)
        t = self._comm_memo.get(key)
        if t is None:
            t = self._comm_memo[key] = float(kernels.comm_time(self.hw, link, coll, msg_bytes, group))
        return t

    def p2p(self, src: int, dst: int, msg_bytes: float, exchange: int) -> tuple[str, float]:
        """(the link's name, est_s) of a point-to-point message from GPU src to dst, memoised."""
        key = (src, dst, msg_bytes, exchange)
        got = self._p2p_memo.get(key)
        if got is None:
            link = self.topo.link(src, dst)
            got = self._p2p_memo[key] = (link.value, self.comm_est(link, _P2P, msg_bytes, exchange))
        return got

    def group_link(self, group: tuple[int, ...]):
        """``topo.group_link(group)``, memoised."""
        link = self._group_link_memo.get(group)
        if link is None:
            link = self._group_link_memo[group] = self.topo.group_link(group)
        return link

    def sent(self, coll: str, msg_bytes: float, group: int) -> float:
        key = (str(coll), msg_bytes, group)
        v = self._sent_memo.get(key)
        if v is None:
            v = self._sent_memo[key] = float(kernels.sent_bytes(coll, msg_bytes, group))
        return v

    def key(self, s: str) -> int:
        return self._keys.setdefault(s, len(self._keys))

    def next_batch(self) -> int:
        self._batch += 1
        return self._batch

    def group_pos(self, axis: str, rank: int) -> tuple[tuple[int, ...], int]:
        """(``plan.group(axis, rank)``, the rank's index in it), memoised for the whole group."""
        memo = self.memo.setdefault(("group", axis), {})
        got = memo.get(rank)
        if got is None:
            group = self.plan.group(axis, rank)
            for j, r in enumerate(group):
                memo[r] = (group, j)
            got = memo[rank]
        return got

    # -- one rank -------------------------------------------------------------------------------
    def rank(self, rank: int) -> None:
        strategies.pipeline.emit(self, Prog(self, rank), rank, self.layer)

    def layer(self, prog: Prog, rank: int, layer: int, j: int, c: int = -1) -> None:
        """One layer of micro-batch ``j`` (chunk ``c`` of it with chunks; its activations are ``x@u``,
        u = j N + c): the dense part around the attention strategies' block."""
        if c >= 0:
            site = Site(prog, rank, layer, j, f"L{layer}/mb{j}/c{c}", chunk=c)
            kv, x = strategies.chunked.cache_name(layer, j, c), f"x@{j * self.plan.chunks + c}"
        else:
            site = Site(prog, rank, layer, j, f"L{layer}/mb{j}")
            kv, x = f"kvcache/L{layer}/mb{j}", f"x@{j}"
        strategies.dense.emit_pre(self, site, {"x": x, "kv_local": kv})
        q, o = "q", "o"
        for s in self.attn_strategies[:-1]:  # wrappers (ulysses) re-lay the buffers the core reads
            q, kv, o = s.emit_enter(self, site, q, kv, o)
        self.attn_strategies[-1].emit(self, site, q, kv, o)
        for s in reversed(self.attn_strategies[:-1]):
            s.emit_leave(self, site)
        strategies.dense.emit_post(self, site, {"x": x})


def build_schedule(
    model: Model,
    workload: Workload,
    plan: Plan,
    topo: Topology,
    hw: Hardware | None = None,
    *,
    kernel: str = "auto",
    layers: int | None = None,
    ring_steps: int | None = None,
) -> Schedule:
    """Build every rank's ops.  ``layers`` < layers per stage builds fewer identical layers and sets
    ``layer_repeat`` = layers per stage / layers built (the ops are otherwise unchanged); per-layer totals
    scale by it, per-micro-batch ops (pipeline transfers) do not.
    ``ring_steps=k`` (a coarsening for the simulator; None builds everything) builds only steps 0..k and
    the last step of each pass-KV prefill ring with R - 2 > k, recorded in ``ring_steps_built`` /
    ``ring_steps_total``; ``ring_steps_uniform`` says whether the middle steps 1..R-2 cost the same on
    every rank (else the built ones cannot stand for the rest).  Totals then count only what was built."""
    strategies.validate(plan, model, workload, topo)
    per_stage = model.layers // plan.pp
    b = Builder(model, workload, plan, topo, hw, kernel, layers, ring_steps)
    for r in range(plan.n_ranks):
        b.rank(r)
    repeat = per_stage / b.layers_per_stage  # identical layers: an exact ratio even when it is not whole
    specs = {
        "model": asdict_values(model),
        "workload": asdict_values(workload),
        "plan": plan.to_dict(workload.phase, kernel),
        "topology": topo.to_dict(),
        "hardware": hw.name if hw else None,
        "attn_kernel": kernel,
        "attn_kernels_used": sorted(b.kernels_used),
    }
    sched = Schedule(
        n_ranks=plan.n_ranks,
        ops=b.ops,
        specs=specs,
        layers_built=b.layers_per_stage * plan.pp,
        layer_repeat=repeat,
        launch_s=float(hw.pass_start_s(plan.n_ranks)) if hw else 0.0,
    )
    if b.ring_steps_built:
        sched.ring_steps_built, sched.ring_steps_total = b.ring_steps_built, plan.ring - 2
        sched.ring_steps_uniform = b.ring_uniform
    return sched


_PLAIN = (int, float, str, bool, type(None))


def asdict_values(obj) -> dict:
    """A spec dataclass as a dict of plain values (enums by value).  Fields of plain values, enums and
    tuples of plain values are read directly (what ``dataclasses.asdict`` would copy them to); anything
    else goes through ``asdict``."""
    from dataclasses import asdict, fields

    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        t = type(v)
        if t in _PLAIN or (t is tuple and all(type(e) in _PLAIN for e in v)):
            out[f.name] = v
        elif isinstance(v, enum.Enum) and type(v.value) in _PLAIN:
            out[f.name] = v.value
        else:
            d = asdict(obj)
            return {k: (v.value if hasattr(v, "value") else v) for k, v in d.items()}
    return out


__all__ = ["Builder", "Prog", "Site", "asdict_values", "build_schedule"]
