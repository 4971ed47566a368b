"""Where a prediction leaves its profile's measurements (costmodel/envelope.py): each kind of note is
raised where the configuration reads a figure beyond what was measured, and none inside."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from costmodel.envelope import outside_measurements
from costmodel.options import build_config
from ringsim.cli import main


def notes(**kw) -> list[str]:
    return outside_measurements(build_config(kw))


def test_inside_the_measured_corner_says_nothing():
    # P = 2 on one NVLink node, a length the attention curves hold, GEMMs inside the efficiency curve
    assert (
        notes(hardware="h200-sxm", topology="nvswitch:2", model="seed-dense", plan="ring=2", seq="64Ki") == []
    )


def test_uncalibrated_profile_is_named():
    (n,) = notes(hardware="b200", topology="nvswitch:8", model="llama3-8b", plan="tp=8", seq="64Ki")
    assert "b200" in n and "none measured" in n


def test_published_links_and_groups_beyond_the_measured_sizes():
    ib = notes(hardware="h200-sxm", topology="ib:2x8", model="seed-dense", plan="ring=16", seq="256Ki")
    assert any("over ib" in n and "published" in n for n in ib)
    tp8 = notes(
        hardware="h200-sxm-graph",
        topology="nvswitch:8",
        model="llama3-8b",
        plan="tp=8",
        phase="decode",
        batch=4,
        context="8Ki",
    )
    assert any(n.startswith("all_reduce over 8 ranks on nvlink: measured in groups of 2, 4") for n in tp8)
    assert any("start skew at 8 ranks" in n for n in tp8)
    # four ranks were measured: neither note
    tp4 = notes(
        hardware="h200-sxm-graph",
        topology="nvswitch:4",
        model="llama3-8b",
        plan="tp=4",
        phase="decode",
        batch=4,
        context="8Ki",
    )
    assert not any("ranks" in n for n in tp4)


def test_lengths_and_weights_beyond_the_curves():
    long = notes(hardware="h200-sxm", topology="nvswitch:8", model="llama3-70b", plan="tp=8", seq="4Mi")
    assert any("attention over 4.194M keys is above the measured" in n for n in long)
    big = notes(
        hardware="h200-sxm-graph",
        topology="nvswitch:1",
        model="llama3-405b",
        layers=1,
        plan="tp=1",
        phase="decode",
        batch=9,
        context="38Ki",
    )
    # the LM head's 4.2 GB weight (128256 x 16384 BF16) is streamed beyond the largest weight measured
    assert any("few-row GEMM's weight of 4.2 GB is above" in n for n in big)


def _main(*args) -> str:
    """``ringsim ARGS`` in this process; its standard output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


@pytest.mark.parametrize("cmd", ["predict", "simulate"])
def test_cli_reports_them(cmd):
    args = [cmd, "--hardware", "h200-sxm", "--topology", "ib:2x8", "--model", "seed-dense"]
    args += ["--plan", "ring=16", "--seq", "256Ki"]
    out = json.loads(_main(*args, "--json"))
    assert any("published" in n for n in out["outside_measurements"])
    text = _main(*args)
    assert "outside measurements" in text and "over ib" in text
    inside = _main(
        cmd, "--hardware", "h200-sxm", "--topology", "nvswitch:2", "--plan", "ring=2", "--seq", "64Ki"
    )
    assert "outside measurements" in inside and "none: every figure" in inside


def test_decode_items_count_the_kv_heads_a_gpu_reads():
    # llama3-70b under Ulysses 8: each GPU reads 8 // 8 = 1 KV head for 8 query heads, so B = 40 is 40 work
    # items (inside the grid's 1-3072); counting the query heads (320) or tp alone would be other figures
    n = notes(
        hardware="h200-sxm-graph",
        topology="nvswitch:8",
        model="llama3-70b",
        plan="ulysses=8",
        phase="decode",
        batch=40,
        context="32Ki",
    )
    assert not any("decode attention" in x for x in n)
    # beyond the grid's largest count (96 sequences x 32 KV heads): sequences x KV heads, above
    big = notes(
        hardware="h200-sxm-graph",
        topology="nvswitch:1",
        model="seed-dense",
        plan="tp=1",
        phase="decode",
        batch=512,
        context="8Ki",
    )
    assert any("decode attention of 16.38k work items" in x and "above" in x for x in big), big


def test_widths_whose_product_overflows_are_refused():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(
            "predict --hardware h200-sxm --topology nvswitch:1 --model llama3-8b --plan tp=1 --phase decode "
            "--batch 1 --context 1Ki --set model.n_heads=16777216 --set model.head_dim=16777216 "
            "--set model.d_model=16777216 --set model.layers=1".split()
        )
    assert rc == 2 and "Traceback" not in err.getvalue()
    assert "model.n_heads" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_pipelines_whose_stages_idle_are_named():
    idle = notes(hardware="h200-sxm", topology="nvswitch:2", model="seed-dense", plan="pp=2", seq="32Ki")
    assert any("each stage idles at least half the pass" in x for x in idle)
    busy = notes(
        hardware="h200-sxm", topology="nvswitch:2", model="seed-dense", plan="pp=2,mb=4", seq="32Ki", batch=4
    )
    assert not any("idles" in x for x in busy)
