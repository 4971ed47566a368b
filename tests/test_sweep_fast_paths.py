"""The fast paths of the sweep give what the plain paths give: coded columns (``results.Categorical``)
decode to the plain columns, files written from them are the same bytes, the CSV's shortcuts (one-valued
float columns, threads, codes) write the text a value-by-value reference writes, the attention kernel
picked once per ``Work`` costs what ``layers.work_time`` says, and the plan search's memory-only
bisection finds the batches a brute-force search over the whole model finds."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from test_sweep_files import float_text

from costmodel import layers as Lr
from costmodel import presets, results
from costmodel.analytic import CHUNK, evaluate, evaluate_blocks
from costmodel.closedform import Acc, Setting
from costmodel.results import Categorical, read_npz, write_csv, write_sweep_files
from costmodel.schedule import Role
from costmodel.search import _evaluate_group, enumerate_plans, rank_plans
from costmodel.sweep import parse_template, run_sweep, seq_grid
from ringsim import load_config

HW, MODEL = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
TEMPLATES = [
    parse_template(t) for t in ("ring=P", "tp=8,pp=P/8", "ulysses=8,ring=P/8", "tp=8,pp=P/8,mb=8", "tp=P")
]


def _sweep(phase, kernel, coded, topo="nvl"):
    return run_sweep(
        MODEL,
        HW,
        topo_kind=topo,
        phase=phase,
        causal=True,
        kernel=kernel,
        ring_variant="zigzag",
        decode_attn="pass-kv",
        batch=4,
        seqs=seq_grid(4096, 1 << 22, 300, 256),
        gpus=[64, 8, 16],  # not sorted: the P codes must not assume it
        templates=TEMPLATES,
        coded=coded,
    )


@pytest.mark.parametrize("phase,kernel", [("prefill", "auto"), ("decode", "auto"), ("prefill", "flash")])
def test_coded_columns_decode_to_the_plain_columns(phase, kernel):
    plain, skipped = _sweep(phase, kernel, False)
    coded, skipped2 = _sweep(phase, kernel, True)
    assert skipped == skipped2 and list(plain) == list(coded)
    assert any(isinstance(v, Categorical) for v in coded.values())
    for k, v in plain.items():
        c = np.asarray(coded[k])
        assert c.dtype == v.dtype and np.array_equal(c, v, equal_nan=v.dtype.kind == "f"), k
        assert np.array_equal(coded[k][7:50:3], v[7:50:3], equal_nan=v.dtype.kind == "f"), k  # indexing
        assert coded[k][5] == v[5] or (v.dtype.kind == "f" and np.isnan(v[5])), k
        if isinstance(coded[k], Categorical) and v.dtype.kind == "U":  # compact: the labels categorical gives
            labels, codes = results.categorical(v)
            assert np.array_equal(coded[k].labels, labels) and np.array_equal(coded[k].codes, codes), k


def test_evaluate_blocks_and_coded_evaluate_equal_evaluate():
    st = Setting(phase="prefill", kernel="auto", topo_kind="ib", gpus_per_node=8)
    L = (2048 * np.arange(1, 2 * CHUNK, 3))[:, None].astype(float)  # 4 x 2/3 x 2 CHUNK points: blocks
    R = np.array([1, 2, 8, 64])[None, :]
    full = evaluate(MODEL, HW, st, batch=2, seq=L, ring=R)
    coded = evaluate(MODEL, HW, st, batch=2, seq=L, ring=R, coded=True)
    blocks = list(evaluate_blocks(MODEL, HW, st, batch=2, seq=L, ring=R))
    assert len(blocks) > 1
    for k, v in full.items():
        assert np.array_equal(np.asarray(coded[k]), v, equal_nan=v.dtype.kind == "f"), k
        joined = np.empty(v.shape, v.dtype)
        for index, o in blocks:
            joined[index] = np.asarray(o[k])
        assert np.array_equal(joined, v, equal_nan=v.dtype.kind == "f"), k


def test_files_from_coded_columns_are_the_same_bytes(tmp_path):
    for phase in ("prefill", "decode"):
        plain, skipped = _sweep(phase, "auto", False, topo="ib")
        coded, _ = _sweep(phase, "auto", True, topo="ib")
        a = write_sweep_files(tmp_path / f"a{phase}", plain, {"phase": phase}, skipped)
        b = write_sweep_files(tmp_path / f"b{phase}", coded, {"phase": phase}, skipped)
        for kind in ("csv", "json"):
            assert a[kind].read_bytes() == b[kind].read_bytes(), kind
        with np.load(a["npz"]) as za, np.load(b["npz"]) as zb:
            assert za.files == zb.files
            for k in za.files:
                x, y = za[k], zb[k]
                assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k
        specs, cols = read_npz(b["npz"])
        assert specs == {"phase": phase} and list(cols) == list(plain)


def _whole(values: list) -> bool:
    """A float column write_csv writes as integers: every value but NaN a whole number below 2**53 in
    magnitude, none of them -0.0 (checked value by value)."""
    return all(
        math.isnan(x)
        or (math.isfinite(x) and x == int(x) and abs(x) < 2**53 and not (x == 0 and math.copysign(1, x) < 0))
        for x in values
    )


def _reference_csv(columns: dict) -> bytes:
    """Value by value: floats as ``float_text`` (from repr) writes one value, or as ``str(int(x))`` where
    the whole column is whole numbers (``_whole``), the rest as the csv module writes str()."""
    f = io.StringIO()
    w = csv.writer(f, lineterminator="\n")
    w.writerow(list(columns))
    cols = []
    for v in columns.values():
        v = np.asarray(v)
        x = v.tolist()
        if v.dtype.kind == "f" and _whole(x):
            cols.append(["" if math.isnan(y) else str(int(y)) for y in x])
        elif v.dtype.kind == "f":
            cols.append([float_text(y) for y in x])
        else:
            cols.append([str(y) for y in x])
    for row in zip(*cols):
        w.writerow(row)
    return f.getvalue().encode()


@pytest.mark.parametrize("chunk", [1 << 16, 7, 100])
def test_csv_shortcuts_write_the_reference_text(tmp_path, chunk):
    rng = np.random.default_rng(3)
    n = 1000
    cols = {
        "plan": Categorical(np.array(["ring=8", "tp=8,pp=2", "b"]), rng.integers(0, 3, n)),
        "P": Categorical(np.array([8, 16, 1024]), rng.integers(0, 3, n)),
        "x": rng.lognormal(0, 30, n),
        "nan": np.full(n, np.nan),
        "negzero": np.full(n, -0.0),
        "one": np.full(n, 123456.789),
        "almost": np.where(np.arange(n) == n - 1, 0.0, -0.0),  # differs only in the sign bit
        "inf": np.full(n, np.inf),
        "ok": rng.random(n) < 0.3,
        "trail": 10.0 ** rng.integers(-20, 20, n) * rng.integers(1, 10**6, n),  # trailing zeros
        "some_nan": np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1e-5, n)),
        "text": np.array(["a", 'say "hi"', "x\ny", ""])[rng.integers(0, 4, n)],
        "repeated": Categorical(np.array(["same", "same", "other"]), rng.integers(0, 3, n)),
        "bytes": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 2**40, n) * 2.0),  # whole numbers
        "whole_edge": rng.choice([2.0**53 - 1, -(2.0**53) + 1, 0.0, 1.0, -7.0], n),
        "too_big": np.where(np.arange(n) == n // 2, 2.0**53, rng.integers(0, 100, n) * 1.0),
        "negzero_late": np.where(np.arange(n) == n - 1, -0.0, rng.integers(0, 100, n) * 1.0),
        "inf_late": np.where(np.arange(n) == n - 1, np.inf, rng.integers(0, 100, n) * 1.0),
        "half_late": np.where(np.arange(n) == 900, 0.5, rng.integers(0, 100, n) * 1.0),
        "float_codes": Categorical(np.array([1.5, 3.0, 2.0**60]), rng.integers(0, 3, n)),
        "whole_codes": Categorical(np.array([1.0, 3.0, 2.0**40]), rng.integers(0, 3, n)),
        "one_whole": np.full(n, 2147483648.0),
    }
    write_csv(tmp_path / "a.csv", cols, chunk_rows=chunk)
    assert (tmp_path / "a.csv").read_bytes() == _reference_csv(cols)


def test_attention_time_picked_once_is_work_time():
    L = np.geomspace(1, 2**22, 200)
    for causal in (True, False):
        for q in (L, np.ones_like(L)):  # prefill- and decode-shaped calls
            w = Lr.attention(Role.RING_ATTN, MODEL, 2, 8, q, L, causal, (), (), kv_heads=2)
            acc = Acc(HW, "auto", L.shape)
            t, _ = acc.parts(w)
            assert np.array_equal(t, Lr.work_time(HW, w, "auto"))
            acc.note_kernel(w)
            ref = Acc(HW, "auto", L.shape)
            ref._bits.clear()
            Acc.note_kernel(ref, w)  # the kernel from its own attn_choice
            assert np.array_equal(acc.kernel_mask, ref.kernel_mask)


@pytest.mark.parametrize(
    "kw",
    [
        {"topology": "nvlink-domain:16", "seq": 32768, "batch": 4},
        {"topology": "ib:2x8", "seq": 131072, "batch": 8, "phase": "decode", "context": 131072},
    ],
)
def test_largest_batch_equals_a_brute_force_search_over_the_whole_model(kw):
    cfg = load_config(plan="ring=16", **kw)
    cap = 96
    res = rank_plans(cfg, 16, "throughput", max_batch=cap)
    plans = {p.label(cfg.workload.phase): p for p in enumerate_plans(cfg, 16)[0]}
    checked = 0
    for r in res["ranked"][:6] + res["ranked"][-4:]:  # the best and the worst (a few: each is a model call)
        p = plans[r["plan"]]
        b = p.microbatches * np.arange(1, cap // p.microbatches + 1)
        fit = np.asarray(_evaluate_group(cfg, [p], b[None, :])["feasible"]).reshape(-1)
        assert r["batch"] == (b[fit].max() if fit.any() else p.microbatches), r["plan"]
        checked += 1
    assert checked > 3


def test_one_call_memory_search_is_taken_and_equals_the_grid_search(monkeypatch):
    from test_predict_search import CFGS

    from costmodel import predict as P

    taken = []
    real = P._searches_at

    def spy(*a, **k):
        got = real(*a, **k)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(P, "_searches_at", spy)
    for cfg in CFGS[::25]:  # (test_predict_search holds predict's answers to the reference on all 200)
        at = {k: np.asarray(v).item() for k, v in P._eval(cfg).items() if k.startswith(("mem_", "capacity"))}
        assert P._searches(cfg, at=at) == P._searches(cfg), cfg.plan  # the grid search: no figures given
    for cfg in CFGS:
        P.predict(cfg)
    n = len(CFGS[::25]) + len(CFGS)
    assert len(taken) == n and sum(taken) >= 0.8 * n  # the one call is the rule, the grid the exception


def _attn_reference(hw, kernel, flops, hbm, kv, causal, q, dims):
    """attn_device_time as it was: both models at every point, then np.where by the query count."""
    fig = hw.attn(kernel)
    t = np.maximum(
        flops / (fig.causal if causal else fig.full)(np.maximum(kv, 1)), hbm / hw.elementwise_bw_Bps
    )
    if fig.decode is not None and dims:
        return np.where(np.asarray(q) <= 1, fig.decode.time(*dims[:3], kv, *dims[3:]), t)
    if fig.decode_bw is not None:
        return np.where(np.asarray(q) <= 1, hbm / fig.decode_bw(np.maximum(hbm, 1)), t)
    return t


@pytest.mark.parametrize("hwname", ["h100-sxm", "h200-sxm", "b200"])
def test_attention_time_shortcuts_equal_both_models_everywhere(hwname):
    """A prefill (no decode-shaped call) skips the decode model, a decode (all decode-shaped) the prefill
    curve: the times are those of computing both and choosing by point."""
    from costmodel import kernels

    hw = presets.load_hardware(hwname)
    rng = np.random.default_rng(11)
    kv = np.floor(2.0 ** rng.uniform(0, 22, (40, 7)))
    for q in (np.maximum(kv // 3, 2), np.ones_like(kv), np.where(rng.random(kv.shape) < 0.5, 1.0, kv)):
        for dims in ((), (4, 32, 8, 128, 2)):
            w = Lr.attention(Role.RING_ATTN, MODEL, 4, 32, q, kv, True, (), (), kv_heads=8)
            for k in sorted(hw.attention):
                got = kernels.attn_device_time(hw, k, w.flops, w.hbm_bytes, kv, True, q, dims)
                ref = _attn_reference(hw, k, w.flops, w.hbm_bytes, kv, True, q, dims)
                assert got.shape == ref.shape and np.array_equal(got, ref), (k, dims)


def test_comm_time_skips_only_figures_no_point_uses():
    from costmodel import kernels
    from costmodel.specs import Collective

    rng = np.random.default_rng(12)
    groups_seen = 0
    for hwname in ("h100-sxm", "h200-sxm", "b200", "gb200"):
        hw = presets.load_hardware(hwname)
        for link in ("nvlink", "ib"):
            for coll in (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.P2P):
                base = hw.comm[link][str(coll)]
                groups_seen += len(base.by_group)
                msg = 2.0 ** rng.uniform(4, 34, (50, 1))
                for group in (np.array([[1, 2, 8, 64, 1024]]), np.array([[2]]), np.array([[4096]]), 8):
                    steps, vol = kernels.ring_factors(coll, group)
                    one = lambda f, s=steps, v=vol, m=msg: f.latency_s + s * f.hop_latency_s + v * m / f.bw(m)  # noqa: E731
                    t = one(base)  # the loop as it was: every figure at every point
                    for g in sorted(base.by_group):
                        t = np.where(np.asarray(group) >= g, one(base.by_group[g]), t)
                    if coll != Collective.P2P:
                        t = np.where(np.asarray(group) > 1, t, 0.0)
                    got = kernels.comm_time(hw, link, coll, msg, group)
                    assert got.shape == t.shape and np.array_equal(got, t), (hwname, link, coll, group)
    assert groups_seen > 0  # some profile has figures by group size: the skipping was exercised


def test_select_is_np_where():
    """kernels.select: np.where's array (shape, dtype, values, signs of zero), uniform conditions or not."""
    from costmodel.kernels import select

    rng = np.random.default_rng(13)
    a = rng.normal(size=(30, 4))
    conds = [
        np.ones((1, 4), bool),
        np.zeros((30, 1), bool),
        rng.random((30, 4)) < 0.5,
        np.array(True),
        False,
        np.array([[True, False, True, True]]),
        np.zeros((0, 4), bool),
        np.array([[1, 0, 2, 0]]),  # not booleans: as np.where reads them
    ]
    for c in conds:
        for x, y in ((a, 0.0), (0.0, a), (a, -a), (3, 0), (a[:1], -np.inf), (np.int64(2), a > 0), (-0.0, a)):
            try:
                ref = np.where(c, x, y)
            except ValueError:
                continue
            got = select(c, x, y)
            assert got.shape == ref.shape and got.dtype == ref.dtype, (c, x, y)
            assert np.array_equal(got, ref) and np.array_equal(np.signbit(got), np.signbit(ref))


