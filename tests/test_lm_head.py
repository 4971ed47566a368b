"""The LM head, QKV biases and TP groups that span nodes: the schedule, the closed forms, the simulator
and the memory model agree, from one geometry.

* LM head: final norm + logits (vocab / tp columns) for the last token of each sequence (prefill) or
  every new token (decode), on the last stage, once per micro-batch; the TP group all-gathers each rank's
  (max, id); ``model.lm_head = false`` (records measured before the executor ran it) leaves it out.
* TP larger than a node (``tp=16`` on ``ib:2x8``): modelled, its all-reduces over InfiniBand.
"""

from __future__ import annotations

import dataclasses

import pytest

from costmodel import strategies
from costmodel.analytic import evaluate
from costmodel.build import build_schedule
from costmodel.closedform import Setting
from costmodel.config import Config
from costmodel.errors import SpecError
from costmodel.geometry import Geometry, holds_last_token
from costmodel.plan import Plan, parse_plan
from costmodel.predict import _eval, predict
from costmodel.presets import load_hardware, load_model
from costmodel.schedule import OpKind, Role
from costmodel.specs import OP_CLASSES, Model, Workload
from costmodel.topology import ib_crossings, parse_topology
from sim import run_config

HEAD = (Role.FINAL_NORM, Role.LM_HEAD, Role.LOGITS_MAX, Role.LOGITS_GATHER)
# GQA, SwiGLU, a vocabulary that 4 does not divide (padded slices), Q/K/V biases
M = Model(
    name="lm",
    layers=4,
    d_model=512,
    n_heads=8,
    n_kv_heads=4,
    head_dim=64,
    d_ff=1024,
    mlp="swiglu",
    vocab=32002,
    qkv_bias=True,
)
FAMILIES = [
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
    ({"tp": 2, "pp": 2, "microbatches": 2, "chunks": 2}, "prefill"),
    ({}, "decode"),
    ({"tp": 4}, "decode"),
    ({"ulysses": 4}, "decode"),
    ({"ring": 4, "decode_attn": "allgather"}, "decode"),
    ({"ring": 4, "decode_attn": "pass-q"}, "decode"),
    ({"ring": 4, "decode_attn": "pass-kv"}, "decode"),
    ({"pp": 2, "microbatches": 2, "ring": 2, "decode_attn": "pass-q"}, "decode"),
]
IDS = [f"{p}-{kw}" for kw, p in FAMILIES]


def _setup(kw, phase, model=M, batch=4, seq=512):
    plan = Plan(**kw)
    wl = Workload(batch=batch, seq_len=seq, phase=phase, context_len=seq if phase == "decode" else 0)
    topo = parse_topology(f"nvswitch:{plan.n_ranks}")
    strategies.validate(plan, model, wl, topo)
    return plan, wl, topo, Geometry.of(model, wl, plan)


def _analytic(model, hw, plan, wl, topo=None):
    st = Setting(
        phase=wl.phase,
        ring_variant=plan.ring_variant,
        decode_attn=plan.decode_attn,
        topo_kind=topo.kind.value if topo else "nvswitch",
        gpus_per_node=topo.gpus_per_node if topo else 8,
    )
    return evaluate(
        model,
        hw,
        st,
        batch=wl.batch,
        seq=wl.seq_len,
        context=wl.context,
        microbatches=plan.microbatches,
        chunks=plan.chunks,
        **plan.mesh(),
    )


@pytest.mark.parametrize("kw,phase", FAMILIES, ids=IDS)
def test_head_ops_follow_the_geometry(kw, phase, h100):
    """Who runs the LM head, its shapes and its message, and the bytes and FLOPs the closed forms count."""
    plan, wl, topo, g = _setup(kw, phase)
    sched = build_schedule(M, wl, plan, topo, h100)
    last = plan.pp - 1
    for r in range(plan.n_ranks):
        ops = [op for op in sched.rank_ops(r) if op.role in HEAD]
        runs = plan.coords(r)["pp"] == last and (phase == "decode" or holds_last_token(plan, r))
        n_roles = 3 + (plan.tp > 1)
        assert len(ops) == (plan.microbatches * n_roles if runs else 0), (r, [o.tag for o in ops])
        for op in ops:
            assert op.layer == -1
            if op.role == Role.LM_HEAD:
                assert op.shape == (g.head_rows, g.vocab_cols, M.d_model)
                assert op.flops == 2 * g.head_rows * g.vocab_cols * M.d_model
            if op.role == Role.LOGITS_GATHER:
                assert op.kind == OpKind.ALL_GATHER and op.msg_bytes == g.logits_gather_bytes
                assert len(op.peers) == plan.tp
    # the bias add follows every QKV projection
    roles = [op.role for op in sched.rank_ops(0) if op.layer == 0 and op.mb in (0, -1)]
    assert roles[roles.index(Role.QKV) + 1] == Role.QKV_BIAS
    o = _analytic(M, h100, plan, wl)
    flops = max(sched.totals(r)["flops"] for r in range(plan.n_ranks))
    assert float(o["flops_per_device"]) == pytest.approx(flops, rel=1e-9)
    # the head's HBM traffic: what the closed form adds = the head ops' bytes on a rank that runs them
    off = _analytic(dataclasses.replace(M, lm_head=False), h100, plan, wl)
    head_hbm = max(
        sum(op.hbm_bytes for op in sched.rank_ops(r) if op.role in HEAD) for r in range(plan.n_ranks)
    )
    assert float(o["hbm_bytes_per_device"] - off["hbm_bytes_per_device"]) == pytest.approx(head_hbm, rel=1e-9)
    sent = max(sched.totals(r)["sent_bytes"]["nvlink"] for r in range(plan.n_ranks))
    assert float(o["comm_nvlink_bytes"]) == pytest.approx(sent, rel=1e-12)


