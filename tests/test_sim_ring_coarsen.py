"""Coarsening a prefill ring by its repeating middle steps (sim/run.py) changes no result: on rings of
moderate size the coarsened run equals the full simulation to 1e-9 of the latency (latency, every
rank's busy / waiting / idle / compute / transfer time, every link's bytes and busy time), and it falls
back to the full schedule where the middle steps differ or do not repeat exactly."""

import json

import numpy as np
import pytest

from costmodel.build import build_schedule
from costmodel.config import Config
from costmodel.plan import parse_plan
from costmodel.presets import load_hardware, load_model
from costmodel.specs import Workload
from costmodel.topology import parse_topology
from sim import SimOptions, run_config, simulate
from sim.run import _ring_period

HW = load_hardware("h100-sxm")  # with the compute slowdown under communication
ONE = load_model("seed-dense", layers=1)


def _cfg(plan: str, topo: str, seq: int, causal: bool = True, batch: int = 1, model=ONE, **kw) -> Config:
    return Config(
        hardware=HW,
        topology=parse_topology(topo),
        model=model,
        workload=Workload(batch=batch, seq_len=seq, causal=causal),
        plan=parse_plan(plan, **kw),
    )


def _same(coarse, full) -> None:
    T = full.latency_s
    assert coarse.latency_s == pytest.approx(T, rel=1e-9)
    for a, b in zip(coarse.ranks, full.ranks, strict=True):
        for k in ("busy_s", "waiting_s", "idle_s", "compute_s", "transfer_s", "overlap_s", "utilisation"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9 * (T if k != "utilisation" else 1)), (
                a["rank"],
                k,
            )
    assert [lk["link"] for lk in coarse.links] == [lk["link"] for lk in full.links]
    for a, b in zip(coarse.links, full.links):
        assert a["bytes"] == pytest.approx(b["bytes"], rel=1e-12)
        for k in ("busy_s", "busy_fraction", "utilisation"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9 * T), (a["link"], k)


@pytest.mark.parametrize(
    "plan,topo,seq,causal,kw",
    [
        ("ring=64", "ib:8x8", 2 * 64 * 64, True, {}),  # zigzag, causal, launch-bound blocks; hops crossing IB
        ("ring=64", "ib:8x8", 64 * 1024, False, {}),  # non-causal, compute-heavy blocks
        ("ring=32", "nvlink-domain:32", 32 * 2048, False, {}),  # one NVLink domain
        ("ring=32", "ib:4x8", 2 * 32 * 64, True, {"ring_variant": "zigzag"}),
        ("ring=64", "ib:8x8", 64 * 512, False, {"ring_variant": "plain"}),
        ("ring=64", "ib:8x8", 64 * 512, False, {"ring_variant": "striped"}),
        ("tp=2,ring=32", "ib:8x8", 32 * 256, False, {}),  # every ring hop crosses IB
        ("ulysses=2,ring=32", "ib:8x8", 2 * 32 * 256, False, {}),
    ],
)
def test_ring_coarsening_changes_no_result(plan, topo, seq, causal, kw):
    cfg = _cfg(plan, topo, seq, causal, **kw)
    coarse, full = run_config(cfg), run_config(cfg, coarsen=False)
    R = cfg.plan.ring
    assert not full.coarsened and full.ring_steps_total == 0
    assert coarse.coarsened and coarse.ring_steps_total == R - 2 and coarse.ring_steps_simulated < R - 2
    assert coarse.period_s > 0 and len(coarse.result.schedule.ops) < len(full.result.schedule.ops)
    _same(coarse, full)


def test_ring_coarsening_without_slowdown_and_with_shared_nics():
    cfg = _cfg("ring=64", "ib:8x8", 64 * 1024, False)
    for opt in (SimOptions(compute_slowdown=False), SimOptions(nics_per_node=2)):
        coarse, full = run_config(cfg, opt), run_config(cfg, opt, coarsen=False)
        assert coarse.coarsened
        _same(coarse, full)


