"""The fast paths of the simulator against the full simulation they replace.

* A pass-KV prefill ring timed by the rank x step recurrence (``sim/ring_recurrence.py``; what
  ``run_config`` uses for rings of ``MIN_RING`` ranks or more) equals the engine's full simulation to
  1e-9 of the latency: latency, every rank's busy / waiting / idle / compute / transfer / overlap
  time, every link's bytes and busy time, and the critical path's compute / communication / gaps.
* Units that settle slowly are coarsened from ``LONG_TRY`` units, exactly, where ``TRIES`` alone falls
  back to the full schedule.
* ``progress`` is told every op (or ring step) the run timed.
"""

import json
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmodel.config import Config
from costmodel.plan import parse_plan
from costmodel.presets import load_hardware, load_model
from costmodel.specs import Workload
from costmodel.topology import parse_topology
from sim import SimOptions, run_config
from sim.report import critical_path
from sim.ring_recurrence import MIN_RING, _comp, run_ring

ONE = load_model("seed-dense", layers=1)
FIGS = ("busy_s", "waiting_s", "idle_s", "compute_s", "transfer_s", "overlap_s", "utilisation")


def _cfg(hw, plan, topo, seq, causal=True, batch=1, model=ONE, **kw) -> Config:
    return Config(
        hardware=load_hardware(hw),
        topology=parse_topology(topo),
        model=model,
        workload=Workload(batch=batch, seq_len=seq, causal=causal),
        plan=parse_plan(plan, **kw),
    )


def _same(fast, full) -> None:
    T = full.latency_s
    assert fast.latency_s == pytest.approx(T, rel=1e-9)
    assert len(fast.ranks) == len(full.ranks)
    for a, b in zip(fast.ranks, full.ranks, strict=True):
        assert a["rank"] == b["rank"]
        for k in FIGS:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9 * (T if k != "utilisation" else 1)), (
                a["rank"],
                k,
            )
    assert [lk["link"] for lk in fast.links] == [lk["link"] for lk in full.links]
    for a, b in zip(fast.links, full.links, strict=True):
        assert a["bytes"] == pytest.approx(b["bytes"], rel=1e-12)
        for k in ("busy_s", "busy_fraction", "utilisation"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9 * T), (a["link"], k)


CASES = [
    # (hardware, plan, topology, seq, causal, batch, plan options)
    ("h100-sxm", "ring=16", "ib:2x8", 2 * 16 * 64, True, 1, {}),  # launch-bound blocks, IB hops
    ("h100-sxm", "ring=16", "nvlink-domain:16", 16 * 16384, True, 4, {}),  # compute-bound zigzag
    ("h100-sxm", "ring=16", "ib:2x8", 16 * 16384, True, 4, {}),  # zigzag, transfers and compute close
    ("h100-sxm", "ring=32", "ib:4x8", 32 * 8192, True, 2, {"ring_variant": "striped"}),
    ("h100-sxm", "ring=32", "nvlink-domain:32", 32 * 2048, False, 1, {}),  # non-causal
    ("h100-sxm-eager", "ring=16", "ib:2x8", 16 * 256, True, 1, {}),  # host issue time per op
    ("h100-sxm-graph", "ring=16", "ib:2x8", 16 * 256, True, 1, {}),  # a graph's launch
    ("b200", "ring=24", "ib:3x8", 24 * 2048, True, 1, {}),
    ("h100-sxm", "ring=12", "ib:3x4", 12 * 4096, True, 2, {"ring_variant": "zigzag"}),
    # step 0's attention outlasts the first transfer: the second one (waits for nothing else) slows it too
    ("h200-sxm", "ring=8", "nvlink-domain:8", 65536, True, 2, {"model": "llama3-8b"}),
]


@pytest.mark.parametrize("hw,plan,topo,seq,causal,batch,kw", CASES)
@pytest.mark.parametrize(
    "opt", [None, SimOptions(compute_slowdown=False), SimOptions(nics_per_node=1)], ids=str
)
def test_recurrence_equals_the_full_simulation(hw, plan, topo, seq, causal, batch, kw, opt):
    kw = dict(kw)
    model = load_model(kw.pop("model"), layers=1) if "model" in kw else ONE
    cfg = _cfg(hw, plan, topo, seq, causal, batch, model=model, **kw)
    fast = run_ring(cfg, opt, time.perf_counter())
    assert fast is not None and fast.method == "recurrence" and fast.result is None
    full = run_config(cfg, opt, coarsen=False)
    assert full.method == "engine" and not full.coarsened
    _same(fast, full)
    cp = critical_path(full.result)
    T = full.latency_s
    for k in ("compute_s", "comm_s", "gaps_s", "length_s"):
        assert fast.critical[k] == pytest.approx(cp[k], rel=1e-9, abs=1e-9 * T), k
    assert fast.ops_total == len(full.result.schedule.ops)


