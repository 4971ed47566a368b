"""Units at the edges: parsing sequence lengths and sizes, formatting for humans.

Inside the code everything is SI (seconds, bytes, FLOP, bytes/s).  Counts (lengths, batches) have one
meaning everywhere, on the command line, in tables and on plot axes: ``k`` = x1000 and ``M`` =
x1,000,000 (decimal), ``Ki`` = x1024 and ``Mi`` = x1,048,576 (binary).  ``fmt_length`` writes a
count back in the same grammar, so what a figure prints can be typed on the command line.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .errors import SpecError

_SEQ = re.compile(
    r"^\s*([0-9]+)\s*(k|Ki|M|Mi)?\s*$", re.ASCII
)  # ASCII digits only: int() would take any script's
_MULT = {None: 1, "k": 1000, "Ki": 1024, "M": 1_000_000, "Mi": 1024 * 1024}


MAX_COUNT = 2**50  # beyond any length or batch a model runs, and exact in float64 (the closed forms' arrays)


def parse_count(text: str | int, field: str = "--seq") -> int:
    """Parse ``100000``, ``100k`` (x1000), ``128Ki`` (x1024), ``1M`` or ``1Mi``.  Never guesses."""
    if isinstance(text, int) and not isinstance(text, bool):
        m, value = None, text
    else:
        m = _SEQ.match(str(text))
    if m is None and not (isinstance(text, int) and not isinstance(text, bool)):
        raise SpecError(
            f"{field} {text!r} is not a count: use a plain integer in ASCII digits 0-9, "
            f"k (x1000), Ki (x1024), M or Mi, "
            f"e.g. 100k or 128Ki"
        )
    if m is not None:
        value = int(m.group(1)) * _MULT[m.group(2)]
    if value <= 0:
        raise SpecError(f"{field} {text!r} must be a positive count")
    if value > MAX_COUNT:
        raise SpecError(f"{field} {text!r} is too large: counts go up to 2**50 ({MAX_COUNT:,})")
    return value


def parse_range(text: str, field: str = "--seq") -> tuple[int, int]:
    """Parse ``8k:1M`` into (8000, 1000000)."""
    parts = str(text).split(":")
    if len(parts) != 2:
        raise SpecError(f"{field} {text!r} is not a range: use START:END, e.g. 8k:1M")
    lo, hi = (parse_count(p, field) for p in parts)
    if lo > hi:
        raise SpecError(f"{field} {text!r}: START must not exceed END")
    return lo, hi


def length_grid(lo: int, hi: int, points: int, multiple: int = 1, field: str = "--seq") -> np.ndarray:
    """Geometric grid of ``points`` lengths from ``lo`` to ``hi``, both ends exactly, each inner length
    rounded to the nearest multiple of ``multiple`` (what every plan of a sweep can split), unique.

    An end that is not a multiple is refused with the two nearest that are: a grid that silently
    started at 7,936 when asked for 8k answered a question that was not asked."""
    for name, v in (("START", lo), ("END", hi)):
        if v % multiple:
            down, up = v // multiple * multiple, (v // multiple + 1) * multiple
            near = f"{fmt_length(down)} or {fmt_length(up)}" if down else fmt_length(up)
            raise SpecError(
                f"{field} {name} {fmt_length(v)} ({v:,}) is not a multiple of {multiple}, the length "
                f"every plan of this sweep can split: use {near} (powers of two such as 8Ki:1Mi always are)"
            )
    if points < 1:
        raise SpecError(f"--points {points} must be >= 1")
    raw = np.geomspace(lo, hi, max(points, 1 if lo == hi else 2))
    g = np.round(raw / multiple).astype(np.int64) * multiple
    g[0], g[-1] = lo, hi
    return np.unique(np.clip(g, lo, hi))


def fmt_length(n: float) -> str:
    """A count in the command line's grammar, exact: ``131072`` -> ``128Ki``, ``1048576`` -> ``1Mi``,
    ``100000`` -> ``100k``, ``2000000`` -> ``2M``; otherwise the integer with thousands separators."""
    n = int(n)
    for unit, size in (("Mi", 2**20), ("Ki", 2**10), ("M", 10**6), ("k", 10**3)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


def fmt_length_short(n: float) -> str:
    """A count for a tick or annotation, at most ~4 characters of number: exact where ``fmt_length`` is
    short, else rounded in binary units (``~291Ki``) above 1Ki."""
    exact = fmt_length(n)
    if len(exact) <= 6 or n < 1024:
        return exact
    for unit, size in (("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            return f"~{n / size:.3g}{unit}"
    return exact


def fmt_bytes(n: float) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} B"


def fmt_seconds(t: float) -> str:
    if math.isnan(t):
        return "n/a"
    for unit, size in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(t) >= size:
            return f"{t / size:.4g} {unit}"
    return f"{t * 1e9:.3g} ns"


def fmt_count(n: float) -> str:
    for unit, size in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.4g}{unit}"
    return f"{n:.4g}"
