"""The simulator against the analytic model where a schedule has no contention and no imbalance, and
coarsening (identical layers and micro-batches) against the full simulation.

The analytic model applies ``compute_slowdown_under_comm`` as a blanket factor on ring-step compute
that overlaps a transfer, while the simulator slows compute only for the time a comm op of the same
GPU is actually in flight.  For the 1% agreement the profile's slowdown is set to 1.0 (hardware
override), so the two engines are compared on the same physics.  The host's issue time is set to zero
here too: the analytic model takes a stage as max(device path, host path), exact when one of the two
dominates throughout and a lower bound when they interleave, which the simulator's host clock
resolves op by op (``test_host_pipeline_*`` hold both regimes).
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmodel.config import Config
from costmodel.plan import Plan
from costmodel.predict import _eval
from costmodel.presets import load_hardware
from costmodel.specs import (
    OP_CLASSES,  # noqa: E402
    Model,
    Workload,
)
from costmodel.topology import parse_topology
from sim import run_config

# slowdown 1 and no host issue time (every op class's issue_us: the profile lists them all)
NO_SLOWDOWN = ["achievable.compute_slowdown_under_comm=1.0"] + [
    f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES
]


@pytest.fixture(scope="module")
def hw1():
    return load_hardware("h100-sxm", NO_SLOWDOWN)


def _model(layers, d_head, heads, kv_div, ff_mult):
    return Model(
        name="t",
        layers=layers,
        d_model=heads * d_head,
        n_heads=heads,
        n_kv_heads=heads // kv_div,
        head_dim=d_head,
        d_ff=ff_mult * heads * d_head,
    )


@st.composite
def balanced_configs(draw):
    """Configurations without contention (one NVLink domain, one comm stream per rank) and without
    imbalance (zigzag or bidirectional ring; no pipeline micro-batches)."""
    model = _model(
        draw(st.sampled_from([1, 2, 4])),
        draw(st.sampled_from([32, 64, 128])),
        draw(st.sampled_from([8, 16])),
        draw(st.sampled_from([1, 2, 4])),
        draw(st.sampled_from([2, 4])),
    )
    kind = draw(st.sampled_from(["ring", "tp", "ulysses", "tp+ring", "ulysses+ring", "pp", "tp+pp"]))
    R = draw(st.sampled_from([2, 4, 8])) if "ring" in kind else 1
    T = draw(st.sampled_from([2, 4])) if "tp" in kind else 1
    U = draw(st.sampled_from([2, 4])) if "ulysses" in kind else 1
    S = draw(st.sampled_from([2, 4])) if "pp" in kind else 1
    if model.layers % S:
        S = 1
    T = min(T, model.n_kv_heads) if model.n_kv_heads % T else T
    n = T * U * R * S
    decode = draw(st.booleans()) and U == 1
    causal = draw(st.booleans())
    batch = draw(st.sampled_from([1, 2, 4]))
    if decode:
        wl = Workload(
            batch=batch, seq_len=64, phase="decode", context_len=draw(st.sampled_from([8192, 65536])) * n
        )
        variant = "zigzag"
    else:
        wl = Workload(batch=batch, seq_len=draw(st.sampled_from([512, 2048, 8192])) * 2 * n, causal=causal)
        variant = "zigzag" if causal else draw(st.sampled_from(["zigzag", "plain", "striped"]))
    plan = Plan(
        tp=T,
        pp=S,
        ring=R,
        ulysses=U,
        microbatches=1,
        ring_variant=variant,
        decode_attn=draw(st.sampled_from(["allgather", "pass-q", "pass-kv"])),
    )
    topo = parse_topology(f"nvswitch:{n}" if n <= 8 else f"nvlink-domain:{n}")
    return model, wl, plan, topo


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(balanced_configs())
def test_sim_equals_analytic_within_1pct(hw1, c):
    model, wl, plan, topo = c
    if model.n_heads % (plan.tp * plan.ulysses) or (
        model.n_kv_heads % plan.tp and plan.tp % model.n_kv_heads
    ):
        return
    cfg = Config(hardware=hw1, topology=topo, model=model, workload=wl, plan=plan)
    sim = run_config(cfg).latency_s
    ana = float(_eval(cfg)["latency_s"])
    assert sim == pytest.approx(ana, rel=0.01), (plan.name, wl, sim, ana)


SEED = _model(16, 128, 32, 1, 4)


@pytest.mark.parametrize(
    "plan,topo,mb",
    [
        ("ring=16", "nvlink-domain:16", 1),
        ("tp=8", "nvswitch:8", 4),
        ("tp=2,ring=4", "ib:2x4", 2),
        ("ulysses=4", "nvswitch:4", 2),
    ],
)
def test_seed_scale_agreement(hw1, plan, topo, mb):
    """The seed model at full size (16 layers, L = 100,000 rounded to the layout): sim == analytic."""
    from costmodel.plan import parse_plan

    p = parse_plan(plan, microbatches=mb)
    n = p.n_ranks
    wl = Workload(batch=2 * mb, seq_len=(100000 // (2 * n) + 1) * 2 * n)
    cfg = Config(hardware=hw1, topology=parse_topology(topo), model=SEED, workload=wl, plan=p)
    r = run_config(cfg)
    ana = float(_eval(cfg)["latency_s"])
    assert r.latency_s == pytest.approx(ana, rel=0.01 if "ib" in topo else 1e-9)


@pytest.mark.parametrize(
    "plan,topo,mb,extra,periodic",
    [
        ("ring=8", "ib:2x4", 2, {}, True),  # hops crossing IB: ranks out of phase, yet periodic
        ("tp=2,ring=4", "ib:2x4", 3, {}, True),
        ("ulysses=4", "nvswitch:4", 2, {}, True),
        ("ring=4", "nvswitch:4", 2, {"decode": "pass-kv"}, True),
        ("ring=4", "nvswitch:4", 2, {"decode": "pass-q"}, True),
        ("ring=4", "nvswitch:4", 1, {"ring_variant": "plain"}, False),  # lag still building: no exact period
        ("ulysses=2,ring=2", "nvswitch:4", 2, {"ring_variant": "striped"}, False),
    ],
)
def test_coarsening_changes_no_result(plan, topo, mb, extra, periodic):
    """Identical layers and micro-batches simulated once and extrapolated by their exact period give
    the same latency, per-rank busy / waiting / idle time and bytes per link as the full simulation;
    where the units do not (yet) repeat exactly, the run falls back to the full schedule."""
    from costmodel.plan import parse_plan

    hw = load_hardware("h100-sxm")  # with the compute slowdown: it must survive coarsening too
    decode = extra.pop("decode", None)
    p = parse_plan(plan, microbatches=mb, **({"decode_attn": decode} if decode else extra))
    n = p.n_ranks
    wl = (
        Workload(batch=2 * mb, seq_len=64, phase="decode", context_len=4096 * n)
        if decode
        else Workload(batch=mb, seq_len=1024 * n)
    )
    # the flash kernel pinned: which units repeat exactly depends on the kernels' costs (with --attn-kernel
    # auto the striped case happens to repeat exactly and would not exercise the fallback any more)
    cfg = Config(
        hardware=hw,
        topology=parse_topology(topo),
        model=_model(6, 64, 8, 2, 4),
        workload=wl,
        plan=p,
        kernel="flash",
    )
    coarse, full = run_config(cfg), run_config(cfg, coarsen=False)
    assert full.units_simulated == 6 * mb and not full.coarsened
    assert coarse.coarsened == periodic
    if periodic:
        assert coarse.units_simulated < 6 * mb and coarse.period_s > 0
        assert len(coarse.result.schedule.ops) < len(full.result.schedule.ops)
    assert coarse.latency_s == pytest.approx(full.latency_s, rel=1e-9)
    for a, b in zip(coarse.ranks, full.ranks):
        for k in ("busy_s", "waiting_s", "idle_s", "compute_s", "transfer_s"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12 * full.latency_s), (a["rank"], k)
    assert [lk["link"] for lk in coarse.links] == [lk["link"] for lk in full.links]
    for a, b in zip(coarse.links, full.links):
        assert a["bytes"] == pytest.approx(b["bytes"], rel=1e-12)


@pytest.mark.parametrize("regime,launch_us", [("device-bound", 1.0), ("host-bound", 900.0)])
def test_host_pipeline_regimes(regime, launch_us):
    """The host issues ahead of the GPU: where one side dominates throughout, both engines give the
    same phase time (max of the device path and the host path)."""
    from costmodel.specs import OP_CLASSES

    hw = load_hardware(
        "h100-sxm",
        ["achievable.compute_slowdown_under_comm=1.0", "achievable.pass_launch_us=0"]
        + [f"achievable.ops.{c}.issue_us={launch_us}" for c in OP_CLASSES],
    )
    model = _model(4, 128, 16, 1, 4)
    wl = Workload(batch=1, seq_len=16384)
    cfg = Config(
        hardware=hw, topology=parse_topology("nvswitch:2"), model=model, workload=wl, plan=Plan(tp=2)
    )
    a = float(_eval(cfg)["latency_s"])
    s = run_config(cfg).latency_s
    assert s == pytest.approx(a, rel=0.01)
    n_ops = len(
        [
            op
            for op in __import__("costmodel.build", fromlist=["x"])
            .build_schedule(model, wl, cfg.plan, cfg.topology, hw)
            .rank_ops(0)
        ]
    )
    if regime == "host-bound":  # every op waits for the host: the phase is the host's issue time
        assert a == pytest.approx(n_ops * launch_us * 1e-6, rel=0.05)


def test_host_clock_delays_ops_in_sim():
    """With a slow host, the simulator starts no op before the host has issued it."""
    from costmodel.specs import OP_CLASSES

    hw = load_hardware("h100-sxm", [f"achievable.ops.{c}.issue_us=500" for c in OP_CLASSES])
    model = _model(1, 64, 8, 1, 2)
    cfg = Config(
        hardware=hw,
        topology=parse_topology("nvswitch:1"),
        model=model,
        workload=Workload(batch=1, seq_len=256),
        plan=Plan(),
    )
    res = run_config(cfg, coarsen=False).result
    ops = res.schedule.rank_ops(0)
    assert all(op.issue_s == pytest.approx(500e-6) for op in ops)
    clock = res.schedule.launch_s  # the pass's launch, then each op's issue
    for op in ops:
        clock += op.issue_s
        assert res.start[op.id] >= clock - 1e-12


@pytest.mark.parametrize(
    "plan,decode",
    [("tp=2", None), ("ring=2", "pass-kv"), ("ring=2", "pass-q"), ("ring=2", "allgather"), ("tp=1", None)],
)
def test_graph_profile_floors_and_launch_in_both_engines(plan, decode):
    """The '-graph' profile (no host issue, a device floor per op class, one launch per pass): the two
    engines agree, every elementwise op costs at least its class's floor, and the launch adds once."""
    import dataclasses

    from costmodel.build import build_schedule
    from costmodel.plan import parse_plan
    from costmodel.presets import load_model

    hw = load_hardware("h200-sxm-graph", ["achievable.compute_slowdown_under_comm=1.0"])
    p = parse_plan(plan, **({"decode_attn": decode} if decode else {}))
    model = dataclasses.replace(load_model("seed-dense"), layers=2)
    wl = Workload(batch=1, seq_len=64, phase="decode", context_len=16384)
    cfg = Config(
        hardware=hw, topology=parse_topology(f"nvswitch:{p.n_ranks}"), model=model, workload=wl, plan=p
    )
    a = float(_eval(cfg)["latency_s"])
    s = run_config(cfg).latency_s
    assert s == pytest.approx(a, rel=0.01)
    sched = build_schedule(model, wl, p, cfg.topology, hw)
    # the pass's launch, and on several ranks the hosts' measured start skew (the first waits for the last)
    assert sched.launch_s == pytest.approx(float(hw.pass_start_s(p.n_ranks))) and hw.pass_launch_s > 0
    skew = float(hw.start_skew_s(p.n_ranks))
    assert (skew == 0.0) if p.n_ranks == 1 else (skew > 0 and sched.launch_s > hw.pass_launch_s)
    norms = [op for op in sched.rank_ops(0) if op.tag.endswith("/norm1")]
    assert norms and all(
        op.est_s == pytest.approx(hw.op("norm").floor_s) for op in norms
    )  # one row: the floor
    assert all(op.issue_s == 0.0 for op in sched.rank_ops(0))
    no_launch = load_hardware(
        "h200-sxm-graph", ["achievable.compute_slowdown_under_comm=1.0", "achievable.pass_launch_us=0"]
    )
    cfg0 = dataclasses.replace(cfg, hardware=no_launch)
    assert a - float(_eval(cfg0)["latency_s"]) == pytest.approx(hw.pass_launch_s, rel=1e-6)
    assert s - run_config(cfg0).latency_s == pytest.approx(hw.pass_launch_s, rel=1e-6)


@pytest.mark.parametrize(
    "plan,seq,variant,n",
    [
        ("ring=2", "40Ki", "zigzag", 2),
        ("ring=4", "64Ki", "zigzag", 4),
        ("ring=8", "128Ki", "plain", 8),
        ("tp=2,ring=4", "64Ki", "zigzag", 8),
    ],
)
def test_slowdown_beside_transfers_agrees(plan, seq, variant, n):
    """With NCCL slowing compute beside a transfer, both engines slow it only while the transfer is in
    flight (``closedform.stretched_end`` and the simulator's per-op stretch): they agree within 1%."""
    from dataclasses import replace

    from costmodel.predict import predict
    from ringsim import load_config
    from sim import SimOptions

    cfg = load_config(
        hardware="h200-sxm",
        topology=f"nvswitch:{n}",
        plan=plan,
        seq=seq,
        batch=2,
        layers=2,
        ring_variant=variant,
    )
    cfg = replace(
        cfg,
        hardware=replace(cfg.hardware, compute_slowdown_under_comm=1.1, attention_slowdown_under_comm=1.25),
    )
    a = predict(cfg).latency_s
    s = run_config(cfg, SimOptions()).latency_s
    assert a == pytest.approx(s, rel=0.01)
