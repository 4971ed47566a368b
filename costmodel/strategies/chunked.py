"""Chunked prefill through a pipeline (``--chunks N``): each sequence's prompt is cut into N chunks of
L/N tokens that flow through the stages one after another (units: micro-batch j, chunk c), so the
bubble shrinks as (S - 1)/(N m + S - 1).  Chunk c of a sequence attends causally to the K/V of chunks
0..c that its stage cached (q_len = L/N against kv_len = (c + 1) L/N, aligned at the end): the cached
chunks 0..c-1 in full, its own chunk causally, the two partial outputs merged by their log-sum-exps.

Rules: prefill only, N divides the prompt, and neither a ring nor ulysses (a chunk's attention then
needs the other ranks' caches: not modelled)."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost
from ..errors import SpecError
from ..schedule import Role
from ..specs import Phase


def used(plan) -> bool:
    return plan.chunks > 1


def rules(plan, model, wl, topo) -> None:
    N = plan.chunks
    if N == 1:
        return
    if wl.phase != Phase.PREFILL:
        raise SpecError(f"--chunks {N} applies to prefill only (decode generates one token per step)")
    if plan.ring > 1 or plan.ulysses > 1:
        raise SpecError(
            f"--chunks {N} with ring={plan.ring} x ulysses={plan.ulysses} is not modelled: chunked "
            f"prefill runs on TP x PP plans only"
        )
    if wl.seq_len % N:
        up = -(-wl.seq_len // N) * N
        raise SpecError(f"--chunks {N} does not divide --seq {wl.seq_len}; try --seq {up}")


def length_multiple(plan, phase) -> int:
    return plan.chunks if phase == Phase.PREFILL else 1


def _works(geo, c: int, q="q", past=(), own="kv", o="o"):
    """The kernels of chunk c: (past attention or None, own causal attention, init, merge, finalize)."""
    m, lc, mb = geo.model, geo.chunk_len, geo.mb
    tok = mb * lc
    if c == 0:
        own_w = Lr.attention(
            Role.ATTN, m, mb, geo.q_heads, lc, lc, geo.causal, (q, own), (o,), kv_heads=geo.kv_heads
        )
        return None, own_w, None, None, None
    past_w = Lr.attention(
        Role.CHUNK_ATTN, m, mb, geo.q_heads, lc, c * lc, False, (q, *past), ("part",), kv_heads=geo.kv_heads
    )
    own_w = Lr.attention(
        Role.CHUNK_ATTN, m, mb, geo.q_heads, lc, lc, geo.causal, (q, own), ("part",), kv_heads=geo.kv_heads
    )
    init = Lr.elementwise(Role.INIT, geo.accum_bytes(tok), ("part",), ("acc",))
    merge = Lr.lse_merge(Role.MERGE, m, tok, geo.q_heads, ("part", "acc"), ("acc",))
    fin = Lr.elementwise(Role.FINALIZE, geo.accum_bytes(tok), ("acc",), (o,))
    return past_w, own_w, init, merge, fin


def cache_name(layer: int, mb: int, c: int) -> str:
    return f"kvcache/L{layer}/mb{mb}/c{c}"


def emit(b, site, q, kv, o) -> None:
    """Chunk ``site.chunk`` of micro-batch ``site.mb``: ``kv`` is this chunk's K/V (cached by the rope)."""
    c = site.chunk
    past = tuple(cache_name(site.layer, site.mb, i) for i in range(c))
    past_w, own_w, init, merge, fin = _works(b.geo, c, q, past, kv, o)
    f = site.fields()
    if past_w is None:
        site.prog.work(own_w, f"{site.tag}/attn", label="attn", **f)
        return
    site.prog.work(past_w, f"{site.tag}/chunk", label="past", call=0, **f)
    site.prog.work(init, f"{site.tag}/chunk", **f)
    site.prog.work(own_w, f"{site.tag}/chunk", label="own", call=1, **f)
    site.prog.work(merge, f"{site.tag}/chunk", **f)
    site.prog.work(fin, f"{site.tag}/chunk", **f)


def closed_form(ctx, on, c: int) -> AttnCost:
    """Chunk c's attention kernels, where ``on`` (the units that do not exist are masked by the caller)."""
    one = ctx.full(kernels.select(on, 1.0, 0.0))
    for w in _works(ctx.geo, c):
        if w is not None:
            ctx.acc.add(w, count=one)
    return AttnCost(exposed_s=np.zeros(ctx.shape))


def buffers(ctx):
    return 0.0


__all__ = ["buffers", "cache_name", "closed_form", "emit", "length_multiple", "rules", "used"]
