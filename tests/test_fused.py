"""The executor's fused mode (real/fused.py, ``real.run --exec-mode fused``) on CPU: its functions compute the
eager maths, it runs every plan family against the single-device FP32 reference (seed-like tiny model and a
shrunk llama3-8b: grouped-query, SwiGLU), and ``ringsim validate`` holds fused records against the ideal
profile.  On CPU the fused functions run uncompiled (the same Python functions a GPU compiles); the compiled
path is tested only with RINGSIM_TEST_COMPILE=1 (compiling on a CPU takes about a minute)."""

from __future__ import annotations

import os

import pytest
import torch

from costmodel.errors import SpecError
from costmodel.schedule import Role
from real import buffers, fused, selftest
from real import model as M

TOL = 1e-5
# llama3-8b's shape family shrunk (grouped-query 4:1, SwiGLU, RoPE), small enough for CPU
LLAMA = [
    "--model",
    "llama3-8b",
    "--hardware",
    "h100-sxm",
    "--d-model",
    "64",
    "--heads",
    "8",
    "--kv-heads",
    "2",
    "--head-dim",
    "8",
    "--d-ff",
    "128",
    "--set",
    "model.vocab=40",
    "--layers",
    "2",
]


def _parts(rows, s=12, b=2, h=3, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for r in rows:
        q = s if r is None else r.stop - r.start
        out.append(
            buffers.Part(torch.randn(b, h, q, d, generator=g), torch.randn(b, h, q, generator=g) * 3, r)
        )
    return out


def _eager_merge(parts, s):
    b, h, _, d = parts[0].out.shape
    acc = buffers.Acc.empty(b, h, s, d, "cpu")
    acc.init(parts[0])
    for p in parts[1:]:
        acc.merge(p)
    return acc


@pytest.mark.parametrize(
    "rows",
    [
        [None, None],  # plain ring, non-causal zigzag
        [None, slice(6, 12)],  # zigzag: the later half of the queries against a whole remote block
        [slice(1, 12), None, slice(0, 6), None, slice(6, 12)],  # striped-like rows; folded at FOLD_AT
    ],
)
def test_pending_merge_equals_the_eager_accumulator(rows):
    s = 12
    parts = _parts(rows, s)
    k = fused.Kernels(compile=False)
    pend = fused.Pending(s)
    for p in parts:
        pend.add(p, k)
    assert len(pend.parts) <= fused.FOLD_AT
    got = pend.finalize(k, torch.float32)  # (B, S, H, D)
    ref = _eager_merge(parts, s)
    assert got.shape == (2, s, 3, 4) and got.is_contiguous()
    torch.testing.assert_close(got, ref.o.transpose(1, 2), rtol=1e-6, atol=1e-6)


def test_merge_parts_rows_no_part_covers_are_empty():
    o, lse = fused.merge_parts(
        [torch.ones(1, 1, 2, 2)], [torch.zeros(1, 1, 2)], ((1, 3),), 4, torch.float32, False
    )
    assert torch.all(o[:, :, [0, 3]] == 0) and torch.all(lse[:, :, [0, 3]] == float("-inf"))
    assert torch.all(o[:, :, 1:3] == 1) and torch.all(lse[:, :, 1:3] == 0)


def test_fused_functions_compute_the_eager_maths():
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(5, 16, generator=g), torch.randn(16, generator=g)
    torch.testing.assert_close(fused.rmsnorm(x, w), M.rmsnorm(x, w), rtol=0, atol=0)
    raw = torch.randn(2, 3, 4 + 2 * 2, 8, generator=g)
    cos, sin = M.rope_tables(torch.arange(3), 8, torch.float32)
    q, kv = fused.rope_qkv(raw, cos, sin, 4, 2)
    torch.testing.assert_close(q, M.apply_rope(raw[:, :, :4], cos, sin))
    torch.testing.assert_close(kv[0], M.apply_rope(raw[:, :, 4:6], cos, sin))
    assert torch.equal(kv[1], raw[:, :, 6:])
    u = torch.randn(3, 10, generator=g)
    torch.testing.assert_close(fused.swiglu(u), torch.nn.functional.silu(u[:, :5]) * u[:, 5:])
    a_o, a_l = torch.randn(2, 3, 1, 4, generator=g), torch.randn(2, 3, 1, generator=g)
    p = _parts([None], s=1, seed=3)[0]
    e_o, e_l = a_o.clone(), a_l.clone()
    buffers.merge_into(e_o, e_l, p.out, p.lse)
    fused.merge_into(a_o, a_l, p.out, p.lse)
    torch.testing.assert_close(a_o, e_o) and torch.testing.assert_close(a_l, e_l)


def test_install_replaces_the_elementwise_ops_and_merges_only():
    from real.executor import Executor
    from real.harness import make_executor  # noqa: F401 - the executor's module imports cleanly

    class Fake:
        device = torch.device("cpu")
        _by_role = Executor._by_role

    ex = Fake()
    fused.install(ex)
    assert ex.fk.compile is False  # CPU: uncompiled
    for role in (Role.NORM1, Role.ROPE, Role.ACT, Role.RESID1, Role.INIT, Role.MERGE, Role.FINALIZE):
        assert ex._by_role[role] is fused.ROLES[role]
    for role in (Role.QKV, Role.RING_ATTN, Role.ATTN, Role.TP_ALL_REDUCE, Role.A2A_QKV):
        assert ex._by_role[role] is Executor._by_role[role]  # GEMMs, attention, communication unchanged


def test_kernels_fall_back_and_say_so_when_a_compile_fails(monkeypatch):
    k = fused.Kernels(compile=True)

    def broken(name):
        def f(*a):
            raise RuntimeError("no compiler here")

        return f

    monkeypatch.setattr(fused, "_compiled", broken)
    x, w = torch.randn(2, 4), torch.randn(4)
    torch.testing.assert_close(k.rmsnorm(x, w), M.rmsnorm(x, w))
    assert k.fallbacks == {"rmsnorm": "RuntimeError: no compiler here"}


def test_executor_refuses_an_unknown_mode():
    cfg = selftest.parse(
        selftest.TINY + ["--topology", "nvswitch:1", "--layers", "1", "--seq", "8", "--plan", "tp=1"]
    )
    from costmodel.build import build_schedule
    from real.executor import Executor

    sched = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, cfg.hardware, kernel=cfg.kernel)
    with pytest.raises(ValueError, match="exec_mode 'fast' is not valid"):
        Executor(
            cfg,
            sched,
            0,
            device=torch.device("cpu"),
            dtype=torch.float32,
            kernel="math",
            seed=0,
            exec_mode="fast",
        )


