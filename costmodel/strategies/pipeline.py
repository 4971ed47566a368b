"""Pipeline stages and micro-batches (the ``pp`` axis).

Stage s holds layers [s*L/S, (s+1)*L/S).  A rank runs its micro-batches one after another; between
stages, the activations of micro-batch j go to the next stage while the stage receives j + 1.
Closed form: (S + m - 1) t_stage + (S + m - 2) t_transfer (the bubble is (S - 1) stages).
"""
from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..schedule import Role
from ..specs import Collective


def rules(plan, model, wl, topo) -> None:
    if model.layers % plan.pp:
        raise SpecError(f"plan pp={plan.pp} does not divide layers={model.layers}; try pp in "
                        f"{[d for d in range(1, model.layers + 1) if model.layers % d == 0]}")
    if wl.batch % plan.microbatches:
        raise SpecError(f"--microbatches {plan.microbatches} does not divide --batch {wl.batch}")


def length_multiple(plan, phase) -> int:
    return 1


def emit(b, prog, rank: int, layer_fn) -> None:
    """A rank's whole program: its stage's layers for every micro-batch, with the stage transfers."""
    plan = b.plan
    s = plan.coords(rank)["pp"]
    prev, nxt = plan.neighbour("pp", rank, -1), plan.neighbour("pp", rank, +1)
    act = b.geo.act_bytes
    m = plan.microbatches
    lps = b.layers_per_stage
    if prev is not None:
        prog.sendrecv(Role.PP_ACT, "pp/mb0", None, None, prev, "x@0", act, mb=0)
    for j in range(m):
        for i in range(lps):
            layer_fn(prog, rank, s * lps + i, j)
        if nxt is not None or (prev is not None and j + 1 < m):
            prog.sendrecv(Role.PP_ACT, f"pp/mb{j}", nxt, f"x@{j}", prev if j + 1 < m else None, f"x@{j + 1}", act,
                          recv_tag=f"pp/mb{j + 1}", mb=j, recv_fields={"mb": j + 1})


def closed_form(ctx, t_layer, host_layer) -> dict:
    """Latency of the phase from one layer's device time and host issue time, per point."""
    geo, hw = ctx.geo, ctx.hw
    S, m = geo.pp, geo.microbatches
    lps = ctx.model.layers / S
    # the host issues a stage's ops ahead of its GPU: a stage takes its device path or its host path
    t_dev = lps * t_layer
    t_stage = np.maximum(t_dev, lps * host_layer)
    act = geo.act_bytes
    pp_ib = ctx.crosses_ib(geo.span("pp")) & (S > 1)
    x_pp = np.where(S > 1, ctx.comm(pp_ib, Collective.P2P, act, 2), 0.0)
    latency = np.where(S > 1, (S + m - 1) * t_stage + (S + m - 2) * x_pp, m * t_stage) + hw.pass_launch_s
    sent = np.where(S > 1, m * act, 0.0)
    return {"latency": latency, "t_dev": t_dev, "t_stage": t_stage, "x_pp": x_pp, "lps": lps,
            "sent_nvlink": np.where(pp_ib, 0.0, sent), "sent_ib": np.where(pp_ib, sent, 0.0)}


def buffers(ctx):
    """Pipeline stages hold the received activations beside the working ones (counted with them)."""
    return 0.0
