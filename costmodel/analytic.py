"""Closed forms of what a schedule costs, vectorised with numpy over L, B and the plan's degrees.

``evaluate`` takes scalars or arrays (broadcast together) for the numeric inputs and scalars for the
categorical ones (phase, layout, kernel, topology kind), and returns a dict of arrays.  It uses the
same per-kernel recipes (``layers.py``) and costs (``kernels.py``) as the schedule builder, so where
a schedule has no contention and no imbalance the two agree; ``tests/`` hold them to it.

Latency model (one rank on the critical path):
* a layer = its dense kernels + TP all-reduces + its attention block;
* ring attention = the max-plus recurrence of the double-buffered pass-KV ring: step t's transfer
  starts when the previous one is done and the buffer it overwrites has been read; step t's
  attention starts when its block has arrived and the previous step's merge is done; compute that
  runs beside a transfer is slowed by the profile's ``compute_slowdown_under_comm``; each step's
  compute is the slowest rank's (the causal imbalance of the plain layout);
* a pipeline of S stages and m micro-batches = (S + m - 1) t_stage + (S + m - 2) t_transfer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels, layers as Lr
from .layers import Kind, Work
from .plan import DecodeAttn, RingVariant
from .specs import Collective, Hardware, Model, Phase

A = np.ndarray


@dataclass(frozen=True)
class Setting:
    """The categorical inputs of one vectorised evaluation."""

    phase: str = Phase.PREFILL
    causal: bool = True
    kernel: str = "flash"
    ring_variant: str = RingVariant.ZIGZAG
    decode_attn: str = DecodeAttn.ALLGATHER
    topo_kind: str = "nvswitch"
    gpus_per_node: int = 8


class _Acc:
    """Accumulates a rank's device time (compute- and memory-bound) and the host time to issue it."""

    def __init__(self, hw: Hardware, kernel: str, shape):
        self.hw, self.kernel = hw, kernel
        z = np.zeros(shape)
        self.compute, self.memory = z.copy(), z.copy()
        self.flops, self.hbm = z.copy(), z.copy()
        self.host = z.copy()  # host time to issue the ops added (compute and comm)

    def parts(self, w: Work):
        """(device time, compute-bound?) of one run of w."""
        hw = self.hw
        t = Lr.work_time(hw, w, self.kernel)
        # compute-bound by the roofline's ridge point: arithmetic intensity above peak FLOP/s per byte/s
        ridge = hw.peak_flops / hw.hbm_bw_Bps
        fl = np.asarray(w.flops, dtype=float)
        cb = fl >= ridge * np.asarray(w.hbm_bytes, dtype=float)
        return np.asarray(t, dtype=float), cb & (fl > 0)

    def time(self, w: Work):
        """Device time of one run of w."""
        return self.parts(w)[0]

    def issue_comm(self, count):
        """Host time of ``count`` communication calls (the profile's ``comm`` issue time)."""
        self.host = self.host + np.asarray(count, dtype=float) * self.hw.op("comm").issue_s

    def add(self, w: Work, count=1.0, scale=1.0):
        """Add ``count`` runs of w to the path (its time multiplied by ``scale``); returns one run's time."""
        t, cb = self.parts(w)
        self.compute = self.compute + count * scale * np.where(cb, t, 0.0)
        self.memory = self.memory + count * scale * np.where(cb, 0.0, t)
        self.host = self.host + count * self.hw.op(Lr.op_class(w)).issue_s
        self.flops = self.flops + count * np.asarray(w.flops, dtype=float)
        self.hbm = self.hbm + count * np.asarray(w.hbm_bytes, dtype=float)
        return t * scale

    @property
    def busy(self):
        return self.compute + self.memory


def _link(setting: Setting, span) -> np.ndarray:
    """'ib' where a group spanning ``span`` consecutive GPUs leaves a node (ib) or an NVLink domain (nvl)."""
    if setting.topo_kind not in ("ib", "nvl"):
        return np.zeros(np.shape(span), dtype=bool)
    return np.asarray(span) > setting.gpus_per_node


def _comm(hw: Hardware, is_ib, coll: str, msg, group):
    t_nv = kernels.comm_time(hw, "nvlink", coll, msg, group)
    t_ib = kernels.comm_time(hw, "ib", coll, msg, group)
    return np.where(is_ib, t_ib, t_nv)


