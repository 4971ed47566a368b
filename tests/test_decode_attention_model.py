"""Decode attention across heads, KV heads, batch and context (issue 12): the grid's measurement entry
points (CPU, tiny sizes), the physical model's fit and its properties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from real import microbench  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_grid_covers_the_asked_space_within_its_caps():
    cases = microbench.decode_grid_cases()
    fit = [c for c in cases if not c["held_out"]]
    held = [c for c in cases if c["held_out"]]
    assert {c["heads"] for c in fit} == set(microbench.DECODE_GRID["heads"])
    assert {c["kv_heads"] for c in fit} == set(microbench.DECODE_GRID["kv_heads"])
    assert {c["batch"] for c in fit} == set(microbench.DECODE_GRID["batch"])
    assert {c["kv_len"] for c in fit} == set(microbench.DECODE_GRID["context"])
    # held-out points lie between the grid's batches and contexts, never on them
    assert held and not {c["batch"] for c in held} & {c["batch"] for c in fit}
    assert not {c["kv_len"] for c in held} & {c["kv_len"] for c in fit}
    for c in cases:
        assert c["kv_heads"] <= c["heads"] and c["heads"] % c["kv_heads"] == 0
        assert 2 * c["batch"] * c["kv_len"] * c["kv_heads"] * 128 * 2 <= microbench.DECODE_GRID_CACHE_CAP
    # the point the issue names: 8 query heads per GPU (no GQA), B = 16, 128Ki keys per GPU, is on the grid
    assert {"heads": 8, "kv_heads": 8, "batch": 16, "kv_len": 131072, "held_out": False} in cases
    assert len({tuple(sorted(c.items())) for c in cases}) == len(cases)


def test_grid_fits_the_device_budget():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_decode_grid

    assert bench_decode_grid.estimate_s(microbench.decode_grid_cases()) < 150


def test_quick_grid_runs_on_cpu_and_writes_raw_records(tmp_path):
    out = tmp_path / "grid.json"
    r = subprocess.run(
        [sys.executable, "benchmarks/bench_decode_grid.py", "--quick", "--reps", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    raw = json.loads(out.read_text())
    assert raw["suites"] == ["decode-grid"] and raw["provenance"]["command"]
    recs = raw["results"]
    assert len(recs) == len(microbench.decode_grid_cases(quick=True))
    for x in recs:
        assert x["op"] == "decode_attention_grid" and x["kernel"] == "math" and "error" not in x
        assert x["kv_bytes"] == 2 * x["batch"] * x["kv_len"] * x["kv_heads"] * x["head_dim"] * 4
        assert x["median_s"] > 0 and len(x["samples_s"]) == 2
    assert {x["held_out"] for x in recs} == {True, False}


def test_budget_stops_before_a_new_cache_and_says_how_many_points_were_left():
    cases = microbench.decode_grid_cases(quick=True)
    res = microbench.bench_decode_grid(
        torch.device("cpu"), torch.float32, ["math"], cases, head_dim=8, reps=1, graph=False, budget_s=1e-9
    )
    assert res == [{"op": "decode_attention_grid_skipped", "points": len(cases), "budget_s": 1e-9}]


# ---------------------------------------------------------------------------------------------
# the model and its fit
# ---------------------------------------------------------------------------------------------
import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from costmodel import presets  # noqa: E402
from costmodel.errors import SpecError  # noqa: E402
from costmodel.specs import OP_CLASSES, DecodeAttnModel  # noqa: E402
from validation import calibrate  # noqa: E402

TRUE = {"floor_s": 9e-6, "peak_Bps": 4.1e12, "half_items": 70.0, "split_keys": 4096.0}


def _synthetic(noise: float, expanded: bool = True, seed: int = 0) -> list[dict]:
    """The grid's points timed by a known model (times multiplied by 1 +- ``noise``, uniform)."""
    m = DecodeAttnModel(
        floor_s=TRUE["floor_s"],
        peak_bw_Bps=TRUE["peak_Bps"],
        half_items=TRUE["half_items"],
        split_keys=TRUE["split_keys"],
        kv_expanded=expanded,
    )
    rng = np.random.default_rng(seed)
    out = []
    for c in microbench.decode_grid_cases():
        t = float(m.time(c["batch"], c["heads"], c["kv_heads"], c["kv_len"], 128, 2))
        kvb = 2.0 * c["batch"] * c["kv_len"] * c["kv_heads"] * 128 * 2
        out.append(
            {
                "op": "decode_attention_grid",
                "mode": "graph",
                "kernel": "flash",
                **c,
                "head_dim": 128,
                "kv_bytes": kvb,
                "layout": "executor" if expanded else "contiguous",
                "median_s": t * (1 + rng.uniform(-noise, noise)),
            }
        )
    return out