def _llama_cases(n: int) -> list[list[str]]:
    pre = LLAMA + ["--topology", f"nvswitch:{n}", "--batch", "2"]
    if n == 1:
        return [
            pre + ["--seq", "16", "--plan", "tp=1"],
            pre + ["--phase", "decode", "--context", "12", "--plan", "tp=1"],
        ]
    return [
        pre + ["--seq", "16", "--plan", f"ring={n}", "--ring-variant", "zigzag"],
        pre + ["--seq", "16", "--plan", f"tp={n}"],
        pre + ["--seq", "16", "--plan", f"ulysses={n}"],
        pre + ["--seq", "16", "--plan", f"pp={n}", "--microbatches", "2"],
        pre + ["--phase", "decode", "--context", "12", "--plan", f"ring={n}", "--decode-attn", "pass-kv"],
        pre + ["--phase", "decode", "--context", "12", "--plan", f"tp={n}"],
    ]


@pytest.mark.parametrize("n", [1, 2], ids=["1proc", "2proc"])
def test_fused_mode_matches_the_reference(n):
    tiny = [] if n == 1 else selftest.cases(n)  # every plan kind of the eager test, seed-like tiny model
    if n == 1:
        tiny = [
            selftest.TINY
            + ["--topology", "nvswitch:1", "--layers", "2", "--batch", "2", "--seq", "12", "--plan", "tp=1"]
        ]
    case_list = tiny + _llama_cases(n)
    res = selftest.run_cases(n, case_list, exec_mode="fused")
    assert len(res) == len(case_list)
    bad = [
        (r["case"], r["rel_err"], r["error"])
        for r in res
        if r["error"] or not r["rel_err"] <= TOL or not max(r["attn_rel_err"], default=float("nan")) <= TOL
    ]
    assert not bad, "\n".join(f"{c}: rel_err={e} {m}" for c, e, m in bad)
    text = " ".join(r["case"] for r in res)
    if n == 2:
        for needle in ("ring=2 --ring-variant zigzag", "tp=2", "ulysses=2", "pp=2", "llama3-8b"):
            assert needle in text


def test_fused_mode_sees_a_dropped_ring_block():
    """The per-layer check still catches a fault in fused mode (the merge op is the fused one): one ring
    block dropped moves a layer's attention output by more than 10x the GPU (BF16) tolerance, 1e-2, as in
    tests/test_fault_injection.py (same model and length)."""
    case = [*selftest.TINY, "--topology", "nvswitch:2", "--layers", "2", "--seq", "256", "--batch", "2"]
    case += ["--plan", "ring=2", "--ring-variant", "zigzag"]
    res = selftest.run_cases(2, [case, case], fault=["drop-ring-block", None], exec_mode="fused")
    assert not res[0]["error"] and not res[1]["error"], res
    assert max(res[0]["attn_rel_err"]) > 10 * 1e-2
    assert max(res[1]["attn_rel_err"]) <= TOL