def test_run_config_takes_the_recurrence_from_min_ring_and_no_coarsen_the_engine():
    R = MIN_RING
    cfg = _cfg("h100-sxm", f"ring={R}", f"ib:{R // 8}x8", 2 * R * 64)
    fast, full = run_config(cfg), run_config(cfg, coarsen=False)
    assert fast.method == "recurrence" and not fast.coarsened and fast.period_s is None
    assert full.method == "engine" and len(full.result.schedule.ops) == fast.ops_total
    _same(fast, full)


@pytest.mark.parametrize(
    "plan,topo,seq,kw,why",
    [
        ("ring=16", "ib:2x8", 16 * 512, {"ring_variant": "plain"}, "causal plain skips the blocks above"),
        ("tp=2,ring=8", "ib:2x8", 8 * 512, {}, "not a ring alone (all-reduces)"),
        ("ring=4", "nvswitch:4", 2 * 4 * 64, {}, "too few steps"),
    ],
)
def test_recurrence_declines(plan, topo, seq, kw, why):
    assert run_ring(_cfg("h100-sxm", plan, topo, seq, **kw), None, time.perf_counter()) is None, why


def test_recurrence_declines_several_layers_and_micro_batches():
    two = load_model("seed-dense", layers=2)
    assert run_ring(_cfg("h100-sxm", "ring=16", "ib:2x8", 16 * 128, model=two), None, 0.0) is None
    assert (
        run_ring(_cfg("h100-sxm", "ring=16", "ib:2x8", 16 * 128, batch=2, microbatches=2), None, 0.0) is None
    )


def test_slowed_compute_integrates_the_transfers_in_flight():
    """1 s of work from t = 0 at half speed inside [0.5, 1.0] and [1.1, 1.2] (overlapping [0.6, 0.9]):
    0.5 s done by 0.5, 0.25 more by 1.0, 0.1 by 1.1, 0.05 by 1.2, the last 0.1 by 1.3."""
    s, w, f = np.array([0.0, 2.0]), np.array([1.0, 1.0]), np.array([2.0, 2.0])
    win = [
        (np.array([0.5, np.nan]), np.array([1.0, np.nan])),
        (np.array([1.1, np.nan]), np.array([1.2, np.nan])),
        (np.array([0.6, 0.0]), np.array([0.9, 1.0])),  # ends before the second op starts
    ]
    assert _comp(s, w, f, win) == pytest.approx([1.3, 3.0], rel=1e-12)
    assert _comp(s, w, np.ones(2), win) == pytest.approx([1.0, 3.0])


def test_cli_simulate_a_large_ring_by_the_recurrence(capsys):
    from ringsim.cli import main

    R = MIN_RING
    args = ["simulate", "--topology", f"ib:{R // 8}x8", "--plan", f"ring={R}", "--layers", "1"]
    args += ["--seq", str(2 * R * 64), "--json"]
    assert main(args) == 0
    o = json.loads(capsys.readouterr().out)["sim"]
    assert o["method"] == "recurrence" and not o["coarsened"] and o["coarsen_exact"]
    assert o["critical_path"]["note"] == "of the whole phase" and o["ops_simulated"] > R * R
    assert main([*args, "--no-coarsen"]) == 0
    f = json.loads(capsys.readouterr().out)["sim"]
    assert f["method"] == "engine" and f["ops_simulated"] == o["ops_simulated"]
    assert o["latency_s"] == pytest.approx(f["latency_s"], rel=1e-9)


