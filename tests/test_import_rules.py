"""The import direction of the packages, read from the source (AST), so it needs neither torch nor simpy:

* ``costmodel`` imports none of the others and no torch, simpy, matplotlib or command-line parsing;
* ``sim`` never imports ``real`` or torch; ``real`` never imports ``sim`` or simpy;
* ``plots`` reads results files and draws: no model engine (analytic, build, predict, sweep, search), no
  ``sim``, ``real``, ``validation``, ``studies`` or torch; light ``costmodel`` helpers (units, results,
  errors) only;
* ``studies`` runs the engines and may import anything but ``real`` and torch.

Every import counts, at module level or inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "costmodel": (
        "sim",
        "real",
        "validation",
        "plots",
        "ringsim",
        "studies",
        "torch",
        "simpy",
        "matplotlib",
        "tqdm",
    ),
    "sim": ("real", "torch"),
    "real": ("sim", "simpy", "ringsim", "validation", "plots", "studies"),
    "plots": (
        "costmodel.analytic",
        "costmodel.build",
        "costmodel.predict",
        "costmodel.sweep",
        "costmodel.search",
        "sim",
        "real",
        "validation",
        "torch",
        "studies",
    ),
    "studies": ("real", "torch"),
}


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    if not path.is_relative_to(ROOT):
        return path.stem  # a file outside the repository (the checker's own test): a top-level module
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module an import statement of ``path`` may load: ``import a.b`` -> a.b; ``from a import b`` ->
    a and a.b (b may be a submodule); relative imports resolved against the module's package."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if a.name != "*")
    return out


def breaches(path: Path, forbidden) -> list[str]:
    return sorted(n for n in imported_names(path) for f in forbidden if n == f or n.startswith(f + "."))


CASES = [(pkg, p) for pkg in FORBIDDEN for p in modules(pkg)]


def test_every_package_has_modules():
    for pkg in FORBIDDEN:
        assert modules(pkg), pkg


@pytest.mark.parametrize("package,path", CASES, ids=[str(p.relative_to(ROOT)) for _, p in CASES])
def test_import_direction(package, path):
    bad = breaches(path, FORBIDDEN[package])
    assert not bad, f"{path.relative_to(ROOT)} ({package}) imports {bad}"


def test_costmodel_knows_no_command_line():
    bad = {str(p.relative_to(ROOT)): breaches(p, ("argparse",)) for p in modules("costmodel")}
    assert not {k: v for k, v in bad.items() if v}


def test_the_checker_sees_relative_and_nested_imports(tmp_path):
    pkg = ROOT / "plots"
    probe = pkg / "style.py"  # a real module: its package resolves relative imports
    names = imported_names(probe)
    assert "matplotlib.pyplot" in names and "costmodel.results" in names
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from costmodel.sweep import run_sweep\n    import torch.nn\n")
    got = imported_names(src)
    assert {"costmodel.sweep", "costmodel.sweep.run_sweep", "torch.nn"} <= got
    assert breaches(src, FORBIDDEN["plots"]) == ["costmodel.sweep", "costmodel.sweep.run_sweep", "torch.nn"]


def test_plots_loads_no_engine_at_run_time():
    """Transitively too: importing every plots module loads no engine, simulator, validation or torch."""
    mods = ", ".join(module_name(p) for p in modules("plots"))
    code = (
        f"import sys, {mods}\n"
        f"bad = sorted(m for m in sys.modules for f in {FORBIDDEN['plots']!r}\n"
        "             if m == f or m.startswith(f + '.'))\n"
        "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120, cwd=ROOT
    )
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
