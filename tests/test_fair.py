"""Issue 13 (fair baselines): honest per-device totals and recorded overrides."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.analytic import evaluate
from costmodel.build import build_schedule
from costmodel.config import Config, build_config
from costmodel.errors import SpecError
from costmodel.plan import Plan
from costmodel.predict import predict, setting
from costmodel.presets import load_hardware
from costmodel.specs import Model, Workload
from costmodel.topology import parse_topology

TINY = Model(name="tiny", layers=2, d_model=256, n_heads=8, n_kv_heads=8, head_dim=32, d_ff=1024)
IB_PLANS = [
    ({"ring": 8}, "prefill"),
    ({"tp": 2, "ring": 4}, "prefill"),
    ({"ulysses": 8}, "prefill"),
    ({"tp": 4, "pp": 2, "microbatches": 2}, "prefill"),
    *(({"ring": 8, "decode_attn": d}, "decode") for d in ("allgather", "pass-q", "pass-kv")),
]


@pytest.mark.parametrize("kw,phase", IB_PLANS, ids=[f"{p}-{kw}" for kw, p in IB_PLANS])
def test_ib_totals_count_each_byte_once(kw, phase, h100):
    """Groups crossing IB (ib:2x4): the per-device totals are the busiest rank's (the one whose sends keep
    its links busiest at peak bandwidths), each transfer's bytes counted once on the link it crosses."""
    plan = Plan(**kw)
    wl = Workload(batch=2, seq_len=256, phase=phase, context_len=256 if phase == "decode" else 0)
    cfg = Config(hardware=h100, topology=parse_topology("ib:2x4"), model=TINY, workload=wl, plan=plan)
    s = build_schedule(TINY, wl, plan, cfg.topology, h100)
    o = evaluate(
        TINY,
        h100,
        setting(cfg),
        batch=2,
        seq=256,
        context=wl.context,
        microbatches=plan.microbatches,
        **plan.mesh(),
    )
    tot = [s.totals(r)["sent_bytes"] for r in range(plan.n_ranks)]
    nv, ib = float(o["comm_nvlink_bytes"]), float(o["comm_ib_bytes"])

    def link_s(t):
        return t["nvlink"] / h100.nvlink_bw_Bps + t["ib"] / h100.nic_bw_Bps

    busiest = max(tot, key=link_s)
    assert busiest["ib"] == pytest.approx(ib, rel=1e-9)
    assert busiest["nvlink"] == pytest.approx(nv, rel=1e-9)
    assert max(link_s(t) for t in tot) <= link_s({"nvlink": nv, "ib": ib}) * (1 + 1e-9)


def test_seed_ring_over_ib_is_not_double_counted():
    cfg = build_config({"topology": "ib:2x8", "plan": "ring=16", "batch": "128", "seq": "100000"})
    c = predict(cfg).comm_bytes_per_device
    assert c["nvlink"] == 0.0 and c["ib"] == pytest.approx(3.146e12, rel=1e-3)
    assert c["total"] == pytest.approx(c["ib"])


def test_overrides_are_recorded_and_peaks_bound_achievable():
    base = predict(build_config({"plan": "tp=8", "seq": "32Ki"}))
    assert base.specs["overrides"] == [] and base.specs["overrides_derived"] == []
    up = predict(build_config({"plan": "tp=8", "seq": "32Ki", "set": ["hardware.peak.hbm_TBps=4.0"]}))
    assert up.specs["overrides"] == ["hardware.peak.hbm_TBps=4.0"]
    # a higher peak leaves the measured (achievable) figures, hence the latency, as they are
    assert up.latency_s == pytest.approx(base.latency_s, rel=1e-12)
    down = predict(build_config({"plan": "tp=8", "seq": "32Ki", "set": ["hardware.peak.hbm_TBps=2.0"]}))
    assert any("elementwise_TBps" in d for d in down.specs["overrides_derived"])
    assert down.latency_s > base.latency_s
    with pytest.raises(SpecError):
        build_config({"set": ["hardware.peak.nope=1"]})


