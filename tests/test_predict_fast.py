"""``predict``'s fast path (``costmodel.predict_fast``: the model's own modules run on numpy scalars) gives
the values of the array path, on random configurations of every plan family and phase, with FP8, FP8
caches, models with and without an LM head, GQA, chunks, prefix caches, both prefill rings and every
decode merge."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from costmodel import predict_fast
from costmodel.analytic import evaluate
from costmodel.errors import SpecError
from costmodel.predict import _eval, predict
from ringsim import load_config

HARDWARE = ("h100-sxm", "h200-sxm", "b200", "gb200", "h100-sxm-eager", "h200-sxm-graph")
MODELS = ("seed-dense", "llama3-8b", "llama3-70b", "qwen2.5-72b", "llama3-405b")
TOPOLOGIES = {
    8: ("nvswitch:8", "ib:1x8"),
    16: ("ib:2x8", "nvlink-domain:16"),
    32: ("ib:4x8", "nvlink-domain:32"),
}
PLANS = {
    8: ("tp=8", "ring=8", "ulysses=8", "tp=2,ring=4", "tp=4,pp=2", "pp=8", "tp=2,ulysses=4", "pp=2,ring=4"),
    16: (
        "ring=16",
        "tp=8,pp=2",
        "tp=8,ring=2",
        "tp=4,ring=4",
        "ulysses=8,ring=2",
        "tp=2,pp=2,ring=4",
        "pp=4,tp=4",
    ),
    32: ("tp=8,pp=4", "tp=8,ring=4", "ring=32", "tp=4,ulysses=2,ring=4", "tp=16,pp=2"),
}


def _random_config(rng: random.Random):
    n = rng.choice(tuple(TOPOLOGIES))
    plan = rng.choice(PLANS[n])
    decode = rng.random() < 0.45
    opts = dict(
        hardware=rng.choice(HARDWARE),
        model=rng.choice(MODELS),
        topology=rng.choice(TOPOLOGIES[n]),
        plan=plan,
        batch=rng.choice((1, 2, 4, 8, 16, 32, 64, 128)),
        seq=rng.choice((2048, 8192, 32768, 131072, 1 << 20)),
        fp8=rng.choice((None, "none", "ffn", "linear")),
        kv_dtype=rng.choice((None, "bf16", "fp8")),
        ring_variant=rng.choice(("zigzag", "plain", "striped")),
        causal=rng.random() < 0.85,
        attn_kernel=rng.choice(("auto", "auto", "flash")),
        pp_send=rng.choice(("scatter", "full")),
    )
    if "pp" in plan and rng.random() < 0.6:
        opts["microbatches"] = rng.choice((2, 4, 8, 16))
    if decode:
        opts.update(
            phase="decode",
            context=rng.choice((1024, 4096, 65536, 524288)),
            decode_attn=rng.choice(("allgather", "pass-kv", "pass-q")),
            gen_tokens=rng.choice((1, 1, 1, 4)),
        )
    elif "pp" in plan and "ring" not in plan and "ulysses" not in plan and rng.random() < 0.4:
        opts["chunks"] = rng.choice((2, 4))
    else:
        if "ring" in plan:
            opts["prefill_attn"] = rng.choice(("pass-kv", "pass-q"))
        if rng.random() < 0.3:  # a partial prefill after a prefix cache
            opts["cached"] = rng.choice((4096, 65536))
    if rng.random() < 0.15:  # a model without an LM head (the records measured before it ran)
        opts["set"] = ("model.lm_head=false",)
    return load_config(**opts)


def _configs(n: int, seed: int = 16):
    rng, out, tries = random.Random(seed), [], 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        try:
            out.append(_random_config(rng))
        except SpecError:
            continue
    assert len(out) == n, f"only {len(out)} of {n} random configurations were valid"
    return out


CONFIGS = _configs(400)


def _same(a, b) -> bool:
    a, b = np.asarray(a).item(), np.asarray(b).item()
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and type(a) is type(b)


def test_the_configurations_cover_every_family():
    seen = {(c.workload.phase, c.plan.decode_attn if c.workload.phase == "decode" else None) for c in CONFIGS}
    assert {("prefill", None), ("decode", "allgather"), ("decode", "pass-kv"), ("decode", "pass-q")} <= seen
    assert any(c.plan.chunks > 1 for c in CONFIGS) and any(c.plan.microbatches > 1 for c in CONFIGS)
    assert any(c.model.fp8_roles for c in CONFIGS) and any(c.model.kv_elem_bytes == 1 for c in CONFIGS)
    assert any(not c.model.has_lm_head for c in CONFIGS) and any(c.model.has_lm_head for c in CONFIGS)
    assert any(c.model.n_kv_heads < c.model.n_heads for c in CONFIGS)  # GQA
    assert {c.plan.ring_variant for c in CONFIGS if c.plan.ring > 1} == {"zigzag", "plain", "striped"}
    assert any(c.workload.cached_len > 0 for c in CONFIGS)  # partial prefill (prefix cache)
    assert any(c.plan.prefill_attn == "pass-q" and c.plan.ring > 1 for c in CONFIGS)


@pytest.mark.parametrize("i", range(0, len(CONFIGS), 50))
def test_fast_point_equals_the_array_path(i):
    """Every output of the scalar copy equals the array path's, value and type (identical floats)."""
    for cfg in CONFIGS[i : i + 50]:
        slow, fast = _eval(cfg), _eval(cfg, fast=True)
        assert slow.keys() == fast.keys()
        bad = {k: (slow[k], fast[k]) for k in slow if not _same(slow[k], fast[k])}
        assert not bad, f"{cfg.plan.label(cfg.workload.phase)} {cfg.workload}: {bad}"


