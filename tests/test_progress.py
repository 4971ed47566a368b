"""Progress bars: on stderr when it is a terminal, silent when it is not (pipes, logs, tests)."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import subprocess
import sys
import termios

import pytest

from ringsim.progress import bar


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_bar_shows_on_a_terminal_only():
    tty, pipe = _Tty(), io.StringIO()
    assert list(bar(range(3), desc="x", unit="y", file=tty)) == [0, 1, 2]
    assert list(bar(range(3), desc="x", unit="y", file=pipe)) == [0, 1, 2]
    assert "x:" in tty.getvalue() and "/3 " in tty.getvalue()
    assert pipe.getvalue() == ""
    quiet = _Tty()
    list(bar(range(3), desc="x", unit="y", file=quiet, quiet=True))
    assert quiet.getvalue() == ""


def _sweep(tmp_path):
    """A small sweep's results file to plot, made in this process (``ringsim sweep``: ``cli.main``)."""
    from ringsim.cli import main

    out = tmp_path / "s"
    assert main(["sweep", "--points", "4", "--gpus", "8", "--out", str(out), "--quiet"]) == 0
    return out / "sweep.npz"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_plot_and_validate_show_progress_on_a_terminal_and_not_in_a_pipe(tmp_path):
    npz = _sweep(tmp_path)
    cmds = [
        ["plot", str(npz), "--out", str(tmp_path / "f")],
        ["validate", "--no-sim", "validation/data/h200x2_real_prefill_unseen2_20261128.jsonl"],
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for cmd in cmds:
        piped = subprocess.run(
            [sys.executable, "-m", "ringsim", *cmd], capture_output=True, text=True, timeout=300, cwd=root
        )
        assert piped.returncode == 0, piped.stderr
        assert "\r" not in piped.stderr and "it/s" not in piped.stderr and "/s]" not in piped.stderr
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a terminal 100 wide
        try:
            r = subprocess.run(
                [sys.executable, "-m", "ringsim", *cmd],
                stdout=subprocess.DEVNULL,
                stderr=slave,
                timeout=300,
                cwd=root,
            )
            os.close(slave)
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(master)
        assert r.returncode == 0
        assert f"{cmd[0]}:".encode() in seen, seen[-300:]
