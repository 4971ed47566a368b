"""Command lines drawn from each command's grammar, valid and corrupted: every one ends in exit 0 with
output, or exit 2 with one line on stderr; never a traceback, never another exit code."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringsim.cli import main

GOOD = {
    "--hardware": ["h100-sxm", "h200-sxm", "b200"],
    "--topology": ["nvswitch:8", "nvswitch:2", "ib:2x8", "nvlink-domain:16", "nvl:4x2"],
    "--model": ["seed-dense", "llama3-8b"],
    "--plan": ["tp=8", "ring=8", "tp=2,ring=4", "ulysses=4,tp=2", "tp=4,pp=2", "ring=16", "tp=2"],
    "--batch": ["1", "4", "8"],
    "--seq": ["8Ki", "16k", "128Ki", "4096"],
    "--layers": ["1", "2", "4"],
    "--phase": ["prefill", "decode"],
    "--microbatches": ["1", "2"],
    "--ring-variant": ["zigzag", "plain"],
    "--decode-attn": ["pass-q", "allgather"],
    "--context": ["8Ki", "64k"],
    "--set": ["hardware.peak.hbm_TBps=4.0", "model.vocab=128256"],
}
BAD = [
    "",
    "0",
    "-1",
    "abc",
    "1e400",
    "nan",
    "inf",
    "true",
    "١٢٨Ki",
    "８",
    "tp=0",
    "ring=P/0",
    "x" * 300,
    ";",
    "hardware.peak.bf16_TFLOPs=inf",
    "model.layers=true",
    "hardware.achievable.gemm.efficiency=0.7",
    "nvswitch:99",
    "ib:0x8",
    "/nonexistent/file.toml",
    "/tmp",
    "1M:1k",
    "8k:" + "9" * 40,
]


@st.composite
def command_line(draw):
    cmd = draw(st.sampled_from(["predict", "best", "sweep", "presets", "plot", "validate"]))
    flags = {
        "predict": list(GOOD),
        "best": [k for k in GOOD if k != "--plan"] + ["--gpus", "--top", "--objective"],
        "sweep": [
            "--hardware",
            "--model",
            "--layers",
            "--batch",
            "--phase",
            "--gpus",
            "--points",
            "--seq",
            "--plans",
            "--topology",
        ],
        "presets": ["--json"],
        "plot": [],
        "validate": [],
    }[cmd]
    argv = [cmd]
    for f in draw(st.lists(st.sampled_from(flags), max_size=5, unique=True)) if flags else []:
        if f == "--json":
            argv.append(f)
            continue
        pool = GOOD.get(
            f,
            {
                "--gpus": ["8", "16", "8,16"],
                "--top": ["3"],
                "--objective": ["latency"],
                "--points": ["4"],
                "--plans": ["ring=P", "tp=8,pp=P/8"],
            }.get(f, ["1"]),
        )
        v = draw(st.one_of(st.sampled_from(pool), st.sampled_from(BAD)))
        argv += [f, v]
    if cmd == "sweep":
        argv += ["--out", draw(st.sampled_from(["SWEEP_DIR", "/proc/x", "/tmp"])), "--quiet", "--points", "4"]
    if cmd == "best" and "--gpus" not in argv:
        argv += ["--gpus", "8"]
    if cmd in ("plot", "validate"):
        argv.append(draw(st.sampled_from(["/nonexistent.json", "/tmp", "NOTJSON"])))
    return argv


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(argv=command_line())
def test_every_command_line_ends_cleanly(argv, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("fuzz")
    bad = d / "not.json"
    bad.write_text("{not json")
    argv = [str(d / "out") if a == "SWEEP_DIR" else str(bad) if a == "NOTJSON" else a for a in argv]
    cwd = os.getcwd()
    try:
        os.chdir(d)
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: --help, or a usage error
            rc = e.code
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip() and "warning" not in ln]
        assert len(lines) == 1, (argv, err)
    else:
        assert out.strip(), argv
