"""Labels identify: two configurations that run differently never print the same label, and every
table, CSV column, results file and trace takes its label from ``Plan.label``."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from costmodel import presets
from costmodel.plan import DecodeAttn, Plan, PpSend, PrefillAttn, RingVariant
from costmodel.sweep import parse_template, run_sweep
from ringsim import load_config


def _plans():
    for tp, uly, ring, pp in itertools.product((1, 2, 8), (1, 2), (1, 2, 16), (1, 2)):
        for mb, chunks in itertools.product((1, 2, 8), (1, 4)):
            for rv, da, send, pa in itertools.product(RingVariant, DecodeAttn, PpSend, PrefillAttn):
                yield Plan(
                    tp=tp,
                    ulysses=uly,
                    ring=ring,
                    pp=pp,
                    microbatches=mb,
                    chunks=chunks,
                    ring_variant=rv,
                    decode_attn=da,
                    pp_send=send,
                    prefill_attn=pa,
                )


@pytest.mark.parametrize("phase", ["prefill", "decode", None])
def test_label_is_one_to_one_on_what_runs(phase):
    seen: dict[str, set] = defaultdict(set)
    n = 0
    for plan in _plans():
        for kernel in ("auto", "flash", "cudnn"):
            seen[plan.label(phase, kernel)].add((plan.runs_as(phase), kernel))
            n += 1
    shared = {k: v for k, v in seen.items() if len(v) > 1}
    assert not shared, f"labels shared by different configurations: {list(shared.items())[:3]}"
    assert n > 1000 and len(seen) > 500  # the space walked is the real one, not a handful


def test_known_collisions_are_gone():
    assert Plan(tp=8, microbatches=8).label("decode") != Plan(tp=8).label("decode")
    rings = {Plan(ring=16, decode_attn=d).label("decode") for d in DecodeAttn}
    assert len(rings) == 3 and "ring=16:pass-q" in rings
    assert Plan(tp=8, pp=2, pp_send="full").label("prefill") == "tp=8,pp=2,mb=1,send=full"
    assert Plan(ring=8).label("prefill", "flash") == "ring=8:zigzag,kernel=flash"
    assert Plan(tp=8).label("prefill", "auto") == "tp=8"


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_sweep_labels_never_shared_and_identify_the_numbers(phase):
    """Every template, every ring layout and decode merge: rows with one label have one plan and the same
    numbers; rows of different plans have different labels."""
    model, hw = presets.load_model("seed-dense", layers=2), presets.load_hardware("h100-sxm")
    templates = [
        parse_template(t)
        for t in (
            "ring=P",
            "tp=8",
            "tp=8,pp=1,mb=8",
            "tp=8,pp=P/8",
            "tp=8,pp=P/8,mb=4",
            "tp=8,ring=P/8",
            "tp=4,ring=P/4",
            "ulysses=P",
            "tp=8,pp=P/8,chunks=2",
        )
    ]
    seqs = np.array([4096, 16384, 65536])
    by_label: dict[str, set] = defaultdict(set)
    numbers: dict[str, np.ndarray] = {}
    variants = [(rv, DecodeAttn.ALLGATHER) for rv in RingVariant] if phase == "prefill" else []
    variants += [(RingVariant.ZIGZAG, da) for da in DecodeAttn] if phase == "decode" else []
    for rv, da in variants:
        for kernel in ("auto", "flash"):
            cols, _ = run_sweep(
                model,
                hw,
                topo_kind="nvlink-domain",
                phase=phase,
                causal=True,
                kernel=kernel,
                ring_variant=rv,
                decode_attn=da,
                batch=8,
                seqs=seqs,
                gpus=[8, 16],
                templates=templates,
            )
            for lab in np.unique(cols["plan"]):
                sel = cols["plan"] == lab
                # what ran: the plan's degrees, variant and kernel, as the columns say
                for tpl, P in zip(cols["plan_template"][sel], cols["P"][sel]):
                    plan = Plan(ring_variant=rv, decode_attn=da, **parse_template(str(tpl)).degrees(int(P)))
                    by_label[str(lab)].add((plan.runs_as(phase), kernel))
                key = np.stack([cols["L"][sel], cols["latency_s"][sel]])
                key = key[:, np.argsort(key[0], kind="stable")]
                if str(lab) in numbers and numbers[str(lab)].shape == key.shape:
                    # one label, one configuration: the same latency at every length
                    np.testing.assert_allclose(numbers[str(lab)], key, rtol=1e-12)
                numbers.setdefault(str(lab), key)
    shared = {k: v for k, v in by_label.items() if len(v) > 1}
    assert not shared, f"labels shared by different configurations: {list(shared.items())[:3]}"
    assert len(by_label) >= 14


def test_results_and_tables_carry_the_label():
    from costmodel.predict import predict
    from ringsim.tables import format_result

    cfg = load_config(plan="ring=16", topology="nvlink-domain:16", phase="decode", decode_attn="pass-q")
    assert cfg.specs()["plan"]["label"] == "ring=16:pass-q"
    r = predict(cfg)
    assert r["specs"]["plan"]["label"] == "ring=16:pass-q"
    assert "plan ring=16:pass-q" in format_result(r)
    cfg = load_config(
        plan="tp=8", microbatches=8, batch=8, topology="nvswitch:8", phase="decode", attn_kernel="flash"
    )
    assert "plan tp=8,mb=8,kernel=flash" in format_result(predict(cfg))