def test_predict_fast_equals_predict_array():
    """The whole result (figures, verdict, searches, generation) is the same either way."""
    for cfg in CONFIGS[::4]:
        assert predict(cfg).to_dict() == predict(cfg, fast=False).to_dict()


def test_arrays_still_go_to_numpy():
    """The scalar copy given arrays computes what the array path does (its functions defer to numpy)."""
    cfg = CONFIGS[0]
    from costmodel.predict import setting

    L = np.array([4096.0, 65536.0, 131072.0])
    kw = dict(batch=8, seq=L, context=L, tp=cfg.plan.tp, pp=cfg.plan.pp, ring=cfg.plan.ring)
    a = evaluate(cfg.model, cfg.hardware, setting(cfg), **kw)
    b = predict_fast.evaluate(cfg.model, cfg.hardware, setting(cfg), **kw)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_shim_functions_follow_numpy_types_and_nan():
    s = predict_fast.SCALAR_NP
    f, i, t = np.float64(2.5), np.int64(3), np.bool_(True)
    cases = [
        (s.where, np.where, (t, f, 0.0)),
        (s.where, np.where, (np.bool_(False), i, 0)),
        (s.where, np.where, (True, 1, 0.0)),
        (s.where, np.where, (t, t, False)),
        (s.maximum, np.maximum, (f, 1)),
        (s.maximum, np.maximum, (i, 1)),
        (s.maximum, np.maximum, (np.float64(np.nan), 1.0)),
        (s.maximum, np.maximum, (1.0, np.float64(np.nan))),
        (s.minimum, np.minimum, (f, np.float64(np.nan))),
        (s.minimum, np.minimum, (i, 2.0)),
    ]
    for ours, theirs, args in cases:
        got, want = ours(*args), theirs(*args)
        assert type(got) is type(want[()]), (ours.__name__, args, got, want)
        assert _same(got, want), (ours.__name__, args, got, want)
    assert type(s.asarray(3)) is np.int64 and type(s.asarray(3, dtype=float)) is np.float64
    assert type(s.asarray(True)) is np.bool_ and type(s.zeros((), dtype=int)) is np.int64
    assert type(s.full((), 7)) is np.int64 and type(s.full((), 7, dtype=float)) is np.float64


def test_the_one_point_versions_are_in_use():
    """Each one-point version in predict_fast mirrors code of kernels / closedform / specs (a digest of its
    source); a change there turns it off (same values, slower).  All are in use: after such a change,
    update the version and its digest (MIRRORS)."""
    predict_fast._load()
    assert predict_fast.INSTALLED == set(predict_fast.VERSIONS)


def test_only_the_closed_forms_are_copied():
    """The scalar copy holds the closed forms' modules (predict_fast.COPIED) and shares every other one
    (specs, plan, schedule, results ...: the same classes and enums as the array path)."""
    import sys

    predict_fast._load()
    pre = predict_fast.PACKAGE + "."
    copies = {
        n[len(pre) :]
        for n, m in list(sys.modules.items())
        if n.startswith(pre) and m is not sys.modules.get("costmodel." + n[len(pre) :])
    }
    assert copies and {c.split(".")[0] for c in copies} == set(predict_fast.COPIED)


def test_scalar_gated_ring_equals_the_array_recurrence():
    """The one-point gated ring (``closedform._ring_scalar_gated``) is ``ring_recurrence_gated`` to the
    last bit, periodic jump included, on random rings with and without the jump."""
    import numpy as np

    from costmodel import closedform as cf

    rng = np.random.default_rng(7)
    for _ in range(300):
        c0, g0, c1, g1 = rng.uniform(1e-4, 5e-3, 4)
        x, xf = rng.uniform(0, 6e-3, 2)
        slow, slow_g = 1.0 + rng.uniform(0, 0.4), 1.0 + rng.uniform(0, 0.2)
        lead = float(rng.uniform(0, 4e-4))
        R = int(rng.integers(1, 200))
        want = cf.ring_recurrence_gated(c0, g0, c1, g1, x, R, slow, lead, x_first=xf, slowdown_g=slow_g)
        got = cf._ring_scalar_gated(c0, g0, c1, g1, x, xf, slow, slow_g, lead, R)
        assert got == float(want), (R, got, float(want))
