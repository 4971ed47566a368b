"""One configuration = hardware + topology + model + workload + plan + attention kernel.

The core takes a typed ``Config``; ``build_config`` makes one from a plain dict (the keys below,
values as a user writes them: ``seq="128Ki"``, ``plan="tp=8,pp=2"``), and ``load_config_toml`` from a
TOML file of the same keys.  The front doors (``ringsim``, ``real.run``) parse their arguments with the
shared grammar of ``options.py`` and convert them into that dict once; nothing here parses a command line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import presets, strategies
from .build import asdict_values
from .errors import SpecError
from .plan import DecodeAttn, Plan, PpSend, PrefillAttn, RingVariant, parse_plan
from .specs import AttnKernel, Hardware, Model, Phase, Workload
from .topology import Topology, parse_topology
from .units import parse_count


def parse_cached(v) -> int:
    """``--cached``: a count (plain, k, Ki, M, Mi) or 0."""
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            raise SpecError(f"--cached {v!r} is not valid: it must be a count >= 0")
        return v if v == 0 else parse_count(v, "--cached")
    if isinstance(v, str) and re.fullmatch(r"\s*0+\s*(k|Ki|M|Mi)?\s*", v, re.ASCII):
        return 0
    if isinstance(v, str) and v.strip().startswith("-"):
        raise SpecError(f"--cached {v!r} is not valid: it must be a count >= 0 (plain, k, Ki, M, Mi)")
    return parse_count(v, "--cached")


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Config:
    hardware: Hardware
    topology: Topology
    model: Model
    workload: Workload
    plan: Plan
    kernel: str = AttnKernel.AUTO.value
    overrides: tuple[str, ...] = ()  # the --set KIND.PATH=VALUE applied, in order
    derived: tuple[str, ...] = ()  # achievable figures those overrides bounded (presets.peak_rules)

    def specs(self) -> dict:
        return {
            "hardware": self.hardware.name,
            "hardware_provenance": dict(self.hardware.provenance),
            "topology": self.topology.to_dict(),
            "model": asdict_values(self.model),
            "workload": asdict_values(self.workload),
            "plan": self.plan.to_dict(self.workload.phase, self.kernel),
            "attn_kernel": self.kernel,
            "overrides": list(self.overrides),
            "overrides_derived": list(self.derived),
        }


# option -> (default, help); the one list both build_config and the command line read
OPTIONS: dict[str, tuple[Any, str]] = {
    "hardware": ("h100-sxm", "hardware preset or a profile .toml"),
    "topology": ("nvswitch:8", "nvswitch:N | ib:KxG | nvlink-domain:N"),
    "model": ("seed-dense", "model preset or a .toml"),
    "layers": (None, "override the model's layers"),
    "d_model": (None, "override the model's hidden size"),
    "heads": (None, "override the model's attention heads"),
    "kv_heads": (None, "override the model's KV heads"),
    "head_dim": (None, "override the model's head dimension"),
    "d_ff": (None, "override the model's MLP size"),
    "mlp": (None, "override the MLP kind (gelu | swiglu)"),
    "fp8": (
        None,
        "GEMMs in FP8 (e4m3, per-row scales): none | ffn (MLP only) | linear (QKV, O, MLP); "
        "default the model's (none)",
    ),
    "kv_dtype": (
        None,
        "KV cache stored and sent as bf16 | fp8 (attention dequantises on load); default the model's (bf16)",
    ),
    "batch": ("1", "batch size (sequences)"),
    "seq": ("8Ki", "sequence length (prompt): plain, k = x1000, Ki = x1024"),
    "phase": (Phase.PREFILL.value, "prefill | decode"),
    "context": (None, "decode: tokens in the KV cache (default: seq)"),
    "cached": (
        "0",
        "prefill: tokens per sequence already in the KV cache (prefix cache); --seq new tokens follow "
        "them (partial prefill); plain, k, Ki, M, Mi",
    ),
    "gen_tokens": (1, "decode: tokens generated per sequence"),
    "causal": (True, "causal attention (False: bidirectional)"),
    "plan": ("tp=8", "e.g. 'tp=8,pp=2', 'ring=16', 'tp=2,ring=4', 'ulysses=4'"),
    "microbatches": (None, "micro-batches per batch (pipeline)"),
    "chunks": (None, "prefill: chunks per sequence flowing through the pipeline (chunked prefill, TP x PP)"),
    "ring_variant": (RingVariant.ZIGZAG.value, "plain | zigzag | striped"),
    "decode_attn": (DecodeAttn.ALLGATHER.value, "pass-kv | pass-q | allgather"),
    "prefill_attn": (
        PrefillAttn.PASS_KV.value,
        "prefill ring: pass-kv (K/V blocks, cached ones included, travel) | pass-q (the new queries travel, "
        "partial outputs return by an all-to-all)",
    ),
    "pp_send": (
        PpSend.SCATTER.value,
        (
            "pipeline with TP in a stage: scatter (each TP rank sends 1/tp, the "
            "next stage all-gathers: Megatron) | full (every rank sends all)"
        ),
    ),
    "attn_kernel": (
        AttnKernel.AUTO.value,
        ("attention kernel of the profile: auto (the fastest for each call's shape) | flash | cudnn"),
    ),
    "set": ((), "overrides KIND.PATH=VALUE of any preset field, e.g. hardware.peak.hbm_TBps=4.0"),
}
_MODEL_FIELDS = {
    "layers": "layers",
    "d_model": "d_model",
    "heads": "n_heads",
    "kv_heads": "n_kv_heads",
    "head_dim": "head_dim",
    "d_ff": "d_ff",
    "mlp": "mlp",
    "fp8": "fp8",
    "kv_dtype": "kv_dtype",
}


_MODEL_CHOICES = {"fp8": ("none", "ffn", "linear"), "kv_dtype": ("bf16", "fp8")}


def _choice(v, key: str):
    """A categorical model override (``--fp8``, ``--kv-dtype``), checked against its values."""
    if v is None or key not in _MODEL_CHOICES:
        return v
    if v not in _MODEL_CHOICES[key]:
        flag = "--" + key.replace("_", "-")
        raise SpecError(f"{flag} {v!r} is not valid: choose one of {list(_MODEL_CHOICES[key])}")
    return v


def _int(v, field: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, str) and v.isascii() and v.strip().lstrip("+").isdigit():
            return int(v)
        raise SpecError(f"{field} {v!r} is not valid: it must be a positive integer")
    return v


def build_config(options: Mapping[str, Any]) -> Config:
    """A validated Config from a dict of the ``OPTIONS`` keys (missing keys take their defaults)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SpecError(f"configuration key {unknown[0]!r} is not valid: valid keys are {sorted(OPTIONS)}")
    o = {k: options.get(k, d) for k, (d, _) in OPTIONS.items()}
    o = {k: (OPTIONS[k][0] if v is None and OPTIONS[k][0] is not None else v) for k, v in o.items()}
    sets = [o["set"]] if isinstance(o["set"], str) else list(o["set"] or ())
    bad = [s for s in sets if not str(s).startswith(("hardware.", "model."))]
    if bad:
        raise SpecError(f"--set {bad[0]!r} is not valid: it must start with hardware. or model.")
    hw, derived = presets.load_hardware_noted(
        o["hardware"], [s.split(".", 1)[1] for s in sets if s.startswith("hardware.")]
    )
    fields = {
        f: _int(o[k], f"--{k.replace('_', '-')}")
        if k not in _MODEL_CHOICES and k != "mlp"
        else _choice(o[k], k)
        for k, f in _MODEL_FIELDS.items()
    }
    model = presets.load_model(
        o["model"], [s.split(".", 1)[1] for s in sets if s.startswith("model.")], **fields
    )
    if not isinstance(o["causal"], bool):
        raise SpecError(f"causal {o['causal']!r} is not valid: it must be true or false")
    gen = _int(o["gen_tokens"], "--gen-tokens")
    wl = Workload(
        batch=parse_count(o["batch"], "--batch"),
        seq_len=parse_count(o["seq"], "--seq"),
        phase=o["phase"],
        context_len=parse_count(o["context"], "--context") if o["context"] else 0,
        gen_tokens=gen,
        causal=o["causal"],
        cached_len=parse_cached(o["cached"]),
    )
    plan = parse_plan(
        o["plan"],
        microbatches=_int(o["microbatches"], "--microbatches"),
        ring_variant=o["ring_variant"],
        decode_attn=o["decode_attn"],
        pp_send=o["pp_send"],
        chunks=_int(o["chunks"], "--chunks"),
        prefill_attn=o["prefill_attn"],
    )
    topo = parse_topology(o["topology"])
    if o["attn_kernel"] not in [k.value for k in AttnKernel]:
        valid = [k.value for k in AttnKernel]
        raise SpecError(f"--attn-kernel {o['attn_kernel']!r} is not valid: choose one of {valid}")
    hw.attn_names(o["attn_kernel"])
    strategies.validate(plan, model, wl, topo)
    return Config(
        hardware=hw,
        topology=topo,
        model=model,
        workload=wl,
        plan=plan,
        kernel=o["attn_kernel"],
        overrides=tuple(str(s) for s in sets),
        derived=tuple(derived),
    )


def load_config_toml(path: str | Path) -> Config:
    """A Config from a TOML file of ``OPTIONS`` keys (e.g. ``plan = "ring=16"``, ``seq = "128Ki"``)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"configuration file {str(path)!r} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"configuration file {str(path)!r} is not valid TOML: {e}") from None
    return build_config(raw)


__all__ = ["Config", "OPTIONS", "build_config", "load_config_toml"]