def ring_recurrence(c0, g0, c1, g1, x, R, slowdown, x_first=None):
    """End time of a pass-KV ring of R steps (from the moment the local block is ready).

    Step 0 computes c0 then g0, steps >= 1 compute c1 then g1; each of the first R-1 steps moves a
    block of x seconds.  Vectorised; loops over steps up to max(R).
    """
    shape = np.broadcast(c0, g0, c1, g1, x, R).shape
    R = np.broadcast_to(R, shape)
    xf = x if x_first is None else x_first
    E = np.zeros(shape)  # compute stream free
    Rprev = np.zeros(shape)  # previous transfer done (R_{t-1})
    Aprev = np.zeros(shape)  # previous attention end (A_{t-1})
    done = np.zeros(shape)
    for t in range(int(np.max(R))):
        live = t < R
        has_x = t < R - 1
        s = np.where(has_x, slowdown, 1.0)
        c = (c0 if t == 0 else c1) * s
        g = (g0 if t == 0 else g1) * s
        start = np.maximum(E, Rprev) if t else E
        A = start + c
        E_new = A + g
        if t == 0:
            G = np.zeros(shape)
        else:
            G = np.maximum(Rprev, Aprev) if t >= 2 else Rprev
        Rt = G + (xf if t == 0 else x)
        Aprev = np.where(live, A, Aprev)
        Rprev = np.where(has_x, Rt, Rprev)
        E = np.where(live, E_new, E)
        done = np.where(live, E_new, done)
    return done


