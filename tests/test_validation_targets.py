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
def summary():
    rows = compare(DATA)
    assert len(rows) >= 100
    return summarise(rows)


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
