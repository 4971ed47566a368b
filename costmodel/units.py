"""Units at the edges: parsing sequence lengths and sizes, formatting for humans.

Inside the code everything is SI (seconds, bytes, FLOP, bytes/s).
"""

from __future__ import annotations

import math
import re

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