# ---- item 2: the fastest kernel by default ----
def _cfg(**kw):
    base = {"batch": "1", "seq": "4096", "plan": "ring=8", "topology": "nvswitch:8"}
    return build_config({**base, **kw})


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"seq": "128Ki", "plan": "tp=8"},
        {"plan": "ring=8", "seq": "64Ki"},
        {"phase": "decode", "context": "128Ki", "batch": "8", "plan": "tp=8"},
        {"phase": "decode", "context": "8Ki", "batch": "8", "plan": "ring=8", "decode_attn": "pass-q"},
    ],
)
def test_auto_kernel_is_no_slower_than_any(kw):
    auto = predict(_cfg(**kw))
    fixed = {k: predict(_cfg(attn_kernel=k, **kw)).latency_s for k in ("flash", "cudnn")}
    assert auto.specs["attn_kernel"] == "auto"
    assert auto.latency_s <= min(fixed.values()) * (1 + 1e-12)
    assert set(auto.specs["attn_kernels_used"]) <= {"flash", "cudnn"}


def test_auto_kernel_mixes_kernels_and_engines_agree():
    """A short zigzag ring (512-token halves: flash is faster there, cudnn on the 1024-token diagonal)
    mixes kernels; the schedule names the same kernels and the simulator agrees with the analytic (no
    slowdown, no host issue time)."""
    from costmodel.specs import OP_CLASSES
    from sim import run_config

    hw = load_hardware(
        "h100-sxm",
        ["achievable.compute_slowdown_under_comm=1.0"]
        + [f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES],
    )
    cfg = _cfg(seq="8192", plan="ring=8")
    cfg = Config(hardware=hw, topology=cfg.topology, model=cfg.model, workload=cfg.workload, plan=cfg.plan)
    a = predict(cfg)
    s = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, hw, kernel="auto")
    assert s.specs["attn_kernels_used"] == sorted(a.specs["attn_kernels_used"]) == ["cudnn", "flash"]
    assert run_config(cfg).latency_s == pytest.approx(a.latency_s, rel=0.01)
    only = {
        k: predict(
            Config(
                hardware=hw,
                topology=cfg.topology,
                model=cfg.model,
                workload=cfg.workload,
                plan=cfg.plan,
                kernel=k,
            )
        ).latency_s
        for k in ("flash", "cudnn")
    }
    assert a.latency_s <= min(only.values()) * (1 + 1e-12)


def test_bad_kernel_is_one_sentence():
    with pytest.raises(SpecError, match="--attn-kernel 'nope' is not valid"):
        _cfg(attn_kernel="nope")


# ---- item 3: Megatron pipeline sends ----
@pytest.mark.parametrize("topo", ["nvswitch:8", "ib:2x4"])
@pytest.mark.parametrize("pp_send", ["scatter", "full"])
def test_pp_send_engines_agree(topo, pp_send):
    """tp=4 x pp=2, one micro-batch (no overlap of transfers with compute): simulator = analytic within
    1%; scatter sends 1/tp of the activations then all-gathers; the schedule's totals match."""
    from costmodel.specs import OP_CLASSES
    from sim import run_config

    hw = load_hardware(
        "h100-sxm",
        ["achievable.compute_slowdown_under_comm=1.0"]
        + [f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES],
    )
    c = build_config(
        {
            "plan": "tp=4,pp=2",
            "topology": topo,
            "batch": "2",
            "seq": "8192",
            "layers": "4",
            "pp_send": pp_send,
        }
    )
    cfg = Config(hardware=hw, topology=c.topology, model=c.model, workload=c.workload, plan=c.plan)
    a = predict(cfg)
    assert run_config(cfg).latency_s == pytest.approx(a.latency_s, rel=0.01)
    s = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, hw)
    acts = [op for op in s if op.role == "pp_act" and op.kind == "send"]
    act = cfg.workload.batch * cfg.workload.seq_len * cfg.model.d_model * cfg.model.dtype_bytes
    assert {op.msg_bytes for op in acts} == {act / 4 if pp_send == "scatter" else act}
    assert any(op.role == "pp_gather" for op in s) == (pp_send == "scatter")
    tot = [s.totals(r)["sent_bytes"] for r in range(8)]
    busiest = max(tot, key=lambda t: t["nvlink"] / hw.nvlink_bw_Bps + t["ib"] / hw.nic_bw_Bps)
    assert busiest["nvlink"] == pytest.approx(a.comm_bytes_per_device["nvlink"], rel=1e-9)
    assert busiest["ib"] == pytest.approx(a.comm_bytes_per_device["ib"], rel=1e-9)


