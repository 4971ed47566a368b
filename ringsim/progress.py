"""Progress bars for commands that take more than a couple of seconds: tqdm on stderr, shown only when
stderr is a terminal (``disable=None``), so pipes, logs and tests see nothing."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(iterable=None, *, desc: str, unit: str, total: int | None = None, quiet: bool = False, file=None):
    """A tqdm bar named ``desc`` counting ``unit``s; silent when ``quiet`` or ``file`` (default stderr) is
    not a terminal.  Use as an iterable wrapper or, without one, with ``.update()`` and ``.close()``."""
    return tqdm(
        iterable,
        desc=desc,
        unit=unit,
        total=total,
        file=file or sys.stderr,
        disable=True if quiet else None,
        leave=False,
        dynamic_ncols=True,
    )


__all__ = ["bar"]
