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


def test_run_time_data_is_package_data():
    """What the code reads beside its modules at run time ships in a plain (non-editable) install: the seed
    claims, the hardware/model presets and the stored measurements match pyproject's package-data, in
    packages that packages.find includes."""
    import fnmatch
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    include, data = cfg["packages"]["find"]["include"], cfg["package-data"]
    needed = [
        ROOT / "studies" / "seed_claims.toml",
        *sorted((ROOT / "costmodel" / "presets").glob("*/*.toml")),
        *sorted((ROOT / "validation" / "data").glob("*.jsonl")),
    ]
    assert len(needed) > 3
    for f in needed:
        rel = f.relative_to(ROOT)
        pkg, inside = rel.parts[0], "/".join(rel.parts[1:])
        assert any(fnmatch.fnmatch(pkg, pat) for pat in include), f"{pkg} is not in packages.find include"
        assert any(fnmatch.fnmatch(inside, pat) for pat in data.get(pkg, [])), f"{rel} is not package data"
