"""argparse types shared by the ``ringsim`` commands."""

from __future__ import annotations

import argparse
import re


def ascii_int(text: str) -> int:
    """An integer in ASCII digits: Python's ``int`` also reads Arabic-Indic or full-width digits
    ('٤', '８'), which a command line must not take as numbers (issue 17)."""
    if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}: use ASCII digits 0-9")
    return int(text)
