"""Partial prefill (``--cached C``): C tokens per sequence are in the KV cache before the prefill of the L
new ones, so the new queries attend to every cached key (no mask: the cache precedes them) and causally to
the new keys.  What every plan shares lives here: the rules, the name of a rank's cached K/V, the write of
the new K/V behind it (``kv_append``), and the attention without a ring (single, TP, PP, ulysses): one
call against the cache, one causal call against the new keys, merged by their log-sum-exps (the kernels
take causal masks on square blocks only).  The rings are ``ring_prefill`` (pass-KV: the cached shards
travel with the new K/V) and ``ring_prefill_pass_q`` (the new queries travel).

Where the cache lives: ``geometry.cached_positions`` (a ring shards it in the prompt's layout)."""

from __future__ import annotations

import numpy as np

from .. import layers as Lr
from ..closedform import AttnCost
from ..errors import SpecError
from ..geometry import seq_multiple
from ..plan import PrefillAttn, RingVariant
from ..schedule import Role
from ..specs import Phase


def cache_name(layer: int, mb: int) -> str:
    """A rank's cached K/V of one layer and micro-batch (with a ring: room behind it for the new K/V)."""
    return f"kvprefix/L{layer}/mb{mb}"


def rules(plan, model, wl, topo) -> None:
    C = wl.cached_len
    if plan.prefill_attn == PrefillAttn.PASS_Q:
        if wl.phase != Phase.PREFILL:
            raise SpecError("--prefill-attn pass-q applies to prefill only (decode rings take --decode-attn)")
        if plan.ring == 1:
            raise SpecError(
                f"--prefill-attn pass-q needs a ring (plan {plan.name} has ring=1): without one every rank "
                f"already holds the keys its queries need"
            )
    if not C:
        return
    if plan.chunks > 1:
        raise SpecError(
            f"--cached {C} with --chunks {plan.chunks} is not modelled: partial prefill runs without chunks"
        )
    if plan.ring > 1:
        need = seq_multiple(
            plan.ring, 1, plan.ring_variant
        )  # ulysses splits the cache's heads, not its tokens
        if C % need:
            up = -(-C // need) * need
            why = f"2 x ring={plan.ring}" if plan.ring_variant == RingVariant.ZIGZAG else f"ring={plan.ring}"
            raise SpecError(
                f"--cached {C} is not divisible by {need} = {why}, which shards the cache in the ring's "
                f"layout; try {up}"
            )


def length_multiple(plan, phase) -> int:
    return 1


def used(geo) -> bool:
    """Whether a scalar geometry has cached tokens (the builder's switch; closed forms mask by arrays)."""
    return bool(np.all(np.asarray(geo.cached) > 0)) and not geo.decode


def used_by(b) -> bool:
    """``used(b.geo)`` for a builder, memoised (its geometry is fixed; emitters ask once per layer)."""
    got = b.memo.get("prefix_cache_used")
    if got is None:
        got = b.memo["prefix_cache_used"] = used(b.geo)
    return got


# ----------------------------------------------------------------------------------------------
# the new K/V written behind the cached shard (rings: the block pass-KV sends, pass-Q's local keys)
# ----------------------------------------------------------------------------------------------
def append_work(geo, prefix="kvprefix", kv="kv", out="kvfull"):
    """Write the rank's new K/V (ring_len rows) into the cache buffer behind its cached shard: read and
    write them once."""
    m = geo.model
    nbytes = 2 * geo.mb * geo.ring_len * 2 * geo.kv_heads * m.head_dim * m.kv_elem_bytes
    return Lr.elementwise(Role.KV_APPEND, nbytes, (prefix, kv), (out,))


def emit_append(b, site, kv: str) -> str:
    """Emit the append; returns the name of the rank's whole local K/V ([cached | new])."""
    out = f"kvfull/L{site.layer}/mb{site.mb}"
    w = append_work(b.geo, cache_name(site.layer, site.mb), kv, out)
    site.prog.work(w, f"{site.tag}/ring", label="kv_append", **site.fields())
    return out


# ----------------------------------------------------------------------------------------------
# no ring: the rank's queries against the whole cache (of its heads) and their own keys
# ----------------------------------------------------------------------------------------------
def _local_works(geo, q="q", prefix="kvprefix", kv="kv", o="o"):
    m, mb, hq, hkv = geo.model, geo.mb, geo.q_heads, geo.kv_heads
    ql, lc = geo.ring_len, geo.ring_cached
    tok = mb * ql
    past = Lr.attention(Role.CHUNK_ATTN, m, mb, hq, ql, lc, False, (q, prefix), ("part",), kv_heads=hkv)
    own = Lr.attention(Role.CHUNK_ATTN, m, mb, hq, ql, ql, geo.causal, (q, kv), ("part",), kv_heads=hkv)
    init = Lr.elementwise(Role.INIT, geo.accum_bytes(tok), ("part",), ("acc",))
    merge = Lr.lse_merge(Role.MERGE, m, tok, hq, ("part", "acc"), ("acc",))
    fin = Lr.elementwise(Role.FINALIZE, geo.accum_bytes(tok), ("acc",), (o,))
    return past, own, init, merge, fin


def emit_local(b, site, q, kv, o) -> None:
    past, own, init, merge, fin = _local_works(b.geo, q, cache_name(site.layer, site.mb), kv, o)
    f, tag = site.fields(), f"{site.tag}/prefix"
    site.prog.work(past, tag, label="cached", call=0, **f)
    site.prog.work(init, tag, **f)
    site.prog.work(own, tag, label="own", call=1, **f)
    site.prog.work(merge, tag, **f)
    site.prog.work(fin, tag, **f)


def closed_form_local(ctx, on) -> AttnCost:
    """The kernels of ``emit_local`` where ``on`` (no ring, cached tokens)."""
    one = ctx.full(np.where(on, 1.0, 0.0))
    for w in _local_works(ctx.geo):
        ctx.acc.add(w, count=one)
    return AttnCost(exposed_s=np.zeros(ctx.shape))


def buffers(ctx):
    return 0.0


__all__ = [
    "append_work",
    "buffers",
    "cache_name",
    "closed_form_local",
    "emit_append",
    "emit_local",
    "length_multiple",
    "rules",
    "used",
]
