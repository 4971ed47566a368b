"""The schedule (shared IR): structure, hand-computed bytes, and agreement with the closed forms."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.analytic import evaluate
from costmodel.build import build_schedule
from costmodel.config import Config
from costmodel.errors import SpecError
from costmodel.geometry import ring_calls
from costmodel.plan import Plan, parse_plan
from costmodel.predict import setting
from costmodel.specs import Workload
from costmodel.topology import parse_topology

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REF = tomllib.loads((Path(__file__).parent / "data_seed_reference.toml").read_text())


def _sched(model, hw, plan, topo, **wl):
    return build_schedule(model, Workload(**wl), plan, parse_topology(topo), hw)


def test_seed_ring_block_bytes(seed, h100):
    s = build_schedule(
        seed,
        Workload(batch=128, seq_len=100_000),
        parse_plan("ring=16"),
        parse_topology("ib:2x8"),
        h100,
        layers=1,
    )
    sends = [op for op in s.rank_ops(0) if op.kind == "send"]
    assert len(sends) == 15
    assert all(op.msg_bytes == REF["ring_block_bytes"] for op in sends)
    # rank 7 -> 8 crosses InfiniBand, rank 0 -> 1 stays on NVLink
    assert {op.link for op in s.rank_ops(7) if op.kind == "send"} == {"ib"}
    assert {op.link for op in s.rank_ops(0) if op.kind == "send"} == {"nvlink"}


def test_seed_tp_allreduce_bytes(seed, h100):
    s = build_schedule(
        seed,
        Workload(batch=128, seq_len=100_000),
        parse_plan("tp=8,pp=2"),
        parse_topology("ib:2x8"),
        h100,
        layers=1,
    )
    ars = [op for op in s.rank_ops(0) if op.kind == "all_reduce"]
    assert len(ars) == 2  # two per layer
    assert all(op.msg_bytes == REF["tp_allreduce_msg_bytes"] for op in ars)
    assert all(op.link_bytes == pytest.approx(REF["tp_allreduce_sent_bytes"]) for op in ars)
    assert all(op.peers == tuple(range(8)) and op.link == "nvlink" for op in ars)


def test_pairs_and_collectives_match(tiny, h100):
    s = _sched(tiny, h100, parse_plan("tp=2,ring=2,pp=2", microbatches=2), "ib:2x4", batch=2, seq_len=64)
    sends = {op.match: op for op in s if op.kind == "send"}
    recvs = {op.match: op for op in s if op.kind == "recv"}
    assert sends.keys() == recvs.keys()
    for k, snd in sends.items():
        rcv = recvs[k]
        assert snd.peers == (rcv.rank,) and rcv.peers == (snd.rank,) and snd.msg_bytes == rcv.msg_bytes
    colls = {}
    for op in s:
        if op.kind == "all_reduce":
            colls.setdefault(op.match, []).append(op.rank)
    assert colls and all(
        sorted(r) == sorted(s.ops[[o.id for o in s if o.match == k][0]].peers) for k, r in colls.items()
    )


def test_deps_are_same_rank_and_earlier(tiny, h100):
    s = _sched(tiny, h100, parse_plan("ring=4", ring_variant="plain"), "nvswitch:4", batch=1, seq_len=64)
    for op in s:
        for d in op.deps:
            assert s.ops[d].rank == op.rank and d < op.id


@pytest.mark.parametrize("variant", ["plain", "zigzag", "striped"])
@pytest.mark.parametrize("R", [2, 3, 4, 8])
def test_ring_layouts_cover_the_causal_triangle(variant, R):
    """Summed over ranks and steps, the attention pairs equal L(L+1)/2 exactly."""
    L = 2 * R * 5
    lr = L // R
    pairs = 0
    for p in range(R):
        for t in range(R):
            for q, k, causal in ring_calls(variant, True, R, lr, p, t):
                pairs += (k - q) * q + q * (q + 1) // 2 if causal else q * k
    assert pairs == L * (L + 1) // 2


def test_zigzag_balances_and_plain_does_not():
    R, lr = 8, 64

    def work(variant, p):
        return sum(
            (k - q) * q + q * (q + 1) / 2 if c else q * k
            for t in range(R)
            for q, k, c in ring_calls(variant, True, R, lr, p, t)
        )

    z = [work("zigzag", p) for p in range(R)]
    pl = [work("plain", p) for p in range(R)]
    assert max(z) == min(z)
    assert max(pl) / min(pl) > R  # rank 0 does one diagonal block, rank R-1 does all


PLANS = ["tp=1", "tp=4", "tp=2,pp=2", "ring=4", "tp=2,ring=2", "ulysses=4", "ulysses=2,ring=2"]


@pytest.mark.parametrize("text", PLANS)
@pytest.mark.parametrize("variant", ["plain", "zigzag", "striped"])
def test_schedule_totals_match_analytic(tiny, h100, text, variant):
    """Per-device FLOPs, HBM bytes and bytes sent from the op graph equal the closed forms."""
    n = parse_plan(text).n_ranks
    plan = parse_plan(text, ring_variant=variant, microbatches=2 if "pp" in text else None)
    topo = parse_topology(f"nvswitch:{n}" if n <= 8 else f"ib:{n // 8}x8")
    wl = Workload(batch=2, seq_len=128)
    s = build_schedule(tiny, wl, plan, topo, h100)
    tot = [s.totals(r) for r in range(n)]
    cfg = Config(hardware=h100, topology=topo, model=tiny, workload=wl, plan=plan)
    o = evaluate(
        tiny,
        h100,
        setting(cfg),
        batch=2,
        seq=128,
        tp=plan.tp,
        pp=plan.pp,
        ring=plan.ring,
        ulysses=plan.ulysses,
        microbatches=plan.microbatches,
    )
    assert max(t["flops"] for t in tot) == pytest.approx(float(o["flops_per_device"]), rel=1e-9)
    assert max(t["hbm_bytes"] for t in tot) == pytest.approx(float(o["hbm_bytes_per_device"]), rel=0.02)
    assert max(t["sent_bytes"]["nvlink"] for t in tot) == pytest.approx(
        float(o["comm_nvlink_bytes"]), rel=1e-9
    )
    # every plan does the same total work
    assert sum(t["flops"] for t in tot) == pytest.approx(float(o["total_flops"]), rel=1e-9)


@pytest.mark.parametrize("variant", ["pass-kv", "pass-q", "allgather"])
def test_decode_schedules(tiny, h100, variant):
    plan = parse_plan("ring=4", decode_attn=variant)
    s = build_schedule(
        tiny,
        Workload(batch=8, seq_len=64, phase="decode", context_len=256),
        plan,
        parse_topology("nvswitch:4"),
        h100,
    )
    kinds = {op.kind for op in s}
    assert "attention" in kinds
    if variant == "allgather":
        assert "all_gather" in kinds and "send" not in kinds
    else:
        assert "send" in kinds
    sent = [s.totals(r)["sent_bytes"]["nvlink"] for r in range(4)]
    if variant == "pass-kv":  # whole cache shards travel: 3 hops of B x C/4 x 2 x 256 x 2 bytes per layer
        assert sent[0] == pytest.approx(2 * 3 * 8 * 64 * 2 * 256 * 2)


def test_errors_are_one_sentence(tiny, h100):
    with pytest.raises(SpecError, match="not divisible by 16 = 2 x ring=8.*zigzag.*try 112"):
        _sched(tiny, h100, parse_plan("ring=8"), "nvswitch:8", batch=1, seq_len=100)
    with pytest.raises(SpecError, match="tp=3 x ulysses=1 = 3 does not divide n_heads=8"):
        _sched(tiny, h100, parse_plan("tp=3"), "nvswitch:3", batch=1, seq_len=64)
    with pytest.raises(SpecError, match="9 ranks, but topology nvswitch:8 has 8 GPUs"):
        _sched(tiny, h100, parse_plan("ring=9"), "nvswitch:8", batch=1, seq_len=64)
    with pytest.raises(
        SpecError, match="tp=4 spans more than the 3 GPUs of one node of ib:4x3 but not whole"
    ):
        _sched(tiny, h100, parse_plan("tp=4,ring=3"), "ib:4x3", batch=1, seq_len=64)
    with pytest.raises(SpecError, match="pp=3 does not divide layers=2"):
        _sched(tiny, h100, parse_plan("pp=3"), "nvswitch:3", batch=1, seq_len=64)


@settings(max_examples=25, deadline=None)
@given(
    R=st.sampled_from([1, 2, 4]),
    T=st.sampled_from([1, 2]),
    k=st.integers(1, 6),
    B=st.integers(1, 3),
    variant=st.sampled_from(["plain", "zigzag", "striped"]),
)
def test_total_flops_do_not_depend_on_plan(tiny, h100, R, T, k, B, variant):
    L = 2 * R * 8 * k
    plan = Plan(ring=R, tp=T, ring_variant=variant)
    s = build_schedule(tiny, Workload(batch=B, seq_len=L), plan, parse_topology(f"nvswitch:{R * T}"), h100)
    ref = build_schedule(tiny, Workload(batch=B, seq_len=L), Plan(), parse_topology("nvswitch:1"), h100)
    assert sum(op.flops for op in s) == pytest.approx(sum(op.flops for op in ref), rel=1e-12)


def test_p1_degenerate_equals_single_gpu(seed, h100):
    """ring=1, tp=1, ulysses=1 on one GPU: the same ops and the same closed-form latency."""
    wl = Workload(batch=1, seq_len=8192)
    topo = parse_topology("nvswitch:1")
    a = build_schedule(seed, wl, Plan(ring=1, ring_variant="plain"), topo, h100, layers=1)
    b = build_schedule(seed, wl, Plan(), topo, h100, layers=1)
    assert [(o.kind, o.flops, o.est_s) for o in a] == [(o.kind, o.flops, o.est_s) for o in b]
    assert not any(o.stream == "comm" for o in a)
    for kw in ({"ring": 1}, {"tp": 1}, {"ulysses": 1}, {"pp": 1}):
        cfg = Config(hardware=h100, topology=topo, model=seed, workload=wl, plan=Plan())
        o = evaluate(seed, h100, setting(cfg), batch=1, seq=8192, **kw)
        ref = evaluate(seed, h100, setting(cfg), batch=1, seq=8192)
        assert float(o["latency_s"]) == float(ref["latency_s"])
    # and the latency is the sum of the ops' times on one GPU
    single = sum(op.est_s for op in b) * seed.layers + b.launch_s  # + the pass's graph launch
    assert float(ref["latency_s"]) == pytest.approx(single, rel=1e-9)
    assert float(ref["comm_nvlink_bytes"]) == 0 and bool(np.all(ref["feasible"]))


@pytest.mark.parametrize("text,m", [("tp=2,pp=2", 2), ("ring=2", 1), ("tp=2", 3)])
def test_coarsened_layers_stand_for_the_rest(seed, h100, text, m):
    """A schedule built with one layer per stage, scaled by layer_repeat, has the full schedule's totals."""
    plan = parse_plan(text, microbatches=m)
    topo = parse_topology(f"nvswitch:{plan.n_ranks}")
    wl = Workload(batch=6, seq_len=4096)
    full = build_schedule(seed, wl, plan, topo, h100)
    one = build_schedule(seed, wl, plan, topo, h100, layers=1)
    assert one.layer_repeat == seed.layers // plan.pp
    assert build_schedule(seed, wl, plan, topo, h100, layers=3).layer_repeat == pytest.approx(
        seed.layers / plan.pp / 3
    )
    for r in range(plan.n_ranks):
        a, b = full.totals(r), one.totals(r)
        assert b["flops"] == pytest.approx(a["flops"], rel=1e-12)
        assert b["sent_bytes"] == pytest.approx(a["sent_bytes"], rel=1e-12)