def test_first_max_is_the_stack_reduction():
    """kernels.first_max: np.stack(rows).max/argmax (min/argmin) along the first axis, ties to the first
    row, NaN as numpy has it, 0-d rows as numpy scalars."""
    from costmodel.kernels import first_max

    rng = np.random.default_rng(14)
    for k in (1, 2, 3, 5):
        for shape in ((), (7,), (40, 5)):
            rows = [np.round(rng.normal(size=shape), 1) for _ in range(k)]  # rounded: ties are common
            if shape:
                rows[0].flat[0] = -0.0
                rows[-1].flat[-1] = np.nan if k > 2 else rows[-1].flat[-1]
            st = np.stack(rows)
            for least in (False, True):
                top, which = first_max(rows, least=least)
                ref = (st.min(axis=0), st.argmin(axis=0)) if least else (st.max(axis=0), st.argmax(axis=0))
                assert type(top) is type(ref[0]) and np.shape(top) == ref[0].shape
                assert np.array_equal(top, ref[0], equal_nan=True)
                assert np.array_equal(np.signbit(top), np.signbit(ref[0]))
                assert np.array_equal(which, ref[1]) and np.asarray(which).dtype == ref[1].dtype


@pytest.mark.parametrize("phase,extra", [("prefill", {}), ("prefill", {"cached": 8192}), ("decode", {})])
def test_sweep_columns_equal_evaluate_per_plan_and_strategies_skipped_where_off(monkeypatch, phase, extra):
    """run_sweep evaluates each template as plans x lengths and skips a strategy off at every point of a
    block (``analytic._where_on``): every column equals, bit for bit, ``evaluate`` of each (plan, P) alone
    over the lengths (lengths x plans order), and a sweep that runs every strategy everywhere."""
    from costmodel import analytic

    tpls = [parse_template(t) for t in ("ring=P", "tp=8,ring=P/8", "ulysses=8,ring=P/8", "tp=8,pp=P/8")]
    seqs = seq_grid(16384, 1 << 21, 40, 1024)
    kw = dict(
        topo_kind="ib",
        phase=phase,
        causal=True,
        kernel="auto",
        ring_variant="zigzag",
        decode_attn="pass-kv",
        batch=4,
        seqs=seqs,
        gpus=[8, 16, 64],  # tp=8,ring=P/8 at P=8: ring=1 beside rings in one block (a mixed mask)
        templates=tpls,
        **extra,
    )
    cols, skipped = run_sweep(MODEL, HW, **kw)
    skip = {(d["plan"], d["P"]) for d in skipped}
    calls = []
    real = analytic._where_on
    monkeypatch.setattr(analytic, "_where_on", lambda f, ctx, on, *rest: calls.append(1) or f(ctx, on, *rest))
    every, _ = run_sweep(MODEL, HW, **kw)
    assert calls and real is not analytic._where_on
    st = Setting(
        phase=phase,
        kernel="auto",
        ring_variant="zigzag",
        decode_attn="pass-kv",
        topo_kind="ib",
        gpus_per_node=8,
        cached=extra.get("cached", 0),
    )
    L = seqs.astype(float)
    at = 0
    for tpl in tpls:
        degs = [(P, tpl.degrees(P)) for P in (8, 16, 64) if (tpl.text, P) not in skip]
        rows = [evaluate(MODEL, HW, st, batch=4, seq=L, context=L, **d) for _, d in degs]
        n = len(L) * len(rows)
        for k, v in cols.items():
            assert np.array_equal(v, every[k], equal_nan=v.dtype.kind == "f"), k
            if k in ("plan_template", "plan", "P", "L"):
                continue
            want = np.stack([np.asarray(r[k]) for r in rows], axis=1).reshape(-1)  # lengths x plans
            assert np.array_equal(v[at : at + n], want, equal_nan=v.dtype.kind == "f"), (tpl.text, k)
        at += n
    assert at == len(cols["latency_s"])


