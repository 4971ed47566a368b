"""Decode attention across heads, KV heads, batch and context (issue 12): the grid's measurement entry
points (CPU, tiny sizes), the physical model's fit and its properties."""

from __future__ import annotations

import json
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


def test_quick_grid_runs_on_cpu_and_writes_raw_records(tmp_path, python_m):
    out = tmp_path / "grid.json"
    r = python_m(  # python benchmarks/bench_decode_grid.py, forked with torch imported (conftest python_m)
        "benchmarks/bench_decode_grid.py",
        ["--quick", "--reps", "2", "--out", str(out)],
        cwd=str(ROOT),
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

SPLIT, SMS, PER_SM = 4096.0, 132, 2


def _occ_range(expanded: bool = True) -> tuple[float, float]:
    """The lowest occupancy a wave of the grid's fitted ungrouped calls has, and a full wave's."""
    slots = SMS * PER_SM
    occ = []
    for c in microbench.decode_grid_cases():
        if c["held_out"] or (expanded and c["heads"] != c["kv_heads"]):
            continue
        items = c["batch"] * (c["heads"] if expanded else c["kv_heads"])
        blocks = calibrate._blocks(items, c["kv_len"], SPLIT, slots)
        tail = blocks % slots
        occ += [min(blocks, slots) / SMS] + ([tail / SMS] if tail else [])
    return min(occ), float(PER_SM)


def _truth(expanded: bool = True) -> DecodeAttnModel:
    """A known model: bandwidth from 1.5 TB/s at the grid's lowest occupancy to 4.2 TB/s at a full wave
    of 2 blocks per SM (linear in log2 occupancy in seconds per byte, which any finer set of knots
    represents exactly)."""
    lo, hi = _occ_range(expanded)
    return DecodeAttnModel(
        floor_s=9e-6,
        occupancy=(lo, hi),
        bw_Bps=(1.5e12, 4.2e12),
        split_keys=SPLIT,
        sms=SMS,
        ctas_per_sm=PER_SM,
        kv_expanded=expanded,
        expand_bw_Bps=1.4e12,
        expand_contig_bw_Bps=1.1e12,
        expand_floor_s=2e-6,
    )


def _synthetic(noise: float, expanded: bool = True, seed: int = 0) -> list[dict]:
    """The grid's points timed by the known model (times multiplied by 1 +- ``noise``, uniform)."""
    m = _truth(expanded)
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
                "layout": "executor",
                "kv_expanded": expanded and c["heads"] > c["kv_heads"],
                "median_s": t * (1 + rng.uniform(-noise, noise)),
            }
        )
    return out


def _model_of(p: dict, expanded: bool = True) -> DecodeAttnModel:
    return DecodeAttnModel(
        floor_s=p["floor_s"],
        occupancy=tuple(p["occupancy"]),
        bw_Bps=tuple(p["bw_Bps"]),
        split_keys=p["split_keys"],
        sms=p["sms"],
        ctas_per_sm=p["ctas_per_sm"],
        flops=p["flops"],
        kv_expanded=expanded,
        expand_bw_Bps=p["expand_bw_Bps"],
        expand_contig_bw_Bps=p["expand_contig_bw_Bps"],
        expand_floor_s=p["expand_floor_s"],
        items=tuple(p.get("items", ())),
        items_factor=tuple(p.get("items_factor", ())),
    )


@pytest.mark.parametrize("expanded", [True, False])
def test_fit_recovers_known_parameters(expanded):
    truth = _truth(expanded)
    f = calibrate.fit_decode_model(_synthetic(0.0, expanded), 4.8e12, expanded)
    assert f["split_keys"] == SPLIT and f["ctas_per_sm"] == PER_SM
    assert f["floor_s"] == pytest.approx(truth.floor_s, rel=1e-3)
    assert f["occupancy"][0] == pytest.approx(truth.occupancy[0])
    assert f["occupancy"][-1] == pytest.approx(truth.occupancy[-1])
    assert len(f["occupancy"]) >= 4  # knots 4x apart over the measured occupancies
    fitted = _model_of(f, expanded)
    for o in np.geomspace(truth.occupancy[0], truth.occupancy[-1], 9):
        assert float(fitted.sec_per_byte(o)) == pytest.approx(float(truth.sec_per_byte(o)), rel=1e-3)
    if expanded:
        assert f["expand_bw_Bps"] == pytest.approx(truth.expand_bw_Bps, rel=1e-3)
        assert f["expand_contig_bw_Bps"] == pytest.approx(truth.expand_contig_bw_Bps, rel=1e-3)
        assert f["expand_floor_s"] == pytest.approx(truth.expand_floor_s, rel=1e-2)
    assert f["held_out_max"] < 1e-4 and f["n_held_out"] > 50


