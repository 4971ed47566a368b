"""ringsim: when does Ring Attention with sequence parallelism beat tensor/pipeline parallelism?

The public API is small and wires the packages together:

>>> from ringsim import load_config, predict
>>> cfg = load_config(plan="ring=16", topology="nvlink-domain:16", batch=1, seq="128Ki")
>>> predict(cfg).latency_s  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from costmodel.config import Config

# the API's names, imported when first asked: ``python -m ringsim sweep`` then loads only what its
# command needs (costmodel.predict and its fast path: some 40 ms of start-up a command that does not use them)
_LAZY = {
    "build_schedule": "costmodel.build",
    "Config": "costmodel.config",
    "load_config_toml": "costmodel.config",
    "predict": "costmodel.predict",
}


def __getattr__(name: str):
    """The API's names (``_LAZY``) and ``__version__``, read when first asked (importlib.metadata costs
    some 30 ms at start-up)."""
    if name in _LAZY:
        v = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = v
        return v
    if name != "__version__":
        raise AttributeError(f"module 'ringsim' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:  # one source of the version: the installed package's metadata (pyproject.toml)
        v = version("ringsim")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        v = "unknown"
    globals()["__version__"] = v
    return v


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["Config", "load_config", "load_config_toml", "predict", "build_schedule", "__version__"]


def load_config(**options) -> Config:
    """A Config from keyword options (``plan="tp=8,pp=2"``, ``seq="100k"``; see
    ``costmodel.config.OPTIONS``)."""
    from costmodel.config import build_config

    return build_config(options)