def _stretched_end_reference(start, work, lo, hi, slowdown):
    """``closedform.stretched_end`` as first written: both branches everywhere, then ``np.where``."""
    t2 = np.maximum(start, lo)
    before = np.minimum(work, np.maximum(lo - start, 0.0))
    rem = work - before
    win = np.maximum(hi - t2, 0.0)
    inside = rem * slowdown <= win
    end = np.where(inside, t2 + rem * slowdown, t2 + win + (rem - win / slowdown))
    return np.where(rem > 0, end, start + before)


@pytest.mark.parametrize("slow", [1.0, 1.25, "array"])
def test_stretched_end_shortcuts_are_the_plain_formula_bit_for_bit(slow):
    from costmodel.closedform import stretched_end

    rng = np.random.default_rng(3)
    n = 5000
    start = rng.uniform(0, 1, n)
    work = np.where(rng.random(n) < 0.1, 0.0, rng.uniform(0, 1, n))
    lo = start + rng.uniform(-1, 1, n)
    hi = lo + rng.uniform(0, 2, n)
    s = rng.uniform(1, 1.5, n) if slow == "array" else slow
    cases = [
        (start, work, lo, hi),  # mixed branches
        (start, work + 1.0, lo, lo),  # empty windows: every point outside
        (start, work * 1e-9 + 1e-12, start - 1.0, start + 5.0),  # every point inside its window
        (0.0, work, 0.0, hi[:1]),  # scalars beside arrays, the window's end alone an array
    ]
    for args in cases:
        got = stretched_end(*args, s)
        want = _stretched_end_reference(*args, s)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want)


