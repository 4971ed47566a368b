"""The bad and edge inputs users tried (issue 17's list): each ends in exit 2 with one line on stderr,
before any work and without leaving an output folder behind; a reproduce interrupted at any point leaves
the previous results as they were."""

from __future__ import annotations

import os

import pytest

from ringsim.cli import main

CASES = [
    ["predict", "--set", "hardware.achievable.gemm.efficiency=0.7"],
    ["predict", "--set", "hardware.provenance=5"],
    ["predict", "--set", "model.vocab=abc"],
    ["predict", "--set", "model.layers=true"],
    ["predict", "--set", "hardware.peak.bf16_TFLOPs=inf"],
    ["predict", "--hardware", "DIR"],
    ["predict", "--seq", "١٢٨Ki"],
    ["predict", "--topology", "nvswitch:８"],
    ["simulate", "--seq", "99999999999999999999999999"],
    [
        "simulate",
        "--layers",
        "1",
        "--seq",
        "4096",
        "--plan",
        "tp=2",
        "--topology",
        "nvswitch:2",
        "--trace",
        "DIR",
    ],
    ["sweep", "--seq", "8k:999999999999999999999999999999", "--out", "OUT"],
    ["sweep", "--plans", "ring=P/0", "--out", "OUT"],
    ["sweep", "--gpus", "0", "--out", "OUT"],
    ["sweep", "--gpus", "-8", "--out", "OUT"],
    ["sweep", "--gpus", "x", "--out", "OUT"],
    ["best", "--gpus", "8", "--max-batch", "0"],
    ["best", "--gpus", "8", "--max-batch", "-4"],
    ["best", "--gpus", "8", "--top", "-1"],
    ["best", "--gpus", "8", "--confirm-with-sim", "-2"],
    ["reproduce", "--points", "0", "--out", "OUT"],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, tmp_path, capsys):
    d = tmp_path / "a-folder"
    d.mkdir()
    out = tmp_path / "out"
    argv = [str(d) if a == "DIR" else str(out) if a == "OUT" else a for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (argv, err)
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert not out.exists(), "a rejected run leaves no output folder"


@pytest.mark.parametrize("stop_after", [1, 2, 4])
def test_interrupted_reproduce_leaves_the_previous_results(tmp_path, stop_after):
    from studies.reproduce import reproduce

    out = tmp_path / "rep"
    out.mkdir()
    (out / "REPORT.md").write_text("previous report\n")
    calls = []

    def log(msg):
        calls.append(msg)
        if len(calls) >= stop_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reproduce(out, points=2, gpus=(8,), topologies=("ib",), phases=("prefill",), timeline=False, log=log)
    assert (out / "REPORT.md").read_text() == "previous report\n"
    assert sorted(os.listdir(tmp_path)) == ["rep"], "no temporary or half-new folder is left"
    assert sorted(os.listdir(out)) == ["REPORT.md"]


def test_work_is_bounded_by_the_model_and_the_steps():
    """Layers and generated tokens have a ceiling named in one sentence (the simulator and the per-step
    figures would otherwise run for hours): 1,024 layers, 2**20 generated tokens."""
    from costmodel.config import build_config
    from costmodel.errors import SpecError

    base = dict(hardware="h200-sxm", topology="nvswitch:8", plan="tp=8", seq="8Ki")
    build_config({**base, "layers": 1024})
    with pytest.raises(SpecError, match=r"model.layers=100000 is not valid: must be 1 to 1,024"):
        build_config({**base, "layers": 100000})
    dec = {**base, "phase": "decode", "context": "8Ki"}
    build_config({**dec, "gen_tokens": 1 << 20})
    with pytest.raises(SpecError, match=r"--gen-tokens=1048577 is not valid: must be 1 to 1,048,576"):
        build_config({**dec, "gen_tokens": (1 << 20) + 1})


@pytest.mark.parametrize("flag", ["--layers", "--points"])
def test_explore_integer_flags_take_ascii_digits_only(flag, tmp_path, capsys):
    from ringsim.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["explore", flag, "８", "--out", str(out), "--quiet"])
    assert e.value.code == 2
    assert "invalid integer '８': use ASCII digits 0-9" in capsys.readouterr().err and not out.exists()
