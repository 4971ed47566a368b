"""Pipelines coarsened by their micro-batches (sim/run.py): S + 3 micro-batches simulated (fill, two middle
units that repeat exactly on the critical path's stage, drain), the rest extrapolated by the period.  The
latency equals the full simulation's, the stages that run ahead drift within the stated tolerance and the
result says so; a pipeline without a steady period, or with too few micro-batches, runs in full."""

import pytest

from costmodel.config import Config
from costmodel.plan import parse_plan
from costmodel.presets import load_hardware, load_model
from costmodel.specs import Workload
from costmodel.topology import parse_topology
from sim import run_config
from sim.run import PIPELINE_TOLERANCE, PIPELINE_TRY, simulate_json

HW = load_hardware("h100-sxm")


def _cfg(
    plan: str, topo: str, mb: int = 16, layers: int = 4, decode: bool = False, batch: int = 128
) -> Config:
    """The seed's shape (B = 128, L = 100,000) on fewer layers."""
    wl = (
        Workload(batch=batch, seq_len=100000, phase="decode", context_len=100000)
        if decode
        else Workload(batch=batch, seq_len=100000)
    )
    return Config(
        hardware=HW,
        topology=parse_topology(topo),
        model=load_model("seed-dense", layers=layers),
        workload=wl,
        plan=parse_plan(plan, microbatches=mb),
    )


@pytest.mark.parametrize(
    "plan,topo,decode",
    [
        ("tp=4,pp=2", "nvswitch:8", False),
        ("tp=2,pp=4", "nvswitch:8", False),
        ("tp=4,pp=2", "ib:2x4", True),
    ],
)
def test_pipeline_coarsened_latency_equals_full(plan, topo, decode):
    cfg = _cfg(plan, topo, decode=decode)
    coarse, full = run_config(cfg), run_config(cfg, coarsen=False)
    S = cfg.plan.pp
    assert coarse.coarsened and coarse.units_simulated == S + PIPELINE_TRY and coarse.units_total == 16
    assert not full.coarsened and len(coarse.result.schedule.ops) < len(full.result.schedule.ops)
    T = full.latency_s
    assert coarse.latency_s == pytest.approx(T, rel=1e-12)
    drift = coarse.coarsen_drift
    assert coarse.coarsen_tolerance == (PIPELINE_TOLERANCE if drift else 0.0) and drift <= PIPELINE_TOLERANCE
    assert coarse.coarsen_exact == (drift == 0.0)
    for a, b in zip(coarse.ranks, full.ranks, strict=True):  # the bounds the docstring of sim/run.py states
        for k in ("busy_s", "compute_s", "transfer_s"):
            assert a[k] == pytest.approx(b[k], abs=drift * T + 1e-9 * T), (a["rank"], k)
        for k in ("waiting_s", "idle_s"):
            assert a[k] == pytest.approx(b[k], abs=S * drift * T + 1e-9 * T), (a["rank"], k)
    for a, b in zip(coarse.links, full.links, strict=True):
        assert a["link"] == b["link"] and a["bytes"] == pytest.approx(b["bytes"], rel=1e-12)
        assert a["busy_s"] == pytest.approx(b["busy_s"], rel=1e-9)
    sim = simulate_json(cfg, coarse).sim
    assert sim["coarsened"] and sim["coarsen_drift"] == drift and sim["units_simulated"] == S + PIPELINE_TRY


def test_stage_ahead_is_reported_as_drift_and_tolerance_zero_runs_all():
    cfg = _cfg("tp=4,pp=2", "ib:2x4")
    coarse = run_config(cfg)
    assert not coarse.coarsen_exact and 0 < coarse.coarsen_drift <= PIPELINE_TOLERANCE
    strict = run_config(cfg, tolerance=0.0)
    assert not strict.coarsened and strict.units_simulated == 1  # the whole pipeline, as one unit
    assert strict.latency_s == pytest.approx(coarse.latency_s, rel=1e-12)


def test_few_micro_batches_and_chunks_run_in_full():
    assert not run_config(_cfg("tp=4,pp=2", "ib:2x4", mb=2 * (2 + PIPELINE_TRY) - 2)).coarsened
    cfg = _cfg("tp=4,pp=2", "ib:2x4")
    chunked = Config(**{**cfg.__dict__, "plan": parse_plan("tp=4,pp=2", microbatches=16, chunks=2)})
    assert not run_config(chunked).coarsened
