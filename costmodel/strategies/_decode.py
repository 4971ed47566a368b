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
