"""One geometry: the builder, the closed forms and the executor's layout read the same facts.

For every plan family the test builds the schedule and checks each op's shapes and message sizes
against ``costmodel.geometry``; checks the analytic model's bytes against the same geometry; and
checks that ``real/layout.py``'s slices partition the tokens, heads and sequences they claim to.
"""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import strategies
from costmodel.analytic import evaluate
from costmodel.build import build_schedule
from costmodel.closedform import Setting
from costmodel.geometry import Geometry, ring_calls
from costmodel.plan import Plan
from costmodel.schedule import OpKind, Role
from costmodel.specs import Model, Workload
from costmodel.topology import parse_topology
from real import layout

GQA = Model(name="gqa", layers=4, d_model=512, n_heads=8, n_kv_heads=4, head_dim=64, d_ff=1024, mlp="swiglu")
FAMILIES = [  # (plan kwargs, phase) over every strategy and their hybrids
    ({}, "prefill"),
    ({"tp": 4}, "prefill"),
    ({"ulysses": 4}, "prefill"),
    ({"pp": 2, "microbatches": 2}, "prefill"),
    ({"ring": 4, "ring_variant": "zigzag"}, "prefill"),
    ({"ring": 4, "ring_variant": "plain"}, "prefill"),
    ({"ring": 4, "ring_variant": "striped"}, "prefill"),
    ({"tp": 2, "ring": 2}, "prefill"),
    ({"ulysses": 2, "ring": 2}, "prefill"),
    ({"tp": 2, "pp": 2, "microbatches": 2}, "prefill"),
    ({}, "decode"),
    ({"tp": 4}, "decode"),
    ({"ulysses": 4}, "decode"),
    ({"ring": 4, "decode_attn": "allgather"}, "decode"),
    ({"ring": 4, "decode_attn": "pass-q"}, "decode"),
    ({"ring": 4, "decode_attn": "pass-kv"}, "decode"),
    ({"tp": 2, "ring": 2, "decode_attn": "pass-kv"}, "decode"),
    ({"pp": 2, "microbatches": 2, "ring": 2, "decode_attn": "pass-q"}, "decode"),
]


def _setup(kw, phase, batch=4, seq=512):
    plan = Plan(**kw)
    wl = Workload(batch=batch, seq_len=seq, phase=phase, context_len=seq if phase == "decode" else 0)
    topo = parse_topology(f"nvswitch:{plan.n_ranks}")
    strategies.validate(plan, GQA, wl, topo)
    return plan, wl, topo, Geometry.of(GQA, wl, plan)


@pytest.mark.parametrize("kw,phase", FAMILIES, ids=[f"{p}-{kw}" for kw, p in FAMILIES])
def test_builder_reads_the_geometry(kw, phase, h100):
    plan, wl, topo, g = _setup(kw, phase)
    sched = build_schedule(GQA, wl, plan, topo, h100)
    want = {
        Role.RING_KV: g.kv_block_bytes if phase == "prefill" else g.cache_shard_bytes,
        Role.RING_Q: g.q_packet_bytes,
        Role.A2A_QKV: g.a2a_qkv_bytes,
        Role.A2A_O: g.a2a_o_bytes,
        Role.GATHER_PARTS: g.ring * g.partial_bytes,
        Role.TP_ALL_REDUCE: g.act_bytes,
        Role.PP_ACT: float(g.pp_msg_bytes),
        Role.PP_GATHER: g.act_bytes,
    }
    seen = set()
    for op in sched:
        if not op.is_compute:
            assert op.msg_bytes == want[op.role], (op.tag, op.msg_bytes, want[op.role])
            seen.add(op.role)
        elif op.kind == OpKind.GEMM:
            assert op.shape[0] == g.dense_tokens, op.tag
            if op.role == Role.QKV:
                assert op.shape[1] == g.qkv_cols
        elif op.kind == OpKind.ATTN:
            b, h, ql, kl, _ = op.shape
            assert h == g.q_heads, op.tag
            if op.role == Role.RING_ATTN and phase == "prefill":
                i = plan.coords(op.rank)["ring"]
                assert (ql, kl) in [
                    (q, k)
                    for q, k, _ in ring_calls(plan.ring_variant, True, plan.ring, g.ring_len, i, op.step)
                ]
            elif phase == "decode":
                assert ql == 1 and kl == (g.shard_len if op.role == Role.RING_ATTN else g.context)
    # every message kind the plan's strategies use was emitted
    used = {Role.TP_ALL_REDUCE} if plan.tp > 1 else set()
    used |= {Role.PP_ACT} if plan.pp > 1 else set()
    used |= {Role.PP_GATHER} if plan.pp > 1 and plan.tp > 1 and plan.pp_send == "scatter" else set()
    used |= {Role.A2A_QKV, Role.A2A_O} if plan.ulysses > 1 else set()
    if plan.ring > 1:
        used |= (
            {Role.RING_KV}
            if phase == "prefill"
            else {"allgather": {Role.GATHER_PARTS}, "pass-q": {Role.RING_Q}, "pass-kv": {Role.RING_KV}}[
                plan.decode_attn
            ]
        )
    assert seen == used


