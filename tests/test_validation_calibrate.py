"""Calibration: the committed profiles are exactly what the committed raw measurements fit to."""

import json
import sys
from pathlib import Path

import pytest

from costmodel import presets
from validation.calibrate import fit_comm, fit_gemm, fit_profile, load_raw
from validation.compare import Row, config_of, summarise

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CAL = ROOT / "validation" / "data" / "calibration"


# each profile's raw files: the calibration run, then any supplement (attention beyond 128Ki on the H200)
RAWS = {
    "h200-sxm": [
        "h200x2_raw.json",
        "h200x1_attention_long_raw.json",
        "h200x1_attention_batch_raw_20261128.json",
        "h200x2_ring_causes_disjoint_20261128.json",
        "h200x4_comm_g4_raw_20261128.json",
        "h200x1_fp8_raw_20261128b.json",
        "h200x1_decode_grid_raw_20261128.json",
        "h200x1_decode_grid_gaps_raw_20261128.json",
        "h200x2_ring_gate_raw_20261128.json",
        "h200x1_decode_grid_batches_raw_20261128.json",
        "h200x1_act_glu_raw_20261128.json",
        "h200x1_gemm_stream_raw_20261128.json",
        "h200x1_decode_grid_items_raw_20261128.json",
        "h200x1_op_floor_rows_20261128.json",
        "h200x2_start_skew_raw_20261128.json",
        "h200x4_start_skew_raw_20261128.json",
        "h200x1_gemm_stream_big_raw_20261128.json",
    ],
    "h100-sxm": ["h100x1_raw.json"],
}


@pytest.mark.parametrize(
    "raw,base,name",
    [
        (RAWS["h200-sxm"], "h200-sxm-published", "h200-sxm"),
        (RAWS["h100-sxm"], "h100-sxm-published", "h100-sxm"),
    ],
)
def test_committed_profile_is_the_fit_of_committed_raw(raw, base, name):
    data = load_raw([str(CAL / f) for f in raw])
    prof, notes = fit_profile(data, base, name)
    committed = tomllib.loads((ROOT / "costmodel" / "presets" / "hardware" / f"{name}.toml").read_text())
    assert committed["achievable"] == prof["achievable"]
    # predictions: ideal fused kernels (one per op, no excess bytes) issued from a CUDA graph (no host time)
    for o in committed["achievable"].get("ops", {}).values():
        assert o["issue_us"] == 0.0 and o.get("bytes_factor", 1.0) == 1.0 and o.get("floor_us", 0.0) < 10.0
    eager = ROOT / "costmodel" / "presets" / "hardware" / f"{name}-eager.toml"
    if eager.exists():  # the executor's own op figures, fitted from the same raw file
        ep, _ = fit_profile(data, base, name + "-eager", mode="eager")
        assert tomllib.loads(eager.read_text())["achievable"] == ep["achievable"]
        one_gpu = data["provenance"]["world_size"] == 1  # no NCCL call to measure
        assert {"norm", "rope", "gemm"} | (set() if one_gpu else {"comm"}) <= set(ep["achievable"]["ops"])
    assert committed["peak"] == prof["peak"]
    assert committed["provenance"]["kind"] == "calibrated" and committed["provenance"]["gpu"].startswith(
        "NVIDIA H"
    )
    for k in ("driver", "torch", "date", "command"):
        assert committed["provenance"][k]
    assert any("published" in n for n in notes)  # what could not be measured is said


def test_h200_measured_figures_are_physical():
    hw = presets.load_hardware("h200-sxm")
    pub = presets.load_hardware("h200-sxm-published")
    assert hw.peak_flops == pub.peak_flops  # datasheet peaks untouched
    assert 0.5 < float(hw.gemm_efficiency(1e13)) < 0.9  # large GEMMs: 70-80% of peak measured
    assert 1e12 < hw.elementwise_bw_Bps <= hw.hbm_bw_Bps
    nv = hw.comm["nvlink"]["p2p"]
    assert 100e9 < nv.bw_Bps < hw.nvlink_bw_Bps  # below the 450 GB/s line rate
    assert hw.comm["ib"] == pub.comm["ib"]  # one node: InfiniBand stays published
    # cuDNN's attention kernel is faster than flash (FA2) at long lengths, as measured
    assert float(hw.attn("cudnn").full(16384)) > float(hw.attn("flash").full(16384))