def evaluate(model: Model, hw: Hardware, st: Setting, *, batch, seq, tp=1, pp=1, ring=1, ulysses=1,
             microbatches=1, context=None, gen_tokens=1) -> dict[str, A]:
    """Closed-form cost of a plan; every numeric input may be an array (broadcast together)."""
    B, L, T, S, R, U, m = np.broadcast_arrays(*(np.asarray(v) for v in (batch, seq, tp, pp, ring, ulysses,
                                                                          microbatches)))
    C = np.asarray(L if context is None else context)
    shape = np.broadcast(B, L, T, S, R, U, m, C).shape
    B, L, T, S, R, U, m = (np.broadcast_to(v, shape).astype(float) for v in (B, L, T, S, R, U, m))
    C = np.broadcast_to(C, shape).astype(float)
    d, b, hd = model.d_model, model.dtype_bytes, model.head_dim
    mb = B / m
    hq = model.n_heads / (T * U)
    hkv = np.maximum(np.floor(model.n_kv_heads / (T * U)), 1)
    decode = st.phase == Phase.DECODE
    sp = R * U
    # dense token rows of one rank for one micro-batch
    if not decode:
        tok = mb * L / sp
    elif st.decode_attn == DecodeAttn.ALLGATHER:
        tok = np.where(U > 1, np.ceil(mb / sp), mb)
    else:
        tok = np.where(sp > 1, np.ceil(mb / sp), mb)
    acc = _Acc(hw, st.kernel, shape)
    sent_nv, sent_ib = np.zeros(shape), np.zeros(shape)
    comm_path = np.zeros(shape)  # exposed communication per layer
    comm_path_ib = np.zeros(shape)

    # ---- dense part of one layer (TP all-reduces on the path) ----
    for w in Lr.layer_dense_works(model, tok, T):
        acc.add(w)
    ar_msg = tok * d * b
    t_ar = kernels.comm_time(hw, "nvlink", Collective.ALL_REDUCE, ar_msg, T)
    comm_path = comm_path + 2 * t_ar
    acc.issue_comm(2 * (T > 1))
    sent_nv = sent_nv + 2 * kernels.sent_bytes(Collective.ALL_REDUCE, ar_msg, T) * (T > 1)

    # ---- attention block ----
    lr = L / R  # ring-local tokens per sequence
    ring_ib = _link(st, T * U * R) & (R > 1)
    if not decode:
        if_u = U > 1
        u_ib = _link(st, T * U)
        a2a_qkv = tok * (hq + 2 * hkv) * U * hd * b
        a2a_o = tok * hq * U * hd * b
        t_a2a = np.where(if_u, _comm(hw, u_ib, Collective.ALL_TO_ALL, a2a_qkv, U)
                         + _comm(hw, u_ib, Collective.ALL_TO_ALL, a2a_o, U), 0.0)
        comm_path = comm_path + np.where(u_ib, 0.0, t_a2a)
        comm_path_ib = comm_path_ib + np.where(u_ib, t_a2a, 0.0)
        a2a_sent = kernels.sent_bytes(Collective.ALL_TO_ALL, a2a_qkv + a2a_o, U) * if_u
        sent_nv, sent_ib = sent_nv + np.where(u_ib, 0, a2a_sent), sent_ib + np.where(u_ib, a2a_sent, 0)
        acc.issue_comm(2 * if_u + 2 * (R - 1))
        t_attn, t_xfer = _ring_prefill(model, hw, st, acc, mb, hq, hkv, lr, R, ring_ib)
        t_xfer = t_xfer + t_a2a
        blk = mb * lr * 2 * hkv * hd * b
        ring_sent = (R - 1) * blk
        sent_nv = sent_nv + np.where(R > 1, ring_sent, 0.0)  # inner hops are NVLink
        sent_ib = sent_ib + np.where(ring_ib, ring_sent, 0.0)  # the rank at a node boundary
    else:
        t_attn, xs, t_xfer = _decode_attention(model, hw, st, acc, mb, tok, hq, hkv, C, R, U, T, ring_ib)
        sent_nv, sent_ib = sent_nv + xs[0], sent_ib + xs[1]
    layer_t = acc.busy + comm_path + comm_path_ib + t_attn

    # ---- stages and micro-batches ----
    lps = model.layers / S
    # the host issues a stage's ops ahead of its GPU: a stage takes its device path or its host path
    t_dev = lps * layer_t
    t_stage = np.maximum(t_dev, lps * acc.host)
    act = tok * d * b
    pp_ib = _link(st, T * U * R * S) & (S > 1)
    x_pp = np.where(S > 1, _comm(hw, pp_ib, Collective.P2P, act, 2), 0.0)
    latency = np.where(S > 1, (S + m - 1) * t_stage + (S + m - 2) * x_pp, m * t_stage) + hw.pass_launch_s
    pp_sent = np.where(S > 1, m * act, 0.0)
    sent_nv = sent_nv * lps * m + np.where(pp_ib, 0.0, pp_sent)
    sent_ib = sent_ib * lps * m + np.where(pp_ib, pp_sent, 0.0)
    flops = acc.flops * lps * m
    hbm = acc.hbm * lps * m

    # ---- outputs ----
    tokens = B * (1 if decode else L)
    out = {
        "latency_s": latency,
        "tps": tokens / latency,
        "tpot_s": latency if decode else np.full(shape, np.nan),
        "ttft_s": np.full(shape, np.nan) if decode else latency,
        "flops_per_device": flops,
        "hbm_bytes_per_device": hbm,
        "comm_nvlink_bytes": sent_nv,
        "comm_ib_bytes": sent_ib,
        "stage_time_s": t_stage,
        "t_compute_s": acc.compute * lps * m,
        "t_memory_s": acc.memory * lps * m,
        "t_overhead_s": (t_stage - t_dev) * m + hw.pass_launch_s,
        "t_bubble_s": latency - hw.pass_launch_s - m * t_stage,
    }
    out["t_comm_exposed_s"] = np.maximum(m * t_dev - (acc.busy * lps * m), 0.0)
    out["t_comm_s"] = (2 * t_ar + t_xfer) * lps * m + (S + m - 2) * x_pp * (S > 1)
    out["bottleneck"] = bottleneck(out)
    out.update(memory(model, hw, st, B=B, L=L, C=C, T=T, S=S, R=R, U=U, m=m, tok=tok, hq=hq, hkv=hkv))
    out.update(roofline(hw, out))
    out["total_flops"] = _total_flops(model, st, B, L, C)
    return out


