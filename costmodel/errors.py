"""The two kinds of error ringsim knows (DESIGN.md, house style).

* ``SpecError`` (a ``ValueError``): malformed input.  The command line turns it into one
  sentence and exit code 2.
* ``Infeasible``: a valid configuration that cannot run (does not fit, does not divide the
  way a layout needs at run time).  Sweeps count these; ``predict`` reports them as a result.
"""
from __future__ import annotations


class SpecError(ValueError):
    """Malformed input: names the field, the value and what would be valid."""


class Infeasible(Exception):
    """A valid configuration that cannot be executed (reported as ``feasible: false``)."""


def check(cond: bool, field: str, value: object, valid: str) -> None:
    """Raise ``SpecError`` unless ``cond``; the message names field, value and the valid range."""
    if not cond:
        raise SpecError(f"{field}={value!r} is not valid: {valid}")
