"""Invariants of the closed forms (hypothesis) and the predict contract."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.analytic import evaluate
from costmodel.closedform import Setting, ring_recurrence, stretched_end
from ringsim import load_config, predict

PLANS = [dict(ring=1), dict(tp=1), dict(ring=1, tp=1)]


def _ev(model, hw, phase="prefill", **kw):
    return evaluate(model, hw, Setting(phase=phase, topo_kind="nvlink-domain", gpus_per_node=1024), **kw)


@settings(max_examples=60, deadline=None)
@given(
    P=st.sampled_from([1, 2, 4, 8, 16, 32]),
    B=st.integers(1, 64),
    family=st.sampled_from(["ring", "tp", "ulysses", "tp_ring"]),
    phase=st.sampled_from(["prefill", "decode"]),
)
def test_memory_grows_with_length(seed, h100, P, B, family, phase):
    L = np.array([4096, 8192, 65536, 262144, 1048576]) * 1.0
    deg = {
        "ring": dict(ring=P),
        "tp": dict(tp=min(P, 32)),
        "ulysses": dict(ulysses=min(P, 32)),
        "tp_ring": dict(tp=min(P, 8), ring=max(P // 8, 1)),
    }[family]
    o = _ev(seed, h100, phase=phase, batch=B, seq=L, **deg)
    assert np.all(np.diff(o["mem_total_bytes"]) > 0)
    assert np.all(np.diff(o["latency_s"]) >= 0)  # flat where every kernel is launch-bound (short decode)
    assert o["latency_s"][-1] > o["latency_s"][0]


@settings(max_examples=60, deadline=None)
@given(
    L=st.sampled_from([8192, 32768, 131072, 1048576]),
    B=st.integers(1, 16),
    phase=st.sampled_from(["prefill"]),
)
def test_total_flops_plan_independent(seed, h100, L, B, phase):
    vals = [
        _ev(seed, h100, batch=B, seq=L, **d)["total_flops"]
        for d in (dict(ring=16), dict(tp=8, pp=2), dict(ulysses=8), dict(tp=4, ring=4))
    ]
    assert np.allclose(vals, vals[0], rtol=1e-12)
    # and the per-device FLOPs of a balanced plan are the total over P (the dense part is split evenly)
    z = _ev(seed, h100, batch=B, seq=L, ring=16)
    assert float(z["flops_per_device"]) * 16 == pytest.approx(float(z["total_flops"]), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(L=st.sampled_from([65536, 131072, 1048576]), B=st.integers(1, 8))
def test_ring_bytes_per_device_do_not_shrink_with_P(seed, h100, L, B):
    P = np.array([1, 2, 4, 8, 16, 32, 64, 128])
    o = _ev(seed, h100, batch=B, seq=L, ring=P)
    sent = o["comm_nvlink_bytes"] / seed.layers
    assert np.all(np.diff(sent) >= 0)
    blk = B * L / P * 2 * seed.kv_dim * seed.dtype_bytes
    np.testing.assert_allclose(sent, (P - 1) * blk, rtol=1e-12)


def test_zigzag_faster_than_plain_causal(seed, h100):
    kw = dict(batch=1, seq=131072, ring=8)
    z = evaluate(seed, h100, Setting(ring_variant="zigzag", topo_kind="nvswitch"), **kw)
    p = evaluate(seed, h100, Setting(ring_variant="plain", topo_kind="nvswitch"), **kw)
    assert float(p["latency_s"]) > 1.5 * float(z["latency_s"])
    # without a causal mask there is no imbalance: the layouts cost the same
    zn = evaluate(seed, h100, Setting(ring_variant="zigzag", causal=False, topo_kind="nvswitch"), **kw)
    pn = evaluate(seed, h100, Setting(ring_variant="plain", causal=False, topo_kind="nvswitch"), **kw)
    assert float(zn["latency_s"]) == pytest.approx(float(pn["latency_s"]), rel=1e-12)


def test_ring_across_ib_is_slower_than_nvlink(seed, h100):
    kw = dict(batch=8, seq=131072, ring=16)
    ib = evaluate(seed, h100, Setting(topo_kind="ib", gpus_per_node=8), **kw)
    nv = evaluate(seed, h100, Setting(topo_kind="nvlink-domain", gpus_per_node=16), **kw)
    assert float(ib["latency_s"]) > float(nv["latency_s"])
    assert float(ib["comm_ib_bytes"]) > 0 and float(nv["comm_ib_bytes"]) == 0


def test_ring_recurrence_limits():
    # compute-bound, no slowdown: the sum of the compute
    assert float(ring_recurrence(1.0, 0.0, 1.0, 0.0, 0.1, 4, 1.0)) == pytest.approx(4.0)
    # comm-bound: 3 transfers then the last step
    assert float(ring_recurrence(0.1, 0.0, 0.1, 0.0, 1.0, 4, 1.0)) == pytest.approx(3 * 1.0 + 0.1)
    # one step: just the compute
    assert float(ring_recurrence(0.3, 0.1, 9.0, 9.0, 5.0, 1, 1.0)) == pytest.approx(0.4)
    # the slowdown applies only while a transfer is in flight: step 0's attention runs the 0.01 s of its
    # transfer at 1/1.5 speed, the rest of it and step 1 (no transfer) at full speed
    assert float(ring_recurrence(1.0, 0.0, 1.0, 0.0, 0.01, 2, 1.5)) == pytest.approx(
        0.01 + (1 - 0.01 / 1.5) + 1.0
    )
    # a transfer longer than the compute slows all of it: 0.5 s of work takes 0.75 s inside a 2 s transfer
    assert float(ring_recurrence(0.5, 0.0, 0.5, 0.0, 2.0, 2, 1.5)) == pytest.approx(2.0 + 0.5)
    assert float(stretched_end(0.0, 0.5, 0.0, 2.0, 1.5)) == pytest.approx(0.75)
    # compute that starts before the window runs at full speed until it opens
    assert float(stretched_end(0.0, 1.0, 0.5, 0.6, 2.0)) == pytest.approx(0.5 + 0.1 + (0.5 - 0.05))


def test_pipeline_bubble_closed_form(seed, h100):
    st_ = Setting(topo_kind="nvswitch")
    one = evaluate(seed, h100, st_, batch=8, seq=8192, pp=1, tp=8, microbatches=8)
    two = evaluate(seed, h100, st_, batch=8, seq=8192, pp=2, tp=4, microbatches=8)
    t = float(two["stage_time_s"])
    assert float(two["t_bubble_s"]) == pytest.approx(float(two["latency_s"]) - h100.pass_launch_s - 8 * t)
    assert float(two["latency_s"]) > 9 * t  # (S + m - 1) stage times plus transfers
    assert float(one["t_bubble_s"]) == pytest.approx(0.0, abs=1e-12)


SEED = dict(batch=128, seq=100000, model="seed-dense", hardware="h100-sxm")


@pytest.mark.parametrize("topology", ["ib:2x8", "nvlink-domain:16"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("plan", ["tp=8,pp=2", "ring=16"])
def test_seed_configurations_answer(topology, phase, plan):
    kw = dict(SEED, topology=topology, phase=phase, plan=plan)
    if phase == "decode":
        kw["context"] = 100000
    if "pp" in plan:
        kw["microbatches"] = 16
    r = predict(load_config(**kw))
    for key in (
        "latency_s",
        "tps",
        "tpot_s",
        "flops_per_device",
        "hbm_bytes_per_device",
        "comm_bytes_per_device",
        "memory_bytes_per_device",
        "capacity_bytes",
        "feasible",
        "bottleneck",
        "roofline_latency_s",
    ):
        assert key in r
    # the seed's KV cache alone (3.36 TB) exceeds 16 x 80 GB: the configuration cannot fit
    assert r["feasible"] is False and "does not fit" in r["verdict"]
    assert r["memory_bytes_per_device"]["kv_cache"] == pytest.approx(3355443200000 / 16, rel=1e-9)
    assert 0 < r["max_batch"] < 128
    assert r["latency_s"] >= r["roofline_latency_s"] > 0
    if phase == "decode":
        assert r["tpot_s"] == r["latency_s"] and r["tps"] == pytest.approx(128 / r["latency_s"])
    else:
        assert r["tps"] == pytest.approx(128 * 100000 / r["latency_s"])


def test_max_batch_is_the_boundary():
    cfg = load_config(topology="nvswitch:8", plan="ring=8", batch=1, seq="128Ki", hardware="h100-sxm")
    r = predict(cfg)
    mb = r["max_batch"]
    assert predict(load_config(topology="nvswitch:8", plan="ring=8", batch=mb, seq="128Ki"))["feasible"]
    assert not predict(load_config(topology="nvswitch:8", plan="ring=8", batch=mb + 1, seq="128Ki"))[
        "feasible"
    ]


def test_vectorised_equals_pointwise_over_mixed_plans(seed, h100):
    """One evaluate over plans of different ring/TP splits equals predict point by point."""
    R, T = np.array([2, 4, 8, 16, 32]), np.array([8, 4, 2, 1, 1])
    st_ = Setting(topo_kind="nvlink-domain", gpus_per_node=64)
    o = evaluate(seed, h100, st_, batch=2, seq=131072, ring=R, tp=T)
    for i in range(len(R)):
        p = predict(
            load_config(
                hardware="h100-sxm",
                topology=f"nvlink-domain:{R[i] * T[i]}",
                batch=2,
                seq=131072,
                plan=f"tp={T[i]},ring={R[i]}",
            )
        )
        assert float(o["latency_s"][i]) == pytest.approx(p["latency_s"], rel=1e-12)
        assert float(o["flops_per_device"][i]) == pytest.approx(p["flops_per_device"], rel=1e-12)
        assert float(o["hbm_bytes_per_device"][i]) == pytest.approx(p["hbm_bytes_per_device"], rel=1e-12)


def test_max_batch_keeps_microbatch_size():
    """With micro-batches, the largest batch keeps their size (their count grows); it does not collapse
    to 0."""
    r = predict(load_config(topology="ib:2x8", plan="tp=8,pp=2", microbatches=128, batch=128, seq=100000))
    assert not r["feasible"] and r["max_batch"] > 0
    assert predict(
        load_config(
            topology="ib:2x8", plan="tp=8,pp=2", microbatches=r["max_batch"], batch=r["max_batch"], seq=100000
        )
    )["feasible"]


def test_decode_attention_is_memory_bound(seed, h100):
    o = evaluate(seed, h100, Setting(phase="decode", topo_kind="nvswitch"), batch=64, seq=131072, ring=8)
    assert float(o["t_memory_s"]) > 10 * float(o["t_compute_s"])
    assert str(o["bottleneck"]) == "memory"