def test_slowly_settling_units_coarsen_exactly_from_the_long_try(monkeypatch):
    """The seed's ring on an NVLink domain of 16 with 16 micro-batches settles to one period only after
    16 units: TRIES (3, 12) fall back to the full schedule, LONG_TRY (20) repeats exactly."""
    import sim.run as run

    cfg = _cfg(
        "h100-sxm", "ring=16", "nvlink-domain:16", 100000, batch=128, model=load_model("seed-dense", layers=5)
    )
    cfg = replace(cfg, plan=parse_plan("ring=16", microbatches=16))
    coarse, full = run_config(cfg), run_config(cfg, coarsen=False)
    assert coarse.coarsened and coarse.coarsen_exact and coarse.units_simulated == run.LONG_TRY
    assert full.units_simulated == coarse.units_total == 80
    T = full.latency_s
    assert coarse.latency_s == pytest.approx(T, rel=1e-9)
    for a, b in zip(coarse.ranks, full.ranks, strict=True):
        for k in ("busy_s", "waiting_s", "idle_s", "compute_s", "transfer_s"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9 * T), (a["rank"], k)
    monkeypatch.setattr(run, "LONG_TRY", 10**9)  # no long try: TRIES only
    assert not run_config(cfg).coarsened


class _Bar:
    def __init__(self, log, total, desc):
        self.log, self.total, self.desc, self.n, self.closed = log, total, desc, 0, False
        log.append(self)

    def update(self, k):
        self.n += k

    def close(self):
        self.closed = True


def test_progress_is_told_every_op_and_every_ring_step():
    log: list[_Bar] = []
    cfg = _cfg("h100-sxm", "ring=16", "ib:2x8", 16 * 256)
    r = run_config(cfg, coarsen=False, progress=lambda total, desc: _Bar(log, total, desc))
    assert [(b.desc, b.total, b.n, b.closed) for b in log] == [
        ("simulate", len(r.result.schedule.ops), len(r.result.schedule.ops), True)
    ]
    log.clear()
    R = MIN_RING
    cfg = _cfg("h100-sxm", f"ring={R}", f"ib:{R // 8}x8", 2 * R * 64)
    r = run_config(cfg, progress=lambda total, desc: _Bar(log, total, desc))
    assert r.method == "recurrence"
    assert [(b.desc, b.total, b.n, b.closed) for b in log] == [("ring steps", R, R, True)]


def test_cli_progress_bar_is_quiet_without_a_terminal(capsys):
    from ringsim.cmd_simulate import _progress

    bar = _progress(10**7, "simulate")  # under pytest stderr is captured: not a terminal
    assert bar.disable
    bar.update(10**6)
    bar.close()
    assert capsys.readouterr().err == ""


def test_cli_progress_makes_no_bar_for_a_small_run():
    """A run too small for a bar gets none (tqdm is not even imported for it); the engine runs the same."""
    from ringsim.cmd_simulate import PROGRESS_MIN_OPS, _progress

    assert _progress(PROGRESS_MIN_OPS - 1, "simulate") is None
    assert _progress(PROGRESS_MIN_OPS, "simulate") is not None
    cfg = _cfg("h100-sxm", "ring=8", "ib:1x8", 8 * 256)
    quiet = run_config(cfg, coarsen=False, progress=_progress)
    plain = run_config(cfg, coarsen=False)
    assert quiet.result.end == plain.result.end and quiet.latency_s == plain.latency_s


@st.composite
def _rings(draw):
    gpn = draw(st.sampled_from([2, 4, 8]))
    nodes = draw(st.sampled_from([3, 4]))  # rings of 6 to 32
    R = gpn * nodes
    topo = draw(st.sampled_from([f"ib:{nodes}x{gpn}", f"nvlink-domain:{R}"]))
    variant = draw(st.sampled_from(["zigzag", "striped"]))
    seq = (2 * R if variant == "zigzag" else R) * draw(st.sampled_from([32, 256, 2048, 8192]))
    return Config(
        hardware=load_hardware(draw(st.sampled_from(["h100-sxm", "h200-sxm", "b200", "h100-sxm-eager"]))),
        topology=parse_topology(topo),
        model=load_model(draw(st.sampled_from(["seed-dense", "llama3-8b"])), layers=1),
        workload=Workload(batch=draw(st.sampled_from([1, 2, 4])), seq_len=seq, causal=draw(st.booleans())),
        plan=parse_plan(f"ring={R}", ring_variant=variant),
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=_rings(), slowdown=st.booleans())
def test_recurrence_equals_the_full_simulation_on_drawn_rings(cfg, slowdown):
    opt = SimOptions(compute_slowdown=slowdown)
    fast = run_ring(cfg, opt, time.perf_counter())
    assert fast is not None
    _same(fast, run_config(cfg, opt, coarsen=False))
