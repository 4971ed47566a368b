"""ringsim presets: the model and hardware presets and the topology forms, one line each, with their
key figures and where they come from (``--json`` for one object)."""

from __future__ import annotations

import argparse
import json

from costmodel import presets
from costmodel.errors import SpecError
from costmodel.topology import FORMS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")


def _short(text: str, n: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _model(name: str) -> dict:
    m = presets.load_model(name)
    return {
        "name": name,
        "layers": m.layers,
        "d_model": m.d_model,
        "n_heads": m.n_heads,
        "n_kv_heads": m.n_kv_heads,
        "head_dim": m.head_dim,
        "d_ff": m.d_ff,
        "mlp": m.mlp.value,
        "vocab": m.vocab,
        "params": m.params(),
        "kv_bytes_per_token": m.kv_bytes_per_token(),
        "rope_theta": m.rope_theta,
        "tie_embeddings": m.tie_embeddings,
        "qkv_bias": m.qkv_bias,
        "source": m.source,
    }


def _hardware(name: str) -> dict:
    hw = presets.load_hardware(name)
    prov = dict(hw.provenance)
    return {
        "name": name,
        "bf16_TFLOPs": hw.peak_flops / 1e12,
        "fp8_TFLOPs": hw.peak_fp8_flops / 1e12 or None,
        "hbm_GiB": hw.hbm_capacity_bytes / 2**30,
        "hbm_TBps": hw.hbm_bw_Bps / 1e12,
        "nvlink_GBps_per_direction": hw.nvlink_bw_Bps / 1e9,
        "nic_Gbps": hw.nic_bw_Bps * 8 / 1e9,
        "provenance": {k: prov[k] for k in ("kind", "gpu", "date") if k in prov},
    }


def _collect() -> dict:
    out: dict = {"models": [], "hardware": [], "topologies": [], "errors": []}
    for kind, one in (("models", _model), ("hardware", _hardware)):
        for name in presets.available("model" if kind == "models" else "hardware"):
            try:
                out[kind].append(one(name))
            except SpecError as e:
                out["errors"].append({"kind": kind, "name": name, "error": str(e)})
    out["topologies"] = [{"form": f, "description": d} for f, d in FORMS.items()]
    return out


def _model_line(m: dict) -> str:
    heads = f"{m['n_heads']}/{m['n_kv_heads']} heads (q/kv) x {m['head_dim']}"
    vocab = f"vocab {m['vocab']}" if m["vocab"] else "no vocab"
    src = _short(m["source"]) if m["source"] else "(no source given)"
    return (
        f"  {m['name']:14} {m['layers']:>4} layers  d_model {m['d_model']:>5}  {heads:26} "
        f"d_ff {m['d_ff']:>5} "
        f"{m['mlp']:6} {vocab:12} {m['params'] / 1e9:7.2f}B params  {src}"
    )


def _hardware_line(h: dict) -> str:
    fp8 = f"FP8 {h['fp8_TFLOPs']:.0f}" if h["fp8_TFLOPs"] else "FP8 -"
    p = h["provenance"]
    prov = " ".join(str(p[k]) for k in ("kind", "gpu") if k in p) + (
        f" ({str(p['date'])[:10]})" if "date" in p else ""
    )
    return (
        f"  {h['name']:20} BF16 {h['bf16_TFLOPs']:6.0f}  {fp8:9} TFLOP/s dense  HBM {h['hbm_GiB']:5.1f} GiB "
        f"@ {h['hbm_TBps']:.2f} TB/s  NVLink {h['nvlink_GBps_per_direction']:4.0f} GB/s/dir  "
        f"NIC {h['nic_Gbps']:.0f} Gb/s  {_short(prov, 60)}"
    )


def run(a: argparse.Namespace) -> int:
    out = _collect()
    if a.json:
        print(json.dumps(out, indent=2))
        return 1 if out["errors"] else 0
    print(f"models ({len(out['models'])}; --model NAME or --model path/to/model.toml):")
    for m in out["models"]:
        print(_model_line(m))
    print(f"hardware ({len(out['hardware'])}; --hardware NAME or --hardware path/to/profile.toml):")
    for h in out["hardware"]:
        print(_hardware_line(h))
    print("topologies (--topology FORM):")
    for t in out["topologies"]:
        print(f"  {t['form']:16} {t['description']}")
    for e in out["errors"]:
        print(f"  could not load {e['kind']} preset {e['name']}: {e['error']}")
    print("templates and a worked example of your own preset: docs/PRESETS.md")
    return 1 if out["errors"] else 0
