"""Attention without a ring: each rank attends its own queries to all the keys it holds (after the
ulysses all-to-all, if any, the whole sequence or the whole cache of its heads)."""

from __future__ import annotations

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost
from ..schedule import Role


def rules(plan, model, wl, topo) -> None:
    return None


def length_multiple(plan, phase) -> int:
    return 1


def _work(geo, q, kv, o):
    m = geo.model
    if geo.decode:  # the new token of every sequence (owners' rows gathered by ulysses) against the cache
        return Lr.attention(
            Role.ATTN,
            m,
            geo.cache_batch,
            geo.q_heads,
            1,
            geo.context,
            False,
            (q, kv),
            (o,),
            kv_heads=geo.kv_heads,
        )
    return Lr.attention(
        Role.ATTN,
        m,
        geo.mb,
        geo.q_heads,
        geo.ring_len,
        geo.ring_len,
        geo.causal,
        (q, kv),
        (o,),
        kv_heads=geo.kv_heads,
    )


def emit(b, site, q, kv, o) -> None:
    w = _work(b.geo, q, kv, o)
    site.prog.work(w, f"{site.tag}/attn", label="attn", **site.fields())


def closed_form(ctx, on) -> AttnCost:
    w = _work(ctx.geo, "q", "kv", "o")
    ctx.acc.add(w, count=kernels.select(on, 1.0, 0.0))
    return AttnCost()


def buffers(ctx):
    return 0.0
