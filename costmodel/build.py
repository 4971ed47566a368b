"""Plan -> Schedule: the per-rank op graph of a forward pass (prefill) or of one decode step.

Parallelism is applied by small functions, one per idea: the dense part of a layer split tp ways
(``_dense``), attention kept local, spread over a ring (``_ring_prefill``), over an all-to-all
(``_ulysses``), or the decode variants (``_decode_*``); pipeline stages wrap layers (``_rank``).
"""
from __future__ import annotations


import numpy as np

from . import kernels, layers as Lr
from .layers import Kind, Work
from .plan import DecodeAttn, Plan, RingVariant, validate
from .schedule import Op, Schedule
from .specs import Collective, Hardware, Model, Phase, Workload, ceil_div
from .topology import Topology

COMPUTE, COMM = "compute", "comm"


def ring_calls(variant: str, causal: bool, ring: int, lr: int, p: int, t: int) -> list[tuple[int, int, bool]]:
    """Attention calls (q_len, kv_len, causal) rank ``p`` makes at ring step ``t`` (pass-KV prefill).

    ``lr`` is the ring-local sequence length per rank.  Layouts: plain (contiguous chunks), zigzag
    (chunks p and 2P-1-p of 2P), striped (tokens p, p+P, ...).  A fully masked block makes no call.
    """
    src = (p - t) % ring
    if not causal:
        return [(lr, lr, False)]
    if variant == RingVariant.PLAIN:
        return [(lr, lr, True)] if src == p else ([(lr, lr, False)] if src < p else [])
    if variant == RingVariant.ZIGZAG:
        h = lr // 2
        if src == p:
            return [(lr, lr, True)]
        return [(lr, h, False)] if src < p else [(h, lr, False)]
    # striped: blocks with src > p lose their diagonal (drop the first query and the last key)
    return [(lr, lr, True)] if src <= p else ([(lr - 1, lr - 1, True)] if lr > 1 else [])


class _Prog:
    """One rank's op list; derives deps from the buffers each op reads and writes."""

    def __init__(self, b: "_Builder", rank: int):
        self.b, self.rank = b, rank
        self.writer: dict[str, int] = {}
        self.readers: dict[str, list[int]] = {}

    def add(self, *, stream: str, kind: str, tag: str, reads=(), writes=(), **f) -> Op:
        writer, readers = self.writer, self.readers
        deps = {writer[x] for x in reads if x in writer}
        for x in writes:
            rd = readers.get(x)
            if rd:
                deps.update(rd)
            if x in writer:
                deps.add(writer[x])
        ops = self.b.ops
        i = len(ops)
        op = Op(id=i, rank=self.rank, stream=stream, kind=kind, tag=tag,
                deps=tuple(sorted(deps)) if len(deps) > 1 else tuple(deps),
                reads=tuple(reads), writes=tuple(writes), **f)
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

    def work(self, w: Work, tag: str, rename: dict[str, str]) -> Op:
        shape, flops, hbm, est = self.b.work_cost(w)
        issue = self.b.hw.op(Lr.op_class(w)).issue_s if self.b.hw else 0.0
        if rename:
            reads = tuple(rename.get(x, x) for x in w.reads)
            writes = tuple(rename.get(x, x) for x in w.writes)
        else:
            reads, writes = tuple(w.reads), tuple(w.writes)
        return self.add(stream=COMPUTE, kind=w.kind, tag=f"{tag}/{w.name}", reads=reads, writes=writes,
                        flops=flops, hbm_bytes=hbm, shape=shape, causal=w.causal, est_s=est, issue_s=issue)

    def collective(self, coll: str, group: tuple[int, ...], msg_bytes: float, tag: str, reads, writes) -> Op | None:
        if len(group) <= 1:
            return None
        b = self.b
        link = b.topo.group_link(group)
        return self.add(stream=COMM, kind=coll, tag=tag, reads=reads, writes=writes, peers=group,
                        match=b.key(f"{tag}|{group}"), msg_bytes=float(msg_bytes), link=link.value,
                        link_bytes=b.sent(coll, msg_bytes, len(group)),
                        est_s=b.comm_est(link, coll, msg_bytes, len(group)),
                        issue_s=b.hw.op("comm").issue_s if b.hw else 0.0)

    def sendrecv(self, tag: str, send_to: int | None, send_buf: str | None, recv_from: int | None,
                 recv_buf: str | None, nbytes: float, recv_tag: str | None = None) -> None:
        """A send and/or a recv issued together (one NCCL group) on the comm stream."""
        b = self.b
        batch = b.next_batch()
        if send_to is not None:
            link = b.topo.link(self.rank, send_to)
            self.add(stream=COMM, kind=Kind.SEND, tag=f"{tag}/send", reads=(send_buf,), peers=(send_to,),
                     match=b.key(f"{tag}|{self.rank}->{send_to}"), batch=batch, msg_bytes=float(nbytes),
                     link=link.value, link_bytes=float(nbytes),
                     est_s=b.comm_est(link, Collective.P2P, nbytes, 2), issue_s=b.hw.op("comm").issue_s if b.hw else 0.0)
        if recv_from is not None:
            link = b.topo.link(recv_from, self.rank)
            rtag = recv_tag or tag
            self.add(stream=COMM, kind=Kind.RECV, tag=f"{rtag}/recv", writes=(recv_buf,), peers=(recv_from,),
                     match=b.key(f"{rtag}|{recv_from}->{self.rank}"), batch=batch, msg_bytes=float(nbytes),
                     link=link.value,
                     est_s=b.comm_est(link, Collective.P2P, nbytes, 2), issue_s=b.hw.op("comm").issue_s if b.hw else 0.0)


