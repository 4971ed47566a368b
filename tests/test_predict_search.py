"""``max_batch`` / ``max_length`` search the memory part of the model only (``analytic.evaluate_memory``):
on 200 random configurations they give exactly what the old search over the whole model
(``analytic.evaluate``, kept here as the reference) gives."""

import random

import numpy as np
import pytest

from costmodel import strategies
from costmodel.analytic import evaluate, evaluate_memory
from costmodel.config import build_config
from costmodel.errors import SpecError
from costmodel.predict import _mb_size, max_batch, max_length, predict, setting
from costmodel.specs import Phase


def _ref_eval(cfg, batch=None, seq=None, context=None):
    p, wl = cfg.plan, cfg.workload
    m = p.microbatches
    if batch is not None and m != 1:
        m = np.asarray(batch) // _mb_size(cfg)
    return evaluate(
        cfg.model,
        cfg.hardware,
        setting(cfg),
        batch=wl.batch if batch is None else batch,
        seq=wl.seq_len if seq is None else seq,
        tp=p.tp,
        pp=p.pp,
        ring=p.ring,
        ulysses=p.ulysses,
        microbatches=m,
        context=wl.context if context is None else context,
        gen_tokens=wl.gen_tokens,
    )


def _ref_search(cands, step, fits):
    ok = fits(cands)
    if not ok[0]:
        return 0
    i = int(np.nonzero(ok)[0].max())
    hi, nxt = int(cands[i]), int(cands[min(i + 1, len(cands) - 1)])
    fine = np.arange(hi, max(nxt, hi + step), step)
    return int(fine[fits(fine)].max())


def ref_max_batch(cfg):
    size = _mb_size(cfg)
    cands = size * np.unique(np.round(np.geomspace(1, 2**20, 400)).astype(int))
    return _ref_search(cands, size, lambda b: _ref_eval(cfg, batch=b)["feasible"])


def ref_max_length(cfg):
    mult = strategies.length_multiple(cfg.plan, cfg.workload.phase)
    cands = mult * np.unique(np.round(np.geomspace(1, 2**26 / mult, 600)).astype(int))
    key = "seq" if cfg.workload.phase == Phase.PREFILL else "context"
    return _ref_search(cands, mult, lambda v: _ref_eval(cfg, **{key: v})["feasible"])


def _random_configs(n, seed=16):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        P = rng.choice([8, 16, 32, 64])
        phase = rng.choice(["prefill", "decode"])
        tp = rng.choice([1, 2, 4, 8])
        u = rng.choice([1, 1, 2, 4])
        pp = rng.choice([1, 1, 2, 4])
        ring = P // (tp * u * pp)
        if ring < 1 or ring * tp * u * pp != P:
            continue
        mb = rng.choice([1, 1, 2, 4, 16])
        batch = mb * rng.choice([1, 2, 3, 8, 32])
        mult = 2 * ring * u
        seq = mult * rng.randint(1, 2**20 // mult)
        opts = {
            "hardware": rng.choice(["h100-sxm", "h200-sxm", "h100-sxm-eager"]),
            "topology": rng.choice([f"ib:{P // 8}x8", f"nvlink-domain:{P}"]),
            "plan": f"tp={tp},ulysses={u},pp={pp},ring={ring}",
            "microbatches": mb,
            "batch": batch,
            "seq": seq,
            "phase": phase,
            "ring_variant": rng.choice(["zigzag", "plain", "striped"]),
            "decode_attn": rng.choice(["allgather", "pass-q", "pass-kv"]),
            "causal": rng.random() < 0.8,
        }
        if phase == "decode":
            opts["context"] = ring * u * rng.randint(1, 2**20 // (ring * u))
        try:
            out.append(build_config(opts))
        except SpecError:
            continue
    return out


CFGS = _random_configs(200)


def test_random_configs_cover_the_families():
    phases = {c.workload.phase for c in CFGS}
    assert phases == {Phase.PREFILL, Phase.DECODE}
    assert any(c.plan.microbatches > 1 for c in CFGS) and any(c.plan.ring > 1 for c in CFGS)
    assert any(c.plan.ulysses > 1 for c in CFGS) and any(c.plan.pp > 1 for c in CFGS)


@pytest.mark.parametrize("i", range(0, len(CFGS), 25))
def test_search_equals_the_whole_model_search(i):
    fits_some = 0
    for cfg in CFGS[i : i + 25]:
        got = (max_batch(cfg), max_length(cfg))
        assert got == (ref_max_batch(cfg), ref_max_length(cfg)), cfg.plan
        r = predict(cfg)  # both searches in the same two calls of the memory model
        assert (r.max_batch, r.max_length) == got
        fits_some += got[0] > 0
    assert fits_some > 0  # the comparison is not only of zeros


@pytest.mark.parametrize("i", [0, 7, 42, 101, 190])
def test_memory_part_equals_evaluate(i):
    cfg = CFGS[i]
    p, wl = cfg.plan, cfg.workload
    L = np.array([1024.0, 65536.0, 1 << 20]) * strategies.length_multiple(p, wl.phase)
    kw = {
        "batch": np.array([[1], [8], [64]]),
        "seq": L,
        "tp": p.tp,
        "pp": p.pp,
        "ring": p.ring,
        "ulysses": p.ulysses,
        "microbatches": 1,
        "context": L,
    }
    full = evaluate(cfg.model, cfg.hardware, setting(cfg), **kw)
    mem = evaluate_memory(cfg.model, cfg.hardware, setting(cfg), **kw)
    assert set(mem) <= set(full)
    for k, v in mem.items():
        np.testing.assert_array_equal(v, full[k])
