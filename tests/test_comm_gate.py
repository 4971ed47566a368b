"""The kernel-boundary gate (issue 12): a communication op that becomes ready as or while an SM-filling
kernel runs on its GPU starts when that kernel has ``comm_gate_lead_s`` of its work left.  The simulator
(op by op) and the closed form (``ring_recurrence_gated``) apply the same rule; the calibration fits it
from benchmarks/bench_ring_gate.py records, or takes the x4 traces' fallback on H200."""

from dataclasses import replace

import numpy as np
import pytest

from costmodel.closedform import ring_recurrence, ring_recurrence_loop
from costmodel.errors import SpecError
from costmodel.predict import predict
from costmodel.presets import load_hardware
from costmodel.specs import OP_CLASSES
from ringsim import load_config
from sim import run_config

GATE = ['achievable.comm_gate_kinds=["attention"]', "achievable.comm_gate_lead_us=250"]
NO_ISSUE = [f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES]


def _cfg(plan, seq, variant, topo, layers=1, hw="h200-sxm", sets=(), **kw):
    cfg = load_config(
        hardware=hw, topology=topo, plan=plan, seq=seq, batch=2, layers=layers, ring_variant=variant, **kw
    )
    return replace(cfg, hardware=load_hardware(hw, list(sets)))


# -- the closed form's recurrence ------------------------------------------------------------------
@pytest.mark.parametrize("slow", [1.0, 1.25])
@pytest.mark.parametrize("seed,Rmax", [(0, 512), (1, 16)])
def test_gated_recurrence_with_its_periodic_jump_equals_the_loop(seed, Rmax, slow):
    rng = np.random.default_rng(seed)
    n = 3000
    c1 = 10 ** rng.uniform(-5, -2, n)
    g1 = c1 * 10 ** rng.uniform(-3, 0, n)
    x = (c1 + g1) * 10 ** rng.uniform(-1.5, 1.5, n)
    c0, g0, xf = c1 * rng.uniform(0.5, 3, n), g1 * rng.uniform(0.5, 2, n), x * rng.uniform(0.5, 2, n)
    lead = c1 * rng.uniform(0, 1.5, n)  # past the call's length too: then no wait at all
    R = rng.integers(1, Rmax + 1, n)
    got = ring_recurrence(c0, g0, c1, g1, x, R, slow, x_first=xf, gate_lead=lead)
    ref = ring_recurrence_loop(c0, g0, c1, g1, x, R, slow, x_first=xf, gate_lead=lead)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_gated_ring_by_hand():
    """Compute-bound ring of 3 steps, attention c, merge g, transfer x, lead l, no slowdown: every
    transfer waits for its step's attention (ready with it), so each step exposes x - l."""
    c, g, x, lead = 10.0, 1.0, 3.0, 0.5
    # step 0: A [0, 10], X0 [9.5, 12.5], E0 = 11; step 1: A starts at 12.5 (block), X1 ready at 12.5
    # = its start: [22, 25]; A ends 22.5, E 23.5; step 2: A at 25 .. 35, E = 36
    assert float(ring_recurrence(c, g, c, g, x, 3, 1.0, gate_lead=lead)) == pytest.approx(36.0)
    # without the gate the transfers hide behind the attention: 3 x (c + g)
    assert float(ring_recurrence(c, g, c, g, x, 3, 1.0)) == pytest.approx(33.0)


# -- the simulator against the closed form ---------------------------------------------------------
@pytest.mark.parametrize(
    "plan,seq,variant,topo,layers",
    [
        ("ring=2", "40Ki", "zigzag", "nvswitch:2", 2),
        ("ring=4", "64Ki", "zigzag", "nvswitch:4", 2),
        ("ring=4", "8Ki", "zigzag", "nvswitch:4", 2),  # short blocks: the transfer is the longer
        ("ring=8", "128Ki", "plain", "nvswitch:8", 1),
        ("ring=8", "128Ki", "striped", "nvswitch:8", 1),
        ("tp=2,ring=4", "64Ki", "zigzag", "nvswitch:8", 2),
        ("ulysses=2,ring=2", "64Ki", "zigzag", "nvswitch:4", 1),
        ("ring=16", "256Ki", "zigzag", "nvlink-domain:16", 1),
    ],
)
def test_sim_equals_analytic_with_the_gate(plan, seq, variant, topo, layers):
    """One NVLink domain, no host issue time: both engines give the same latency (1e-9), with the
    attention slowdown beside transfers on."""
    cfg = _cfg(plan, seq, variant, topo, layers, sets=GATE + NO_ISSUE)
    assert cfg.hardware.attention_slowdown_under_comm > 1.0
    s, a = run_config(cfg).latency_s, predict(cfg).latency_s
    assert a == pytest.approx(s, rel=1e-9)
    off = replace(cfg, hardware=replace(cfg.hardware, comm_gate_kinds=()))
    assert run_config(off).latency_s < s  # the gate only ever delays a transfer


