"""The LM head: the final norm and the logits of the last pipeline stage (models with a vocabulary).

Which rows get logits: prefill, the last token of each sequence only (its rows live on the ranks that
hold the last position: ``geometry.holds_last_token``; with chunked prefill, in the last chunk); decode,
every new token (each rank's dense rows, as its layers computed them).  The GEMM is ``rows x d_model``
against ``d_model x vocab``, vocab-parallel under TP: each TP rank holds ``ceil(vocab / tp)`` columns
(Megatron's ``VocabParallelEmbedding`` / parallel LM head, the vocabulary padded to a multiple of tp),
takes each row's largest logit and its index in its slice, and the TP group all-gathers those (value,
index) pairs (8 bytes a row per rank) so every rank knows the chosen (greedy) token.  The weights: the
embedding on the first stage, the LM head on the last (one matrix when tied and there is one stage; with
several stages the last keeps its copy of a tied matrix).  It runs once per micro-batch, after the
micro-batch's last layer; ``model.lm_head = false`` leaves it out (records measured before it ran).
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, split_links
from ..geometry import holds_last_token
from ..schedule import OpKind, Role
from ..specs import Collective


def rules(plan, model, wl, topo) -> None:
    """Nothing to refuse: the vocabulary is padded to a multiple of tp."""


def length_multiple(plan, phase) -> int:
    return 1


def runs_on(b, rank: int) -> bool:
    """Whether ``rank`` computes logits: a model with an LM head, the last stage, and (prefill) the rank
    holding the sequences' last token."""
    plan = b.plan
    if not b.model.has_lm_head or plan.coords(rank)["pp"] != plan.pp - 1:
        return False
    return b.geo.decode or holds_last_token(plan, rank)


def _works(b):
    works = b.memo.get("lm_head_works")
    if works is None:
        works = b.memo["lm_head_works"] = Lr.lm_head_works(b.model, b.geo.head_rows, b.geo.vocab_cols)
    return works


def emit(b, prog, rank: int, mb: int, x: str) -> None:
    """Micro-batch ``mb``'s LM head on ``rank`` (reading its final activations ``x``), if it runs one."""
    if not runs_on(b, rank):
        return
    tag = f"head/mb{mb}"
    rename = {"x": x, "h_last": f"h_last@{mb}", "logits": f"logits@{mb}", "top": f"top@{mb}"}
    for w in _works(b):
        prog.work(w, tag, rename, mb=mb)
    prog.collective(
        OpKind.ALL_GATHER,
        Role.LOGITS_GATHER,
        b.plan.group("tp", rank),
        b.geo.logits_gather_bytes,
        f"{tag}/tp/logits_gather",
        (f"top@{mb}",),
        (f"token@{mb}",),
        mb=mb,
    )


def closed_form(ctx) -> AttnCost:
    """One micro-batch's LM head on the rank that runs it: its kernels into ``ctx.acc``, the all-gather
    of the chosen tokens (on the path) returned.  Nothing without an LM head."""
    geo, model = ctx.geo, ctx.model
    if not model.has_lm_head:
        return AttnCost(*(np.zeros(ctx.shape) for _ in range(4)))
    for w in Lr.lm_head_works(model, geo.head_rows, geo.vocab_cols):
        ctx.acc.add(w)
    T = geo.tp
    tp_ib = ctx.crosses_ib(geo.span("tp"))
    msg = geo.logits_gather_bytes
    t = kernels.select(T > 1, ctx.comm(tp_ib, Collective.ALL_GATHER, msg, T), 0.0)
    ctx.acc.issue_comm(1 * (T > 1))
    sent = kernels.sent_bytes(Collective.ALL_GATHER, msg, T) * (T > 1) + np.zeros(ctx.shape)
    nv, ib = split_links(tp_ib, sent)
    return AttnCost(exposed_s=t, xfer_s=t, sent_nvlink=nv, sent_ib=ib)


def weights_bytes(ctx):
    """Bytes of the vocabulary matrices on the busiest stage: the embedding (first stage) and the LM head
    (last stage), vocab-parallel (1/tp each); one matrix when they are the same stage and tied."""
    geo, model = ctx.geo, ctx.model
    one = geo.vocab_cols * model.d_model * model.dtype_bytes
    both = model.has_lm_head and not model.tie_embeddings
    return one * kernels.select(geo.pp > 1, 1, 2 if both else 1) * (model.vocab > 0)


def activation_bytes(ctx):
    """The LM head's working set beside the stage's activations: the normed rows and their logits."""
    geo, model = ctx.geo, ctx.model
    if not model.has_lm_head:
        return 0.0
    rows = geo.head_rows
    return rows * model.d_model * model.dtype_bytes + rows * geo.vocab_cols * model.dtype_bytes


def buffers(ctx):
    return 0.0
