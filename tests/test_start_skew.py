"""The hosts' start skew of a pass on several ranks (issue 12): Hardware.start_skew_s, its fit from
calibration records, and that both engines add it once."""

import dataclasses

import pytest

from costmodel.errors import SpecError
from costmodel.presets import load_hardware
from costmodel.specs import Curve
from validation.calibrate import fit_start_skew


def test_skew_is_zero_on_one_rank_linear_in_log2_ranks_and_extrapolated_by_its_last_step():
    hw = dataclasses.replace(
        load_hardware("h200-sxm-published"), start_skew=Curve(x=(2.0, 4.0), y=(20e-6, 50e-6), name="t")
    )
    assert float(hw.start_skew_s(1)) == 0.0
    assert float(hw.start_skew_s(2)) == pytest.approx(20e-6)
    assert float(hw.start_skew_s(4)) == pytest.approx(50e-6)
    assert float(hw.start_skew_s(8)) == pytest.approx(80e-6)  # +30 us a doubling, as from 2 to 4
    assert float(hw.start_skew_s(16)) == pytest.approx(110e-6)
    assert float(hw.pass_start_s(4)) == pytest.approx(hw.pass_launch_s + 50e-6)
    none = load_hardware("h200-sxm-published")
    assert none.start_skew is None and float(none.start_skew_s(8)) == 0.0


def test_bad_skew_is_refused_naming_the_field():
    with pytest.raises(SpecError, match="start_skew"):
        dataclasses.replace(
            load_hardware("h200-sxm-published"), start_skew=Curve(x=(1.0,), y=(20e-6,), name="t")
        )


def test_fit_is_the_median_of_each_runs_median_by_group():
    recs = [
        {"op": "start_skew", "group": 2, "samples_us": [10.0, 20.0, 30.0]},
        {"op": "start_skew", "group": 2, "samples_us": [40.0, 50.0, 60.0]},
        {"op": "start_skew", "group": 2, "samples_us": [0.0, 1.0, 2.0]},
        {"op": "start_skew", "group": 4, "samples_us": [70.0]},
    ]
    assert fit_start_skew(recs) == {2: (20.0, 3), 4: (70.0, 1)}


def test_graph_profile_carries_the_measured_skew_and_the_ideal_one_none():
    g = load_hardware("h200-sxm-graph")
    assert g.start_skew is not None and list(g.start_skew.x) == [2.0, 4.0]
    assert 0 < g.start_skew.y[0] < g.start_skew.y[1] < 1e-3
    assert load_hardware("h200-sxm").start_skew is None  # the ideal profile: steps start together