def test_op_is_immutable_and_a_value(tiny, h100):
    """``Op`` (a slotted class, no longer a frozen dataclass): fields cannot be assigned or deleted; ops of
    equal fields are equal and hash alike; copies, pickles and ``replace`` keep every field; strings for
    ``kind``/``role`` become their enums."""
    import copy
    import dataclasses
    import pickle

    from costmodel.schedule import OP_FIELDS, Op, OpKind, Role

    s = _sched(tiny, h100, parse_plan("tp=2,ring=2"), "nvswitch:4", batch=2, seq_len=256)
    op = next(o for o in s if o.kind == OpKind.SEND)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.rank = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        del op.est_s
    fields = {f: getattr(op, f) for f in OP_FIELDS}
    same = Op(**{**fields, "kind": "send", "role": fields["role"].value})
    assert same == op and hash(same) == hash(op) and type(same.kind) is OpKind and type(same.role) is Role
    assert pickle.loads(pickle.dumps(op)) == op and copy.deepcopy(op) == op
    other = op.replace(rank=op.rank + 1)
    assert other != op and other.rank == op.rank + 1 and op.rank == fields["rank"]
    assert {getattr(other, f) for f in OP_FIELDS if f != "rank"} == {
        v for f, v in fields.items() if f != "rank"
    }
    assert len(set(s.ops)) == len(s.ops)  # every op distinct (ids differ), all hashable
    with pytest.raises(TypeError):
        Op(**{**fields, "colour": 1})  # unknown fields are refused, as by the dataclass


