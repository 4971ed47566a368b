"""The command line as a user first meets it: --help, --version, grids that hold their ends, empty results."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

from ringsim.cli import COMMANDS, main


def _run(*args):
    """``python -m ringsim ARGS`` as a process: the entry point and the installed package's metadata."""
    return subprocess.run(
        [sys.executable, "-m", "ringsim", *args], check=False, capture_output=True, text=True, timeout=300
    )


def _main(*args):
    """``ringsim ARGS`` in this process (what ``python -m ringsim`` runs: ``cli.main``), its exit code and
    output captured as a subprocess's would be; the process starts in the tests above and in test_cli.py."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except SystemExit as e:  # argparse's usage errors
            rc = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


def test_version_comes_from_the_package_metadata():
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"ringsim {version('ringsim')}"


def test_help_is_a_summary_with_every_command_and_an_example(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, line) in COMMANDS.items():
        assert f"  {name}" in out and line in out  # one line each, not argparse's wrapped columns
    assert "example:" in out and "ringsim predict" in out
    assert "Ki = x1024" in out and "M = x1,000,000" in out
    assert "wiring only" not in out  # not the module docstring


def test_sweep_grid_starts_and_ends_where_asked(tmp_path):
    r = _main(
        "sweep", "--seq", "8Ki:1Mi", "--points", "6", "--gpus", "8,16", "--out", str(tmp_path), "--quiet"
    )
    assert r.returncode == 0, r.stderr
    import numpy as np

    L = np.load(tmp_path / "sweep.npz")["L"]
    assert L.min() == 8192 and L.max() == 2**20
    r = _main("sweep", "--seq", "8k:1M", "--gpus", "64", "--out", str(tmp_path / "x"), "--quiet")
    assert r.returncode == 2 and "is not a multiple of" in r.stderr and "8Ki" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_best_with_nothing_that_fits_is_an_error_with_the_reason():
    r = _main("best", "--gpus", "16", "--topology", "ib:2x8", "--seq", "1Mi", "--batch", "128")
    assert r.returncode == 2
    assert "no plan fits in memory: the smallest" in r.stderr and "GB of 85.5 GB" in r.stderr
    r = _main("best", "--gpus", "16", "--topology", "ib:2x8", "--seq", "1Mi", "--batch", "128", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["ranked"] == []


def test_sweep_where_nothing_fits_is_an_error_and_writes_nothing(tmp_path):
    out = tmp_path / "s"
    r = _main("sweep", "--batch", "1024", "--seq", "512Ki:1Mi", "--gpus", "8", "--out", str(out), "--quiet")
    assert r.returncode == 2 and "no point of the sweep fits in memory: the smallest" in r.stderr
    assert "GB of 85.5 GB per device" in r.stderr and not out.exists()
