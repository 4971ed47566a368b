"""Errors.  ``SpecError`` (a ``ValueError``) is malformed input: the command line turns it into one
sentence and exit code 2.  A valid configuration that does not fit is not an error but a result
(``feasible: false`` with the reason and what would fit)."""

from __future__ import annotations


class SpecError(ValueError):
    """Malformed input: names the field, the value and what would be valid."""


def check(cond: bool, field: str, value: object, valid: str) -> None:
    """Raise ``SpecError`` unless ``cond``; the message names field, value and the valid range."""
    if not cond:
        raise SpecError(f"{field}={value!r} is not valid: {valid}")
