"""The accuracy targets of issue 5, recomputed from the committed measurements (validation/data).

The hardware profiles are fitted on microbenchmarks only (validation/data/calibration); the records
checked here never fed them.

* Prefill meets the targets with both engines.
* Decode steps replayed from CUDA graphs (``real.run --exec graph``; the '-graph' profile) meet the
  decode target with both engines: the step is device-bound, which is what the model is for.
* Decode steps issued op by op (eager) are host-bound: Python issues each op in 70-250 us, and the
  host's speed varies between device leases (the calibration's executor walk took 2.2 to 5.4 ms on six
  leases), so another lease's host figures predict them only to that spread.  They are reported by
  ``ringsim validate``, and out of the targets: the guard that held them was loosened from 17% to 18% to
  40% as data came in (issue 12), which guards nothing, so none is kept.
"""

import glob
import os

import pytest

from validation.compare import compare, summarise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = sorted(glob.glob(os.path.join(ROOT, "validation", "data", "*.jsonl")))


@pytest.fixture(scope="module")
def rows_all():
    return compare(DATA)  # ~10 s of CPU: made once, read by every test here


@pytest.fixture(scope="module")
def summary(rows_all):
    assert len(rows_all) >= 100
    return summarise(rows_all)


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_prefill_meets_targets(summary, engine):
    s = summary[f"prefill/{engine}"]
    assert s["n"] >= 50
    assert s["median_abs_err"] <= 0.05 and s["max_abs_err"] <= 0.15
    assert s["meets_targets"]


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_graph_decode_meets_target(summary, engine):
    s = summary[f"decode-graph/{engine}"]
    assert s["n"] >= 40  # tp=2, ring=2 x 3 decode variants, single GPU; B 1/16/64; context 16Ki-256Ki
    assert s["median_abs_err"] <= 0.10
    assert s["meets_targets"]


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_unseen_prefill_meets_issue_12_targets(rows_all, engine):
    """Issue 12: on records no calibration measured (shapes, device call), prefill median <= 3%, max <= 8%
    with both engines."""
    s = summarise(rows_all, unseen=True)[f"prefill/{engine}"]
    assert s["n"] >= 50
    assert s["median_abs_err"] <= 0.03 and s["max_abs_err"] <= 0.08
    assert s["targets"] == {"median": 0.03, "max": 0.08} and s["meets_targets"]  # what `validate` prints


def test_ideal_profile_meets_fused_executor_target(rows_all):
    """Issue 12: the ideal-kernel profile (h200-sxm) against the fused executor at P <= 2: median <= 5%."""
    from validation.compare import ideal_vs_fused

    d = ideal_vs_fused(rows_all)["all_p_le_2"]
    assert d["n"] >= 12
    assert d["median_abs_err"] <= 0.05 and d["meets_targets"]


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_unseen_graph_decode_meets_issue_12_targets(rows_all, engine):
    """Issue 12: graph decode on records no calibration measured, median <= 5% and max <= 12% with both
    engines (the max held since the decode grid measured every batch 1-96 and the floors by rows)."""
    s = summarise(rows_all, unseen=True)[f"decode-graph/{engine}"]
    assert s["n"] >= 150
    assert s["median_abs_err"] <= 0.05 and s["max_abs_err"] <= 0.12
    assert s["targets"] == {"median": 0.05, "max": 0.12} and s["meets_targets"]  # what `validate` prints


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_unseen_ring_and_ulysses_prefill_lean_within_2_percent(rows_all, engine):
    """Issue 12: no systematic optimism about one family: the mean signed error of the unseen ring and
    ulysses prefill records (every model) within +-2%, with both engines."""
    from validation.compare import breakdown

    fam = {
        d["family"]: d
        for d in breakdown(rows_all, unseen=True, by_model=False, engine=engine)
        if d["group"] == "prefill"
    }
    for f in ("ring", "ulysses"):
        assert fam[f]["n"] >= 10
        assert abs(fam[f]["mean_signed_err"]) <= 0.02, (f, fam[f])