def _ring_prefill(model, hw, st, acc: _Acc, mb, hq, hkv, lr, R, ring_ib):
    """Attention time of one layer: local (R = 1) or the pass-KV ring."""
    hd, b = model.head_dim, model.dtype_bytes
    causal = st.causal
    local = Lr.attention("attn", model, mb, hq, lr, lr, causal, (), (), kv_heads=hkv)
    tok = mb * lr
    merge = Lr.lse_merge("merge", model, tok, hq, (), ())
    init = Lr.elementwise("init", tok * hq * hd * (b + model.accum_bytes), (), ())
    fin = Lr.elementwise("finalize", tok * hq * hd * (model.accum_bytes + b), (), ())
    v = st.ring_variant
    if not causal:
        first, rest = local, [local]
    elif v == RingVariant.ZIGZAG:
        first = local
        rest = [Lr.attention("attn", model, mb, hq, lr, lr / 2, False, (), (), kv_heads=hkv),
                Lr.attention("attn", model, mb, hq, lr / 2, lr, False, (), (), kv_heads=hkv)]
    elif v == RingVariant.PLAIN:
        first, rest = local, [Lr.attention("attn", model, mb, hq, lr, lr, False, (), (), kv_heads=hkv)]
    else:
        first, rest = local, [local]
    is_ring = R > 1
    blk = mb * lr * 2 * hkv * hd * b
    x = np.where(ring_ib, kernels.comm_time(hw, "ib", Collective.P2P, blk, 2),
                 kernels.comm_time(hw, "nvlink", Collective.P2P, blk, 2))
    c0 = acc.time(first)
    # the slowest rank's step (zigzag: the two half-blocks; plain/striped: a full or diagonal block)
    times = np.stack([np.broadcast_to(acc.time(w), np.shape(R)) for w in rest])
    c1 = times.max(axis=0)
    slowest = times.argmax(axis=0)  # per point: which of the step's kernels is the slowest rank's
    g_init, g_merge, t_fin = acc.time(init), acc.time(merge), acc.time(fin)
    t_ring = ring_recurrence(c0, g_init, c1, g_merge, x, R, hw.compute_slowdown_under_comm) + t_fin
    # account the ring's kernels on the critical path (FLOPs / bytes of the slowest rank)
    shape = np.shape(R)
    n_rest = np.where(is_ring, R - 1, 0)
    for w, cnt in ((first, 1.0), (init, is_ring * 1.0), (merge, n_rest), (fin, is_ring * 1.0)):
        acc.add(w, count=np.broadcast_to(cnt, shape))
    for i, w in enumerate(rest):
        acc.add(w, count=np.where(slowest == i, n_rest, 0.0))
    busy_ring = (c0 + g_init + t_fin) + n_rest * (c1 + g_merge)
    # attention's time beyond the kernels just added is exposed ring communication
    return np.where(is_ring, np.maximum(t_ring - busy_ring, 0.0), 0.0), np.where(is_ring, (R - 1) * x, 0.0)


