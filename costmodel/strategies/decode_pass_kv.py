"""Decode, pass-KV: the seed's algorithm applied to decode as written: whole cache shards travel the
ring while the owners' new queries attend to each one in turn."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, ring_recurrence, split_links
from ..schedule import Role
from ..specs import Collective
from ._decode import length_multiple, ring_ib, rules, shard_attention

__all__ = ["rules", "length_multiple", "emit", "closed_form", "buffers"]


def _works(geo, q="q", kv="kv"):
    m, tok = geo.model, geo.dense_tokens
    a = shard_attention(geo, q, kv)
    merge = Lr.lse_merge(Role.MERGE, m, tok, geo.q_heads, ("part", "acc"), ("acc",))
    return a, merge


def emit(b, site, q, kv, o) -> None:
    plan, geo, prog = b.plan, b.geo, site.prog
    group, i = b.group_pos("ring", site.rank)
    R = plan.ring
    nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
    for t in range(R):
        stag = f"{site.tag}/ring/step{t}"
        cur = kv if t == 0 else f"kvbuf{t % 2}"
        f = site.fields(step=t)
        if t < R - 1:
            prog.sendrecv(
                Role.RING_KV,
                stag,
                nxt,
                cur,
                prv,
                f"kvbuf{(t + 1) % 2}",
                geo.cache_shard_bytes,
                exchange=R,
                **f,
            )
        a, merge = _works(geo, q, cur)
        prog.work(a, stag, label="attn", **f)
        prog.work(merge, stag, **f)
    prog.work(
        Lr.elementwise(Role.FINALIZE, geo.accum_bytes(geo.dense_tokens), ("acc",), (o,)),
        f"{site.tag}/ring",
        **site.fields(),
    )


def closed_form(ctx, on) -> AttnCost:
    geo, R = ctx.geo, ctx.geo.ring
    a, merge = _works(geo)
    fin = Lr.elementwise(Role.FINALIZE, geo.accum_bytes(geo.dense_tokens), (), ())
    x = ctx.comm(ring_ib(ctx), Collective.P2P, geo.cache_shard_bytes, geo.ring)
    ca, cm = ctx.acc.time(a), ctx.acc.time(merge)
    t_r = ring_recurrence(
        ca,
        cm,
        ca,
        cm,
        x,
        R,
        ctx.hw.attention_slowdown_under_comm,
        slowdown_g=ctx.hw.compute_slowdown_under_comm,
    )
    n = ctx.full(kernels.select(on, R, 0.0))
    ctx.acc.add(a, count=n)
    ctx.acc.add(merge, count=n)
    ctx.acc.add(fin, count=ctx.full(kernels.select(on, 1.0, 0.0)))
    ctx.acc.issue_comm(2 * np.maximum(n - 1, 0))
    sent = (R - 1) * geo.cache_shard_bytes
    nv, ib = split_links(ring_ib(ctx), sent)
    return AttnCost(
        exposed_s=np.maximum(t_r - R * (ca + cm), 0.0), xfer_s=(R - 1) * x, sent_nvlink=nv, sent_ib=ib
    ).masked(on)


def buffers(ctx):
    return 2 * ctx.geo.cache_shard_bytes