@pytest.mark.parametrize("kw", [{}, {"tp": 4}, {"pp": 2, "microbatches": 2}, {"tp": 2, "pp": 2}])
def test_total_flops_count_the_last_token_once_in_prefill(kw, h100):
    """The FLOPs of all devices (schedule) = the plan-independent total (prefill: one row of logits per
    sequence); the head is 2 vocab d_model FLOPs a row."""
    m = dataclasses.replace(M, vocab=32000)  # divisible by tp: no padded columns
    plan, wl, topo, _ = _setup(kw, "prefill", model=m)
    sched = build_schedule(m, wl, plan, topo, h100)
    total = sum(sched.totals(r)["flops"] for r in range(plan.n_ranks))
    o = _analytic(m, h100, plan, wl)
    assert float(o["total_flops"]) == pytest.approx(total, rel=1e-9)
    head = sum(op.flops for op in sched if op.role == Role.LM_HEAD)
    assert head == 2 * wl.batch * m.vocab * m.d_model


def test_no_head_without_vocabulary_or_when_off(h100):
    """The seed model (no vocabulary) and ``lm_head = false`` build no LM head and cost nothing for it."""
    plan, wl, topo, _ = _setup({"tp": 2}, "decode")
    for m in (load_model("seed-dense"), dataclasses.replace(M, lm_head=False)):
        m = dataclasses.replace(m, layers=2)
        sched = build_schedule(m, wl, plan, topo, h100)
        assert not [op for op in sched if op.role in HEAD]
    on = dataclasses.replace(M, layers=2)
    off = dataclasses.replace(on, lm_head=False)
    a_on, a_off = _analytic(on, h100, plan, wl), _analytic(off, h100, plan, wl)
    s_on = build_schedule(on, wl, plan, topo, h100)
    head_s = sum(op.est_s for op in s_on.rank_ops(0) if op.role in HEAD)
    assert head_s > 0
    assert float(a_on["latency_s"] - a_off["latency_s"]) == pytest.approx(head_s, rel=1e-9)


@pytest.fixture(scope="module")
def hw0():
    """No compute slowdown beside transfers and no host issue time: the engines on the same physics."""
    return load_hardware(
        "h100-sxm",
        ["achievable.compute_slowdown_under_comm=1.0"]
        + [f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES],
    )


def _cfg(hw, model, plan, topo, phase, batch=2, seq=8192, mb=1, **kw):
    p = parse_plan(plan, microbatches=mb, **kw)
    wl = Workload(batch=batch, seq_len=seq, phase=phase, context_len=4 * seq if phase == "decode" else 0)
    return Config(hardware=hw, topology=parse_topology(topo), model=model, workload=wl, plan=p)


BIG = dataclasses.replace(M, n_heads=32, n_kv_heads=8, head_dim=32, d_model=1024, d_ff=4096, vocab=64000)


@pytest.mark.parametrize(
    "plan,topo,phase,mb",
    [
        ("tp=1", "nvswitch:1", "prefill", 1),
        ("tp=2", "nvswitch:2", "prefill", 1),
        ("tp=2", "nvswitch:2", "decode", 1),
        ("ring=4", "nvswitch:4", "decode", 1),
        ("tp=2,pp=2", "nvswitch:4", "prefill", 1),
        ("tp=2,pp=2", "nvswitch:4", "decode", 2),
        ("tp=16", "ib:2x8", "prefill", 1),
        ("tp=16", "ib:2x8", "decode", 1),
        ("tp=16,pp=2", "ib:4x8", "prefill", 1),
        ("tp=32", "ib:4x8", "decode", 1),
        ("tp=8,ulysses=2", "ib:2x8", "prefill", 1),  # ulysses' all-to-alls span both nodes
        ("tp=16,ulysses=2", "ib:4x8", "prefill", 1),  # TP and ulysses both over InfiniBand
        ("tp=16,ring=2", "ib:4x8", "decode", 1),
    ],
)
def test_simulator_equals_analytic_with_the_head(hw0, plan, topo, phase, mb):
    """Without imbalance every rank that runs the head is on the critical path: the engines agree (TP
    and ulysses groups spanning nodes included)."""
    kw = {"decode_attn": "pass-kv"} if "ring" in plan else {}
    cfg = _cfg(hw0, BIG, plan, topo, phase, batch=2 * mb, mb=mb, **kw)
    s = run_config(cfg).latency_s
    a = float(_eval(cfg)["latency_s"])
    assert s == pytest.approx(a, rel=1e-9), (s, a)


