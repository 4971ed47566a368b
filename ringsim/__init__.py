"""ringsim: when does Ring Attention with sequence parallelism beat tensor/pipeline parallelism?

The public API is small and wires the packages together:

>>> from ringsim import load_config, predict
>>> cfg = load_config(plan="ring=16", topology="nvlink-domain:16", batch=1, seq="128Ki")
>>> predict(cfg)["latency_s"]  # doctest: +SKIP
"""
from __future__ import annotations

import argparse

from costmodel.build import build_schedule
from costmodel.config import Config, add_config_arguments, config_from_args
from costmodel.predict import predict

__all__ = ["Config", "load_config", "predict", "build_schedule"]


def load_config(**options) -> Config:
    """A Config from keyword options named as the command line's (``plan="tp=8,pp=2"``, ``seq="100k"``)."""
    p = argparse.ArgumentParser(add_help=False)
    add_config_arguments(p)
    argv = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif isinstance(v, (list, tuple)):
            for item in v:
                argv += [flag, str(item)]
        elif v is not None and v is not False:
            argv += [flag, str(v)]
    return config_from_args(p.parse_args(argv))
