"""Links and paths stay inside the repository: no tracked text file points into the project's shared
folder beside it (a fresh clone or an installed wheel has no such folder)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_no_tracked_file_points_into_shared():
    """Links and paths stay inside the repository: nothing names the shared folder beside it."""
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip("not a git checkout: no tracked files to read")
    files = r.stdout
    hits = []
    for rel in files.decode().split("\0"):
        p = ROOT / rel
        if not rel or not p.is_file():
            continue
        data = p.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        needle = b"../" + b"shared"  # spelled in two pieces so this file does not match itself
        hits += [f"{rel}:{i + 1}" for i, line in enumerate(data.splitlines()) if needle in line]
    assert not hits, hits
