"""The accuracy targets of issue 5, recomputed from the committed measurements (validation/data).

The hardware profiles are fitted on microbenchmarks only (validation/data/calibration); the records
checked here never fed them.  Prefill meets the targets with both engines.  Decode does not yet: its
steps are host-bound (the eager executor's Python issue time) and the summary is held at what the
model achieves today, so that a regression fails; the closing note of issue 5 says why it misses.
"""
import glob
import os

import pytest

from validation.compare import compare, summarise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = sorted(glob.glob(os.path.join(ROOT, "validation", "data", "*.jsonl")))


@pytest.fixture(scope="module")
def summary():
    rows = compare(DATA)
    assert len(rows) >= 60
    return summarise(rows)


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_prefill_meets_targets(summary, engine):
    s = summary[f"prefill/{engine}"]
    assert s["n"] >= 50
    assert s["median_abs_err"] <= 0.05 and s["max_abs_err"] <= 0.15
    assert s["meets_targets"]


@pytest.mark.parametrize("engine", ["analytic", "simulator"])
def test_decode_held_at_current_accuracy(summary, engine):
    s = summary[f"decode/{engine}"]
    assert s["n"] >= 20
    # target: median <= 10% -- NOT met yet (see module docstring); guard against getting worse
    assert s["median_abs_err"] <= 0.18
