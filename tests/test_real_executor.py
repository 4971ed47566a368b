"""The executor against the single-device reference, on CPU with gloo, in 2 and 4 processes.

Every plan kind (ring plain/zigzag/striped pass-KV prefill, causal and not; tp; pp and tp x pp with
micro-batches; ulysses; hybrids tp x ring, ulysses x ring, tp x ulysses; decode for tp, tp x pp,
ulysses and the ring variants pass-KV, pass-Q and all-gather) runs in ONE spawn of processes per
world size; each output, and each layer's attention output, must equal the reference within 1e-5
relative error (FP32).
"""

from __future__ import annotations

import pytest

from real import selftest

TOL = 1e-5


@pytest.fixture(scope="module", params=[2, 4], ids=["2proc", "4proc"])
def results(request):
    return request.param, selftest.run_cases(request.param)


def test_every_plan_matches_reference(results):
    n, res = results
    assert len(res) == len(selftest.cases(n))
    bad = [
        (r["case"], r["rel_err"], r["error"])
        for r in res
        if r["error"] or not r["rel_err"] <= TOL or not max(r["attn_rel_err"], default=float("nan")) <= TOL
    ]
    assert not bad, "\n".join(f"{c}: rel_err={e} {m}" for c, e, m in bad)


def test_plans_covered(results):
    n, res = results
    text = " ".join(r["case"] for r in res)
    for needle in (
        "ring-variant plain",
        "ring-variant zigzag",
        "ring-variant striped",
        f"tp={n}",
        f"pp={n}",
        f"ulysses={n}",
        "decode-attn pass-kv",
        "decode-attn pass-q",
        "decode-attn allgather",
        "--chunks 4",
    ):
        assert needle in text
    if n == 4:
        for needle in (
            "tp=2,ring=2",
            "tp=2,pp=2",
            "ulysses=2,ring=2",
            "tp=2,ulysses=2",
            "--pp-send full",
            "--chunks 3",
        ):
            assert needle in text