@pytest.mark.parametrize("kw,phase", FAMILIES, ids=[f"{p}-{kw}" for kw, p in FAMILIES])
def test_closed_form_reads_the_geometry(kw, phase, h100):
    """Bytes sent by a rank, layer by layer, in the closed forms = the schedule's, from one geometry."""
    plan, wl, topo, g = _setup(kw, phase)
    sched = build_schedule(GQA, wl, plan, topo, h100)
    st = Setting(phase=phase, ring_variant=plan.ring_variant, decode_attn=plan.decode_attn)
    o = evaluate(
        GQA,
        h100,
        st,
        batch=wl.batch,
        seq=wl.seq_len,
        context=wl.context,
        microbatches=plan.microbatches,
        **plan.mesh(),
    )
    sent = max(sched.totals(r)["sent_bytes"]["nvlink"] for r in range(plan.n_ranks))
    assert float(o["comm_nvlink_bytes"]) == pytest.approx(sent, rel=1e-12)
    flops = max(sched.totals(r)["flops"] for r in range(plan.n_ranks))
    assert float(o["flops_per_device"]) == pytest.approx(flops, rel=1e-9)


@pytest.mark.parametrize("kw,phase", FAMILIES, ids=[f"{p}-{kw}" for kw, p in FAMILIES])
def test_layout_partitions_what_the_geometry_counts(kw, phase):
    plan, wl, topo, g = _setup(kw, phase)
    ranks = range(plan.n_ranks)
    coords = [plan.coords(r) for r in ranks]
    if phase == "prefill":
        # the dense rows of one (pp, tp) slice cover every position once, dense_tokens per micro-batch row
        for s in range(plan.pp):
            for t in range(plan.tp):
                rows = [
                    layout.dense_positions(plan, r, wl.seq_len)
                    for r, c in zip(ranks, coords)
                    if c["pp"] == s and c["tp"] == t
                ]
                assert sorted(p for rw in rows for p in rw) == list(range(wl.seq_len))
                assert {len(rw) * g.mb for rw in rows} == {g.dense_tokens}
    else:
        for s in range(plan.pp):
            for t in range(plan.tp):
                got = [
                    layout.decode_rows(plan, wl, r)
                    for r, c in zip(ranks, coords)
                    if c["pp"] == s and c["tp"] == t
                ]
                assert {rows for _, rows, _ in got} == {g.dense_tokens}
                assert {virt for _, _, virt in got} == {g.cache_batch}
                if g.owners:  # owners' rows tile the padded micro-batch
                    firsts = sorted({f for f, _, _ in got})
                    assert firsts == list(range(0, g.cache_batch, g.dense_tokens))
    # heads: TP ranks hold disjoint query heads covering all; ulysses splits them again
    q = [h for t in range(plan.tp) for h in layout.tp_q_heads(GQA, plan.tp, t)]
    assert q == list(range(GQA.n_heads))
    assert len(layout.tp_kv_heads(GQA, plan.tp, 0)) == g.kv_heads_tp
    if plan.ulysses > 1:
        hq, hk = GQA.n_heads // plan.tp, g.kv_heads_tp
        qs = [layout.ulysses_heads(hq, hk, plan.ulysses, u)[0] for u in range(plan.ulysses)]
        assert [i for s_ in qs for i in range(s_.start, s_.stop)] == list(range(hq))
        assert {s_.stop - s_.start for s_ in qs} == {g.q_heads}


def test_geometry_is_the_same_for_scalars_and_arrays():
    """The closed forms evaluate Geometry on arrays: the same numbers as the builder's scalars."""
    for kw, phase in FAMILIES:
        plan, wl, topo, g = _setup(kw, phase)
        arr = Geometry(
            model=GQA,
            phase=phase,
            batch=np.array([float(wl.batch)]),
            seq=np.array([512.0]),
            context=np.array([512.0]),
            microbatches=np.array([float(plan.microbatches)]),
            ring_variant=plan.ring_variant,
            decode_attn=plan.decode_attn,
            **{k: np.array([float(v)]) for k, v in plan.mesh().items()},
        )
        for name in (
            "dense_tokens",
            "q_heads",
            "kv_heads",
            "kv_heads_tp",
            "qkv_cols",
            "kv_block_bytes",
            "a2a_qkv_bytes",
            "q_packet_bytes",
            "cache_shard_bytes",
            "partial_bytes",
            "act_bytes",
            "cache_batch",
        ):
            assert float(getattr(arr, name)[0]) == getattr(g, name), (kw, phase, name)


def test_labels_identify_plans():
    """Distinct plans never share a label: every degree, micro-batches (with or without stages), the ring
    layout in prefill and the merge in decode."""
    from costmodel.search import factorisations

    plans = {
        Plan(microbatches=m, ring_variant=v, decode_attn=d, **mesh)
        for mesh in factorisations(16)
        for m in (1, 2, 8)
        for v in ("zigzag", "plain", "striped")
        for d in ("pass-kv", "pass-q", "allgather")
    }
    for phase in ("prefill", "decode"):
        seen = {}
        for p in plans:
            key = (
                p.degrees,
                p.microbatches,
                p.ring_variant if phase == "prefill" and p.ring > 1 else None,
                p.decode_attn if phase == "decode" and p.ring > 1 else None,
            )
            seen.setdefault(p.label(phase), set()).add(key)
        assert all(len(v) == 1 for v in seen.values())
    assert Plan(tp=8, microbatches=8).label("decode") != Plan(tp=8).label("decode")