def test_pp_scatter_over_ib_is_faster_and_bad_value_is_one_sentence():
    kw = {"plan": "tp=8,pp=2", "topology": "ib:2x8", "batch": "128", "seq": "100000", "microbatches": 16}
    sc, full = (predict(build_config({**kw, "pp_send": v})) for v in ("scatter", "full"))
    assert sc.latency_s < full.latency_s
    assert sc.comm_bytes_per_device["ib"] == pytest.approx(full.comm_bytes_per_device["ib"] / 8)
    with pytest.raises(SpecError, match="--pp-send 'half' is not valid"):
        build_config({**kw, "pp_send": "half"})
    with pytest.raises(SpecError, match="does not divide d_model"):
        build_config(
            {
                "plan": "tp=3,pp=2",
                "topology": "nvswitch:6",
                "heads": "3",
                "kv_heads": "3",
                "d_model": "3200",
                "head_dim": "100",
                "d_ff": "300",
                "layers": "2",
            }
        )


# ---- item 5: multi-token decode ----
def _dec(**kw):
    base = {"phase": "decode", "context": "32Ki", "batch": "8", "plan": "ring=8", "topology": "nvswitch:8"}
    return build_config({**base, **kw})


@pytest.mark.parametrize("plan", ["ring=8", "tp=8", "tp=4,pp=2"])
def test_gen_tokens_analytic_is_the_sum_of_its_steps(plan):
    from costmodel import generate

    cfg = _dec(plan=plan, gen_tokens=6)
    r = predict(cfg)
    one = [predict(generate.step_config(cfg, i)) for i in range(6)]
    assert r.latency_s == pytest.approx(sum(x.latency_s for x in one), rel=1e-12)
    assert r.tpot_s == pytest.approx(r.latency_s / 6) and r.tps == pytest.approx(8 * 6 / r.latency_s)
    assert r.memory_bytes_per_device["total"] == pytest.approx(one[-1].memory_bytes_per_device["total"])
    q = 8 if plan == "ring=8" else 1
    assert r.generation["context_last"] == 32768 + 5 * q
    assert predict(_dec(plan=plan)).latency_s == pytest.approx(one[0].latency_s)  # N = 1 unchanged
    assert "generation" not in predict(_dec(plan=plan)).to_dict()


def test_gen_tokens_simulator_interpolation_and_agreement():
    from costmodel.specs import OP_CLASSES
    from sim.generate import simulate_generation

    hw = load_hardware(
        "h100-sxm",
        ["achievable.compute_slowdown_under_comm=1.0"]
        + [f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES],
    )
    c = _dec(gen_tokens=7, layers="2", context="8Ki")
    cfg = Config(hardware=hw, topology=c.topology, model=c.model, workload=c.workload, plan=c.plan)
    coarse, _ = simulate_generation(cfg)
    every, _ = simulate_generation(cfg, all_steps=True)
    assert coarse.generation["steps_simulated"] == [0, 3, 6]
    assert coarse.latency_s == pytest.approx(every.latency_s, rel=0.005)
    assert every.latency_s == pytest.approx(predict(cfg).latency_s, rel=0.01)


def test_gen_tokens_real_run_measures_independent_steps(tmp_path, real_run_main, torchrun_m):
    import json
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    out = tmp_path / "g.jsonl"
    args = [
        "--topology",
        "nvswitch:2",
        "--d-model",
        "32",
        "--heads",
        "4",
        "--kv-heads",
        "2",
        "--head-dim",
        "8",
        "--d-ff",
        "64",
        "--layers",
        "2",
        "--plan",
        "ring=2",
        "--phase",
        "decode",
        "--context",
        "16",
        "--batch",
        "2",
        "--gen-tokens",
        "3",
        "--out",
        str(out),
    ]
    r = torchrun_m(2, "real.run", args, env=env, cwd=str(root), timeout=300)  # 2 ranks (conftest)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(out.read_text().splitlines()[-1])
    g = rec["generation"]
    assert rec["status"] == "ok" and g["tokens"] == 3 and "independent" in g["how"]
    assert [s["context"] for s in g["steps"]] == [16, 18, 20] and rec["checks_passed"]
    import statistics

    assert rec["latency_s"]["median"] == pytest.approx(statistics.median(rec["latency_s"]["samples"]))
    bad = real_run_main([*args, "--gen-tokens", "33"])
    assert bad.returncode == 2 and "--gen-tokens 33 is not valid for real.run" in bad.stderr