def test_ring_recurrence_with_a_float_slowdown_is_the_array_slowdown_bit_for_bit():
    """A slowdown the same at every point runs as one float (``closedform._one_float``): the ends are
    those of the same slowdown given as a column, for rings that all run and for some of R = 1."""
    from costmodel.closedform import ring_recurrence

    rng = np.random.default_rng(11)
    n = 3000
    c1 = 10 ** rng.uniform(-5, -2, n)
    g1 = c1 * 10 ** rng.uniform(-3, -1, n)
    x = (c1 + g1) * 10 ** rng.uniform(-0.5, 0.5, n)
    x[:300] = (c1[:300] + g1[:300]) * (1 + 1e-4)  # long transients (the float tail)
    for R in (rng.integers(2, 1025, n), rng.integers(1, 300, n)):
        for slow, slow_g in ((1.0, 1.05), (1.2, 1.0), (1.0, 1.0)):
            got = ring_recurrence(2 * c1, g1, c1, g1, x, R, slow, slowdown_g=slow_g)
            want = ring_recurrence(2 * c1, g1, c1, g1, x, R, np.full(n, slow), slowdown_g=np.full(n, slow_g))
            assert np.array_equal(got, want)


@pytest.mark.parametrize("step", [1, 7, 1 << 16])
def test_whole_number_columns_found_step_by_step(step):
    """results._whole_numbers, over the column in steps of any size, takes the columns the value-by-value
    rule (``_whole``) takes, with their integers and NaN mask."""
    rng = np.random.default_rng(5)
    n = 200
    base = rng.integers(-(2**40), 2**40, n) * 1.0
    cases = [
        base,
        np.where(rng.random(n) < 0.2, np.nan, base),
        np.where(np.arange(n) == 150, np.nan, base),  # a NaN in a later step only
        np.where(np.arange(n) == 190, 0.5, base),  # a fraction after the first 64 values
        np.where(np.arange(n) == 120, -0.0, base),
        np.where(np.arange(n) == 99, np.inf, base),
        np.where(np.arange(n) == 180, 2.0**53, base),
        np.full(n, np.nan),
        rng.random(n),
    ]
    for c in cases:
        got = results._whole_numbers(c, step)
        assert (got is not None) == _whole(c.tolist())
        if got is not None:
            i, nan = got
            isnan = np.isnan(c)
            assert np.array_equal(isnan, np.zeros(n, bool) if nan is None else nan)
            assert np.array_equal(i[~isnan], c[~isnan].astype(np.int64))
