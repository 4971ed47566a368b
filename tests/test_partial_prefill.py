"""Partial prefill (``--cached C``) and the pass-Q prefill ring (``--prefill-attn pass-q``): the options'
rules, the geometry (every new query meets every cached key and its causal new keys exactly once, on every
layout, pass-KV and pass-Q), the message sizes (GQA: pass-KV sends KV heads, pass-Q query heads), the
memory and FLOPs, the simulator against the analytic model on the new ops, and the executor against the
single-device reference on CPU (gloo, 2 processes)."""

from __future__ import annotations

import numpy as np
import pytest

from costmodel.config import Config, build_config
from costmodel.errors import SpecError
from costmodel.geometry import Geometry, cached_positions, ring_blocks_cached, ring_positions
from costmodel.plan import Plan
from costmodel.predict import _eval
from costmodel.presets import load_hardware, load_model
from costmodel.specs import OP_CLASSES, Model, Workload
from costmodel.topology import parse_topology
from ringsim.cli import main

# -- options ----------------------------------------------------------------------------------------

BAD = [
    (["--cached", "-4"], "--cached"),
    (["--cached", "x"], "--cached"),
    (["--cached", "١٢"], "--cached"),
    (["--cached", "1.5Ki"], "--cached"),
    (["--phase", "decode", "--cached", "8Ki"], "--cached"),
    (["--plan", "tp=8", "--prefill-attn", "pass-q"], "pass-q"),
    (["--plan", "ring=8", "--phase", "decode", "--prefill-attn", "pass-q"], "pass-q"),
    (["--plan", "ring=8", "--seq", "16Ki", "--cached", "1000"], "--cached 1000"),
    (["--plan", "tp=2,pp=4", "--chunks", "4", "--cached", "8Ki"], "--chunks"),
]


