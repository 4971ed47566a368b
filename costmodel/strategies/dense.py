"""The dense part of a layer split ``tp`` ways (Megatron): QKV and MLP-up column-parallel, O and
MLP-down row-parallel, each followed by an all-reduce of the activations over the TP group."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost
from ..errors import SpecError
from ..schedule import OpKind, Role
from ..specs import Collective

_AR_AFTER = {Role.O_PROJ: "o_proj_ar", Role.MLP_DOWN: "mlp_down_ar"}


def rules(plan, model, wl, topo) -> None:
    tp = plan.tp
    if topo.kind.value in ("ib", "nvl") and tp > topo.gpus_per_node:
        raise SpecError(
            f"plan tp={tp} exceeds the {topo.gpus_per_node} GPUs of one node of {topo.spec}: "
            f"TP groups must stay inside a node"
        )
    heads_split = tp * plan.ulysses
    if model.n_heads % heads_split:
        raise SpecError(
            f"plan tp={tp} x ulysses={plan.ulysses} = {heads_split} does not divide n_heads={model.n_heads}"
        )
    if model.n_kv_heads % tp and tp % model.n_kv_heads:
        raise SpecError(f"plan tp={tp} and n_kv_heads={model.n_kv_heads}: one must divide the other")
    if model.d_ff % tp:
        raise SpecError(f"plan tp={tp} does not divide d_ff={model.d_ff}")


def length_multiple(plan, phase) -> int:
    return 1


def _works(b):
    works = b.memo.get("dense_works")
    if works is None:
        works = b.memo["dense_works"] = Lr.layer_dense_works(b.geo)
    return works


def emit_pre(b, site, rename) -> None:
    """norm, QKV projection, RoPE (writes ``q`` and the layer's local K/V)."""
    for w in _works(b)[:3]:
        site.prog.work(w, site.tag, rename, **site.fields())


def emit_post(b, site, rename) -> None:
    """O projection, residual, norm, MLP, residual; an all-reduce after each row-parallel GEMM."""
    group = b.plan.group("tp", site.rank)
    for w in _works(b)[3:]:
        site.prog.work(w, site.tag, rename, **site.fields())
        if w.role in _AR_AFTER:
            site.prog.collective(
                OpKind.ALL_REDUCE,
                Role.TP_ALL_REDUCE,
                group,
                b.geo.act_bytes,
                f"{site.tag}/tp/{_AR_AFTER[w.role]}",
                ("y",),
                ("y",),
                **site.fields(),
            )


def closed_form(ctx) -> AttnCost:
    """The dense kernels (added to the rank's path) and the two all-reduces (on the path)."""
    geo, hw, acc = ctx.geo, ctx.hw, ctx.acc
    for w in Lr.layer_dense_works(geo):
        acc.add(w)
    T = geo.tp
    msg = geo.act_bytes
    t_ar = kernels.comm_time(hw, "nvlink", Collective.ALL_REDUCE, msg, T)
    acc.issue_comm(2 * (T > 1))
    sent = 2 * kernels.sent_bytes(Collective.ALL_REDUCE, msg, T) * (T > 1)
    return AttnCost(exposed_s=2 * t_ar, xfer_s=2 * t_ar, sent_nvlink=sent + np.zeros(ctx.shape))


def buffers(ctx):
    return 0.0
