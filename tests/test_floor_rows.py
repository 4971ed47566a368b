"""An elementwise op's floor grows with the rows of a call (issue 12): OpFigures.floor_at, the fit from
op_floor records by batch, and its effect on a decode step's ops."""

import numpy as np
import pytest

from costmodel import layers as Lr
from costmodel.errors import SpecError
from costmodel.presets import load_hardware, load_model
from costmodel.specs import OpFigures
from validation.calibrate import fit_floor_rows, fit_ops_graph


def test_floor_at_interpolates_in_log2_rows_and_is_flat_beyond():
    f = OpFigures(issue_s=0.0, floor_s=10e-6, floor_rows=(1.0, 4.0, 16.0), floor_rows_factor=(1.0, 1.2, 1.6))
    assert f.floor_at(None) == pytest.approx(10e-6)
    assert f.floor_at(1) == pytest.approx(10e-6)
    assert f.floor_at(2) == pytest.approx(11e-6)  # halfway in log2 between 1 and 4
    assert f.floor_at(8) == pytest.approx(14e-6)
    assert f.floor_at(1024) == pytest.approx(16e-6)  # flat beyond the last knot
    got = f.floor_at(np.array([1.0, 4.0, 16.0]))
    np.testing.assert_allclose(got, [10e-6, 12e-6, 16e-6])
    assert OpFigures(issue_s=0.0, floor_s=10e-6).floor_at(64) == pytest.approx(10e-6)  # none measured


@pytest.mark.parametrize(
    "rows,factor",
    [
        ((1.0, 4.0), (1.0,)),
        ((4.0, 1.0), (1.0, 1.2)),
        ((1.0, 4.0), (1.0, 20.0)),
        ((1.0, 4.0), (1.0, 0.1)),
        ((4.0, 16.0), (1.2, 1.6)),
    ],
)
def test_bad_floor_rows_are_refused_naming_the_field(rows, factor):
    with pytest.raises(SpecError, match="floor_rows"):
        OpFigures(issue_s=0.0, floor_s=10e-6, floor_rows=rows, floor_rows_factor=factor)


def _rec(cls, tag, batch, t, model="m"):
    return {
        "op": "op_floor",
        "mode": "graph",
        "cls": cls,
        "tag": tag,
        "plan": "single",
        "model": model,
        "batch": batch,
        "median_s": t,
    }


def test_fit_floor_rows_is_the_median_ratio_to_one_row_of_the_same_op():
    recs = [
        _rec("norm", "L0/norm1", 1, 10e-6),
        _rec("norm", "L0/norm1", 16, 15e-6),
        _rec("norm", "L0/norm1", 32, 16e-6),
        _rec("norm", "L0/norm2", 1, 20e-6),
        _rec("norm", "L0/norm2", 16, 26e-6),
        _rec("norm", "L0/norm2", 32, 30e-6),
        _rec("rope", "L0/rope", 1, 20e-6),  # one row count only: no curve
        _rec("attention", "L0/attn", 1, 5e-6),  # not a row-wise class
        _rec("attention", "L0/attn", 16, 50e-6),
    ]
    got = fit_floor_rows(recs)
    assert set(got) == {"norm"}
    rows, fac = got["norm"]
    assert rows == [1.0, 16.0, 32.0]
    assert fac == pytest.approx([1.0, 1.4, 1.55], rel=1e-3)


def test_floors_at_one_sequence_ignore_the_records_by_rows():
    one = {"op": "op_floor", "mode": "graph", "cls": "norm", "tag": "L0/norm1", "median_s": 10e-6}
    recs = [one, _rec("norm", "L0/norm1", 1, 12e-6), _rec("norm", "L0/norm1", 32, 30e-6)]
    ops, _ = fit_ops_graph(recs, 3e12)
    assert ops["norm"]["floor_us"] == pytest.approx(10.0)
    assert ops["norm"]["floor_rows"] == [1.0, 32.0]
    assert ops["norm"]["floor_rows_factor"] == pytest.approx([1.0, 2.5])


def test_graph_profile_charges_a_decode_norm_more_at_32_rows_than_at_one():
    hw = load_hardware("h200-sxm-graph")
    assert hw.op("norm").floor_rows, "the -graph profile carries the measured growth"
    m = load_model("llama3-8b")
    t1 = Lr.work_time(hw, Lr.pre_attention(m, 1, m.q_dim + 2 * m.kv_dim)[0], "cudnn")
    t32 = Lr.work_time(hw, Lr.pre_attention(m, 32, m.q_dim + 2 * m.kv_dim)[0], "cudnn")
    assert t1 == pytest.approx(hw.op("norm").floor_s)
    assert t32 == pytest.approx(hw.op("norm").floor_at(32)) and t32 > 1.3 * t1
    ideal = load_hardware("h200-sxm")  # ideal fused kernels: one floor at every row count
    assert not ideal.op("norm").floor_rows


def test_floor_by_rows_takes_arrays_of_rows_as_a_sweep_gives_them():
    """A sweep evaluates many batches at once: the floor by rows is then an array (review of 0af17f9:
    ``ringsim sweep``/``best`` with the '-graph' profile stopped on its truth value)."""
    hw = load_hardware("h200-sxm-graph")
    m = load_model("llama3-8b")
    rows = np.array([1.0, 8.0, 32.0])
    got = Lr.work_time(hw, Lr.pre_attention(m, rows, m.q_dim + 2 * m.kv_dim)[0], "cudnn")
    one = [float(Lr.work_time(hw, Lr.pre_attention(m, r, m.q_dim + 2 * m.kv_dim)[0], "cudnn")) for r in rows]
    np.testing.assert_allclose(got, one)


def test_graph_profile_sweeps_as_it_predicts_one_point():
    from costmodel.analytic import evaluate
    from costmodel.closedform import Setting

    hw, m = load_hardware("h200-sxm-graph"), load_model("llama3-8b")
    st = Setting(phase="decode")
    batch = np.array([1, 9, 32])
    arr = evaluate(m, hw, st, batch=batch, seq=1, tp=2, pp=1, ring=1, ulysses=1, context=65536)["latency_s"]
    one = [
        float(evaluate(m, hw, st, batch=b, seq=1, tp=2, pp=1, ring=1, ulysses=1, context=65536)["latency_s"])
        for b in batch
    ]
    np.testing.assert_allclose(np.ravel(arr), one)
