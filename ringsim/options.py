"""The configuration options of the command line (``ringsim predict/simulate/...`` and ``real.run``):
``costmodel.config.OPTIONS`` as argparse flags, turned back into the dict ``build_config`` takes."""

from __future__ import annotations

import argparse

from costmodel import presets
from costmodel.config import OPTIONS, Config, build_config
from costmodel.plan import DecodeAttn, PpSend, RingVariant
from costmodel.specs import AttnKernel, Phase

_CHOICES = {
    "phase": [p.value for p in Phase],
    "ring_variant": [v.value for v in RingVariant],
    "decode_attn": [v.value for v in DecodeAttn],
    "attn_kernel": [k.value for k in AttnKernel],
    "mlp": ["gelu", "swiglu"],
    "pp_send": [v.value for v in PpSend],
}


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    for key, (default, help_) in OPTIONS.items():
        if key == "causal":
            g.add_argument(
                "--no-causal", action="store_true", help="bidirectional attention (default causal)"
            )
            continue
        if key == "set":
            g.add_argument("--set", action="append", default=[], metavar="KIND.PATH=VALUE", help=help_)
            continue
        flag = "--" + key.replace("_", "-")
        extra = ""
        if key == "hardware":
            extra = f" {presets.available('hardware')}"
        elif key == "model":
            extra = f" {presets.available('model')}"
        kw = {"choices": _CHOICES[key]} if key in _CHOICES else {}
        g.add_argument(
            flag,
            dest=key,
            default=default,
            help=f"{help_}{extra}" + (f" (default {default})" if default not in (None, ()) else ""),
            **kw,
        )


def options_from_args(a: argparse.Namespace) -> dict:
    out = {k: getattr(a, k) for k in OPTIONS if k not in ("causal",) and hasattr(a, k)}
    out["causal"] = not getattr(a, "no_causal", False)
    return out


def config_from_args(a: argparse.Namespace) -> Config:
    return build_config(options_from_args(a))


__all__ = ["add_config_arguments", "config_from_args", "options_from_args"]
