"""Ulysses (the ``ulysses`` axis): tokens split for the dense part, an all-to-all turns that into heads
split for attention over the whole (ring-local) sequence, and a second all-to-all turns it back.
Decode: the owners' new tokens go to every head group; each attends to the cache of its heads."""

from __future__ import annotations

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost
from ..errors import SpecError
from ..plan import RingVariant
from ..schedule import OpKind, Role
from ..specs import Collective, Phase


def used(plan) -> bool:
    return plan.ulysses > 1


def rules(plan, model, wl, topo) -> None:
    U = plan.ulysses
    if U == 1:
        return
    hk = max(model.n_kv_heads // plan.tp, 1)
    if (hk < U and U % hk) or (hk >= U and hk % U):
        raise SpecError(
            f"plan ulysses={U} cannot split the {hk} KV heads of a TP rank (tp={plan.tp}, "
            f"n_kv_heads={model.n_kv_heads}): one of them must divide the other"
        )
    if wl.phase == Phase.DECODE:
        if plan.ring > 1:
            raise SpecError("decode with both ring and ulysses > 1 is not modelled: use one of them")
        if wl.context % U:
            up = -(-wl.context // U) * U
            raise SpecError(
                f"--context {wl.context} is not divisible by ring x ulysses = {U}, which shards the "
                f"KV cache; try {up}"
            )
    elif plan.ring == 1 and wl.seq_len % U:
        up = -(-wl.seq_len // U) * U
        raise SpecError(f"--seq {wl.seq_len} is not divisible by {U} = ulysses={U}; try {up}")


def length_multiple(plan, phase) -> int:
    return plan.ulysses


def pack_work(passes: float, nbytes, bufs: tuple) -> Lr.Work:
    """The implementation's layout copies around one all-to-all: ``passes`` reads and writes of its
    buffer (``achievable.a2a_copy_passes_*``: the executor cuts each peer's heads out, stacks them, and
    joins the pieces it receives; an ideal implementation sends the tensors in place)."""
    return Lr.elementwise(Role.A2A_PACK, 2.0 * passes * nbytes, bufs, bufs)


def emit_enter(b, site, q, kv, o):
    """The all-to-all of Q, K, V; the core then reads the head-split buffers."""
    g = b.plan.group("ulysses", site.rank)
    passes = b.hw.a2a_copy_passes_qkv if b.hw else 0.0
    if passes:
        w = pack_work(passes, b.geo.a2a_qkv_bytes, (q, kv))
        site.prog.work(w, f"{site.tag}/ulysses", label="pack_qkv", **site.fields())
    site.prog.collective(
        OpKind.ALL_TO_ALL,
        Role.A2A_QKV,
        g,
        b.geo.a2a_qkv_bytes,
        f"{site.tag}/ulysses/a2a_qkv",
        (q, kv),
        ("q_h", f"{kv}/heads"),
        **site.fields(),
    )
    return "q_h", f"{kv}/heads", "o_h"


def emit_leave(b, site) -> None:
    g = b.plan.group("ulysses", site.rank)
    passes = b.hw.a2a_copy_passes_o if b.hw else 0.0
    if passes:
        w = pack_work(passes, b.geo.a2a_o_bytes, ("o_h",))
        site.prog.work(w, f"{site.tag}/ulysses", label="pack_o", **site.fields())
    site.prog.collective(
        OpKind.ALL_TO_ALL,
        Role.A2A_O,
        g,
        b.geo.a2a_o_bytes,
        f"{site.tag}/ulysses/a2a_o",
        ("o_h",),
        ("o",),
        **site.fields(),
    )


def closed_form(ctx, on) -> AttnCost:
    geo = ctx.geo
    U = geo.ulysses
    u_ib = ctx.crosses_ib(geo.span("ulysses"))
    qkv, o = geo.a2a_qkv_bytes, geo.a2a_o_bytes
    t = kernels.select(
        on, ctx.comm(u_ib, Collective.ALL_TO_ALL, qkv, U) + ctx.comm(u_ib, Collective.ALL_TO_ALL, o, U), 0.0
    )
    sent = kernels.sent_bytes(Collective.ALL_TO_ALL, qkv + o, U) * on
    ctx.acc.issue_comm(2 * on)
    hw = ctx.hw
    for passes, nbytes in ((hw.a2a_copy_passes_qkv, qkv), (hw.a2a_copy_passes_o, o)):
        if passes:  # the layout copies, on the compute path (as the builder emits them)
            ctx.acc.add(pack_work(passes, nbytes, ()), count=on)
    return AttnCost(
        exposed_s=t,
        xfer_s=t,
        sent_nvlink=kernels.select(u_ib, 0.0, sent),
        sent_ib=kernels.select(u_ib, sent, 0.0),
    )


def buffers(ctx):
    return ctx.geo.a2a_qkv_bytes


__all__ = ["RingVariant"]
