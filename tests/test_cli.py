"""The command line: every subcommand's --help, predict's JSON contract, sweep files, errors."""

import json
import subprocess
import sys

import pytest

from ringsim.cli import COMMANDS, main


def _run(*args):
    """``python -m ringsim ARGS`` as a process: the command itself, its exit code and streams."""
    return subprocess.run(
        [sys.executable, "-m", "ringsim", *args], check=False, capture_output=True, text=True, timeout=120
    )


def _main(*args):
    """``ringsim ARGS`` in this process (``cli.main``, what ``python -m ringsim`` runs), exit code and
    output captured as a process's would be; the other tests here start the process."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as e:  # argparse's usage errors
            rc = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: ringsim " + cmd in capsys.readouterr().out


CONTRACT = [
    "latency_s",
    "tps",
    "tpot_s",
    "flops_per_device",
    "hbm_bytes_per_device",
    "comm_bytes_per_device",
    "memory_bytes_per_device",
    "capacity_bytes",
    "feasible",
    "bottleneck",
    "roofline_latency_s",
]


def test_predict_json_contract():
    r = _run(
        "predict",
        "--hardware",
        "h200-sxm",
        "--topology",
        "nvswitch:4",
        "--model",
        "seed-dense",
        "--layers",
        "4",
        "--batch",
        "4",
        "--seq",
        "131072",
        "--phase",
        "prefill",
        "--plan",
        "tp=2,pp=2",
        "--microbatches",
        "4",
        "--attn-kernel",
        "flash",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    for k in CONTRACT:
        assert k in o, k
    assert set(o["comm_bytes_per_device"]) >= {"nvlink", "ib"}
    assert set(o["memory_bytes_per_device"]) >= {
        "weights",
        "kv_cache",
        "activations",
        "comm_buffers",
        "workspace",
        "total",
    }
    assert o["specs"]["plan"]["microbatches"] == 4 and o["specs"]["model"]["layers"] == 4
    assert o["feasible"] is True and o["tpot_s"] is None


@pytest.mark.parametrize(
    "extra",
    [
        ["--plan", "ring=4", "--ring-variant", "zigzag"],
        ["--plan", "ring=4", "--phase", "decode", "--context", "131072", "--decode-attn", "allgather"],
        ["--plan", "ring=4", "--phase", "decode", "--context", "131072", "--decode-attn", "pass-q"],
        ["--plan", "ulysses=4", "--attn-kernel", "cudnn", "--no-causal"],
    ],
)
def test_predict_variants(extra, capsys):
    assert (
        main(
            [
                "predict",
                "--hardware",
                "h200-sxm",
                "--topology",
                "nvswitch:4",
                "--batch",
                "1",
                "--seq",
                "128Ki",
                "--json",
                *extra,
            ]
        )
        == 0
    )
    o = json.loads(capsys.readouterr().out)
    assert o["latency_s"] > 0
    if "decode" in extra:
        assert o["tpot_s"] == o["latency_s"]


def test_predict_table(capsys):
    assert (
        main(["predict", "--topology", "ib:2x8", "--batch", "128", "--seq", "100000", "--plan", "ring=16"])
        == 0
    )
    out = capsys.readouterr().out
    assert "feasible" in out and "NO" in out and "InfiniBand" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--plan", "ring=8", "--topology", "nvswitch:8", "--seq", "100001"], "not divisible by 16"),
        (["--plan", "tp=3", "--topology", "nvswitch:3"], "does not divide n_heads=32"),
        (["--plan", "ring=16", "--topology", "nvswitch:8"], "16 ranks, but topology nvswitch:8 has 8 GPUs"),
        (
            ["--hardware", "a100"],
            "--hardware 'a100' is not a known preset: valid are ['b200', 'gb200', 'h100-sxm', ",
        ),
        (
            ["--model", "llama"],
            "valid are ['llama3-405b', 'llama3-70b', 'llama3-8b', 'qwen2.5-72b', 'seed-dense']",
        ),
        (["--seq", "12x"], "--seq '12x' is not a count"),
        (["--topology", "torus:4"], "--topology 'torus:4' is not valid"),
        (["--set", "hardware.peak.hbm_TBps=-1"], "hardware.hbm_bw_Bps"),
    ],
)
def test_bad_input_one_sentence_exit_2(args, needle):
    r = _main("predict", *args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_command():
    r = _run("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_sweep_writes_csv_and_json(tmp_path):
    out = tmp_path / "s"
    r = _run(
        "sweep",
        "--seq",
        "8Ki:1Mi",
        "--points",
        "10",
        "--gpus",
        "8,16",
        "--plans",
        "ring=P",
        "tp=8,pp=P/8",
        "tp=P",
        "--topology",
        "ib",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert data["specs"]["plans"] == ["ring=P", "tp=8,pp=P/8", "tp=P"]
    # tp=16 on ib (two nodes): modelled, its all-reduces over InfiniBand; not skipped
    assert not any("tp=16" in s.get("plan", "") for s in data["skipped"]), data["skipped"]
    first = (out / "sweep.csv").read_text().splitlines()[0]
    assert first.startswith("# ") and json.loads(first[2:])["topology"] == "ib"
    assert data["points"] == 10 * 2 + 10 * 2 + 10 * 2 and "rows" not in data
    assert data["files"] == {"npz": "sweep.npz", "csv": "sweep.csv"}
    assert len((out / "sweep.csv").read_text().splitlines()) == 2 + data["points"]
    assert not list(out.glob(".*tmp"))  # written atomically: no temp files left


def test_sweep_unwritable_out(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = _run("sweep", "--out", str(f / "sub"), "--quiet")
    assert r.returncode == 2 and "cannot be created" in r.stderr