def _decode_attention(model, hw, st, acc: _Acc, mb, tok, hq, hkv, C, R, U, T, ring_ib):
    """Attention of one decode step in one layer; returns (extra exposed time, (nvlink, ib) bytes sent)."""
    hd, b, ab = model.head_dim, model.dtype_bytes, model.accum_bytes
    shape = np.shape(R)
    zero = np.zeros(shape)
    # ulysses: owners' tokens all-to-all to heads, attend to the whole context, back
    u = U > 1
    per = tok * U
    u_ib = _link(st, T * U)
    a2a1, a2a2 = per * (hq + 2 * hkv) * hd * b, per * hq * hd * b
    t_u = _comm(hw, u_ib, Collective.ALL_TO_ALL, a2a1, U) + _comm(hw, u_ib, Collective.ALL_TO_ALL, a2a2, U)
    u_attn = Lr.attention("attn", model, per, hq, 1, C, False, (), (), kv_heads=hkv)
    u_sent = kernels.sent_bytes(Collective.ALL_TO_ALL, a2a1 + a2a2, U)
    # ring == 1: local attention over the whole cache
    loc = Lr.attention("attn", model, mb, hq, 1, C, False, (), (), kv_heads=hkv)
    v = st.decode_attn
    shard_len = C / R
    if v == DecodeAttn.ALLGATHER:
        a = Lr.attention("attn", model, mb, hq, 1, shard_len, False, (), (), kv_heads=hkv)
        part = mb * hq * (hd * ab + 4)
        mrg = Lr.elementwise("merge", R * part + mb * hq * hd * b, (), (), kind=Kind.LSE_MERGE)
        t_x = _comm(hw, ring_ib, Collective.ALL_GATHER, R * part, R)
        r_sent = kernels.sent_bytes(Collective.ALL_GATHER, R * part, R)
        ring_works = [(a, 1.0), (mrg, 1.0)]
        t_ring_extra = t_x
        t_ring_x = t_x
    elif v == DecodeAttn.PASS_Q:
        a = Lr.attention("attn", model, tok, hq, 1, shard_len, False, (), (), kv_heads=hkv)
        mrg = Lr.lse_merge("merge", model, tok, hq, (), ())
        fin = Lr.elementwise("finalize", tok * hq * hd * (ab + b), (), ())
        blk = tok * hq * (hd * (b + ab) + 4)
        t_hop_nv = kernels.comm_time(hw, "nvlink", Collective.P2P, blk, 2)
        t_hop_ib = kernels.comm_time(hw, "ib", Collective.P2P, blk, 2)
        # every hop waits for the slowest link of the ring: R hops, each bounded by the IB one if any
        t_ring_extra = R * np.where(ring_ib, t_hop_ib, t_hop_nv)
        t_ring_x = t_ring_extra
        r_sent = R * blk
        ring_works = [(a, R), (mrg, R), (fin, 1.0)]
    else:  # pass-KV: whole cache shards travel
        a = Lr.attention("attn", model, tok, hq, 1, shard_len, False, (), (), kv_heads=hkv)
        mrg = Lr.lse_merge("merge", model, tok, hq, (), ())
        fin = Lr.elementwise("finalize", tok * hq * hd * (ab + b), (), ())
        shard = tok * R * shard_len * 2 * hkv * hd * b  # the owners' padded batch (tok rows per rank)
        x = np.where(ring_ib, kernels.comm_time(hw, "ib", Collective.P2P, shard, 2),
                     kernels.comm_time(hw, "nvlink", Collective.P2P, shard, 2))
        ca, cm = acc.time(a), acc.time(mrg)
        t_r = ring_recurrence(ca, cm, ca, cm, x, R, hw.compute_slowdown_under_comm)
        t_ring_extra = np.maximum(t_r - R * (ca + cm), 0.0)
        t_ring_x = (R - 1) * x
        r_sent = (R - 1) * shard
        ring_works = [(a, R), (mrg, R), (fin, 1.0)]
    is_ring = (R > 1) & ~u
    is_loc = (R == 1) & ~u
    for w, cnt in ring_works:
        acc.add(w, count=np.broadcast_to(np.where(is_ring, cnt, 0.0), shape))
    acc.add(u_attn, count=np.broadcast_to(u * 1.0, shape))
    acc.add(loc, count=np.broadcast_to(is_loc * 1.0, shape))
    extra = np.where(is_ring, t_ring_extra, 0.0) + np.where(u, t_u, 0.0)
    nv = np.where(is_ring, r_sent, 0.0) + np.where(u & ~u_ib, u_sent, 0.0)
    ib = np.where(is_ring & ring_ib, r_sent, 0.0) + np.where(u & u_ib, u_sent, 0.0)
    calls = {DecodeAttn.ALLGATHER: 1, DecodeAttn.PASS_Q: 2 * R, DecodeAttn.PASS_KV: 2 * (R - 1)}[DecodeAttn(v)]
    acc.issue_comm(np.where(is_ring, calls, 0.0) + 2 * u)
    xfer = np.where(is_ring, t_ring_x, 0.0) + np.where(u, t_u, 0.0)
    return extra + zero, (nv, ib), xfer + zero