@pytest.mark.parametrize(
    "plan,variant",
    [("ring=4", "zigzag"), ("ring=4", "striped"), ("ulysses=2,ring=2", "zigzag"), ("tp=2,ring=2", "zigzag")],
)
def test_ring_prefill_head_is_bounded(hw0, plan, variant):
    """Prefill with a ring: the head runs on the rank holding the last token, after its own layers; the
    closed form puts it after the slowest rank's, so it is an upper bound above the simulator by at most
    the head's time."""
    cfg = _cfg(hw0, BIG, plan, f"nvswitch:{parse_plan(plan).n_ranks}", "prefill", ring_variant=variant)
    s = run_config(cfg).latency_s
    a = float(_eval(cfg)["latency_s"])
    sched = build_schedule(BIG, cfg.workload, cfg.plan, cfg.topology, hw0)
    head = max(sum(op.est_s for op in sched.rank_ops(r) if op.role in HEAD) for r in range(cfg.plan.n_ranks))
    assert head > 0
    assert s <= a * (1 + 1e-12) and a - s <= head * (1 + 1e-9), (s, a, head)


def test_memory_counts_the_vocabulary_once_per_stage(h100):
    """Weights: embedding (first stage) and LM head (last stage), each vocab/tp; one matrix when tied and
    in one stage.  Activations: the head's logits when they are the largest working set."""
    plan, wl, _, g = _setup({"tp": 2}, "decode", batch=64)
    base = dataclasses.replace(M, vocab=0, qkv_bias=False)
    w0 = float(_analytic(base, h100, plan, wl)["mem_weights_bytes"])
    untied = dataclasses.replace(base, vocab=32000)
    tied = dataclasses.replace(untied, tie_embeddings=True)
    one = 32000 / 2 * M.d_model * M.dtype_bytes
    assert float(_analytic(untied, h100, plan, wl)["mem_weights_bytes"]) - w0 == pytest.approx(2 * one)
    assert float(_analytic(tied, h100, plan, wl)["mem_weights_bytes"]) - w0 == pytest.approx(one)
    pp = Plan(tp=2, pp=2)
    w0p = float(_analytic(base, h100, pp, wl)["mem_weights_bytes"])
    assert float(_analytic(untied, h100, pp, wl)["mem_weights_bytes"]) - w0p == pytest.approx(one)
    big = dataclasses.replace(untied, vocab=1_000_000)  # logits of 64 rows x 500k columns dominate
    act = float(_analytic(big, h100, plan, wl)["mem_activations_bytes"])
    g = Geometry.of(big, wl, plan)
    x = g.dense_tokens * big.d_model * big.dtype_bytes
    assert act == pytest.approx(x + g.head_rows * (big.d_model + g.vocab_cols) * big.dtype_bytes)


def test_params_count_tied_embeddings_once_and_the_biases():
    m = load_model("llama3-8b")
    tied = dataclasses.replace(m, tie_embeddings=True)
    assert m.params() - tied.params() == m.vocab * m.d_model
    q = load_model("qwen2.5-72b")
    assert q.params() - dataclasses.replace(q, qkv_bias=False).params() == q.layers * (q.q_dim + 2 * q.kv_dim)


# ---------------------------------------------------------------------------------------------
# TP groups larger than a node
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("plan,topo", [("tp=16", "ib:2x8"), ("tp=32", "ib:4x8"), ("tp=16,ring=2", "ib:4x8")])
def test_tp_across_nodes_all_reduces_cross_ib(h100, plan, topo):
    p, t = parse_plan(plan), parse_topology(topo)
    wl = Workload(batch=1, seq_len=4096)
    sched = build_schedule(BIG, wl, p, t, h100, layers=1)
    ars = [op for op in sched if op.role == Role.TP_ALL_REDUCE]
    assert ars and all(op.link == "ib" and len(op.peers) == p.tp for op in ars)
    o = _analytic(BIG, h100, p, wl, t)
    full = build_schedule(BIG, wl, p, t, h100)
    for link, key in (("ib", "comm_ib_bytes"), ("nvlink", "comm_nvlink_bytes")):
        want = max(full.totals(r)["sent_bytes"][link] for r in range(p.n_ranks))
        assert float(o[key]) == pytest.approx(want, rel=1e-12), link
    assert float(o["comm_ib_bytes"]) > 0
    assert ib_crossings(t, p.mesh())[0].startswith("TP all-reduces")