def test_engine_holds_the_transfer_to_the_attention_s_last_wave():
    """ring=2 zigzag: step 0's K/V transfer and attention are released together by the RoPE; the
    transfer starts when the attention has the lead left, on both ranks, and moves with the slowdown."""
    cfg = _cfg("ring=2", "64Ki", "zigzag", "nvswitch:2", sets=GATE + NO_ISSUE)
    res = run_config(cfg, coarsen=False).result
    lead = cfg.hardware.comm_gate_lead_s
    f = cfg.hardware.attention_slowdown_under_comm
    for r in range(2):
        ops = res.schedule.rank_ops(r)
        attn = next(o for o in ops if o.tag.endswith("ring/step0/attn"))
        send = next(o for o in ops if o.tag.endswith("ring/step0/send"))
        assert res.start[send.id] == pytest.approx(res.start[attn.id] + attn.est_s - lead, rel=1e-12)
        # the last `lead` of its work runs beside the transfer: slowed by f
        assert res.end[attn.id] == pytest.approx(res.start[send.id] + lead * f, rel=1e-12)


def test_decode_attention_does_not_gate():
    """Decode attention (one query row) was not measured to hold the SMs: the gate changes nothing."""
    base = load_config(
        hardware="h200-sxm",
        topology="nvswitch:2",
        plan="ring=2",
        phase="decode",
        context="64Ki",
        batch=8,
        layers=1,
        decode_attn="pass-kv",
    )
    # attention alone gates here (the measured profile also gates GEMMs and elementwise kernels, which a
    # decode step has too): only decode attention is under test
    base = replace(base, hardware=replace(base.hardware, comm_gate_kinds=("attention",)))
    off = replace(base, hardware=replace(base.hardware, comm_gate_kinds=()))
    assert run_config(base).latency_s == run_config(off).latency_s
    assert predict(base).latency_s == predict(off).latency_s


FIGS = ("busy_s", "waiting_s", "idle_s", "compute_s", "transfer_s", "overlap_s")


@pytest.mark.parametrize(
    "hw,sets,plan,topo,seq,batch,kw",
    [
        ("h100-sxm", GATE, "ring=16", "nvlink-domain:16", 16 * 16384, 4, {}),  # compute-bound
        ("h100-sxm", GATE, "ring=16", "ib:2x8", 16 * 16384, 4, {}),  # IB hops: ranks out of phase
        ("h100-sxm", GATE[:1] + ["achievable.comm_gate_lead_us=2000"], "ring=12", "ib:3x4", 12 * 4096, 2, {}),
        ("h100-sxm", GATE, "ring=32", "ib:4x8", 32 * 8192, 2, {"ring_variant": "striped"}),
        ("h100-sxm-eager", GATE, "ring=16", "ib:2x8", 16 * 2048, 1, {}),  # host issue time per op
        ("h200-sxm", [], "ring=8", "nvlink-domain:8", 8 * 8192, 2, {}),  # the profile's own gate
    ],
)
@pytest.mark.parametrize("opt", [None, "no-slowdown"])
def test_ring_recurrence_applies_the_gate_as_the_engine(hw, sets, plan, topo, seq, batch, kw, opt):
    """The simulator's rank x step recurrence (large rings) holds units to the attention's last wave as
    the engine does: latency, every rank's figures and the critical path to 1e-9."""
    import time

    from costmodel.config import Config
    from costmodel.plan import parse_plan
    from costmodel.presets import load_model
    from costmodel.specs import Workload
    from costmodel.topology import parse_topology
    from sim import SimOptions
    from sim.report import critical_path
    from sim.ring_recurrence import run_ring

    opt = SimOptions(compute_slowdown=False) if opt else None
    cfg = Config(
        hardware=load_hardware(hw, sets),
        topology=parse_topology(topo),
        model=load_model("seed-dense", layers=1),
        workload=Workload(batch=batch, seq_len=seq),
        plan=parse_plan(plan, **kw),
    )
    assert cfg.hardware.gates_comm("attention")
    fast = run_ring(cfg, opt, time.perf_counter())
    assert fast is not None and fast.method == "recurrence"
    full = run_config(cfg, opt, coarsen=False)
    T = full.latency_s
    assert fast.latency_s == pytest.approx(T, rel=1e-9)
    for a, b in zip(fast.ranks, full.ranks, strict=True):
        for k in FIGS:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9 * T), (a["rank"], k)
    cp = critical_path(full.result)
    for k in ("compute_s", "comm_s", "gaps_s", "length_s"):
        assert fast.critical[k] == pytest.approx(cp[k], rel=1e-9, abs=1e-9 * T), k
    off = replace(cfg, hardware=replace(cfg.hardware, comm_gate_kinds=()))
    assert run_ring(off, opt, time.perf_counter()).latency_s <= T  # the gate only ever delays


