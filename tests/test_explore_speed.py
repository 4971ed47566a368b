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


# ----------------------------------------------------------------------------------------------
# studies.explore: the fast paths of the evaluation, the maps and the files
# ----------------------------------------------------------------------------------------------
def _seed_bands():
    """The seed's model on IB nodes at 16 and 64 GPUs, B = 2: chunked pipelines of several micro-batches
    at 2, 4, 8 and 16 stages (two bands of stage counts, each evaluated in shared calls)."""
    from studies.explore import load_experiment_file, make_experiment

    raw = load_experiment_file("studies/experiments/seed.toml")
    return make_experiment(
        {**raw, "points": 3, "gpus": [16, 64], "batch": [2], "phase": ["prefill"], "topology": ["ib"]}
    )


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a.view(np.int64), b.view(np.int64)))
    return bool(np.array_equal(a, b))


def test_bands_of_stage_counts_equal_the_per_length_path():
    from studies.explore import _loop_key, build_maps, run_experiment

    exp = _seed_bands()
    ref, ref_skipped = run_experiment(exp, per_length=True)
    pp, m, ch = (np.asarray(ref[k]) for k in ("pp", "microbatches", "chunks"))
    grid = (pp > 1) & (m > 1) & (ch > 1)
    assert {2, 4, 8, 16} <= set(pp[grid].tolist())  # the grid is walked at every stage count
    # two stage counts share a call (the band), so a call walks more stages than some of its pipelines
    from costmodel.plan import Plan

    keys = {_loop_key(Plan(tp=1, pp=p, microbatches=2, chunks=4), "prefill") for p in (2, 4, 8, 16)}
    assert len(keys) == 2
    got, skipped = run_experiment(exp, coded=True, int_codes=True)
    assert list(got) == list(ref) and skipped == ref_skipped
    for k in ref:
        assert _same(np.asarray(got[k]), ref[k]), k
    assert build_maps(got, exp) == build_maps(ref, exp)


def test_integer_columns_as_codes_write_the_same_files(tmp_path):
    from costmodel.results import Categorical, write_sweep_files
    from studies.explore import run_experiment, specs_of

    exp = _seed_bands()
    plain, skipped = run_experiment(exp, coded=True)
    coded, _ = run_experiment(exp, coded=True, int_codes=True)
    ints = [k for k, v in coded.items() if isinstance(v, Categorical) and v.labels.dtype.kind == "i"]
    assert {"batch", "P", "L_nominal", "L", "tp", "pp", "microbatches", "chunks", "cached"} <= set(ints)
    for k in ints:
        assert not isinstance(plain[k], Categorical) and plain[k].dtype == np.int64
        assert _same(coded[k].decode(), plain[k]), k
    specs = specs_of(exp, "test")
    for name, cols in (("plain", plain), ("coded", coded)):
        write_sweep_files(tmp_path / name, cols, specs, skipped, stem="explore")
    for f in ("explore.csv", "explore.npz", "explore.json"):
        a, b = (tmp_path / n / f for n in ("plain", "coded"))
        assert a.stat().st_size > 1000 and a.read_bytes() == b.read_bytes(), f


@pytest.mark.parametrize("seed", range(4))
def test_best_per_cell_without_a_sort_equals_the_sort(seed):
    from studies.explore import _best_least, _best_sorted

    rng = np.random.default_rng(seed)
    n, n_cells = 5000, 300
    lat = rng.integers(0, 6, n).astype(float) * 1e-3  # many ties in latency
    plan_c = rng.integers(0, 8, n).astype(np.int32)  # ... and in plan
    cell = rng.integers(0, n_cells - 20, n).astype(np.int64)  # the last 20 cells hold no point
    if seed % 2:
        lat[rng.random(n) < 0.3] = np.inf  # nothing fits at some points
        lat[:5] = -0.0
    i = np.flatnonzero(rng.random(n) < 0.6)
    got = _best_least(i, plan_c, lat, cell, n_cells)
    ref = _best_sorted(i, plan_c, lat, cell, n_cells)
    assert (ref >= 0).sum() > 200 and (ref < 0).any()
    assert np.array_equal(got, ref)


def test_chunk_prefix_shared_equals_each_chunk_alone(monkeypatch):
    """``analytic.SHARE_CHUNK_PREFIX``: a chunked layer's dense part, wrappers and local attention
    computed once and copied into each chunk's sums gives the model's outputs of each chunk computed
    alone, bit for bit (chunked pipelines of 2..32 chunks, several micro-batches, TP and PP)."""
    from costmodel import analytic
    from studies.explore import run_experiment

    exp = _seed_bands()
    got, _ = run_experiment(exp)
    assert (np.asarray(got["chunks"]) >= 16).sum() > 50
    monkeypatch.setattr(analytic, "SHARE_CHUNK_PREFIX", False)
    ref, _ = run_experiment(exp)
    assert list(got) == list(ref)
    for k in ref:
        assert _same(got[k], ref[k]), k
