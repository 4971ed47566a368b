"""The option grammar every front door shares (``ringsim predict/simulate/...``, ``real.run``,
``validation``): ``config.OPTIONS`` as flags on a parser the caller made, and the parsed flags turned back
into the dict ``build_config`` takes.  The core itself takes a ``Config`` and never parses a command line
(this module imports no argparse: it is handed a parser)."""

from __future__ import annotations

from . import presets
from .config import OPTIONS, Config, build_config
from .plan import DecodeAttn, PpSend, PrefillAttn, RingVariant
from .specs import AttnKernel, Phase

_CHOICES = {
    "phase": [p.value for p in Phase],
    "ring_variant": [v.value for v in RingVariant],
    "decode_attn": [v.value for v in DecodeAttn],
    "prefill_attn": [v.value for v in PrefillAttn],
    "attn_kernel": [k.value for k in AttnKernel],
    "mlp": ["gelu", "swiglu"],
    "fp8": ["none", "ffn", "linear"],
    "kv_dtype": ["bf16", "fp8"],
    "pp_send": [v.value for v in PpSend],
}


def add_config_arguments(p) -> None:
    """Add the configuration flags to ``p`` (an ``argparse.ArgumentParser``)."""
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


def options_from_args(a) -> dict:
    out = {k: getattr(a, k) for k in OPTIONS if k not in ("causal",) and hasattr(a, k)}
    out["causal"] = not getattr(a, "no_causal", False)
    return out


def config_from_args(a) -> Config:
    return build_config(options_from_args(a))


__all__ = ["add_config_arguments", "config_from_args", "options_from_args"]