@pytest.mark.parametrize("expanded", [True, False])
def test_fit_recovers_known_parameters(expanded):
    f = calibrate.fit_decode_model(_synthetic(0.0, expanded), 4.8e12, expanded)
    assert f["floor_s"] == pytest.approx(TRUE["floor_s"], rel=1e-3)
    assert f["peak_Bps"] == pytest.approx(TRUE["peak_Bps"], rel=1e-3)
    assert f["half_items"] == pytest.approx(TRUE["half_items"], rel=1e-3)
    assert f["split_keys"] == TRUE["split_keys"]
    assert f["held_out_max"] < 1e-6 and f["n_held_out"] > 50


def test_fit_with_noise_stays_close_and_reports_held_out_error():
    f = calibrate.fit_decode_model(_synthetic(0.03, seed=3), 4.8e12)
    assert f["peak_Bps"] == pytest.approx(TRUE["peak_Bps"], rel=0.03)
    assert f["floor_s"] == pytest.approx(TRUE["floor_s"], rel=0.15)
    assert f["half_items"] == pytest.approx(TRUE["half_items"], rel=0.25)
    assert 0.005 < f["held_out_median"] < 0.03 and f["held_out_max"] < 0.06


def test_fit_caps_the_bandwidth_at_the_datasheet_peak():
    f = calibrate.fit_decode_model(_synthetic(0.0), 3.0e12)
    assert f["peak_Bps"] == pytest.approx(3.0e12)
    assert f["fit_max"] > 0.01  # the data say faster: the cap costs accuracy, and the report shows it


def test_fit_refuses_too_few_points():
    with pytest.raises(SpecError, match="need at least 4"):
        calibrate.fit_decode_model(_synthetic(0.0)[:3], 4.8e12)


def test_the_fit_and_the_cost_model_compute_the_same_time():
    p = calibrate.fit_decode_model(_synthetic(0.02, seed=5), 4.8e12)
    m = DecodeAttnModel(
        floor_s=p["floor_s"],
        peak_bw_Bps=p["peak_Bps"],
        half_items=p["half_items"],
        split_keys=p["split_keys"],
        kv_expanded=True,
    )
    for r in _synthetic(0.0)[::37]:
        want = calibrate.decode_model_time(p, r, True)
        got = float(m.time(r["batch"], r["heads"], r["kv_heads"], r["kv_len"], 128, 2))
        assert got == pytest.approx(want, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    b=st.integers(1, 256),
    g=st.sampled_from([1, 2, 4, 8]),
    hk=st.integers(1, 32),
    keys=st.integers(1, 2**20),
    split=st.sampled_from([256.0, 4096.0, 1e9]),
    half=st.floats(0, 500),
    expanded=st.booleans(),
    which=st.sampled_from(["batch", "kv_heads", "keys"]),
)
def test_model_is_monotone_in_bytes(b, g, hk, keys, split, half, expanded, which):
    """More bytes to read (more sequences, KV heads at the same grouping, or keys) never takes less time."""
    m = DecodeAttnModel(
        floor_s=5e-6, peak_bw_Bps=4e12, half_items=half, split_keys=split, kv_expanded=expanded
    )
    t0 = float(m.time(b, g * hk, hk, keys, 128))
    b2, hk2, k2 = (
        (b + 1, hk, keys)
        if which == "batch"
        else (b, hk + 1, keys)
        if which == "kv_heads"
        else (b, hk, keys + 1)
    )
    t1 = float(m.time(b2, g * hk2, hk2, k2, 128))
    assert t1 >= t0 * (1 - 1e-12)


def test_few_items_read_slower_than_many():
    """The physics the grid measures: the same bytes over fewer work items (heads x batch) than SMs run at
    a lower bandwidth; at many items the peak is approached."""
    m = DecodeAttnModel(floor_s=0.0, peak_bw_Bps=4e12, half_items=64, split_keys=1e9)
    few = 2 * 1 * 2**20 * 8 * 128 * 2 / float(m.time(1, 8, 8, 2**20, 128))
    many = 2 * 64 * 2**14 * 32 * 128 * 2 / float(m.time(64, 32, 32, 2**14, 128))
    assert few < 0.2e12 * 4 and many > 0.95 * 4e12


def _profile_with_decode_model(name: str = "h100-sxm", extra: list[str] | None = None):
    raw = presets.apply_overrides(presets.load_toml("hardware", name), extra, "hardware")
    for k in raw["achievable"]["attention"].values():
        k.update(decode_floor_us=6.0, decode_peak_TBps=3.0, decode_half_items=90.0, decode_split_keys=8192.0)
    return presets.hardware_from_dict(raw)


def test_profile_keys_all_or_none_and_checked():
    raw = presets.load_toml("hardware", "h100-sxm")
    k = next(iter(raw["achievable"]["attention"].values()))
    k["decode_floor_us"] = 5.0
    with pytest.raises(SpecError, match="decode model keys"):
        presets.hardware_from_dict(raw)
    k.update(decode_peak_TBps=3.0, decode_half_items=-1.0, decode_split_keys=4096.0)
    with pytest.raises(SpecError, match="decode_half_items"):
        presets.hardware_from_dict(raw)
    k.update(decode_half_items=1.0, decode_kv_expanded="yes")
    with pytest.raises(SpecError, match="decode_kv_expanded"):
        presets.hardware_from_dict(raw)