def test_ring_recurrence_leaves_other_gating_kinds_to_the_engine():
    from sim.ring_recurrence import applies

    cfg = _cfg("ring=128", "512Ki", "zigzag", "nvlink-domain:128")
    assert applies(cfg, None)
    gemm = replace(cfg, hardware=replace(cfg.hardware, comm_gate_kinds=("attention", "gemm")))
    assert not applies(gemm, None)


# -- profile fields --------------------------------------------------------------------------------
def test_profile_fields_and_bad_values():
    import json
    import os

    from validation.calibrate import fit_comm_gate

    hw = load_hardware("h200-sxm")
    raw = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "validation/data/calibration/h200x2_ring_gate_raw_20261128.json",
    )
    with open(raw) as f:
        fit, _ = fit_comm_gate(json.load(f)["results"])
    # the profile holds the fit of the committed gate measurements (lease C, 2026-11-28)
    assert hw.comm_gate_kinds == tuple(fit["comm_gate_kinds"]) == ("attention",)
    assert hw.comm_gate_lead_s == pytest.approx(fit["comm_gate_lead_us"] * 1e-6)
    assert 50e-6 < hw.comm_gate_lead_s < 400e-6
    assert hw.gates_comm("attention") and not hw.gates_comm("attention", q_rows=1)
    assert not hw.gates_comm("gemm")
    assert load_hardware("h100-sxm").comm_gate_kinds == ()  # not measured there: no gate
    with pytest.raises(SpecError, match="comm_gate_kinds"):
        load_hardware("h200-sxm", ['achievable.comm_gate_kinds=["matmul"]'])
    with pytest.raises(SpecError, match="comm_gate_kinds"):
        load_hardware("h200-sxm", ["achievable.comm_gate_kinds=3"])
    with pytest.raises(SpecError, match="comm_gate_lead_us"):
        load_hardware("h200-sxm", ["achievable.comm_gate_lead_us=-5"])


# -- the calibration fit ---------------------------------------------------------------------------
def _rep(ready_rel, start_rel, k=10e-3):
    """One repetition's derived figures (bench_ring_gate.derive), times relative to K's end."""
    return {
        "ready_inside_kernel": ready_rel < 0,
        "ready_minus_kend_s": ready_rel,
        "start_minus_kend_s": start_rel,
        "k_s": k,
    }


def _rec(kernel, reps, mode="both", frac=0.5, split=1):
    return {
        "op": "comm_gate",
        "kernel": kernel,
        "gate_mode": mode,
        "frac": frac,
        "split": split,
        "ranks": reps,
    }


def test_fit_comm_gate_classes_and_lead():
    from validation.calibrate import fit_comm_gate

    held = [[_rep(-5e-3, -0.30e-3), _rep(-5e-3, -0.25e-3)], [_rep(-5e-3, -0.28e-3)]]
    free = [[_rep(-5e-3, -4.99e-3), _rep(-2e-3, -1.98e-3)], [_rep(-8e-3, -7.9e-3)]]
    tie = [[{"tie_kernel_first": True}, {"tie_kernel_first": False}], [{"tie_kernel_first": True}]]
    res = [
        _rec("attn_cudnn_full", held),
        _rec("attn_flash_full", held),
        _rec("gemm", free),
        _rec("elementwise", free),
        _rec("attn_cudnn_full", free, split=4),  # split kernels: not a class's evidence
        _rec("attn_cudnn_full", tie, mode="tie_comm", frac=0.0),
    ]
    fig, notes = fit_comm_gate(res)
    assert fig == {"comm_gate_kinds": ["attention"], "comm_gate_lead_us": 280.0}
    assert "kernel began first in 2 of 3" in notes[0]
    none_held, _ = fit_comm_gate([_rec("gemm", free)])
    assert none_held == {"comm_gate_kinds": [], "comm_gate_lead_us": 0.0}
    assert fit_comm_gate([]) is None


def test_profile_fit_takes_the_fallback_on_h200_only():
    from validation.calibrate import GATE_FALLBACK, _gate_figures

    ach = {}
    assert "FALLBACK" in _gate_figures([], ach, "NVIDIA H200")[0]
    assert ach == {"comm_gate_kinds": GATE_FALLBACK["kinds"], "comm_gate_lead_us": GATE_FALLBACK["lead_us"]}
    ach = {}
    assert _gate_figures([], ach, "NVIDIA H100 80GB HBM3") == [] and ach == {}
    held = [[_rep(-5e-3, -0.2e-3)]]
    ach = {}
    _gate_figures([_rec("attn_cudnn_full", held)], ach, "NVIDIA H200")
    assert ach == {"comm_gate_kinds": ["attention"], "comm_gate_lead_us": 200.0}


def test_malformed_gate_records_are_one_clear_error():
    from validation.calibrate import _gate_figures

    with pytest.raises(SpecError, match="comm_gate records"):
        _gate_figures([{"op": "comm_gate", "gate_mode": "both", "kernel": "gemm", "frac": 0.5}], {}, "H200")
    with pytest.raises(SpecError, match="comm_gate records"):
        _gate_figures([_rec("attn_cudnn_full", "not a list of ranks")], {}, "H200")