def _num(v):
    if type(v) is int:  # scalar fast path (the builder's usual case)
        return v
    if type(v) is float:
        return int(v) if v.is_integer() else v
    a = np.asarray(v)
    return int(a) if float(a).is_integer() else float(a)


class _Builder:
    def __init__(self, model: Model, wl: Workload, plan: Plan, topo: Topology, hw: Hardware | None, kernel: str,
                 layers: int | None, ring_steps: int | None = None):
        self.model, self.wl, self.plan, self.topo, self.hw, self.kernel = model, wl, plan, topo, hw, kernel
        self.ring_steps = ring_steps  # None: every ring step; k: steps 0..k and the last (see _ring_ts)
        self.ring_steps_built = 0  # middle steps (1..R-2) built per ring when coarsened, else 0
        self.ring_uniform = True  # every middle step of every rank has the same op costs
        self._uniform_memo: dict[int, bool] = {}
        self._ring_memo: dict[int, tuple[tuple[int, ...], int]] = {}
        self.ops: list[Op] = []
        self._keys: dict[str, int] = {}
        self._batch = 0
        per_stage = model.layers // plan.pp
        self.layers_per_stage = per_stage if layers is None else max(1, min(layers, per_stage))
        # memo tables: the same kernels and messages recur on every rank, layer and step; their costs
        # are computed once through the numpy-vectorised kernels.py (values identical to a direct call)
        self._work_memo: dict[tuple, tuple] = {}
        self._comm_memo: dict[tuple, float] = {}
        self._sent_memo: dict[tuple, float] = {}
        self._attn_memo: dict[tuple, Work] = {}

    def attention(self, *args, **kw) -> Work:
        """``layers.attention`` memoised on its arguments (a ring makes the same few calls many times)."""
        key = (args[0],) + args[2:] + tuple(sorted(kw.items()))
        w = self._attn_memo.get(key)
        if w is None:
            w = self._attn_memo[key] = Lr.attention(*args, **kw)
        return w

    def work_cost(self, w: Work) -> tuple:
        """(shape, flops, hbm_bytes, est_s) of a compute kernel, memoised on its cost inputs."""
        shape = (w.m, w.n, w.k) if w.kind == Kind.GEMM else w.shape
        try:
            key = (w.kind, Lr.op_class(w), w.flops, w.hbm_bytes, w.m, w.kv_len, w.q_len, w.causal, shape)
            hash(key)
        except TypeError:  # array-valued fields: no memo
            key = None
        if key is not None and key in self._work_memo:
            return self._work_memo[key]
        est = float(Lr.work_time(self.hw, w, self.kernel)) if self.hw else 0.0
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

    # -- geometry -------------------------------------------------------------------------------
    @property
    def mb(self) -> int:
        return self.wl.batch // self.plan.microbatches

    def heads(self) -> tuple[int, int]:
        """(query heads, kv heads) one rank attends with, after tp and ulysses."""
        p, m = self.plan, self.model
        return m.n_heads // (p.tp * p.ulysses), max(m.n_kv_heads // (p.tp * p.ulysses), 1)

    def dense_tokens(self) -> int:
        """Token rows of the dense part (GEMMs) on one rank for one microbatch."""
        p, wl = self.plan, self.wl
        if wl.phase == Phase.PREFILL:
            return self.mb * wl.seq_len // p.sp
        if p.sp == 1 or (p.ring > 1 and p.decode_attn == DecodeAttn.ALLGATHER):
            return self.mb  # every rank of the sequence group computes the new tokens (no scatter needed)
        return ceil_div(self.mb, p.sp)  # owners compute their sequences' new tokens

    # -- one rank -------------------------------------------------------------------------------
    def rank(self, rank: int) -> None:
        prog = _Prog(self, rank)
        plan = self.plan
        s, r, u, t = plan.coords(rank)
        prev = plan.rank_of(s - 1, r, u, t) if s > 0 else None
        nxt = plan.rank_of(s + 1, r, u, t) if s < plan.pp - 1 else None
        act = self.dense_tokens() * self.model.d_model * self.model.dtype_bytes
        m = plan.microbatches
        if prev is not None:
            prog.sendrecv("pp/mb0", None, None, prev, "x@0", act)
        for j in range(m):
            for i in range(self.layers_per_stage):
                self.layer(prog, rank, s * self.layers_per_stage + i, j)
            if nxt is not None or (prev is not None and j + 1 < m):
                prog.sendrecv(f"pp/mb{j}", nxt, f"x@{j}", prev if j + 1 < m else None, f"x@{j + 1}", act,
                              recv_tag=f"pp/mb{j + 1}")

    def layer(self, prog: _Prog, rank: int, layer: int, j: int) -> None:
        model, plan, wl = self.model, self.plan, self.wl
        tok = self.dense_tokens()
        tag = f"L{layer}/mb{j}"
        ren = {"x": f"x@{j}", "kv_local": f"kvcache/L{layer}/mb{j}"}
        works = Lr.layer_dense_works(model, tok, plan.tp)
        pre, post = works[:3], works[3:]
        for w in pre:
            prog.work(w, tag, ren)
        if wl.phase == Phase.PREFILL:
            self.attention_prefill(prog, rank, tag, ren["kv_local"])
        else:
            self.attention_decode(prog, rank, tag, ren["kv_local"])
        tp_group = plan.tp_group(rank)
        msg = tok * model.d_model * model.dtype_bytes
        for w in post:
            prog.work(w, tag, ren)
            if w.name in ("o_proj", "mlp_down"):
                prog.collective(Kind.ALL_REDUCE, tp_group, msg, f"{tag}/tp/{w.name}_ar", ("y",), ("y",))

    # -- attention, prefill --------------------------------------------------------------------
    def attention_prefill(self, prog: _Prog, rank: int, tag: str, kv: str) -> None:
        plan, model, wl = self.plan, self.model, self.wl
        hq, hkv = self.heads()
        ltok = wl.seq_len // plan.ring  # ring-local tokens per sequence (after the all-to-all, if any)
        q, o = "q", "o"
        if plan.ulysses > 1:
            tok = self.dense_tokens()
            qkv_b = tok * (hq + 2 * hkv) * plan.ulysses * model.head_dim * model.dtype_bytes
            prog.collective(Kind.ALL_TO_ALL, plan.ulysses_group(rank), qkv_b, f"{tag}/ulysses/a2a_qkv",
                            ("q", kv), ("q_h", f"{kv}/heads"))
            q, kv, o = "q_h", f"{kv}/heads", "o_h"
        if plan.ring > 1:
            self._ring_prefill(prog, rank, tag, q, kv, o, ltok, hq, hkv)
        else:
            w = Lr.attention("attn", model, self.mb, hq, ltok, ltok, wl.causal, (q, kv), (o,), kv_heads=hkv)
            prog.work(w, f"{tag}/attn", {})
        if plan.ulysses > 1:
            tok = self.dense_tokens()
            prog.collective(Kind.ALL_TO_ALL, plan.ulysses_group(rank),
                            tok * hq * plan.ulysses * model.head_dim * model.dtype_bytes,
                            f"{tag}/ulysses/a2a_o", ("o_h",), ("o",))

    def _ring_prefill(self, prog: _Prog, rank, tag, q, kv, o, ltok, hq, hkv) -> None:
        """Pass-KV ring: P steps; step t attends to the block that left rank p-t, t steps ago, while
        the next block moves (double buffer); partial outputs merge into an FP32 accumulator."""
        plan, model, wl = self.plan, self.model, self.wl
        group, i = self.ring_pos(rank)
        R = plan.ring
        nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
        block = self.mb * ltok * 2 * hkv * model.head_dim * model.dtype_bytes
        tok = self.mb * ltok
        have = False
        ts = self._ring_ts(R)
        if len(ts) < R and not self._middle_uniform(R, ltok, i, hq, hkv):
            self.ring_uniform = False
        for j, t in enumerate(ts):  # j == t unless coarsened (buffers alternate by position)
            cur = kv if j == 0 else f"kvbuf{j % 2}"
            stag = f"{tag}/ring/step{t}"
            if j < len(ts) - 1:
                prog.sendrecv(stag, nxt, cur, prv, f"kvbuf{(j + 1) % 2}", block)
            for c, (ql, kl, causal) in enumerate(ring_calls(plan.ring_variant, wl.causal, R, ltok, i, t)):
                w = self.attention(f"attn{c}" if c else "attn", model, self.mb, hq, ql, kl, causal, (q, cur),
                                 ("part",), kv_heads=hkv)
                prog.work(w, stag, {})
                if have:
                    prog.work(Lr.lse_merge("merge", model, tok, hq, ("part", "acc"), ("acc",)), stag, {})
                else:
                    prog.work(Lr.elementwise("init", tok * hq * model.head_dim * (model.dtype_bytes + model.accum_bytes),
                                             ("part",), ("acc",)), stag, {})
                    have = True
        prog.work(Lr.elementwise("finalize", tok * hq * model.head_dim * (model.accum_bytes + model.dtype_bytes),
                                 ("acc",), (o,)), f"{tag}/ring", {})

    def ring_pos(self, rank: int) -> tuple[tuple[int, ...], int]:
        """(``plan.ring_group(rank)``, rank's index in it), memoised for the whole group (O(R) per group)."""
        got = self._ring_memo.get(rank)
        if got is None:
            group = self.plan.ring_group(rank)
            for j, r in enumerate(group):
                self._ring_memo[r] = (group, j)
            got = self._ring_memo[rank]
        return got

    def _ring_ts(self, R: int) -> list[int] | range:
        """Ring steps to build: all of them, or (``ring_steps=k`` < R - 2) steps 0..k and the last one:
        built steps 1..k stand for the middle steps 1..R-2 (the simulator extrapolates them)."""
        k = self.ring_steps
        if k is None or R - 2 <= k:
            return range(R)
        self.ring_steps_built = k
        return list(range(k + 1)) + [R - 1]

    def _middle_uniform(self, R: int, ltok: int, i: int, hq: int, hkv: int) -> bool:
        """True if rank ``i``'s middle steps 1..R-2 all make calls of the same costs (est_s).

        Every layout's calls depend on the step only through whether the block's source rank is below,
        at or above ``i`` (``ring_calls``), so the lowest and highest sources of each side stand for all."""
        got = self._uniform_memo.get(i)
        if got is None:
            plan, wl = self.plan, self.wl
            srcs = {s for s in (0, 1, i - 1, i + 1, i + 2, R - 2, R - 1)
                    if 0 <= s < R and s != i and s != (i + 1) % R}  # middle steps: all sources but these two
            calls = {tuple(ring_calls(plan.ring_variant, wl.causal, R, ltok, i, (i - s) % R)) for s in srcs}
            ests = {tuple(self.work_cost(self.attention("attn", self.model, self.mb, hq, ql, kl, c, ("q", "kv"),
                                                        ("part",), kv_heads=hkv))[3] for ql, kl, c in cs)
                    for cs in calls}
            got = self._uniform_memo[i] = len(ests) <= 1
        return got

    # -- attention, decode ---------------------------------------------------------------------
    def attention_decode(self, prog: _Prog, rank: int, tag: str, kv: str) -> None:
        plan, model, wl = self.plan, self.model, self.wl
        hq, hkv = self.heads()
        if plan.ulysses > 1:
            tok = self.dense_tokens()
            g = plan.ulysses_group(rank)
            per = tok * plan.ulysses
            prog.collective(Kind.ALL_TO_ALL, g, per * (hq + 2 * hkv) * model.head_dim * model.dtype_bytes,
                            f"{tag}/ulysses/a2a_qkv", ("q", kv), ("q_h", f"{kv}/heads"))
            w = Lr.attention("attn", model, per, hq, 1, wl.context, False, ("q_h", f"{kv}/heads"), ("o_h",),
                             kv_heads=hkv)
            prog.work(w, f"{tag}/attn", {})
            prog.collective(Kind.ALL_TO_ALL, g, per * hq * model.head_dim * model.dtype_bytes,
                            f"{tag}/ulysses/a2a_o", ("o_h",), ("o",))
            return
        if plan.ring == 1:
            w = Lr.attention("attn", model, self.mb, hq, 1, wl.context, False, ("q", kv), ("o",), kv_heads=hkv)
            prog.work(w, f"{tag}/attn", {})
            return
        {DecodeAttn.ALLGATHER: self._decode_allgather, DecodeAttn.PASS_Q: self._decode_pass_q,
         DecodeAttn.PASS_KV: self._decode_pass_kv}[plan.decode_attn](prog, rank, tag, kv, hq, hkv)

    def _decode_allgather(self, prog, rank, tag, kv, hq, hkv) -> None:
        """Every ring rank holds the new tokens' queries; each attends to its KV shard, then the
        partial outputs and log-sum-exps are all-gathered and merged."""
        plan, model, wl = self.plan, self.model, self.wl
        R, b = plan.ring, self.mb
        w = Lr.attention("attn", model, b, hq, 1, wl.context // R, False, ("q", kv), ("part",), kv_heads=hkv)
        prog.work(w, f"{tag}/ring", {})
        part = b * hq * (model.head_dim * model.accum_bytes + 4)
        prog.collective(Kind.ALL_GATHER, plan.ring_group(rank), R * part, f"{tag}/ring/allgather", ("part",),
                        ("parts",))
        prog.work(Lr.elementwise("merge", R * part + b * hq * model.head_dim * model.dtype_bytes, ("parts",),
                                 ("o",), kind=Kind.LSE_MERGE), f"{tag}/ring", {})

    def _decode_pass_q(self, prog, rank, tag, kv, hq, hkv) -> None:
        """The owners' queries travel the ring with their running (output, lse); each rank attends
        them to its shard and merges; after P hops the block is home."""
        plan, model, wl = self.plan, self.model, self.wl
        R = plan.ring
        group, i = self.ring_pos(rank)
        nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
        tok = self.dense_tokens()
        blk = tok * hq * (model.head_dim * (model.dtype_bytes + model.accum_bytes) + 4)
        for t in range(R):
            stag = f"{tag}/ring/step{t}"
            cur = f"qblk{t % 2}" if t else "q"
            w = self.attention("attn", model, tok, hq, 1, wl.context // R, False, (cur, kv), ("part",), kv_heads=hkv)
            prog.work(w, stag, {})
            prog.work(Lr.lse_merge("merge", model, tok, hq, ("part", cur), (cur,)), stag, {})
            prog.sendrecv(stag, nxt, cur, prv, f"qblk{(t + 1) % 2}", blk)
        prog.work(Lr.elementwise("finalize", tok * hq * model.head_dim * (model.accum_bytes + model.dtype_bytes),
                                 (f"qblk{R % 2}",), ("o",)), f"{tag}/ring", {})

    def _decode_pass_kv(self, prog, rank, tag, kv, hq, hkv) -> None:
        """The seed's algorithm applied to decode as written: whole KV-cache shards travel the ring
        while the owners' new queries attend to each one in turn."""
        plan, model, wl = self.plan, self.model, self.wl
        R = plan.ring
        group, i = self.ring_pos(rank)
        nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
        tok = self.dense_tokens()
        # owners pad the micro-batch to tok x R sequences (every rank the same rows): the shard holds them all
        shard = tok * R * (wl.context // R) * 2 * hkv * model.head_dim * model.dtype_bytes
        for t in range(R):
            stag = f"{tag}/ring/step{t}"
            cur = kv if t == 0 else f"kvbuf{t % 2}"
            if t < R - 1:
                prog.sendrecv(stag, nxt, cur, prv, f"kvbuf{(t + 1) % 2}", shard)
            w = self.attention("attn", model, tok, hq, 1, wl.context // R, False, ("q", cur), ("part",),
                             kv_heads=hkv)
            prog.work(w, stag, {})
            prog.work(Lr.lse_merge("merge", model, tok, hq, ("part", "acc"), ("acc",)), stag, {})
        prog.work(Lr.elementwise("finalize", tok * hq * model.head_dim * (model.accum_bytes + model.dtype_bytes),
                                 ("acc",), ("o",)), f"{tag}/ring", {})


def build_schedule(model: Model, workload: Workload, plan: Plan, topo: Topology, hw: Hardware | None = None, *,
                   kernel: str = "flash", layers: int | None = None, ring_steps: int | None = None) -> Schedule:
    """Build every rank's ops.  ``layers`` < layers per stage builds fewer identical layers and sets
    ``layer_repeat`` = layers per stage / layers built (the ops are otherwise unchanged); per-layer totals
    scale by it, per-micro-batch ops (pipeline transfers) do not.
    ``ring_steps=k`` (a coarsening for the simulator; None builds everything) builds only steps 0..k and
    the last step of each pass-KV prefill ring with R - 2 > k, recorded in ``ring_steps_built`` /
    ``ring_steps_total``; ``ring_steps_uniform`` says whether the middle steps 1..R-2 cost the same on
    every rank (else the built ones cannot stand for the rest).  Totals then count only what was built."""
    validate(plan, model, workload, topo)
    if workload.phase == Phase.DECODE and plan.ring > 1 and plan.ulysses > 1:
        from .errors import SpecError
        raise SpecError("decode with both ring and ulysses > 1 is not modelled: use one of them")
    per_stage = model.layers // plan.pp
    b = _Builder(model, workload, plan, topo, hw, kernel, layers, ring_steps)
    for r in range(plan.n_ranks):
        b.rank(r)
    repeat = per_stage / b.layers_per_stage  # identical layers: an exact ratio even when it is not whole
    specs = {"model": _asdict(model), "workload": _asdict(workload), "plan": plan.to_dict(),
             "topology": topo.to_dict(), "hardware": hw.name if hw else None, "attn_kernel": kernel}
    sched = Schedule(n_ranks=plan.n_ranks, ops=b.ops, specs=specs, layers_built=b.layers_per_stage * plan.pp,
                     layer_repeat=repeat, launch_s=hw.pass_launch_s if hw else 0.0)
    if b.ring_steps_built:
        sched.ring_steps_built, sched.ring_steps_total = b.ring_steps_built, plan.ring - 2
        sched.ring_steps_uniform = b.ring_uniform
    return sched


def _asdict(obj) -> dict:
    from dataclasses import asdict
    d = asdict(obj)
    return {k: (v.value if hasattr(v, "value") else v) for k, v in d.items()}


__all__ = ["build_schedule", "ring_calls"]