def memory(model: Model, hw: Hardware, st: Setting, *, B, L, C, T, S, R, U, m, tok, hq, hkv) -> dict[str, A]:
    """Peak memory per device by kind (bytes), against the profile's capacity."""
    d, b, hd, ab = model.d_model, model.dtype_bytes, model.head_dim, model.accum_bytes
    decode = st.phase == Phase.DECODE
    lps = model.layers / S
    kvh_t = np.maximum(np.floor(model.n_kv_heads / T), 1)
    per_layer = (d * (model.q_dim + 2 * hd * kvh_t * T) / T + model.q_dim / T * d
                 + model.mlp_mats * d * model.d_ff / T + 2 * d)
    weights = lps * per_layer * b + 2 * model.vocab * d * b / T
    cached = (C if decode else L) / R
    if decode:  # owners (pass-KV, pass-Q, ulysses) pad each micro-batch to a multiple of the group
        owners = ((R > 1) & (st.decode_attn != DecodeAttn.ALLGATHER)) | (U > 1)
        sp = R * U
        B_cache = np.where(owners, m * np.ceil(B / m / sp) * sp, B)
    else:
        B_cache = B
    kv_cache = B_cache * lps * cached * 2 * hkv * hd * b
    mb = B / m
    x = tok * d * b * np.where(S > 1, 2, 1)
    qd_t = model.q_dim / T
    if decode:
        attn_phase = tok * d * b + tok * qd_t * (2 * b + ab) + np.where(R > 1, R * mb * hq * (hd * ab + 4), 0)
    else:
        atok = mb * L / R
        attn_phase = tok * d * b + atok * hq * hd * (b + np.where(R > 1, ab + b, b)) + atok * hq * 4
    mlp_phase = tok * d * b + tok * model.d_ff / T * b * model.mlp_mats + tok * d * b
    activations = x + np.maximum(attn_phase, mlp_phase)
    if decode:
        lr = C / R
        shard = (tok * R if st.decode_attn == DecodeAttn.PASS_KV else mb) * lr * 2 * hkv * hd * b
        blk = np.ceil(mb / R) * hq * (hd * (b + ab) + 4)
        ring_buf = {DecodeAttn.PASS_KV: 2 * shard, DecodeAttn.PASS_Q: 2 * blk,
                    DecodeAttn.ALLGATHER: R * mb * hq * (hd * ab + 4)}[DecodeAttn(st.decode_attn)]
        comm_buf = np.where(R > 1, ring_buf, 0.0) + np.where(U > 1, tok * U * (hq + 2 * hkv) * hd * b, 0.0)
    else:
        blk = mb * (L / R) * 2 * hkv * hd * b
        comm_buf = np.where(R > 1, 2 * blk, 0.0) + np.where(U > 1, tok * (hq + 2 * hkv) * U * hd * b, 0.0)
    workspace = np.full(np.shape(B), hw.workspace_bytes)
    total = weights + kv_cache + activations + comm_buf + workspace
    return {"mem_weights_bytes": weights + 0 * B, "mem_kv_cache_bytes": kv_cache, "mem_activations_bytes": activations,
            "mem_comm_buffers_bytes": comm_buf, "mem_workspace_bytes": workspace, "mem_total_bytes": total,
            "capacity_bytes": np.full(np.shape(B), hw.hbm_capacity_bytes),
            "feasible": total <= hw.hbm_capacity_bytes}


def roofline(hw: Hardware, out: dict) -> dict[str, A]:
    """The physical floor of this plan on datasheet peaks: compute, HBM, NVLink and NIC bounds."""
    bounds = {
        "compute": out["flops_per_device"] / hw.peak_flops,
        "hbm": out["hbm_bytes_per_device"] / hw.hbm_bw_Bps,
        "nvlink": out["comm_nvlink_bytes"] / hw.nvlink_bw_Bps,
        "ib": out["comm_ib_bytes"] / hw.nic_bw_Bps,
    }
    stack = np.stack(list(bounds.values()))
    names = np.array(list(bounds))
    return {"roofline_latency_s": stack.max(axis=0), "roofline_bound": names[stack.argmax(axis=0)],
            **{f"roofline_{k}_s": v for k, v in bounds.items()}}


def bottleneck(out: dict) -> A:
    """What bounds the latency: the largest of compute-bound and memory-bound kernel time, the time the
    links are busy on the critical path (hidden or not), the pipeline bubble and launch overhead."""
    parts = {"compute": out["t_compute_s"], "memory": out["t_memory_s"], "communication": out["t_comm_s"],
             "pipeline-bubble": out["t_bubble_s"], "launch-overhead": out["t_overhead_s"]}
    stack = np.stack([np.asarray(v, dtype=float) for v in parts.values()])
    return np.array(list(parts))[stack.argmax(axis=0)]


def _total_flops(model: Model, st: Setting, B, L, C):
    """All FLOPs of the phase over all devices (independent of the plan)."""
    if st.phase == Phase.DECODE:
        return B * (model.dense_flops_per_token() + 4.0 * C * model.q_dim * model.layers)
    pairs = L * (L + 1) / 2 if st.causal else L * L
    return B * L * model.dense_flops_per_token() + 4.0 * B * pairs * model.q_dim * model.layers