def test_tp_inside_a_node_stays_on_nvlink(h100):
    p, t = parse_plan("tp=8,ring=2"), parse_topology("ib:2x8")
    wl = Workload(batch=1, seq_len=4096)
    sched = build_schedule(BIG, wl, p, t, h100, layers=1)
    assert all(op.link == "nvlink" for op in sched if op.role == Role.TP_ALL_REDUCE)
    assert [line.split(" ")[0] for line in ib_crossings(t, p.mesh())] == ["ring"]


def test_tp_spanning_part_of_a_node_is_refused():
    wl, topo = Workload(batch=1, seq_len=64), parse_topology("ib:3x8")
    with pytest.raises(
        SpecError, match="tp=12 spans more than the 8 GPUs of one node of ib:3x8 but not whole"
    ):
        strategies.validate(parse_plan("tp=12,ring=2"), BIG, wl, topo)
    # a group smaller than a node that does not divide it would straddle two nodes (some groups over IB)
    with pytest.raises(SpecError, match="tp=16 does not divide the 72 GPUs of one node of nvl:72x2"):
        strategies.validate(parse_plan("tp=16,ring=9"), BIG, wl, parse_topology("nvl:72x2"))
    ok = Workload(batch=1, seq_len=72 * 64)
    strategies.validate(parse_plan("tp=8,ring=18"), BIG, ok, parse_topology("nvl:72x2"))  # 8 divides 72


def test_tp_across_nvl_domains(hw0):
    """nvl:NxK: a TP group larger than a domain crosses InfiniBand; inside one it is NVLink."""
    across = _cfg(hw0, BIG, "tp=32", "nvl:16x2", "decode")
    inside = _cfg(hw0, BIG, "tp=16,pp=2", "nvl:16x2", "decode")
    for cfg, ib in ((across, True), (inside, False)):
        r = predict(cfg)
        assert (r["comm_bytes_per_device"]["ib"] > 0) == ib
        assert run_config(cfg).latency_s == pytest.approx(r["latency_s"], rel=1e-9)


def test_predict_command_says_the_all_reduce_crosses_ib():
    import contextlib
    import io

    from ringsim.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(
            [
                "predict",
                "--model",
                "llama3-70b",
                "--hardware",
                "h100-sxm",
                "--topology",
                "ib:2x8",
                "--plan",
                "tp=16",
                "--seq",
                "32Ki",
            ]
        )
    out = buf.getvalue()
    assert rc in (0, None)
    assert "TP all-reduces (and the LM head's token all-gather) cross InfiniBand (tp=16" in out


def test_validation_records_say_whether_the_head_ran():
    """A stored record without ``model.lm_head`` in its specs was measured without the LM head: it is
    predicted without one; a record that names it is predicted as it says."""
    from validation.compare import config_of

    argv = [
        "--model",
        "llama3-8b",
        "--layers",
        "2",
        "--hardware",
        "h200-sxm",
        "--topology",
        "nvswitch:1",
        "--plan",
        "tp=1",
        "--seq",
        "1024",
    ]
    old = {"args": argv, "specs": {"model": {"name": "llama3-8b", "vocab": 128256}}}
    new = {"args": argv, "specs": {"model": {"name": "llama3-8b", "vocab": 128256, "lm_head": True}}}
    assert config_of(old).model.lm_head is False
    assert config_of(new).model.lm_head is True
    assert predict(config_of(new))["latency_s"] > predict(config_of(old))["latency_s"]
    with pytest.raises(SpecError, match="lm_head"):
        config_of({"args": argv, "specs": {"model": {"lm_head": "yes"}}})


def test_set_turns_the_head_off_on_any_preset():
    """``--set model.lm_head=false`` (and the other optional model fields) work on presets that do not
    name them; an unknown key is still refused."""
    from costmodel.config import build_config

    on = build_config({"model": "llama3-8b", "phase": "decode", "plan": "tp=8"})
    off = build_config(
        {"model": "llama3-8b", "phase": "decode", "plan": "tp=8", "set": ["model.lm_head=false"]}
    )
    assert on.model.lm_head and not off.model.lm_head
    assert predict(off)["latency_s"] < predict(on)["latency_s"]
    assert build_config({"set": ["model.qkv_bias=true"]}).model.qkv_bias
    with pytest.raises(SpecError, match="model has no key 'frob'"):
        build_config({"set": ["model.frob=1"]})
