"""``evaluate`` on a large grid works in blocks along its longest axis, inputs kept at their own
shapes; every value is what one call over the whole grid gives (bit for bit)."""

import numpy as np
import pytest

import costmodel.analytic as an
from costmodel.closedform import Setting


@pytest.mark.parametrize(
    "phase,merge", [("prefill", "allgather"), ("decode", "pass-kv"), ("decode", "pass-q")]
)
def test_blocks_equal_one_call(seed, h100, phase, merge, monkeypatch):
    st = Setting(phase=phase, topo_kind="ib", gpus_per_node=8, decode_attn=merge)
    L = (2048 * np.arange(8, 8 + 3000, 3))[:, None].astype(float)
    R = np.array([1, 2, 8, 16, 1024])[None, :]
    monkeypatch.setattr(an, "CHUNK", 1 << 30)
    whole = an.evaluate(seed, h100, st, batch=8, seq=L, context=L, ring=R, tp=2)
    monkeypatch.setattr(an, "CHUNK", 100)
    rows = an.evaluate(seed, h100, st, batch=8, seq=L, context=L, ring=R, tp=2)
    cols = an.evaluate(seed, h100, st, batch=8, seq=L.T, context=L.T, ring=R.T, tp=2)
    assert set(rows) == set(whole)
    for k, v in whole.items():
        nan = v.dtype.kind == "f"
        assert rows[k].shape == v.shape == (1000, 5)
        assert np.array_equal(rows[k], v, equal_nan=nan) and np.array_equal(cols[k].T, v, equal_nan=nan), k