def test_query_flops_overlap_the_reads_and_their_rate_is_recovered():
    """The query heads' FLOPs run under the reads (the longer of the two): a known model with a finite rate
    that makes the grid's many-query-head calls compute-bound; the fit finds that rate among its
    candidates, and the fit's time and the cost model's agree on every point, compute-bound ones
    included."""
    import dataclasses

    rate = calibrate.DECODE_FLOPS_CANDIDATES[-2]  # ~126 TFLOP/s: one of the rates the fit tries
    truth = dataclasses.replace(_truth(False), flops=rate)
    recs = _synthetic(0.0, False)
    for r in recs:
        r["median_s"] = float(truth.time(r["batch"], r["heads"], r["kv_heads"], r["kv_len"], 128, 2))
    bound = [r for r in recs if calibrate._query_flops(r) / rate > r["median_s"] - truth.floor_s - 1e-12]
    assert len(bound) > 20  # compute-bound points exist (the max, not a sum, sets their time)
    for r in bound[:5]:
        assert r["median_s"] == pytest.approx(truth.floor_s + calibrate._query_flops(r) / rate, rel=1e-12)
    f = calibrate.fit_decode_model(recs, 4.8e12, False)
    assert f["flops"] == pytest.approx(rate, rel=1e-12)
    m = _model_of(f, False)
    for r in recs[::7]:
        want = calibrate.decode_model_time(f, r, False)
        assert float(m.time(r["batch"], r["heads"], r["kv_heads"], r["kv_len"], 128, 2)) == pytest.approx(
            want, rel=1e-9
        )
        assert want == pytest.approx(r["median_s"], rel=2e-2)
    assert f["fit_median"] < 1e-3  # the reads refitted on the read-bound points: 0.06% median, 1.4% max


def test_fit_with_noise_stays_close_and_reports_held_out_error():
    truth = _truth()
    f = calibrate.fit_decode_model(_synthetic(0.03, seed=3), 4.8e12)
    fitted = _model_of(f)
    for o in np.geomspace(truth.occupancy[0], truth.occupancy[-1], 5)[1:]:
        assert float(fitted.sec_per_byte(o)) == pytest.approx(float(truth.sec_per_byte(o)), rel=0.06)
    assert f["expand_bw_Bps"] == pytest.approx(truth.expand_bw_Bps, rel=0.03)
    assert 0.005 < f["held_out_median"] < 0.03 and f["held_out_max"] < 0.08


def test_fit_caps_the_bandwidth_at_the_datasheet_peak():
    f = calibrate.fit_decode_model(_synthetic(0.0), 3.0e12)
    assert max(f["bw_Bps"]) <= 3.0e12 * (1 + 1e-9)
    assert f["fit_max"] > 0.01  # the data say faster: the cap costs accuracy, and the report shows it


def test_fit_refuses_too_few_points():
    with pytest.raises(SpecError, match="need at least 8"):
        calibrate.fit_decode_model([r for r in _synthetic(0.0) if r["heads"] > r["kv_heads"]], 4.8e12)