def test_fit_gemm_and_comm_on_synthetic_data():
    res = [
        {"op": "gemm", "flops": 2e12, "median_s": 2e12 / (0.5 * 1e15)},
        {"op": "gemm", "flops": 2e9, "median_s": 2e9 / (0.1 * 1e15)},
    ]
    g = fit_gemm(res, 1e15)
    assert g["efficiency"] == [pytest.approx(0.1), pytest.approx(0.5)]
    comm = [
        {"op": "comm", "coll": "p2p", "group": 2, "msg_bytes": 1e3, "median_s": 20e-6},
        {"op": "comm", "coll": "p2p", "group": 2, "msg_bytes": 1e9, "median_s": 20e-6 + 1e9 / 300e9},
    ]
    f = fit_comm(comm, {"p2p": {"latency_us": 1.0, "hop_latency_us": 0.0, "bw_GBps": 1.0}})
    assert f["p2p"]["latency_us"] == pytest.approx(20.0) and f["p2p"]["bw_GBps"] == pytest.approx(300.0)


def test_comm_bandwidth_curve_reproduces_every_measured_size():
    """Medium messages reach less bandwidth than large ones (measured): the fitted curve gives back the
    measured time at every size where the transfer dominates."""
    from costmodel import kernels

    t = {1e3: 15e-6, 1e6: 25e-6, 64e6: 286e-6, 256e6: 922e-6, 1e9: 3.0e-3}
    comm = [{"op": "comm", "coll": "p2p", "group": 2, "msg_bytes": n, "median_s": s} for n, s in t.items()]
    base = presets.load_toml("hardware", "h200-sxm-published")
    f = fit_comm(comm, base["achievable"]["comm"]["nvlink"])
    assert f["p2p"]["msg_bytes"] == [1e6, 64e6, 256e6, 1e9]
    raw = json.loads(json.dumps(base))
    raw["achievable"]["comm"]["nvlink"] = f
    hw = presets.hardware_from_dict(raw)
    for n, s in t.items():
        if n >= 1e6:
            assert float(kernels.comm_time(hw, "nvlink", "p2p", n, 2)) == pytest.approx(s, rel=1e-3)
    # between sizes: between the neighbours' bandwidths
    bw = hw.comm["nvlink"]["p2p"].bw(128e6)
    assert float(hw.comm["nvlink"]["p2p"].bw(64e6)) < float(bw) < float(hw.comm["nvlink"]["p2p"].bw(256e6))


def test_graph_profile_is_the_fit_of_the_graph_measurements():
    """The '-graph' profile: no host issue time, a device floor per op class equal to the median of the
    executor's own ops measured in place, the pass launch from the graph-launch line, GEMMs graph-timed."""
    import statistics

    data = load_raw([str(CAL / f) for f in RAWS["h200-sxm"]])
    prof, notes = fit_profile(data, "h200-sxm-published", "h200-sxm-graph", mode="graph")
    committed = tomllib.loads(
        (ROOT / "costmodel" / "presets" / "hardware" / "h200-sxm-graph.toml").read_text()
    )
    assert committed["achievable"] == prof["achievable"]
    ops = prof["achievable"]["ops"]
    assert all(o["issue_us"] == 0.0 for o in ops.values())
    # the floor at one sequence (the calibration run's records); those by rows give its growth only
    ones = [r for r in data["results"] if r["op"] == "op_floor" and r["cls"] == "norm" and "batch" not in r]
    floors = [r["median_s"] for r in ones]
    assert len(floors) >= 4 and ops["norm"]["floor_us"] == pytest.approx(
        statistics.median(floors) * 1e6, rel=1e-3
    )
    by_rows = [r for r in data["results"] if r["op"] == "op_floor" and r["cls"] == "norm" and "batch" in r]
    assert len(by_rows) >= 8 and ops["norm"]["floor_rows"][0] == 1.0
    assert ops["norm"]["floor_rows_factor"][0] == 1.0 and max(ops["norm"]["floor_rows_factor"]) > 1.2
    assert "floor_us" not in ops["gemm"] and "floor_us" not in ops["comm"]
    gl = next(r for r in data["results"] if r["op"] == "graph_launch")
    assert prof["achievable"]["pass_launch_us"] == pytest.approx(gl["launch_s"] * 1e6, rel=1e-3)
    assert 1.0 < prof["achievable"]["pass_launch_us"] < 100.0
    # a decode-sized GEMM is graph-timed: far below the eager per-call time, which carries the host launch
    hw_g, hw_e = presets.load_hardware("h200-sxm-graph"), presets.load_hardware("h200-sxm-eager")
    assert float(hw_g.gemm_efficiency(1e9)) > 1.5 * float(hw_e.gemm_efficiency(1e9))  # m = 16..64 rows
    assert any("CUDA graph" in n for n in notes)
    with pytest.raises(Exception, match="no CUDA-graph measurements"):
        fit_profile(
            {**data, "results": [r for r in data["results"] if r.get("mode") != "graph"]},
            "h200-sxm-published",
            "x",
            mode="graph",
        )