@pytest.mark.parametrize("argv,field", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_partial_prefill_input_is_one_sentence_exit_2(argv, field, capsys):
    rc = main(["predict", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert field in lines[0], lines[0]


def test_cached_takes_the_length_units_and_zero():
    for text, want in (("0", 0), ("0Ki", 0), ("48Ki", 48 * 1024), ("100k", 100_000), (4096, 4096)):
        cfg = build_config({"plan": "ring=8", "seq": "16Ki", "cached": text})
        assert cfg.workload.cached_len == want
    with pytest.raises(SpecError, match="--cached"):
        build_config({"plan": "ring=8", "seq": "16Ki", "cached": -16})


def test_pass_q_has_its_own_label():
    kv = Plan(ring=8)
    q = Plan(ring=8, prefill_attn="pass-q")
    assert kv.label("prefill") != q.label("prefill") and q.label("prefill") == "ring=8:zigzag/pass-q"
    assert kv.label("decode") == q.label("decode") and kv.runs_as("decode") == q.runs_as("decode")
    assert Plan.from_dict(q.to_dict("prefill")) == q


# -- geometry ---------------------------------------------------------------------------------------


def _pairs(variant, causal, R, L, C, pass_q):
    """Every (query position, key position) the ring's calls cover, with multiplicity."""
    lr, lc = L // R, C // R
    got: dict[tuple[int, int], int] = {}
    for p in range(R):
        for t in range(R):
            qrank, krank = ((p - t) % R, p) if pass_q else (p, (p - t) % R)
            qpos = [C + x for x in ring_positions(variant, R, qrank, L)]
            kpos = cached_positions(variant, R, krank, C) + [
                C + x for x in ring_positions(variant, R, krank, L)
            ]
            assert len(kpos) == lc + lr
            for qs, ks, c in ring_blocks_cached(variant, causal, R, lr, lc, p, t, pass_q):
                ql, kl = qs.stop - qs.start, ks.stop - ks.start
                for i in range(ql):
                    for j in range(kl):
                        if c and j > i + (kl - ql):  # causal, aligned at the end (the kernels' rule)
                            continue
                        key = (qpos[qs.start + i], kpos[ks.start + j])
                        got[key] = got.get(key, 0) + 1
    return got


@pytest.mark.parametrize("pass_q", [False, True], ids=["pass-kv", "pass-q"])
@pytest.mark.parametrize(
    "variant,R,causal",
    [
        ("plain", 2, True),
        ("plain", 3, True),
        ("zigzag", 2, True),
        ("zigzag", 4, True),
        ("striped", 3, True),
        ("striped", 4, True),
        ("zigzag", 4, False),
    ],
)
@pytest.mark.parametrize("C_per", [0, 2])
def test_ring_blocks_cover_every_allowed_pair_once(variant, R, causal, pass_q, C_per):
    mult = 2 * R if variant == "zigzag" else R
    L, C = 2 * mult, C_per * mult
    got = _pairs(variant, causal, R, L, C, pass_q)
    want = {(q, k) for q in range(C, C + L) for k in range(C + L) if k < C or not causal or k <= q}
    assert set(got) == want
    assert set(got.values()) == {1}


def test_messages_count_kv_heads_for_pass_kv_and_query_heads_for_pass_q():
    m = load_model("llama3-8b")  # 32 query heads, 8 KV heads
    wl = Workload(batch=2, seq_len=16384, cached_len=49152)
    g = Geometry.of(m, wl, Plan(ring=4, prefill_attn="pass-q"))
    tok_new, tok_all = 2 * 16384 // 4, 2 * (16384 + 49152) // 4
    assert g.kv_block_bytes == tok_all * 2 * 8 * 128 * m.kv_elem_bytes
    assert g.q_block_bytes == tok_new * 32 * 128 * m.dtype_bytes
    assert g.out_parts_bytes == 4 * tok_new * 32 * (128 * m.accum_bytes + 4)
    # at a cache-miss rate of 1/4, llama3-8b's pass-Q block is 1/2 of pass-KV's (4 x the tokens, 2 x 8
    # KV heads against 32 query heads)
    assert g.kv_block_bytes == 2 * g.q_block_bytes


# -- analytic: memory, FLOPs, the ring's messages ---------------------------------------------------


def _cfg(plan, L, C, pa="pass-kv", hw="h200-sxm", model="llama3-8b", **kw):
    n = Plan(**plan).n_ranks if isinstance(plan, dict) else None
    p = plan if isinstance(plan, str) else None
    return build_config(
        {
            "hardware": hw,
            "model": model,
            "plan": p or ",".join(f"{k}={v}" for k, v in plan.items()),
            "topology": f"nvswitch:{n or 8}",
            "seq": L,
            "cached": C,
            "prefill_attn": pa,
            **kw,
        }
    )


def test_memory_counts_the_cache_of_cached_and_new_tokens():
    a = _eval(_cfg("tp=8", 16384, 0))
    b = _eval(_cfg("tp=8", 16384, 49152))
    assert float(b["mem_kv_cache_bytes"]) == pytest.approx(4 * float(a["mem_kv_cache_bytes"]))
    r = _eval(_cfg("ring=8", 16384, 49152))
    assert float(r["mem_kv_cache_bytes"]) == pytest.approx(float(b["mem_kv_cache_bytes"]))  # 8 KV heads / 8


def test_total_flops_count_every_cached_key():
    m = load_model("llama3-8b")
    a, b = _eval(_cfg("tp=8", 4096, 0)), _eval(_cfg("tp=8", 4096, 8192))
    extra = 4.0 * 4096 * 8192 * m.q_dim * m.layers
    assert float(b["total_flops"]) - float(a["total_flops"]) == pytest.approx(extra)


def test_pass_q_sends_less_than_pass_kv_at_a_low_miss_rate():
    """At C = 15 L (miss rate 1/16) llama3-8b's ring moves 4 x fewer query bytes than K/V bytes."""
    kv = _eval(_cfg("ring=8", 8192, 122880))
    q = _eval(_cfg("ring=8", 8192, 122880, "pass-q"))
    assert float(q["comm_nvlink_bytes"]) < float(kv["comm_nvlink_bytes"]) / 2


def test_cached_tokens_cost_time_on_every_plan():
    for plan in ("tp=8", "ulysses=8", "tp=2,pp=4", "ring=8", "tp=2,ring=4"):
        for pa in ("pass-kv", "pass-q") if "ring" in plan else ("pass-kv",):
            a = float(_eval(_cfg(plan, 8192, 0, pa))["latency_s"])
            b = float(_eval(_cfg(plan, 8192, 65536, pa))["latency_s"])
            assert b > a, (plan, pa, a, b)


# -- the simulator against the analytic model on the new ops ----------------------------------------

NO_SLOWDOWN = ["achievable.compute_slowdown_under_comm=1.0"] + [
    f"achievable.ops.{c}.issue_us=0" for c in OP_CLASSES
]
SMALL = Model(name="t", layers=2, d_model=1024, n_heads=8, n_kv_heads=2, head_dim=128, d_ff=4096)

AGREE = [
    (dict(ring=2), 16384, 4096, "pass-kv", "zigzag"),
    (dict(ring=2), 16384, 4096, "pass-q", "zigzag"),
    (dict(ring=4), 65536, 4096, "pass-q", "zigzag"),
    (dict(ring=4), 65536, 4096, "pass-kv", "zigzag"),
    (dict(ring=4), 0, 16384, "pass-q", "zigzag"),
    (dict(ring=4), 8192, 16384, "pass-q", "plain"),
    (dict(ring=4), 8192, 16384, "pass-kv", "striped"),
    (dict(ring=2, ulysses=2), 16384, 4096, "pass-q", "zigzag"),
    (dict(ring=2, tp=2), 16384, 4096, "pass-kv", "zigzag"),
    (dict(tp=2), 16384, 4096, "pass-kv", "zigzag"),
    (dict(ulysses=2), 16384, 4096, "pass-kv", "zigzag"),
    (dict(pp=2), 16384, 4096, "pass-kv", "zigzag"),
    (dict(ring=16), 65536, 16384, "pass-kv", "zigzag"),  # the simulator's ring-step coarsening
    (dict(ring=16), 65536, 16384, "pass-q", "zigzag"),
]


@pytest.mark.parametrize("slowdown", [False, True], ids=["no-slowdown", "profile"])
@pytest.mark.parametrize(
    "deg,C,L,pa,variant", AGREE, ids=[f"{d}-C{c}-L{n}-{p}-{v}" for d, c, n, p, v in AGREE]
)
def test_sim_equals_analytic(deg, C, L, pa, variant, slowdown):
    from sim import run_config

    hw = load_hardware("h100-sxm", [] if slowdown else NO_SLOWDOWN)
    plan = Plan(ring_variant=variant, prefill_attn=pa, **deg)
    n = plan.n_ranks
    wl = Workload(batch=2, seq_len=L, cached_len=C)
    topo = parse_topology(f"nvswitch:{n}" if n <= 8 else f"nvlink-domain:{n}")
    cfg = Config(hardware=hw, topology=topo, model=SMALL, workload=wl, plan=plan)
    sim = run_config(cfg).latency_s
    ana = float(_eval(cfg)["latency_s"])
    # exact on the same physics; the profile's compute slowdown under a transfer: the analytic model's
    # blanket factor against the simulator's in-flight time, the documented 1% (tests/test_sim_agreement.py)
    assert sim == pytest.approx(ana, rel=0.01 if slowdown else 1e-9), (plan.label("prefill"), C, L, sim, ana)


# -- the executor against the reference (CPU, gloo) -------------------------------------------------


def executor_cases(n: int) -> list[list[str]]:
    from real import selftest

    topo = ["--topology", f"nvswitch:{n}"]
    pre = selftest.TINY + topo + ["--layers", "2", "--batch", "2"]  # GQA: 4 query heads, 2 KV heads
    out = []
    for variant, C in (("zigzag", "16"), ("plain", "12"), ("striped", "12")):
        for pa in ("pass-kv", "pass-q"):
            out.append(
                pre
                + ["--seq", "8", "--cached", C, "--plan", f"ring={n}", "--ring-variant", variant]
                + ["--prefill-attn", pa]
            )
    for variant in ("plain", "zigzag"):  # pass-Q without a cache (plain: steps where nothing is seen)
        out.append(
            pre + ["--seq", "8", "--plan", f"ring={n}", "--ring-variant", variant, "--prefill-attn", "pass-q"]
        )
    out.append(
        pre
        + ["--seq", "8", "--cached", "8", "--plan", f"ring={n}", "--prefill-attn", "pass-q", "--no-causal"]
    )
    out.append(pre + ["--seq", "6", "--cached", "10", "--plan", f"tp={n}"])
    out.append(pre + ["--seq", "8", "--cached", "10", "--plan", f"ulysses={n}"])
    out.append(
        selftest.TINY
        + topo
        + ["--layers", str(n), "--batch", "2", "--seq", "6", "--cached", "5", "--plan", f"pp={n}"]
        + ["--microbatches", "2"]
    )
    return out


def executor_cases_4() -> list[list[str]]:
    """Four ranks: a ring of 4 and the hybrids (ulysses x ring: the cache's heads split, its tokens not)."""
    from real import selftest

    pre = selftest.TINY + ["--topology", "nvswitch:4", "--layers", "2", "--batch", "2"]
    return [
        pre + ["--seq", "16", "--cached", "16", "--plan", "ring=4", "--prefill-attn", "pass-q"],
        pre + ["--seq", "16", "--cached", "24", "--plan", "ring=4", "--ring-variant", "plain"],
        pre + ["--seq", "16", "--cached", "16", "--plan", "ulysses=2,ring=2", "--prefill-attn", "pass-q"],
        pre + ["--seq", "16", "--cached", "12", "--plan", "ulysses=2,ring=2"],
        pre + ["--seq", "16", "--cached", "8", "--plan", "tp=2,ring=2", "--prefill-attn", "pass-q"],
    ]


@pytest.mark.parametrize("n", [2, 4], ids=["2proc", "4proc"])
def test_executor_matches_reference_with_a_prefix_cache(n):
    from real import selftest

    cases = executor_cases(2) if n == 2 else executor_cases_4()
    res = selftest.run_cases(n, cases)
    assert len(res) == len(cases)
    bad = [
        (r["case"], r["rel_err"], r["error"])
        for r in res
        if r["error"] or not r["rel_err"] <= 1e-5 or not max(r["attn_rel_err"], default=float("nan")) <= 1e-5
    ]
    assert not bad, bad


def test_the_cache_changes_the_reference():
    """The check above can fail: the cached keys move every layer's output far beyond its tolerance."""
    import torch

    from real import reference
    from real.selftest import TINY, parse

    cfg = parse(
        TINY + ["--topology", "nvswitch:1", "--layers", "2", "--batch", "2", "--seq", "8", "--plan", "tp=1"]
    )
    args = (cfg.model, 2, 2, 8, True, 0, torch.device("cpu"))
    a = reference.prefill(*args)
    b = reference.prefill(*args, cached=16)
    assert float((a - b).norm() / a.norm()) > 1e-2


def test_cached_positions_shard_the_cache_like_the_prompt():
    for variant in ("plain", "zigzag", "striped"):
        got = sorted(x for r in range(4) for x in cached_positions(variant, 4, r, 32))
        assert got == list(range(32))
    assert cached_positions("zigzag", 2, 0, 8) == [0, 1, 6, 7]
    assert np.array_equal(cached_positions("plain", 1, 0, 5), range(5))


# -- the crossover study and its figure -------------------------------------------------------------


def test_crossover_study_pass_q_wins_at_low_miss_rates(tmp_path):
    from plots.files import plot_file
    from studies import partial_prefill as pp

    doc = pp.run(hardware=("h200-sxm",), gpus=(32,), totals=(128 * 1024,), points=9)
    (c,) = doc["curves"]
    r = c["ratio_kv_over_q"]
    assert c["miss_rate"][0] < 1 / 256 and c["miss_rate"][-1] == 1.0
    assert r[0] > 1.5 and r[-1] < 1.0  # pass-Q far faster with a large cache, pass-KV without one
    x = c["crossover_miss_rate"]
    assert x is not None and c["miss_rate"][0] < x < c["miss_rate"][-1]
    assert [a + b for a, b in zip(c["new"], c["cached"], strict=True)] == [128 * 1024] * len(r)
    import json

    path = tmp_path / "partial_prefill.json"
    path.write_text(json.dumps(doc))
    figs = plot_file(path, tmp_path / "figs")
    assert any(str(f).endswith("partial_prefill_crossover.png") for f in figs)


def test_crossover_interpolates_between_grid_points():
    from studies.partial_prefill import crossover

    m = np.array([0.01, 0.1, 1.0])
    assert crossover(m, np.array([2.0, 1.0 + 1e-12, 0.5])) == pytest.approx(0.1, rel=1e-6)
    assert crossover(m, np.array([2.0, 2.0, 2.0])) is None
    x = crossover(m, np.array([3.0, 0.5, 0.4]))
    assert 0.01 < x < 0.1


def test_explore_tries_pass_q_rings_after_a_cache():
    from studies.explore import make_experiment, run_experiment

    exp = make_experiment(
        {
            "model": "llama3-8b",
            "topology": ["ib"],
            "gpus": [16],
            "phase": ["prefill", "decode"],
            "seq": "4Ki:16Ki",
            "points": 2,
            "families": ["ring", "hybrid", "tp-pp"],
            "cached": "64Ki",
            "prefill_attn": ["pass-kv", "pass-q"],
        }
    )
    cols, _ = run_experiment(exp)
    pre = cols["phase"] == "prefill"
    assert set(cols["prefill_attn"][pre & (cols["ring"] > 1)]) == {"pass-kv", "pass-q"}
    assert set(cols["cached"][pre]) == {65536} and set(cols["cached"][~pre]) == {0}
    assert not (cols["chunks"][pre] > 1).any()  # partial prefill runs without chunked pipelines
    q = pre & (cols["prefill_attn"] == "pass-q")
    assert all(lab.endswith("/pass-q") for lab in cols["plan"][q])
