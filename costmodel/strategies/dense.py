"""The dense part of a layer split ``tp`` ways (Megatron): QKV and MLP-up column-parallel, O and
MLP-down row-parallel, each followed by an all-reduce of the activations over the TP group.

A TP group larger than a node (``tp=16`` on ``ib:2x8``; more than one NVLink domain on ``nvl:NxK``)
spans whole nodes (``rules``; a smaller one divides the node, so that no group straddles two nodes and
every group crosses, or none does); its all-reduces cross InfiniBand.  Algorithm assumed: NCCL's flat ring
all-reduce over the whole group, 2 (g - 1) steps, each rank sending 2 (g - 1) / g of the message, at the
profile's InfiniBand figures (``comm.ib.all_reduce``: latency, per-hop latency, bus bandwidth of one NIC),
i.e. the ring runs at the speed of its slowest link, a NIC.  Every rank's bytes count on IB (the busiest
rank, the one at a node boundary: ``closedform.split_links``; the builder's ``group_link`` says the same).
This is conservative: NCCL runs several rings (channels) over all NICs of a node, or a hierarchical
all-reduce (reduce-scatter in the node, all-reduce across nodes over IB, all-gather in the node) that
moves 1/G of the data per NIC; a profile that measured multi-node all-reduces at its group sizes
(``comm.ib.all_reduce.by_group``) gives the engines those figures instead.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, split_links
from ..errors import SpecError
from ..schedule import OpKind, Role
from ..specs import Collective

_AR_AFTER = {Role.O_PROJ: "o_proj_ar", Role.MLP_DOWN: "mlp_down_ar"}


def rules(plan, model, wl, topo) -> None:
    tp, gpn = plan.tp, topo.gpus_per_node
    if topo.kind.value in ("ib", "nvl") and tp > gpn and tp % gpn:
        raise SpecError(
            f"plan tp={tp} spans more than the {gpn} GPUs of one node of {topo.spec} but "
            f"not whole nodes: a TP group larger than a node must be a multiple of {gpn}"
        )
    if topo.kind.value in ("ib", "nvl") and tp < gpn and topo.nodes > 1 and gpn % tp:
        raise SpecError(
            f"plan tp={tp} does not divide the {gpn} GPUs of one node of {topo.spec}: some TP groups "
            f"would straddle two nodes; use a tp that divides {gpn} or a multiple of it"
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


def _n_pre(works) -> int:
    """How many of the layer's works run before attention (through RoPE)."""
    return next(i for i, w in enumerate(works) if w.role == Role.ROPE) + 1


def _split(b):
    """The layer's works before attention and after it (memoised: every layer emits them)."""
    got = b.memo.get("dense_split")
    if got is None:
        works = _works(b)
        n = _n_pre(works)
        got = b.memo["dense_split"] = (works[:n], works[n:])
    return got


def emit_pre(b, site, rename) -> None:
    """norm, QKV projection (and its bias), RoPE (writes ``q`` and the layer's local K/V)."""
    f, work = site.fields(), site.prog.work
    for w in _split(b)[0]:
        work(w, site.tag, rename, **f)


def emit_post(b, site, rename) -> None:
    """O projection, residual, norm, MLP, residual; an all-reduce after each row-parallel GEMM."""
    group = b.group_pos("tp", site.rank)[0]
    f, prog = site.fields(), site.prog
    for w in _split(b)[1]:
        prog.work(w, site.tag, rename, **f)
        if w.role in _AR_AFTER:
            prog.collective(
                OpKind.ALL_REDUCE,
                Role.TP_ALL_REDUCE,
                group,
                b.geo.act_bytes,
                f"{site.tag}/tp/{_AR_AFTER[w.role]}",
                ("y",),
                ("y",),
                **f,
            )


def closed_form(ctx) -> AttnCost:
    """The dense kernels (added to the rank's path) and the two all-reduces (on the path)."""
    geo, acc = ctx.geo, ctx.acc
    for w in Lr.layer_dense_works(geo):
        acc.add(w)
    T = geo.tp
    msg = geo.act_bytes
    tp_ib = ctx.crosses_ib(geo.span("tp"))  # a TP group larger than a node: its all-reduces cross IB
    t_ar = ctx.comm(tp_ib, Collective.ALL_REDUCE, msg, T)
    acc.issue_comm(2 * (T > 1))
    sent = 2 * kernels.sent_bytes(Collective.ALL_REDUCE, msg, T) * (T > 1) + np.zeros(ctx.shape)
    nv, ib = split_links(tp_ib, sent)
    return AttnCost(exposed_s=2 * t_ar, xfer_s=2 * t_ar, sent_nvlink=nv, sent_ib=ib)


def buffers(ctx):
    return 0.0
