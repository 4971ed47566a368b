"""A sweep's block evaluates one layer per distinct plan row (``analytic._layer_rows``: plans that differ
only in ``pp`` share their layer): the outputs equal, bit for bit, ``evaluate`` of each plan alone."""

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
