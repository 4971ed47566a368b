"""Where the committed measurements live: ``validation/data/`` inside the installed package (package data,
so a plain ``pip install .`` carries them too), found from this file rather than the working directory."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
ROOT = DATA_DIR.parent.parent  # the folder holding the validation package: the repository or site-packages


def measurement_files() -> list[Path]:
    """The stored measurement files (``validation/data/*.jsonl``), sorted."""
    return sorted(DATA_DIR.glob("*.jsonl"))


def package_relative(path: str | Path) -> str:
    """``validation/data/NAME`` for a stored file (the same wherever the package is installed)."""
    return Path(path).resolve().relative_to(ROOT).as_posix()


def shown(path: str | Path) -> str:
    """A path as a user should read it: relative to the working directory when under it, else absolute."""
    p = Path(path).resolve()
    try:
        return os.path.relpath(p) if p.is_relative_to(Path.cwd()) else str(p)
    except ValueError:
        return str(p)
