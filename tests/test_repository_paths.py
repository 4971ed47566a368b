"""Links and paths stay inside the repository: no tracked text file points into the project's shared
folder beside it (a fresh clone or an installed wheel has no such folder)."""

from __future__ import annotations

import re
import subprocess
import sys
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


_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|(?:src|href)=\"([^\"]+)\"")


def links_leaving(md: Path, inside: Path) -> list[str]:
    """Links of a Markdown file that leave ``inside`` or name nothing: absolute paths, ``file:`` URLs,
    ``..`` past the top, or a relative target that does not exist.  Web URLs and anchors are fine."""
    bad = []
    for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
        for m in _LINK.finditer(line):
            target = (m.group(1) or m.group(2)).split("#")[0]
            if not target or re.match(r"^(https?|mailto):", target):
                continue
            where = f"{md.name}:{n}: {target}"
            if target.startswith(("/", "file:", "~")) or re.match(r"^[A-Za-z]:[\\/]", target):
                bad.append(where + " (absolute)")
                continue
            p = (md.parent / target).resolve()
            if not p.is_relative_to(inside.resolve()):
                bad.append(where + " (outside)")
            elif not p.exists():
                bad.append(where + " (missing)")
    return bad


def test_links_checker_finds_what_leaves(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    md = tmp_path / "R.md"
    md.write_text(
        "[ok](a.png) [web](https://x.org/y) [anchor](#z) ![up](../x.png) [abs](/etc/passwd) [gone](b.md)\n"
        '<img src="a.png"> <a href="file:///tmp/x">x</a>\n'
    )
    assert [b.split(": ", 1)[1] for b in links_leaving(md, tmp_path)] == [
        "../x.png (outside)",
        "/etc/passwd (absolute)",
        "b.md (missing)",
        "file:///tmp/x (absolute)",
    ]


def test_repository_docs_link_only_inside_the_repository():
    docs = [ROOT / "README.md", *sorted(ROOT.glob("docs/**/*.md")), *sorted(ROOT.glob("*/README.md"))]
    docs += sorted((ROOT / "validation" / "data").glob("**/README.md"))
    assert len(docs) >= 3
    bad = [b for d in docs for b in links_leaving(d, ROOT)]
    assert not bad, bad


def test_generated_reports_link_only_inside_their_folder(reproduced):
    """REPORT.md (and any other page reproduce writes: the question's too) links only to files in its
    output folder (the session's small reproduce run, conftest.py)."""
    out, _ = reproduced
    pages = sorted(out.glob("**/*.md"))
    assert any(p.name == "REPORT.md" for p in pages)
    bad = [b for p in pages for b in links_leaving(p, out)]
    assert not bad, bad


def _package_data_files() -> list[str]:
    """Tracked files inside the packages that are not Python (what the code opens beside its modules)."""
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip("not a git checkout: no tracked files to read")
    pkgs = ("costmodel", "sim", "real", "validation", "plots", "studies", "ringsim")
    return [
        f
        for f in r.stdout.decode().split("\0")
        if f.split("/")[0] in pkgs and not f.endswith(".py") and (ROOT / f).is_file()
    ]


def test_every_data_file_ships_in_the_wheel(tmp_path):
    """Build the wheel as ``pip install .`` would and check that every tracked non-Python file of the
    packages (presets, seed claims, stored measurements, calibration raw files validate reads, experiment
    files) is in it, and that the code's data folders point at folders the wheel holds."""
    import zipfile

    wanted = _package_data_files()
    assert any(f.startswith("validation/data/calibration/") for f in wanted)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not available to build the wheel")
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    missing = [f for f in wanted if f not in names]
    assert not missing, f"tracked data files not in the wheel (pyproject package-data): {missing}"
    from costmodel.presets import PRESET_DIR
    from studies.seed import CLAIMS_FILE
    from validation.stored import DATA_DIR

    for p in (PRESET_DIR, DATA_DIR, CLAIMS_FILE):
        rel = Path(p).resolve().relative_to(ROOT).as_posix()
        assert any(n == rel or n.startswith(rel + "/") for n in names), rel