# ---------------------------------------------------------------------------------------------
# validate: fused records against the ideal profile
# ---------------------------------------------------------------------------------------------
def _rec(exec_mode: str | None, plan: str = "ring=2", **extra) -> dict:
    argv = ["--hardware", "h200-sxm", "--topology", "nvswitch:2", "--model", "seed-dense", "--layers", "2"]
    argv += ["--seq", "53248", "--batch", "1", "--plan", plan]
    r = {"args": argv, "status": "ok", "exec": "eager", "latency_s": {"median": 0.1, "min": 0.1, "max": 0.1}}
    if exec_mode is not None:
        r["exec_mode"] = exec_mode
    r.update(extra)
    return r


def test_fused_records_use_the_ideal_profile_and_eager_ones_the_eager_profile():
    from validation.compare import config_of

    assert config_of(_rec("fused")).hardware.name == "h200-sxm"
    assert config_of(_rec("eager")).hardware.name == "h200-sxm-eager"
    assert config_of(_rec(None)).hardware.name == "h200-sxm-eager"  # records before the fused mode
    with pytest.raises(SpecError, match="exec_mode is 'turbo'"):
        config_of(_rec("turbo"))


def test_a_fused_record_with_a_compile_fallback_is_left_out():
    from validation.compare import left_out_reason

    assert left_out_reason(_rec("fused", fused_fallbacks={})) is None
    why = left_out_reason(_rec("fused", fused_fallbacks={"rmsnorm": "RuntimeError: x"}))
    assert why and "uncompiled" in why


def test_ideal_vs_fused_group_by_phase_and_gpu_count(tmp_path):
    import json

    from validation.compare import Row, compare, format_table, ideal_vs_fused, summarise

    rows = [
        Row("a", "prefill", 1.0, 1.02, None, 0.0, "x", "eager", None, "m", "ring", "fused", 2),
        Row("b", "prefill", 1.0, 0.96, None, 0.0, "x", "eager", None, "m", "tp", "fused", 2),
        Row("c", "decode", 1.0, 1.10, None, 0.0, "x", "graph", None, "m", "single", "fused", 1),
        Row("d", "prefill", 1.0, 1.50, None, 0.0, "x", "eager", None, "m", "ring", "eager", 2),
    ]
    d = ideal_vs_fused(rows)
    assert set(d["groups"]) == {"prefill-fused P=2", "decode-graph-fused P=1"}
    g = d["groups"]["prefill-fused P=2"]
    assert (
        g["n"] == 2 and g["median_abs_err"] == pytest.approx(0.03) and g["max_abs_err"] == pytest.approx(0.04)
    )
    assert g["mean_signed_err"] == pytest.approx(-0.01)
    assert d["all_p_le_2"]["n"] == 3 and d["all_p_le_2"]["median_abs_err"] == pytest.approx(0.04)
    assert d["all_p_le_2"]["meets_targets"]
    s = summarise(rows)
    assert s["prefill-fused/analytic"]["targets"] == {"median": 0.05}
    assert "prefill/analytic" in s and s["prefill/analytic"]["n"] == 1  # eager records stay apart
    text = format_table(rows, s)
    assert "ideal profile (h200-sxm) vs fused executor records" in text and "met" in text
    none = format_table(rows[3:], summarise(rows[3:]))
    assert "no fused-executor records yet" in none
    # a record file: the fused one is predicted with h200-sxm, the eager one with h200-sxm-eager
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (_rec("fused"), _rec("eager"))) + "\n")
    got = compare([str(f)], simulate=False)
    assert [r.group for r in got] == ["prefill-fused", "prefill"]
    assert got[0].analytic_s < got[1].analytic_s  # the ideal kernels are faster than the executor's own


@pytest.mark.skipif(
    not os.environ.get("RINGSIM_TEST_COMPILE"), reason="set RINGSIM_TEST_COMPILE=1 (a minute)"
)
def test_compiled_functions_match_uncompiled():
    k = fused.Kernels(compile=True)
    parts = _parts([None, slice(6, 12)], 12)
    rows = ((0, 12), (6, 12))
    args = ([p.out for p in parts], [p.lse for p in parts], rows, 12, torch.float32, True)
    torch.testing.assert_close(k.merge_parts(*args), fused.merge_parts(*args), rtol=1e-5, atol=1e-6)
    x, w = torch.randn(4, 16), torch.randn(16)
    torch.testing.assert_close(k.rmsnorm(x, w), fused.rmsnorm(x, w), rtol=1e-5, atol=1e-6)
    assert not k.fallbacks
