"""Decode, all-gather merge: every ring rank holds the new tokens' queries and attends them to its
cache shard; the partial outputs and log-sum-exps are all-gathered and merged on every rank."""

from __future__ import annotations

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, split_links
from ..schedule import OpKind, Role
from ..specs import Collective
from ._decode import length_multiple, ring_ib, rules

__all__ = ["rules", "length_multiple", "emit", "closed_form", "buffers"]


def _works(geo, q="q", kv="kv"):
    m, R = geo.model, geo.ring
    a = Lr.attention(
        Role.RING_ATTN,
        m,
        geo.mb,
        geo.q_heads,
        1,
        geo.shard_len,
        False,
        (q, kv),
        ("part",),
        kv_heads=geo.kv_heads,
    )
    merge = Lr.elementwise(
        Role.MERGE_PARTS,
        R * geo.partial_bytes + geo.mb * geo.q_heads * m.head_dim * m.dtype_bytes,
        ("parts",),
        ("o",),
        kind=OpKind.LSE_MERGE,
    )
    return a, merge


def emit(b, site, q, kv, o) -> None:
    a, merge = _works(b.geo, q, kv)
    f = site.fields()
    site.prog.work(a, f"{site.tag}/ring", label="attn", **f)
    site.prog.collective(
        OpKind.ALL_GATHER,
        Role.GATHER_PARTS,
        b.plan.group("ring", site.rank),
        b.geo.ring * b.geo.partial_bytes,
        f"{site.tag}/ring/allgather",
        ("part",),
        ("parts",),
        **f,
    )
    site.prog.work(merge, f"{site.tag}/ring", label="merge", **f)


def closed_form(ctx, on) -> AttnCost:
    geo, R = ctx.geo, ctx.geo.ring
    a, merge = _works(geo)
    one = ctx.full(kernels.select(on, 1.0, 0.0))
    ctx.acc.add(a, count=one)
    ctx.acc.add(merge, count=one)
    ctx.acc.issue_comm(one)
    msg = R * geo.partial_bytes
    t = ctx.comm(ring_ib(ctx), Collective.ALL_GATHER, msg, R)
    sent = kernels.sent_bytes(Collective.ALL_GATHER, msg, R)
    nv, ib = split_links(ring_ib(ctx), sent)
    return AttnCost(exposed_s=t, xfer_s=t, sent_nvlink=nv, sent_ib=ib).masked(on)


def buffers(ctx):
    return ctx.geo.ring * ctx.geo.partial_bytes