def test_decode_model_drives_decode_attention_and_depends_on_heads():
    from costmodel import layers as Lr
    from costmodel.specs import Model

    hw = _profile_with_decode_model()
    m8 = Model(name="t", layers=1, d_model=1024, n_heads=8, n_kv_heads=8, head_dim=128, d_ff=4096)
    w = Lr.attention("attn", m8, 16, 8, 1, 131072, False, (), ())
    want = float(hw.attn("flash").decode.time(16, 8, 8, 131072, 128, 2))
    assert float(Lr.work_time(hw, w, "flash")) == pytest.approx(max(want, hw.op("attention").floor_s))
    # below the split length (8192 keys), the same bytes spread over 4x the heads and a quarter of the
    # keys: 4x the work items, less time; above it, splitting the keys gives both the same items
    w8, w32 = (Lr.attention("attn", m8, 16, h, 1, 8192 * 8 // h, False, (), ()) for h in (8, 32))
    assert float(Lr.work_time(hw, w32, "flash")) < 0.9 * float(Lr.work_time(hw, w8, "flash"))
    w32 = Lr.attention("attn", m8, 16, 32, 1, 32768, False, (), ())
    assert float(Lr.work_time(hw, w32, "flash")) == pytest.approx(float(Lr.work_time(hw, w, "flash")))
    # prefill-shaped calls are not touched by the decode model
    wp = Lr.attention("attn", m8, 1, 8, 4096, 4096, True, (), ())
    base = presets.load_hardware("h100-sxm")
    assert float(Lr.work_time(hw, wp, "flash")) == float(Lr.work_time(base, wp, "flash"))


@pytest.mark.parametrize(
    "plan",
    [
        "tp=2",
        "ring=2;decode_attn=pass-kv",
        "ring=4;decode_attn=pass-q",
        "ring=2;decode_attn=allgather",
        "tp=2,ring=2;decode_attn=pass-q",
    ],
)
def test_analytic_equals_simulator_with_the_decode_model(plan):
    from costmodel.config import Config
    from costmodel.plan import parse_plan
    from costmodel.predict import _eval
    from costmodel.specs import Model, Workload
    from costmodel.topology import parse_topology

    sim = pytest.importorskip("sim")
    no_slow = ["achievable.compute_slowdown_under_comm=1.0"] + [
        f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES
    ]
    hw = _profile_with_decode_model(extra=no_slow)
    spec, _, attn = plan.partition(";")
    p = parse_plan(spec, decode_attn=attn.partition("=")[2] or "allgather")
    model = Model(name="t", layers=2, d_model=2048, n_heads=16, n_kv_heads=4, head_dim=128, d_ff=8192)
    wl = Workload(batch=4, seq_len=64, phase="decode", context_len=65536 * p.n_ranks)
    cfg = Config(
        hardware=hw, topology=parse_topology(f"nvswitch:{p.n_ranks}"), model=model, workload=wl, plan=p
    )
    ana = float(_eval(cfg)["latency_s"])
    assert sim.run_config(cfg).latency_s == pytest.approx(ana, rel=0.01)
    old = Config(
        hardware=presets.load_hardware("h100-sxm", no_slow),
        topology=cfg.topology,
        model=model,
        workload=wl,
        plan=p,
    )
    assert ana != pytest.approx(float(_eval(old)["latency_s"]), rel=1e-3)  # the decode model is in use


def test_calibrate_fits_the_grid_into_every_profile_mode(tmp_path):
    """A grid file given beside a calibration run: every mode's profile gets the fitted decode model
    (the executor's profiles read K/V expanded, the prediction profile a fused GQA kernel), it loads,
    and the notes report the held-out error."""
    cal = ROOT / "validation" / "data" / "calibration"
    grid = tmp_path / "grid.json"
    recs = _synthetic(0.01, seed=9)
    recs += [{**r, "kernel": "cudnn", "median_s": r["median_s"] * 1.1} for r in recs]
    grid.write_text(json.dumps({"provenance": {"gpu": "synthetic"}, "results": recs}))
    raw = calibrate.load_raw([str(cal / "h200x2_raw.json"), str(grid)])
    for mode, expanded in (("ideal", False), ("graph", True), ("eager", True)):
        prof, notes = calibrate.fit_profile(raw, "h200-sxm-published", "t", mode=mode)
        hw = presets.hardware_from_dict(prof)
        for kern in ("flash", "cudnn"):
            d = hw.attn(kern).decode
            assert d is not None and d.kv_expanded is expanded
            assert d.peak_bw_Bps == pytest.approx(
                TRUE["peak_Bps"] / (1.1 if kern == "cudnn" else 1), rel=0.03
            )
        assert sum("held-out points" in n for n in notes) == 2
