"""Every configuration is accepted or refused identically by predict, simulate and ``real.run``'s
pre-check: they share one rule set (``costmodel.strategies.validate``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmodel.config import build_config
from costmodel.errors import SpecError
from costmodel.predict import predict
from real.run import precheck
from sim import run_config


@st.composite
def options(draw):
    deg = {k: draw(st.sampled_from([1, 1, 2, 4])) for k in ("tp", "ulysses", "ring", "pp")}
    n = deg["tp"] * deg["ulysses"] * deg["ring"] * deg["pp"]
    plan = ",".join(f"{k}={v}" for k, v in deg.items() if v > 1) or "tp=1"
    heads = draw(st.sampled_from([4, 6, 8, 12]))
    kv = draw(st.sampled_from([d for d in (1, 2, 3, 4, 6, 8, 12) if heads % d == 0]))
    topo = draw(st.sampled_from([f"nvswitch:{min(n, 8)}", f"ib:{max(n // 2, 1)}x{min(n, 2)}", "nvswitch:4"]))
    phase = draw(st.sampled_from(["prefill", "decode"]))
    return {
        "hardware": "h100-sxm",
        "topology": topo,
        "plan": plan,
        "phase": phase,
        "layers": draw(st.integers(1, 4)),
        "d_model": 64 * heads,
        "heads": heads,
        "kv_heads": kv,
        "head_dim": 64,
        "d_ff": draw(st.sampled_from([256, 384, 768])),
        "batch": draw(st.integers(1, 6)),
        "seq": draw(st.sampled_from([96, 256, 384, 512, 1000, 1024])),
        "microbatches": draw(st.sampled_from([None, 1, 2, 3])),
        "ring_variant": draw(st.sampled_from(["plain", "zigzag", "striped"])),
        "decode_attn": draw(st.sampled_from(["allgather", "pass-q", "pass-kv"])),
    }


def _argv(o: dict) -> list[str]:
    out = []
    for k, v in o.items():
        if v is not None:
            out += ["--" + k.replace("_", "-"), str(v)]
    return out


def _outcome(fn):
    try:
        fn()
        return "accepted"
    except SpecError as e:
        return f"refused: {e}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options())
def test_predict_simulate_and_real_run_agree(o):
    from costmodel.topology import parse_topology

    world = parse_topology(o["topology"]).n_gpus
    p = _outcome(lambda: predict(build_config(o)))
    s = _outcome(lambda: run_config(build_config(o)))
    r = _outcome(lambda: precheck(_argv(o) + ["--out", "unused.jsonl"], world))
    assert p == s == r, (o, p, s, r)