@pytest.mark.parametrize(
    "plan,topo,seq,causal,kw,why",
    [
        ("ring=64", "ib:8x8", 64 * 1024, True, {}, "zigzag halves cost differently: steps differ by rank"),
        (
            "ring=64",
            "ib:8x8",
            2 * 64 * 64,
            True,
            {"ring_variant": "plain"},
            "causal plain: blocks above skipped",
        ),
        ("ring=16", "ib:2x8", 2 * 16 * 64, True, {}, "too few steps to gain"),
    ],
)
def test_ring_coarsening_falls_back(plan, topo, seq, causal, kw, why):
    cfg = _cfg(plan, topo, seq, causal, **kw)
    coarse, full = run_config(cfg), run_config(cfg, coarsen=False)
    assert not coarse.coarsened and coarse.ring_steps_total == 0, why
    assert len(coarse.result.schedule.ops) == len(full.result.schedule.ops)
    _same(coarse, full)


def test_ring_coarsening_only_for_one_unit():
    """Several layers: the layer coarsening applies (whole rings), not the ring-step one."""
    cfg = _cfg("ring=32", "ib:4x8", 2 * 32 * 64, model=load_model("seed-dense", layers=4))
    r = run_config(cfg)
    assert r.ring_steps_total == 0 and r.units_total == 4


def test_period_check_rejects_a_perturbed_run():
    """The check is strict: one op of run B moved by 1e-6 of the latency is not a repeat."""
    cfg = _cfg("ring=64", "ib:8x8", 64 * 1024, False)
    k, p = 12, 4
    a, b = (
        simulate(
            build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, HW, ring_steps=s),
            cfg.topology,
            HW,
        )
        for s in (k, k + p)
    )
    assert _ring_period(a, b, k, p) is not None
    ops = b.schedule.ops
    for tag in (f"step{k + 1}/attn", f"step{k + p}/merge", "finalize"):  # periodic part, last step, tail
        i = next(j for j, op in enumerate(ops) if op.rank == 5 and tag in op.tag)
        saved = b.end[i]
        b.end[i] = saved + 1e-6 * b.latency_s
        assert _ring_period(a, b, k, p) is None, tag
        b.end[i] = saved


def test_build_ring_steps_is_additive():
    cfg = _cfg("ring=32", "ib:4x8", 32 * 512, False)
    args = (cfg.model, cfg.workload, cfg.plan, cfg.topology, HW)
    full, same, few = (
        build_schedule(*args),
        build_schedule(*args, ring_steps=30),
        build_schedule(*args, ring_steps=4),
    )
    assert full.ops == same.ops and full.ring_steps_built == same.ring_steps_built == 0
    assert few.ring_steps_built == 4 and few.ring_steps_total == 30 and few.ring_steps_uniform
    tags = [op.tag for op in few.rank_ops(3) if "/ring/step" in op.tag]
    assert {t.split("/")[3] for t in tags} == {f"step{t}" for t in (0, 1, 2, 3, 4, 31)}
    assert not tags[-1].endswith("send") and not any("step31/send" in t for t in tags)


def test_cli_simulate_coarsens_a_ring(capsys):
    from ringsim.cli import main

    args = [
        "simulate",
        "--topology",
        "ib:8x8",
        "--plan",
        "ring=64",
        "--layers",
        "1",
        "--batch",
        "1",
        "--seq",
        "8192",
        "--json",
    ]
    assert main(args) == 0
    o = json.loads(capsys.readouterr().out)["sim"]
    assert o["coarsened"] and o["ring_steps_total"] == 62 and o["period_of"] == "ring step"
    assert main([*args, "--no-coarsen"]) == 0
    f = json.loads(capsys.readouterr().out)["sim"]
    assert not f["coarsened"] and f["ring_steps_simulated"] == 0
    assert o["latency_s"] == pytest.approx(f["latency_s"], rel=1e-9)
    assert np.allclose(
        [r["busy_s"] for r in o["per_rank"]],
        [r["busy_s"] for r in f["per_rank"]],
        rtol=1e-9,
        atol=1e-9 * f["latency_s"],
    )