def test_config_of_record_and_summary():
    rec = {
        "argv": [
            "--hardware",
            "h200-sxm",
            "--topology",
            "nvswitch:2",
            "--layers",
            "1",
            "--seq",
            "16Ki",
            "--plan",
            "ring=2",
        ],
        "measured": {"median_s": 0.01},
    }
    cfg = config_of(rec)
    assert cfg.plan.ring == 2 and cfg.workload.seq_len == 16384 and cfg.model.layers == 1
    rows = [
        Row("a", "prefill", 1.0, 1.02, 0.99, 0.0, "x"),
        Row("b", "prefill", 1.0, 0.9, 1.2, 0.0, "x"),
        Row("c", "decode", 1.0, 1.05, None, 0.0, "x"),
    ]
    s = summarise(rows)
    assert s["prefill/analytic"]["median_abs_err"] == pytest.approx(0.06)
    assert s["prefill/analytic"]["max_abs_err"] == pytest.approx(0.10)
    assert s["prefill/analytic"]["meets_targets"] is False
    assert s["decode/analytic"]["meets_targets"] is True and "decode/simulator" not in s
    # graph-replayed runs are summarised apart (device-bound), and their records use the '-graph' profile
    s = summarise(rows + [Row("d", "decode", 1.0, 1.2, 1.2, 0.0, "x", "graph")])
    assert (
        s["decode-graph/analytic"]["median_abs_err"] == pytest.approx(0.2) and s["decode/analytic"]["n"] == 1
    )
    assert config_of({**rec, "exec": "graph"}).hardware.name == "h200-sxm-graph"
    assert config_of(rec).hardware.name == "h200-sxm-eager"
    # the unseen subset is held to issue 12's stricter targets: 4% prefill passes the whole table's guard
    # (5%), not the unseen one's (3%); 6% graph decode passes the guard (median 10%), not the unseen
    # median (5%)
    rows = [
        Row("u", "prefill", 1.0, 1.04, 1.04, 0.0, "x"),
        Row("v", "decode", 1.0, 1.06, 1.06, 0.0, "x", "graph"),
    ]
    whole, uns = summarise(rows), summarise(rows, unseen=True)
    assert whole["prefill/analytic"]["meets_targets"] is True
    assert uns["prefill/analytic"]["meets_targets"] is False
    assert uns["prefill/analytic"]["targets"] == {"median": 0.03, "max": 0.08}
    assert whole["decode-graph/analytic"]["meets_targets"] is True
    assert uns["decode-graph/analytic"]["meets_targets"] is False  # median 6% > 5%
    # pipelines whose stages idle at least half the pass are a group of their own (the idle GPU's GEMMs run
    # faster: measured by bench_gemm_duty, not modelled), held to the whole table's guard
    from costmodel.plan import Plan
    from validation.compare import idle_stages

    assert idle_stages(Plan(pp=2)) and idle_stages(Plan(pp=4, microbatches=2))
    assert not idle_stages(Plan(pp=2, microbatches=2)) and not idle_stages(Plan(pp=2, chunks=4))
    assert not idle_stages(Plan(tp=2))
    r = Row("p", "prefill", 1.0, 1.1, 1.1, 0.0, "x", idle_stages=True)
    assert r.group == "prefill-pipeline-idle"
    s = summarise([r, Row("q", "prefill", 1.0, 1.01, 1.01, 0.0, "x")], unseen=True)
    assert s["prefill/analytic"]["n"] == 1 and s["prefill-pipeline-idle/analytic"]["targets"]["max"] == 0.15


