"""ringsim: when does Ring Attention with sequence parallelism beat tensor/pipeline parallelism?

The public API is small and wires the packages together:

>>> from ringsim import load_config, predict
>>> cfg = load_config(plan="ring=16", topology="nvlink-domain:16", batch=1, seq="128Ki")
>>> predict(cfg).latency_s  # doctest: +SKIP
"""

from __future__ import annotations

from costmodel.build import build_schedule
from costmodel.config import Config, build_config, load_config_toml
from costmodel.predict import predict


def __getattr__(name: str):
    """``__version__``, read when first asked (importlib.metadata costs some 30 ms at start-up)."""
    if name != "__version__":
        raise AttributeError(f"module 'ringsim' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:  # one source of the version: the installed package's metadata (pyproject.toml)
        v = version("ringsim")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        v = "unknown"
    globals()["__version__"] = v
    return v


__all__ = ["Config", "load_config", "load_config_toml", "predict", "build_schedule", "__version__"]


def load_config(**options) -> Config:
    """A Config from keyword options (``plan="tp=8,pp=2"``, ``seq="100k"``; see
    ``costmodel.config.OPTIONS``)."""
    return build_config(options)
