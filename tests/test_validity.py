"""costmodel.validity: a plan's valid lengths over a grid, decided with one ``validate`` per plan and the
length rules as masks, equal to ``strategies.validate`` run at every length (random plans, models,
topologies, phases and lengths, refusals of every kind included)."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from costmodel import strategies
from costmodel.config import build_config
from costmodel.errors import SpecError
from costmodel.plan import DecodeAttn, Plan, PrefillAttn, RingVariant
from costmodel.search import factorisations
from costmodel.specs import Workload
from costmodel.topology import topology_for
from costmodel.validity import at_length, length_need, valid_lengths

MODELS = ("llama3-8b", "llama3-70b", "seed-dense")
KINDS = ("ib", "nvl", "nvlink-domain", "nvswitch")


def _model(name: str, rng: random.Random):
    m = build_config({"model": name, "plan": "tp=1", "topology": "nvswitch:1"}).model
    if rng.random() < 0.2:  # odd layer and head counts: more refusals of every kind
        m = replace(m, layers=rng.choice([6, 10, 12, 15]))
    return m


def _plan(P: int, rng: random.Random) -> Plan | None:
    mesh = rng.choice(factorisations(P))
    if rng.random() < 0.1:  # a mesh that does not fill the topology
        mesh = {**mesh, "tp": mesh["tp"] * 2}
    kw = dict(
        microbatches=rng.choice([1, 1, 1, 2, 3, 4]),
        chunks=rng.choice([1, 1, 1, 1, 2, 3, 4, 32]),
        ring_variant=rng.choice(list(RingVariant)),
        decode_attn=rng.choice(list(DecodeAttn)),
        prefill_attn=rng.choice([PrefillAttn.PASS_KV, PrefillAttn.PASS_KV, PrefillAttn.PASS_Q]),
    )
    try:
        return Plan(**mesh, **kw)
    except SpecError:
        return None


def _lengths(rng: random.Random) -> np.ndarray:
    base = [rng.randint(1, 5000) for _ in range(6)]
    mult = [
        rng.choice([2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]) * rng.randint(1, 300) for _ in range(10)
    ]
    return np.array(sorted(base + mult + [1, 2, 3]), dtype=np.int64)


def test_valid_lengths_equal_validate_at_every_length():
    rng = random.Random(16)
    seen = {"valid everywhere": 0, "valid somewhere": 0, "refused everywhere": 0, "length-free refusal": 0}
    cases = 0
    while cases < 200:
        P = rng.choice([1, 2, 4, 6, 8, 12, 16, 24, 32, 64])
        kind = rng.choice(KINDS)
        try:
            topo = topology_for(kind, P)
        except SpecError:
            continue
        plans = [p for p in (_plan(P, rng) for _ in range(6)) if p is not None]
        if not plans:
            continue
        model = _model(rng.choice(MODELS), rng)
        phase = rng.choice(["prefill", "decode"])
        cached = rng.choice([0, 0, 4096, 3000]) if phase == "prefill" else 0
        wl = Workload(
            batch=rng.choice([1, 2, 3, 4, 8]),
            seq_len=1,
            phase=phase,
            causal=rng.random() < 0.8,
            cached_len=cached,
        )
        L = _lengths(rng)
        mask, reasons = valid_lengths(plans, model, wl, topo, L)
        assert mask.shape == (len(L), len(plans))
        for j, p in enumerate(plans):
            ref = np.zeros(len(L), bool)
            said = {}
            for i, n in enumerate(L):
                try:
                    strategies.validate(p, model, at_length(wl, n), topo)
                    ref[i] = True
                except SpecError as e:
                    said[int(n)] = str(e)
            assert np.array_equal(mask[:, j], ref), (p, phase, topo.spec, L[mask[:, j] != ref])
            need = length_need(p, phase)
            if reasons[j] is not None:  # refused by a rule that reads no length: refused everywhere, and
                # at a length every length rule accepts that rule is the refusal validate gives
                assert not ref.any()
                assert all(said[int(n)] == reasons[j] for n in L if n % need == 0)
                seen["length-free refusal"] += 1
            else:  # no length-free refusal: valid exactly at the multiples of length_need
                assert np.array_equal(ref, L % need == 0)
            seen[
                "valid everywhere" if ref.all() else "valid somewhere" if ref.any() else "refused everywhere"
            ] += 1
        cases += 1
    # the random cases reach every kind of outcome, each many times
    assert all(v >= 20 for v in seen.values()), seen


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_decode_context_follows_the_length(phase):
    wl = Workload(batch=1, seq_len=5, phase=phase)
    w = at_length(wl, 4096)
    assert w.seq_len == 4096 and (w.context == 4096)
    assert (w.context_len == 4096) == (phase == "decode")
