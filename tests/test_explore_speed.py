"""The fast paths of ``ringsim explore`` (issue 16) against the slow ones they replace, bit for bit:
the pipeline grid's longest path (``strategies.pipeline._grid_path``, loop invariants hoisted) against its
former per-cell form, the maps' per-cell best (``np.minimum.at``) against the sort, the integer columns
as codes against the plain columns."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel import kernels
from costmodel.strategies import pipeline


def _grid_path_reference(t_unit, S, m, N, x, coupled, pre=0.0, gathers=False, g=0.0):
    """``_grid_path`` as it was before issue 16 (every step through ``kernels.select``): the reference."""
    T = np.stack([np.broadcast_to(np.asarray(v, dtype=float), np.shape(x)) for v in t_unit])
    S_max, U_max = int(np.max(S)), int(np.max(m * N))
    Ni = np.broadcast_to(N, np.shape(x)).astype(int)
    U = np.broadcast_to(m * N, np.shape(x))
    prev = None
    t_prev = None
    for u in range(U_max):
        live = u < U
        tu = np.take_along_axis(T, (u % Ni)[None], axis=0)[0]
        row = []
        for s in range(S_max):
            start = np.zeros(np.shape(x))
            if prev is not None:
                start = np.maximum(start, prev[s] + (x if s else 0.0))
                if s + 1 < S_max:
                    slack = 0.0 if s else pre * tu
                    slack = kernels.select(gathers, slack, pre * tu)
                    done = prev[s + 1] - t_prev - kernels.select(gathers, g, 0.0)
                    start = np.maximum(start, kernels.select(coupled & (s + 1 < S), done - slack, 0.0))
            if s:
                start = np.maximum(start, row[s - 1] + x)
            d = start + tu
            row.append(kernels.select(live, d, prev[s] if prev is not None else 0.0))
        prev, t_prev = row, kernels.select(live, tu, t_prev if t_prev is not None else 0.0)
    out = np.zeros(np.shape(x))
    for s in range(S_max):
        out = kernels.select(s == S - 1, prev[s], out)
    return out


def _bits(a):
    return np.ascontiguousarray(np.asarray(a, dtype=float)).view(np.int64)


@pytest.mark.parametrize("seed", range(6))
def test_grid_path_equals_its_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (5, 7)
    n_max = int(rng.integers(2, 5))
    # uniform chunk count (explore's calls) in half the cases, mixed in the others
    N = np.full(shape, n_max) if seed % 2 == 0 else rng.integers(1, n_max + 1, shape)
    m = rng.integers(1, 5, shape) if seed % 3 else np.full(shape, 3)  # all units live, or not
    S = rng.integers(1, 5, shape) if seed != 4 else np.full(shape, 3)
    t_unit = [rng.uniform(1e-4, 1e-2, shape) for _ in range(n_max)]
    x = rng.uniform(0, 1e-3, shape)
    coupled = [rng.random(shape) < 0.5, np.ones(shape, bool), np.zeros(shape, bool)][seed % 3]
    gathers = [rng.random(shape) < 0.5, False, np.ones(shape, bool)][seed % 3]
    g = rng.uniform(0, 1e-4, shape)
    kw = dict(pre=0.5, gathers=gathers, g=g)
    ref = _grid_path_reference(t_unit, S, m, N, x, coupled, **kw)
    got = pipeline._grid_path(t_unit, S, m, N, x, coupled, **kw)
    assert got.shape == ref.shape
    assert np.array_equal(_bits(got), _bits(ref))
    assert (ref > 0).all()  # a path was walked (not a vacuous equality of zeros)
