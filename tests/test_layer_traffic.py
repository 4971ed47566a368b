"""Traffic the layer recipe counts for RoPE (query and key heads, grouped KV heads included) and for the
gated activation (the implementation's passes over the ideal kernel's), issue 14."""

from __future__ import annotations

import pytest

from costmodel import layers as Lr
from costmodel import presets
from costmodel.geometry import Geometry
from costmodel.plan import parse_plan
from costmodel.schedule import Role
from costmodel.specs import Workload


def _works(model_name: str, plan: str, seq: int = 8192):
    model = presets.load_model(model_name)
    geo = Geometry.of(model, Workload(batch=1, seq_len=seq), parse_plan(plan))
    return model, geo, {w.role: w for w in Lr.layer_dense_works(geo)}


@pytest.mark.parametrize("plan", ["tp=1", "tp=2", "tp=8", "tp=16"])
def test_rope_reads_and_writes_the_query_and_key_heads_of_the_rank(plan):
    model, geo, w = _works("llama3-8b", plan)
    tp = geo.tp
    q_heads = model.n_heads / tp
    k_heads = max(model.n_kv_heads // tp, 1)  # replicated below one KV head per rank
    want = 2 * geo.dense_tokens * (q_heads + k_heads) * model.head_dim * model.dtype_bytes
    assert float(w[Role.ROPE].hbm_bytes) == pytest.approx(want, rel=1e-12)


def test_rope_of_a_model_without_grouped_heads_is_two_thirds_of_the_projection():
    model, geo, w = _works("seed-dense", "tp=2")
    want = 2 * geo.dense_tokens * geo.qkv_cols * 2 / 3 * model.dtype_bytes
    assert float(w[Role.ROPE].hbm_bytes) == pytest.approx(want, rel=1e-12)


def test_gated_activation_takes_the_implementations_traffic_and_gelu_does_not():
    eager, ideal = presets.load_hardware("h200-sxm-eager"), presets.load_hardware("h200-sxm")
    # measured on the executor (benchmarks/bench_act_glu.py): two non-vectorised kernels over strided halves
    assert eager.glu_act_traffic > 5 / 3 and eager.glu_act_floor_ratio > 1.0
    assert ideal.glu_act_traffic == 1.0 and ideal.glu_act_floor_ratio == 1.0
    for name, gated in (("llama3-8b", True), ("seed-dense", False)):
        _, _, w = _works(name, "tp=1")
        act = w[Role.ACT]
        assert act.glu is gated
        f = eager.op("act")
        traffic = eager.glu_act_traffic if gated else 1.0
        floor = f.floor_s * (eager.glu_act_floor_ratio if gated else 1.0)
        want = max(traffic * f.bytes_factor * float(act.hbm_bytes) / eager.elementwise_bw_Bps, floor)
        assert float(Lr.work_time(eager, act, "cudnn")) == pytest.approx(want, rel=1e-12)
        # a decode-sized call sits at the floor: the gated one pays its measured ratio of it
        _, _, w1 = _works(name, "tp=1", seq=1)
        assert float(Lr.work_time(eager, w1[Role.ACT], "cudnn")) >= floor * (1 - 1e-12)
