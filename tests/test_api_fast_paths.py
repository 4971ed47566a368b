"""The shortcuts behind the API sweep's speed (issue 16) give the values of the plain code, bit for bit: a
block evaluates one layer per distinct plan row (``analytic._layer_rows``: plans that differ only in ``pp``
share their layer), ``kernels.attn_choice`` times only the kernel that must win, ``kernels.at_least`` is
``np.maximum``."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import analytic, presets
from costmodel.analytic import evaluate
from costmodel.closedform import Setting

HW, MODEL = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
# (tp, pp, ring, ulysses, microbatches, chunks) per plan: rows repeating a layer with another pp
PLANS = {
    "some rows shared": [(8, 1, 1, 1, 1, 1), (2, 2, 4, 1, 1, 1), (8, 2, 1, 1, 1, 1), (2, 4, 4, 1, 1, 1)],
    "one row for all": [(1, 1, 8, 1, 1, 1), (1, 2, 8, 1, 1, 1), (1, 4, 8, 1, 1, 1)],
    "chunks and micro-batches": [(2, 2, 2, 1, 2, 2), (2, 4, 2, 1, 2, 2), (4, 2, 1, 2, 1, 1)],
}


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("case", list(PLANS))
def test_plans_sharing_a_layer_equal_each_plan_alone(phase, case, monkeypatch):
    plans = np.array(PLANS[case])
    st = Setting(phase=phase, kernel="auto", topo_kind="ib", gpus_per_node=8, decode_attn="pass-kv")
    L = (1024.0 * np.unique(np.random.default_rng(5).integers(16, 4096, 50)))[None, :]
    names = ("tp", "pp", "ring", "ulysses", "microbatches", "chunks")
    deg = {k: plans[:, i][:, None] for i, k in enumerate(names)}
    shared = []
    real = analytic._layer_rows
    monkeypatch.setattr(analytic, "_layer_rows", lambda *a: (lambda r: shared.append(r[1][0]) or r)(real(*a)))
    got = evaluate(MODEL, HW, st, batch=4, seq=L, context=L, **deg)
    assert shared and shared[0] < len(plans)  # the layer was evaluated on fewer rows than plans
    for i, p in enumerate(plans):
        one = evaluate(MODEL, HW, st, batch=4, seq=L[0], context=L[0], **dict(zip(names, map(int, p))))
        for k, v in one.items():
            g = np.asarray(got[k])[i]
            assert g.dtype == v.dtype and g.tobytes() == v.tobytes(), (i, k)  # the same bits


@pytest.mark.parametrize("hwname", ["h100-sxm", "h200-sxm", "b200", "gb200", "h100-sxm-published"])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_choice_times_one_kernel_only_where_it_wins_and_equals_timing_all(
    hwname, causal, monkeypatch
):
    """``kernels.attn_choice`` times only the first kernel where every point's keys lie where its
    throughput beats every other kernel's (``_first_wins_from``): the same (time, index), bit for bit, as
    the minimum over every kernel's time; where a point lies below, every kernel is timed."""
    from costmodel import kernels

    hw = presets.load_hardware(hwname)
    names = sorted(hw.attention)
    least = kernels._first_wins_from(hw, causal)
    assert least is not None  # every profile here: cuDNN wins from some length on
    rng = np.random.default_rng(11)
    kv = np.exp(rng.uniform(np.log(max(least, 2.0)), np.log(4e6), (3, 2000))).round()  # q >= 2: prefill calls
    q = np.minimum(kv, rng.integers(2, 5000, kv.shape)).astype(float)
    flops = 4.0 * 128 * q * kv * rng.uniform(0.2, 1.0, kv.shape)
    flops[0, :4] = [0.0, np.inf, 1e-300, 3.0]
    hbm = rng.uniform(1e3, 1e10, kv.shape)
    hbm[1, :3] = [np.nan, 0.0, 1e30]
    calls = []
    real = kernels.attn_device_time
    monkeypatch.setattr(kernels, "attn_device_time", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    below = np.concatenate([kv, np.full((1, kv.shape[1]), max(least, 2.0) / 2)]) if least > 1 else None
    nan_flops = flops.copy()
    nan_flops[2, 7] = np.nan
    for kvs, fl, one in ((kv, flops, True), (below, flops, False), (kv, nan_flops, False)):
        if kvs is None:
            continue
        qs, fl, hb = (np.resize(v, kvs.shape) for v in (q, fl, hbm))
        calls.clear()
        t, i = kernels.attn_choice(hw, fl, hb, kvs, causal, qs)
        st = np.stack([real(hw, k, fl, hb, kvs, causal, qs) for k in names])
        ref_t, ref_i = st.min(axis=0), st.argmin(axis=0)
        assert t.dtype == ref_t.dtype and t.tobytes() == ref_t.tobytes()
        assert i.dtype == ref_i.dtype and np.array_equal(i, ref_i)
        assert calls == (names[:1] if one else names)


@pytest.mark.parametrize("floor", [0.0, 1, 1e-30, 2.5, -1.0])
def test_at_least_is_np_maximum(floor):
    from costmodel.kernels import at_least

    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, (5, 2000))
    x[0, :6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-300]
    for v in (
        x,
        x[:, :3],
        x[0, 0],
        float(x[0, 3]),
        x.astype(np.float32),
        np.arange(-9, 9991).reshape(5, 2000),
    ):
        got, ref = at_least(v, floor), np.maximum(v, floor)
        assert type(got) is type(ref) and np.shape(got) == np.shape(ref)
        assert np.asarray(got).dtype == np.asarray(ref).dtype
        assert np.asarray(got).tobytes() == np.asarray(ref).tobytes()
    assert at_least(x, floor) is not at_least(x, floor)  # a new array each time (the floor's is cached)
