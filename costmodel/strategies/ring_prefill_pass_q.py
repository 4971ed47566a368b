"""Ring Attention, prefill, pass-Q (``--prefill-attn pass-q``): the new queries travel the ring instead of
the K/V.  Each rank keeps its K/V (its cached shard and its new tokens, ``prefix_cache``); at step t it
attends the queries of rank s = p - t (they left s t steps ago) to that K/V and keeps the partial output
and log-sum-exp of s's queries (``pacc<t>``); after R steps an all-to-all over the ring returns every
partial to its queries' owner, who merges the R of them by their log-sum-exps.

What a step moves: L/R new queries of the rank's query heads (``geometry.q_block_bytes``), against pass-KV's
(C + L)/R tokens of its KV heads (``kv_block_bytes``): with a large prefix cache (a low cache-miss rate
L/(C + L)) and GQA, the queries are the smaller message.  Pass-Q pays the all-to-all of the partial outputs
(FP32, ``out_parts_bytes``) and the final merge once.  This is the trade-off of Meta's "Context Parallelism
for Scalable Million-Token Inference" (Yang et al., arXiv 2411.01783, https://arxiv.org/abs/2411.01783:
pass-KV and pass-Q ring attention for full and persistent-KV (partial) prefill, chosen by the KV-cache
miss rate).

Which keys a visiting query meets: ``geometry.ring_blocks_cached(..., pass_q=True)`` (every cached key,
then ``ring_blocks`` of the owner at the step where it meets this rank's new keys)."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, ring_recurrence, split_links
from ..schedule import OpKind, Role
from ..specs import Collective, Phase
from . import prefix_cache
from .ring_prefill import step_calls, step_works


def rules(plan, model, wl, topo) -> None:
    return None  # prefix_cache.rules holds pass-Q's rules (a ring, prefill); ring_prefill.rules the lengths


def length_multiple(plan, phase) -> int:
    return 1


def acc_name(t: int) -> str:
    """The partial output of the queries that visit at step t (those of ring rank p - t)."""
    return f"pacc{t}"


def _merge_parts(geo, reads=("parts",), writes=("o",)):
    """The owner's merge of its queries' R partial outputs (FP32, log-sum-exp): read them all, write the
    output (BF16)."""
    m = geo.model
    nbytes = geo.out_parts_bytes + geo.mb * geo.ring_len * geo.q_heads * m.head_dim * m.dtype_bytes
    return Lr.elementwise(Role.MERGE_PARTS, nbytes, reads, writes, kind=OpKind.LSE_MERGE)


def _call(b, ql, kl, causal, q, local):
    geo = b.geo
    return b.attention(
        Role.RING_ATTN,
        geo.model,
        geo.mb,
        geo.q_heads,
        ql,
        kl,
        causal,
        (q, local),
        ("part",),
        kv_heads=geo.kv_heads,
    )


def emit(b, site, q, kv, o) -> None:
    plan, geo, prog = b.plan, b.geo, site.prog
    group, i = b.group_pos("ring", site.rank)
    R, lr, m = plan.ring, geo.ring_len, geo.model
    nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
    lc = geo.ring_cached if prefix_cache.used_by(b) else 0
    local = prefix_cache.emit_append(b, site, kv) if lc else kv
    tok = geo.mb * lr
    accs = []
    for t in range(R):
        cur = q if t == 0 else f"qbuf{t % 2}"
        stag = f"{site.tag}/ring/step{t}"
        f = site.fields(step=t)
        if t < R - 1:
            prog.sendrecv(
                Role.RING_Q, stag, nxt, cur, prv, f"qbuf{(t + 1) % 2}", geo.q_block_bytes, exchange=R, **f
            )
        a = acc_name(t)
        calls = step_calls(plan.ring_variant, b.wl.causal, R, lr, lc, i, t, pass_q=True)
        for c, (ql, kl, causal) in enumerate(calls):
            prog.work(
                _call(b, ql, kl, causal, cur, local), stag, label=f"attn{c}" if c else "attn", call=c, **f
            )
            if c:
                prog.work(Lr.lse_merge(Role.MERGE, m, tok, geo.q_heads, ("part", a), (a,)), stag, **f)
            else:
                prog.work(Lr.elementwise(Role.INIT, geo.accum_bytes(tok), ("part",), (a,)), stag, **f)
        if calls:
            accs.append(a)
    f = site.fields()
    prog.collective(
        OpKind.ALL_TO_ALL,
        Role.A2A_PARTS,
        group,
        geo.out_parts_bytes,
        f"{site.tag}/ring/a2a_parts",
        tuple(accs),
        ("parts",),
        **f,
    )
    prog.work(_merge_parts(geo, ("parts",), (o,)), f"{site.tag}/ring", label="merge_parts", **f)


def closed_form(ctx, on) -> AttnCost:
    """The ring of R steps (the queries' transfers overlap the attention, as pass-KV's blocks do: the same
    max-plus recurrence), then the all-to-all of the partial outputs (exposed) and the owner's merge.  A
    step's compute is the slowest rank's; the visiting queries meet the same block shapes as pass-KV's."""
    geo, hw, acc, m = ctx.geo, ctx.hw, ctx.acc, ctx.model
    R, lr, mb, hq, hkv = geo.ring, geo.ring_len, geo.mb, geo.q_heads, geo.kv_heads
    first, rest, merge, init, tok = step_works(ctx)
    has = (np.asarray(geo.ring_cached) > 0) & (ctx.st.phase == Phase.PREFILL)
    cached_w = Lr.attention(
        Role.RING_ATTN, m, mb, hq, lr, np.maximum(geo.ring_cached, 1), False, (), (), kv_heads=hkv
    )
    app = prefix_cache.append_work(geo)
    mp = _merge_parts(geo, (), ())
    ring_ib = ctx.crosses_ib(geo.span("ring")) & (R > 1)
    x = ctx.comm(ring_ib, Collective.P2P, geo.q_block_bytes, R)
    t_a2a = ctx.comm(ring_ib, Collective.ALL_TO_ALL, geo.out_parts_bytes, R)
    times = np.stack([np.broadcast_to(acc.time(w), ctx.shape) for w in rest])
    c1 = times.max(axis=0)
    slowest = times.argmax(axis=0)
    t_c = np.where(has, acc.time(cached_w), 0.0)
    t_app = np.where(has, acc.time(app), 0.0)
    g_init, g_merge = acc.time(init), acc.time(merge)
    g_extra = np.where(has, g_merge, 0.0)
    c0 = acc.time(first) + t_c
    t_mp = acc.time(mp)
    t_ring = (
        t_app
        + ring_recurrence(
            c0,
            g_init + g_extra,
            c1 + t_c,
            g_init + g_extra,
            x,
            R,
            hw.attention_slowdown_under_comm,
            slowdown_g=hw.compute_slowdown_under_comm,
            gate_lead=hw.comm_gate_lead_s if hw.gates_comm("attention") else None,
        )
        + t_a2a
        + t_mp
    )
    one = np.where(on, 1.0, 0.0)
    n_rest = np.where(on, R - 1, 0)
    hon = np.where(has, one, 0.0)
    for w, cnt in (
        (first, one),
        (init, one + n_rest),
        (mp, one),
        (cached_w, hon * R),
        (merge, hon * R),
        (app, hon),
    ):
        acc.add(w, count=ctx.full(cnt))
    acc.note_kernel(cached_w, hon > 0)
    for i, w in enumerate(rest):
        acc.add(w, count=np.where(slowest == i, n_rest, 0.0))
        acc.note_kernel(w, n_rest > 0)
    acc.issue_comm(2 * (R - 1) * one + one)
    busy = t_app + (c0 + g_init + g_extra) + n_rest * (c1 + t_c + g_init + g_extra) + t_mp
    sent = (R - 1) * geo.q_block_bytes + kernels.sent_bytes(Collective.ALL_TO_ALL, geo.out_parts_bytes, R)
    nv, ib = split_links(ring_ib, sent)
    return AttnCost(
        exposed_s=np.maximum(t_ring - busy, 0.0), xfer_s=(R - 1) * x + t_a2a, sent_nvlink=nv, sent_ib=ib
    ).masked(on)


def buffers(ctx):
    """Two query blocks in flight, the R partial outputs kept for the all-to-all and its receive buffer."""
    g = ctx.geo
    return 2 * g.q_block_bytes + 2 * g.out_parts_bytes


__all__ = ["acc_name", "buffers", "closed_form", "emit", "length_multiple", "rules"]
