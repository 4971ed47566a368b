"""Decode, pass-Q: the owners' queries travel the ring with their running (output, log-sum-exp);
each rank attends them to its shard of their sequences and merges; after R hops the packet is home."""

from __future__ import annotations

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, split_links
from ..schedule import Role
from ..specs import Collective
from ._decode import length_multiple, ring_ib, rules, shard_attention

__all__ = ["rules", "length_multiple", "emit", "closed_form", "buffers"]


def _works(geo, q="q", kv="kv"):
    m, tok = geo.model, geo.dense_tokens
    a = shard_attention(geo, q, kv)
    merge = Lr.lse_merge(Role.MERGE, m, tok, geo.q_heads, ("part", q), (q,))
    return a, merge


def emit(b, site, q, kv, o) -> None:
    plan, geo, prog = b.plan, b.geo, site.prog
    group, i = b.group_pos("ring", site.rank)
    R = plan.ring
    nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
    for t in range(R):
        stag = f"{site.tag}/ring/step{t}"
        cur = f"qblk{t % 2}" if t else q
        f = site.fields(step=t)
        a, merge = _works(geo, cur, kv)
        prog.work(a, stag, label="attn", **f)
        prog.work(merge, stag, **f)
        prog.sendrecv(
            Role.RING_Q, stag, nxt, cur, prv, f"qblk{(t + 1) % 2}", geo.q_packet_bytes, exchange=R, **f
        )
    prog.work(
        Lr.elementwise(Role.FINALIZE, geo.accum_bytes(geo.dense_tokens), (f"qblk{R % 2}",), (o,)),
        f"{site.tag}/ring",
        **site.fields(),
    )


def closed_form(ctx, on) -> AttnCost:
    geo, R = ctx.geo, ctx.geo.ring
    a, merge = _works(geo)
    fin = Lr.elementwise(Role.FINALIZE, geo.accum_bytes(geo.dense_tokens), (), ())
    n = ctx.full(kernels.select(on, R, 0.0))
    ctx.acc.add(a, count=n)
    ctx.acc.add(merge, count=n)
    ctx.acc.add(fin, count=ctx.full(kernels.select(on, 1.0, 0.0)))
    ctx.acc.issue_comm(2 * n)
    # every hop waits for the slowest link of the ring: R hops, each bounded by the IB one if any
    t = R * ctx.comm(ring_ib(ctx), Collective.P2P, geo.q_packet_bytes, R)
    sent = R * geo.q_packet_bytes
    nv, ib = split_links(ring_ib(ctx), sent)
    return AttnCost(exposed_s=t, xfer_s=t, sent_nvlink=nv, sent_ib=ib).masked(on)


def buffers(ctx):
    return 2 * ctx.geo.q_packet_bytes
