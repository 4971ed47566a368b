"""Attention without a ring: each rank attends its own queries to all the keys it holds (after the
ulysses all-to-all, if any, the whole sequence or the whole cache of its heads).  With cached tokens
(partial prefill) the attention is ``prefix_cache``'s: against the cache, then the new keys."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost
from ..schedule import Role
from . import prefix_cache


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
    if prefix_cache.used_by(b):
        return prefix_cache.emit_local(b, site, q, kv, o)
    w = b.memo.get("local_attn")  # one Work for every layer, its buffers renamed
    if w is None:
        w = b.memo["local_attn"] = _work(b.geo, "q", "kv", "o")
    site.prog.work(w, f"{site.tag}/attn", {"q": q, "kv": kv, "o": o}, label="attn", **site.fields())


def closed_form(ctx, on) -> AttnCost:
    has = np.asarray(ctx.geo.cached) > 0
    if not ctx.geo.decode and has.any():  # partial prefill where cached tokens are
        prefix_cache.closed_form_local(ctx, on & has)
        on = on & ~has
    w = _work(ctx.geo, "q", "kv", "o")
    ctx.acc.add(w, count=kernels.select(on, 1.0, 0.0))
    return AttnCost()


def buffers(ctx):
    return 0.0