def test_nnls_matches_the_exhaustive_solution():
    """Lawson-Hanson against the best non-negative least-squares solution over every subset of columns."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        A, y = rng.normal(size=(30, 5)), rng.normal(size=30)
        x = calibrate.nnls(A, y)
        assert (x >= 0).all()
        errs = []
        for m in range(32):
            cols = [i for i in range(5) if m >> i & 1]
            z = np.zeros(5)
            if cols:
                z[cols] = np.linalg.lstsq(A[:, cols], y, rcond=None)[0]
            if (z >= 0).all():
                errs.append(float(np.sum((A @ z - y) ** 2)))
        assert float(np.sum((A @ x - y) ** 2)) == pytest.approx(min(errs), rel=1e-9, abs=1e-12)


def test_the_fit_and_the_cost_model_compute_the_same_time():
    p = calibrate.fit_decode_model(_synthetic(0.02, seed=5), 4.8e12)
    m = _model_of(p)
    for r in _synthetic(0.0)[::23]:
        want = calibrate.decode_model_time(p, r, True)
        got = float(m.time(r["batch"], r["heads"], r["kv_heads"], r["kv_len"], 128, 2))
        assert got == pytest.approx(want, rel=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    b=st.integers(1, 256),
    g=st.sampled_from([1, 2, 4, 8]),
    hk=st.integers(1, 32),
    keys=st.integers(1, 2**20),
    split=st.sampled_from([256.0, 4096.0, 1e9]),
    bws=st.lists(st.floats(0.2e12, 4.8e12), min_size=2, max_size=6),
    expanded=st.booleans(),
    which=st.sampled_from(["batch", "kv_heads", "keys"]),
    per_sm=st.sampled_from([1, 2, 3]),
)
def test_model_is_monotone_in_bytes(b, g, hk, keys, split, bws, expanded, which, per_sm):
    """More bytes to read (more sequences, KV heads at the same grouping, or keys) never takes less time,
    for any bandwidth curve the fit can write (``_monotone_bw``)."""
    occ = np.geomspace(0.03, per_sm, len(bws))
    bw = calibrate._monotone_bw(occ, np.array(bws))
    m = DecodeAttnModel(
        floor_s=5e-6,
        occupancy=tuple(occ),
        bw_Bps=tuple(bw),
        split_keys=split,
        ctas_per_sm=per_sm,
        kv_expanded=expanded,
    )
    t0 = float(m.time(b, g * hk, hk, keys, 128))
    b2, hk2, k2 = {"batch": (b + 1, hk, keys), "kv_heads": (b, hk + 1, keys), "keys": (b, hk, keys + 1)}[
        which
    ]
    t1 = float(m.time(b2, g * hk2, hk2, k2, 128))
    assert t1 >= t0 * (1 - 1e-12)


def test_few_items_read_slower_than_many():
    """The physics the grid measures: the same call with keys too few to split leaves SMs idle and runs at
    a lower bandwidth; with keys to split it fills one wave; with many items it is never split."""
    m = DecodeAttnModel(floor_s=0.0, occupancy=(1 / 32, 1.0), bw_Bps=(1e12, 4e12), split_keys=4096)
    assert float(m.occupancy_of(4, 2048)) == pytest.approx(4 / 132)
    assert float(m.occupancy_of(4, 2**20)) == 1.0  # split into 256 pieces each, capped at one wave
    assert float(m.occupancy_of(1024, 2**20)) == pytest.approx(1024 / 132)  # never split: already full
    few = 2 * 2048 * 4 * 128 * 2 / float(m.time(1, 4, 4, 2048, 128))
    many = 2 * 2**20 * 4 * 128 * 2 / float(m.time(1, 4, 4, 2**20, 128))
    assert few < 1.1e12 and many == pytest.approx(4e12)
    # wave quantization: one block beyond a full wave runs a last wave of one block at low occupancy
    full = float(m.kernel_seconds(132 * 2**20, 132)) / 132
    over = float(m.kernel_seconds(133 * 2**20, 133)) / 133
    assert over > full


def _profile_with_decode_model(name: str = "h100-sxm", extra: list[str] | None = None):
    raw = presets.apply_overrides(presets.load_toml("hardware", name), extra, "hardware")
    for k in raw["achievable"]["attention"].values():
        k.update(
            decode_floor_us=6.0,
            decode_occupancy=[0.05, 1.0, 8.0],
            decode_occupancy_TBps=[1.2, 3.6, 4.0],
            decode_split_keys=8192.0,
        )
    return presets.hardware_from_dict(raw)


def test_profile_keys_all_or_none_and_checked():
    raw = presets.load_toml("hardware", "h100-sxm")
    k = next(iter(raw["achievable"]["attention"].values()))
    k["decode_floor_us"] = 5.0
    with pytest.raises(SpecError, match="decode model keys"):
        presets.hardware_from_dict(raw)
    k.update(decode_occupancy=[0.1, 1.0], decode_occupancy_TBps=[1.0, -3.0], decode_split_keys=4096.0)
    with pytest.raises(SpecError, match="decode_occupancy"):
        presets.hardware_from_dict(raw)
    k.update(decode_occupancy_TBps=[1.0, 3.0], decode_split_keys=0.5)
    with pytest.raises(SpecError, match="decode_split_keys"):
        presets.hardware_from_dict(raw)
    k.update(decode_split_keys=4096.0, decode_kv_expanded="yes")
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

    def t(b, h, keys):
        return float(Lr.work_time(hw, Lr.attention("attn", m8, b, h, 1, keys, False, (), ()), "flash"))

    # keys too few to split (8192): the same bytes over 4x the heads give 4x the items, less time
    assert t(2, 32, 2048) < 0.8 * t(2, 8, 8192)
    # keys to split: both calls fill one wave, the same bytes take the same time
    assert t(2, 32, 32768) == pytest.approx(t(2, 8, 131072))
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


@pytest.mark.parametrize("expanded", [True, False])
def test_calibrate_fits_the_grid_into_every_profile_mode(tmp_path, expanded):
    """A grid file given beside a calibration run: every mode's profile gets the fitted decode model, it
    loads, and the notes report the held-out error.  Where the kernels took grouped K/V only expanded, the
    executor's profiles say so and the prediction profile reads each KV head once (a fused GQA kernel)."""
    cal = ROOT / "validation" / "data" / "calibration"
    grid = tmp_path / "grid.json"
    recs = _synthetic(0.01, expanded, seed=9)
    recs += [{**r, "kernel": "cudnn", "median_s": r["median_s"] * 1.1} for r in recs]
    grid.write_text(json.dumps({"provenance": {"gpu": "synthetic"}, "results": recs}))
    raw = calibrate.load_raw([str(cal / "h200x2_raw.json"), str(grid)])
    for mode, with_ops in (("ideal", False), ("graph", True), ("eager", True)):
        prof, notes = calibrate.fit_profile(raw, "h200-sxm-published", "t", mode=mode)
        hw = presets.hardware_from_dict(prof)
        for kern in ("flash", "cudnn"):
            d = hw.attn(kern).decode
            assert d is not None and d.kv_expanded is (expanded and with_ops)
            o = d.occupancy[len(d.occupancy) // 2]
            want = float(_truth(expanded).sec_per_byte(o)) * (1.1 if kern == "cudnn" else 1)
            assert float(d.sec_per_byte(o)) == pytest.approx(want, rel=0.05)
        assert sum("held-out points" in n for n in notes) == 2


def test_a_lower_hbm_peak_caps_the_decode_bandwidths():
    raw = presets.load_toml("hardware", "h100-sxm")
    for k in raw["achievable"]["attention"].values():
        k.update(
            decode_floor_us=6.0,
            decode_occupancy=[0.05, 1.0],
            decode_occupancy_TBps=[1.2, 3.2],
            decode_split_keys=8192.0,
        )
    over = ["peak.hbm_TBps=2.0"]
    capped, notes = presets.peak_rules(presets.apply_overrides(raw, over, "hardware"), over)
    assert all(k["decode_occupancy_TBps"] == [1.2, 2.0] for k in capped["achievable"]["attention"].values())
    assert any("decode_occupancy_TBps capped" in n for n in notes)


def test_warm_grid_points_small_enough_for_l2_are_left_out_of_the_fit():
    """A grid that re-read one cache call after call: caches under 2x the L2 were served from it, which a
    decode step never is; the fit leaves them out (a grid that rotated cache copies keeps them all)."""
    recs = _synthetic(0.0, expanded=False)
    small = [r for r in recs if r["kv_bytes"] < calibrate.DECODE_WARM_MIN_BYTES]
    assert small
    warm = [{**r, "median_s": r["median_s"] / 3} if r in small else r for r in recs]  # "from L2": 3x faster
    f = calibrate.fit_decode_grid(warm, "flash", 4.8e12)
    assert f["warm_left_out"] == len(small) and f["n_fit"] + f["n_held_out"] == len(recs) - len(small)
    # on the HBM-bound points the filtered fit is the truth's (a point or two at the edge of its occupancy
    # range aside); a fit that took the L2-served points in is bent by them
    big = [r for r in recs if r["kv_bytes"] >= calibrate.DECODE_WARM_MIN_BYTES]
    bent = calibrate.fit_decode_model(warm, 4.8e12, expanded=False)

    def err(p):
        return sorted(abs(calibrate.decode_model_time(p, r, False) / r["median_s"] - 1) for r in big)

    assert err(f)[len(big) // 2] < 1e-6 and err(f)[-1] < 0.1
    assert err(bent)[len(big) // 2] > 0.01 and err(bent)[-1] > 0.2
    cold = calibrate.fit_decode_grid([{**r, "cache_copies": 4} for r in recs], "flash", 4.8e12)
    assert cold["warm_left_out"] == 0 and cold["n_fit"] + cold["n_held_out"] == len(recs)


def test_items_factor_is_fitted_where_the_kernel_is_slower_at_some_item_counts():
    """Data made 12% slower in their read time at every call of 48 work items (sequences x KV heads:
    the kernel's own split/wave rule, which the wave model does not follow): the fit's factor there
    comes out near 1.12, near 1 elsewhere, and the fitted model then predicts those calls."""
    from dataclasses import replace

    truth = _truth(False)
    slow = replace(truth, items=(32.0, 48.0, 64.0), items_factor=(1.0, 1.12, 1.0))
    recs = _synthetic(0.0, False)
    cases = [c for c in microbench.decode_grid_cases() if c["heads"] == c["kv_heads"]]
    for b, hk, kv in ((12, 4, 65536), (6, 8, 131072), (48, 1, 32768), (24, 2, 65536)):
        t = float(slow.time(b, hk, hk, kv, 128, 2))
        recs.append(
            {
                **recs[0],
                "batch": b,
                "heads": hk,
                "kv_heads": hk,
                "kv_len": kv,
                "median_s": t,
                "kv_bytes": 2.0 * b * kv * hk * 128 * 2,
                "kv_expanded": False,
            }
        )
    assert cases  # the grid has plain calls
    f = calibrate.fit_decode_model(recs, 4.8e12, expanded=False)
    got = dict(zip(f["items"], f["items_factor"]))
    assert got[48.0] == pytest.approx(1.12, abs=0.02)
    assert all(abs(v - 1.0) < 0.02 for k, v in got.items() if k != 48.0)
    m = _model_of(f, expanded=False)
    assert float(m.time(12, 4, 4, 65536, 128, 2)) == pytest.approx(
        float(slow.time(12, 4, 4, 65536, 128, 2)), rel=0.02
    )


def test_items_factor_of_ones_changes_nothing_and_bad_factors_are_refused():
    from dataclasses import replace

    m = _truth(False)
    ones = replace(m, items=(1.0, 64.0, 4096.0), items_factor=(1.0, 1.0, 1.0))
    for b, h, kv in ((1, 1, 2048), (20, 16, 40960), (128, 8, 524288)):
        assert float(ones.time(b, h, h, kv, 128, 2)) == pytest.approx(
            float(m.time(b, h, h, kv, 128, 2)), rel=1e-12
        )
    with pytest.raises(SpecError, match="decode_items_factor"):
        replace(m, items=(1.0, 2.0), items_factor=(1.0, 3.0))
    with pytest.raises(SpecError, match="decode_items"):
        replace(m, items=(2.0, 1.0), items_factor=(1.0, 1.0))


def test_a_profile_with_decode_items_alone_is_one_sentence():
    import copy

    from costmodel import presets

    raw = copy.deepcopy(presets.load_toml("hardware", "h200-sxm-graph"))
    cud = raw["achievable"]["attention"]["cudnn"]
    assert "decode_items" in cud  # the calibrated profile has the factor
    assert presets.hardware_from_dict(raw).attn("cudnn").decode.items
    del cud["decode_items_factor"]
    with pytest.raises(SpecError, match=r"decode_items is not valid alone"):
        presets.hardware_from_dict(raw)