def test_calibrate_measures_and_fits_on_cpu(tmp_path, torchrun_m, python_m):
    """The microbenchmarks run end to end (2 gloo processes, tiny sizes): raw file, ideal and eager
    profiles that load; no '-graph' profile (the graph suite needs a GPU), and that is said by its absence.
    The 2 ranks are forked with torchrun's variables (conftest torchrun_m; torchrun itself starts
    test_real_run.py's jobs)."""
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    # the layer shapes of a tiny model (the suite's own 'tiny', tests/conftest.py): the seed's 16384 x 4096
    # weights take a CPU ~20 s to fill and multiply, and the path they run is the same
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(
        'name = "tiny"\nsource = "tests/conftest.py tiny"\nlayers = 2\nd_model = 256\nn_heads = 8\n'
        "n_kv_heads = 8\nhead_dim = 32\nd_ff = 1024\n"
    )
    r = torchrun_m(
        2,
        "ringsim",
        [
            "calibrate",
            "--quick",
            "--model",
            str(tiny),
            "--base",
            "h200-sxm-published",
            "--name",
            "cpu",
            "--out",
            str(tmp_path / "cpu.toml"),
            "--raw-out",
            str(tmp_path / "raw.json"),
        ],
        cwd=str(ROOT),
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    raw = json.loads((tmp_path / "raw.json").read_text())
    ops = {x["op"] for x in raw["results"]}
    assert {
        "gemm",
        "attention",
        "elementwise",
        "launch",
        "op_issue",
        "op_device",
        "executor_walk",
        "comm",
    } <= ops
    assert raw["suites"] == ["eager"] and raw["provenance"]["world_size"] == 2
    assert len(raw["provenance"]["source_sha256"]) == 64
    for name in ("cpu", "cpu-eager"):
        hw = presets.hardware_from_dict(tomllib.loads((tmp_path / f"{name}.toml").read_text()))
        assert hw.name == name
    assert not (tmp_path / "cpu-graph.toml").exists()
    bad = python_m(  # python -m ringsim, forked with torch imported (conftest python_m)
        "ringsim",
        ["calibrate", "--suite", "graphs", "--out", str(tmp_path / "x.toml")],
        cwd=str(ROOT),
        env=env,
        timeout=120,
    )
    assert bad.returncode == 2 and "--suite" in bad.stderr and "Traceback" not in bad.stderr


def test_supplements_add_records_and_say_so(tmp_path):
    data = load_raw([str(CAL / f) for f in RAWS["h200-sxm"]])
    run = json.loads((CAL / RAWS["h200-sxm"][0]).read_text())
    assert len(data["results"]) > len(run["results"]) and data["provenance"] == run["provenance"]
    assert data["supplements"][0]["ops"] == ["attention"]
    prof, notes = fit_profile(data, "h200-sxm-published", "x")
    assert max(prof["achievable"]["attention"]["cudnn"]["kv_len"]) == 524288
    assert any(n.startswith("supplemented by h200x1_attention_long_raw.json") for n in notes)
    bad = tmp_path / "bad.json"
    bad.write_text('{"provenance": {}}')
    with pytest.raises(Exception, match="not a calibration raw file"):
        load_raw([str(CAL / RAWS["h200-sxm"][0]), str(bad)])


def test_communication_by_group_size():
    """A supplement measured on 4 GPUs gives figures under groupN: a group of 4 or more uses them, a
    group of 2 or 3 the figures measured at 2 (kernels.comm_time, scalars and arrays alike)."""
    import numpy as np

    from costmodel import kernels

    data = load_raw([str(CAL / f) for f in RAWS["h200-sxm"]])
    prof, notes = fit_profile(data, "h200-sxm-published", "h200-sxm")
    ar = prof["achievable"]["comm"]["nvlink"]["all_reduce"]
    assert "group4" in ar and ar["group4"]["bw_GBps"] != ar["bw_GBps"]
    assert any("groups of 4 under groupN" in n for n in notes)
    hw = presets.load_hardware("h200-sxm")
    f = hw.comm["nvlink"]["all_reduce"]
    assert f.at(2) is f and f.at(3) is f and f.at(4) is f.by_group[4] and f.at(8) is f.by_group[4]
    g4 = [r for r in data["results"] if r["op"] == "comm" and r["group"] == 4 and r["coll"] == "all_reduce"]
    big = max(g4, key=lambda r: r["msg_bytes"])
    assert float(kernels.comm_time(hw, "nvlink", "all_reduce", big["msg_bytes"], 4)) == pytest.approx(
        big["median_s"], rel=0.05
    )
    t = kernels.comm_time(hw, "nvlink", "all_reduce", big["msg_bytes"], np.array([2, 4]))
    assert float(t[0]) == pytest.approx(
        float(kernels.comm_time(hw, "nvlink", "all_reduce", big["msg_bytes"], 2))
    )
    assert float(t[1]) == pytest.approx(
        float(kernels.comm_time(hw, "nvlink", "all_reduce", big["msg_bytes"], 4))
    )
    with pytest.raises(Exception, match="groupN"):
        raw = presets.load_toml("hardware", "h200-sxm")
        raw["achievable"]["comm"]["nvlink"]["all_reduce"]["groupx"] = dict(ar)
        presets.hardware_from_dict(raw)


def test_a_record_of_a_model_of_no_preset_is_judged_from_any_folder(tmp_path, monkeypatch):
    """Lease Z's records name their model as the repository holds it (``--model
    validation/models/qwen2.5-7b.toml``): compared from another working folder (as an installed copy
    is), the model is found beside the package, and the prediction is the one made from the repository."""
    from pathlib import Path

    from validation.compare import compare

    repo = Path(__file__).resolve().parent.parent
    data = repo / "validation" / "data" / "h200x1_real_prefill_qwen2_5_7b_20261129z.jsonl"
    here = compare([str(data)], simulate=False)
    monkeypatch.chdir(tmp_path)
    there = compare([str(data)], simulate=False)
    assert len(here) == len(there) == 4
    assert [r.analytic_s for r in here] == [r.analytic_s for r in there]
    assert all(r.model == "qwen2.5-7b" for r in there)