# ---- item 4: chunked-prefill pipelines ----
@pytest.mark.parametrize(
    "plan,topo,mb,n,tol",
    [
        ("tp=4,pp=2", "nvswitch:8", 1, 4, 0.01),
        ("pp=2", "nvswitch:2", 2, 8, 0.01),
        ("pp=4", "nvswitch:4", 1, 2, 0.01),
        ("tp=4,pp=2", "nvswitch:8", 4, 4, 0.01),
        # several micro-batches, TP and 4 stages: the grid path's coupling of sends with the TP all-reduces is
        # estimated (README), the analytic is then up to ~3% high
        ("tp=2,pp=4", "ib:2x4", 2, 4, 0.04),
    ],
)
def test_chunks_engines_agree(plan, topo, mb, n, tol):
    """Chunked prefill: the simulator (coarsened or not) equals the analytic within 1% (no slowdown, no
    host issue time) with two stages or one micro-batch; the schedule's chunk attention is q = L/N
    against the c L/N cached keys, then its own."""
    from costmodel.specs import OP_CLASSES
    from sim import run_config

    hw = load_hardware(
        "h100-sxm",
        ["achievable.compute_slowdown_under_comm=1.0"]
        + [f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES],
    )
    c = build_config(
        {
            "plan": plan,
            "topology": topo,
            "batch": str(max(2, mb)),
            "seq": "16384",
            "layers": "4",
            "chunks": n,
            "microbatches": mb,
        }
    )
    cfg = Config(hardware=hw, topology=c.topology, model=c.model, workload=c.workload, plan=c.plan)
    a = predict(cfg).latency_s
    assert run_config(cfg, coarsen=False).latency_s == pytest.approx(a, rel=tol)
    assert run_config(cfg).latency_s == pytest.approx(a, rel=tol)
    s = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, hw)
    lc = 16384 // n
    past = {(op.chunk, op.shape[2], op.shape[3]) for op in s if op.role == "chunk_attn" and op.call == 0}
    assert past == {(k, lc, k * lc) for k in range(1, n)}
    assert {op.shape[2:4] for op in s if op.role == "attn"} == {(lc, lc)}


def test_chunks_shrink_the_bubble_and_rules():
    kw = {"plan": "tp=8,pp=2", "topology": "ib:2x8", "batch": "1", "seq": "128Ki"}
    one, eight = (predict(build_config({**kw, "chunks": n})) for n in (1, 8))
    assert eight.latency_s < one.latency_s
    assert eight.time_breakdown_s["pipeline_bubble"] < one.time_breakdown_s["pipeline_bubble"] / 3
    assert eight.specs["plan"]["chunks"] == 8 and "chunks=8" in build_config({**kw, "chunks": 8}).plan.label()
    for bad, msg in (
        ({"plan": "ring=16"}, "is not modelled"),
        ({"seq": "100001"}, "does not divide --seq 100001"),
        ({"phase": "decode", "context": "8192"}, "applies to prefill only"),
    ):
        with pytest.raises(SpecError, match=msg):
            build_config({**kw, "chunks": 8, **bad})


def test_chunks_in_search_and_sweep_templates():
    from costmodel.presets import load_model
    from costmodel.search import enumerate_plans
    from costmodel.sweep import parse_template, run_sweep

    cfg = build_config({"plan": "tp=8,pp=2", "topology": "ib:2x8", "batch": "1", "seq": "128Ki"})
    plans, _ = enumerate_plans(cfg, 16)
    assert any(p.chunks == 8 and p.tp == 8 and p.pp == 2 for p in plans)
    assert all(p.chunks == 1 for p in plans if p.ring > 1 or p.ulysses > 1)
    tpls = [parse_template("tp=8,pp=P/8"), parse_template("tp=8,pp=P/8,chunks=8")]
    cols, skipped = run_sweep(
        load_model("seed-dense"),
        load_hardware("h100-sxm"),
        topo_kind="ib",
        phase="prefill",
        causal=True,
        kernel="auto",
        ring_variant="zigzag",
        decode_attn="allgather",
        batch=1,
        seqs=np.array([131072]),
        gpus=[16],
        templates=tpls,
    )
    lat = dict(zip(cols["plan_template"], cols["latency_s"]))
    assert lat["tp=8,pp=P/8,chunks=8"] < lat["tp=8,pp=P/8"] and not skipped