def test_work_cost_memo_tells_apart_every_field_work_time_reads(tiny):
    """The builder's memo of kernel costs is keyed on every field ``work_time`` reads: kernels equal but
    for the weight's bytes, FP8, the quantise's bytes or the gated activation each get their own time."""
    from dataclasses import replace

    from costmodel import layers as Lr
    from costmodel.build import Builder
    from costmodel.presets import load_hardware
    from costmodel.schedule import Role

    hw = load_hardware("h100-sxm", ["achievable.glu_act_traffic=1.5", "achievable.glu_act_floor_ratio=2.0"])
    b = Builder(
        tiny,
        Workload(batch=1, seq_len=256),
        parse_plan("tp=2"),
        parse_topology("nvswitch:2"),
        hw,
        "auto",
        None,
    )
    g = Lr.gemm(Role.MLP_UP, 16, 4096, 4096, 2, ("x",), ("y",))  # 16 rows: the weight's bytes set its time
    big = Lr.gemm(Role.MLP_UP, 8192, 4096, 4096, 2, ("x",), ("y",))  # 8192 rows: FP8's peak and quantise
    act = Lr.elementwise(Role.ACT, 1e8, ("u",), ("a",))
    works = [
        g,
        replace(g, weight_bytes=8 * g.weight_bytes),
        big,
        replace(big, fp8=True),
        replace(big, fp8=True, quant_bytes=4e7),
        act,
        replace(act, glu=True),
    ]
    times = [b.work_cost(w)[3] for w in works]
    assert times == [float(Lr.work_time(hw, w, "auto")) for w in works]
    assert len(set(times)) == len(works)  # each field changes the time: the memo must not mix them up
