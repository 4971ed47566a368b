"""GEMMs of few rows stream their weights (issue 12/14): the calibration fits a bandwidth by weight bytes
from the calls of at most 64 rows and the efficiency by FLOPs from the larger ones, and the cost model
takes the slower of the two memory bounds."""

from __future__ import annotations

import copy

import pytest

from costmodel import kernels, presets
from costmodel import layers as Lr
from validation import calibrate


def _rec(m, n, k, t):
    return {"op": "gemm", "m": m, "n": n, "k": k, "flops": 2.0 * m * n * k, "median_s": t}


def test_fit_splits_streaming_calls_from_compute_calls():
    peak = 989e12
    recs = []
    for n, k, bw in ((4096, 4096, 2.5e12), (16384, 4096, 3.9e12)):  # a narrow and a wide weight
        for m in (1, 16, 64):
            recs.append(_rec(m, n, k, 2 * n * k / bw))
        for m in (4096, 16384):
            recs.append(_rec(m, n, k, 2.0 * m * n * k / (0.7 * peak)))
    f = calibrate.fit_gemm(recs, peak)
    assert f["stream_weight_MB"] == pytest.approx([2 * 4096 * 4096 / 1e6, 2 * 16384 * 4096 / 1e6], rel=1e-3)
    assert f["stream_TBps"] == pytest.approx([2.5, 3.9], rel=1e-3)
    assert all(e == pytest.approx(0.7, rel=1e-3) for e in f["efficiency"])  # the few-row calls left out
    # without few-row calls: no streaming curve, every call in the efficiency
    g = calibrate.fit_gemm([r for r in recs if r["m"] > 64], peak)
    assert "stream_TBps" not in g


def test_cost_model_streams_the_weights_of_a_few_row_call():
    hw = presets.load_hardware("h200-sxm-graph")
    assert hw.gemm_stream_bw is not None and hw.gemm_fp8_stream_bw is not None
    w = Lr.gemm("o_proj", 8, 4096, 4096, 2, (), (), False)
    t = float(Lr.work_time(hw, w, "cudnn"))
    wb = 4096 * 4096 * 2
    assert w.weight_bytes == wb
    # the weight at its measured streaming bandwidth, the rows in and out at the elementwise one
    rest = w.hbm_bytes - wb
    assert 0 < rest < 0.01 * wb
    assert t == pytest.approx(wb / float(hw.gemm_stream_bw(wb)) + rest / hw.elementwise_bw_Bps, rel=1e-9)
    # the same call without its weight bytes: the old bound only (elementwise bandwidth or compute)
    assert float(kernels.gemm_device_time(hw, w.flops, w.hbm_bytes, w.m)) != pytest.approx(t, rel=1e-3)
    # a many-row call is compute-bound: the stream bound changes nothing
    big = Lr.gemm("mlp_up", 32768, 14336, 4096, 2, (), (), False)
    assert float(Lr.work_time(hw, big, "cudnn")) == pytest.approx(
        float(kernels.gemm_device_time(hw, big.flops, big.hbm_bytes, big.m)), rel=1e-12
    )


def test_stream_keys_come_in_pairs():
    from costmodel.errors import SpecError

    raw = copy.deepcopy(presets.load_toml("hardware", "h200-sxm-graph"))
    del raw["achievable"]["gemm"]["stream_TBps"]
    with pytest.raises(SpecError, match="stream_weight_MB is not valid alone"):
        presets.hardware_from_dict(raw)


def test_weight_sizes_that_write_alike_are_one_point_and_the_profile_loads():
    """Two FP8 weights of one K x N (an up and a down projection) differ only by their scales' 4 N bytes;
    where that rounds away in the written MB figure they are one point (median of both), not two equal
    x values that the profile would refuse."""
    peak = 1979e12
    n1, k1 = 10000, 10240  # 102.44 and 102.44096 MB: 102.4 either way at 4 significant digits
    n2, k2 = 10240, 10000
    recs = [
        {**_rec(m, n, k, (k * n + 4 * n) / bw), "op": "gemm"}
        for n, k, bw in ((n1, k1, 2.0e12), (n2, k2, 3.0e12))
        for m in (1, 16)
    ] + [_rec(8192, 8192, 8192, 2.0 * 8192**3 / (0.6 * peak))]
    f = calibrate.fit_gemm(recs, peak, fp8=True)
    assert f["stream_weight_MB"] == [102.4] and f["stream_TBps"] == [pytest.approx(2.5, rel=1e-3)]
    raw = copy.deepcopy(presets.load_toml("hardware", "h200-sxm-graph"))
    raw["achievable"]["gemm_fp8"].update(f)
    assert presets.hardware_from_dict(raw).gemm_fp8_stream_bw is not None


@pytest.mark.parametrize(
    "key,bad", [("m", None), ("m", "4"), ("m", 0), ("median_s", 0.0), ("median_s", None)]
)
def test_a_gemm_record_with_a_bad_field_is_one_sentence(key, bad):
    from costmodel.errors import SpecError

    recs = [_rec(4, 4096, 4096, 1e-5), _rec(4096, 4096, 4096, 1e-3)]
    recs[0][key] = bad
    with pytest.raises(SpecError, match=f"a GEMM record's {key} .* is not valid"):
        calibrate.fit_gemm(recs, 989e12)
