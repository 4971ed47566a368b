"""What the three decode merges share: their rule (the context splits over the ring) and the ring's
link."""

from __future__ import annotations

from ..errors import SpecError
from ..specs import Phase


def rules(plan, model, wl, topo) -> None:
    if plan.ring == 1 or wl.phase != Phase.DECODE:
        return
    if wl.context % plan.sp:
        up = -(-wl.context // plan.sp) * plan.sp
        raise SpecError(
            f"--context {wl.context} is not divisible by ring x ulysses = {plan.sp}, which shards the "
            f"KV cache; try {up}"
        )


def length_multiple(plan, phase) -> int:
    return plan.ring if phase == Phase.DECODE else 1


def ring_ib(ctx):
    geo = ctx.geo
    return ctx.crosses_ib(geo.span("ring")) & (geo.ring > 1)


def shard_attention(geo, q="q", kv="kv"):
    """The owners' new queries (their rows of the micro-batch) against one cache shard: the attention call
    of a pass-Q or pass-KV ring step."""
    from .. import layers as Lr
    from ..schedule import Role

    return Lr.attention(
        Role.RING_ATTN,
        geo.model,
        geo.dense_tokens,
        geo.q_heads,
        1,
        geo.shard_len,
        False,
        (q, kv),
        ("part",),
        kv_heads=geo.kv_heads,
    )
