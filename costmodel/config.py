"""One configuration = hardware + topology + model + workload + plan + attention kernel.

The command-line options that describe it live here (not in ``ringsim/``) so that every front door
(``ringsim predict``, ``ringsim simulate``, ``torchrun -m real.run``) takes exactly the same ones.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from . import presets
from .errors import SpecError
from .plan import DecodeAttn, Plan, RingVariant, parse_plan, validate
from .specs import AttnKernel, Hardware, Model, Phase, Workload
from .topology import Topology, parse_topology
from .units import parse_count


@dataclass(frozen=True)
class Config:
    hardware: Hardware
    topology: Topology
    model: Model
    workload: Workload
    plan: Plan
    kernel: str = "flash"

    def specs(self) -> dict:
        from .build import _asdict
        return {"hardware": self.hardware.name, "hardware_provenance": dict(self.hardware.provenance),
                "topology": self.topology.to_dict(), "model": _asdict(self.model),
                "workload": _asdict(self.workload), "plan": self.plan.to_dict(), "attn_kernel": self.kernel}


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--hardware", default="h100-sxm",
                   help=f"hardware preset {presets.available('hardware')} or a profile .toml (default h100-sxm)")
    g.add_argument("--topology", default="nvswitch:8", help="nvswitch:N | ib:KxG | nvlink-domain:N (default nvswitch:8)")
    g.add_argument("--model", default="seed-dense", help=f"model preset {presets.available('model')} or a .toml")
    for f, h in (("layers", "layers"), ("d-model", "hidden size"), ("heads", "attention heads"),
                 ("kv-heads", "KV heads"), ("head-dim", "head dimension"), ("d-ff", "MLP size")):
        g.add_argument(f"--{f}", type=int, default=None, help=f"override the model's {h}")
    g.add_argument("--mlp", choices=["gelu", "swiglu"], default=None, help="override the MLP kind")
    g.add_argument("--batch", default="1", help="batch size (sequences)")
    g.add_argument("--seq", default="8Ki", help="sequence length (prompt): plain, k = x1000, Ki = x1024")
    g.add_argument("--phase", default="prefill", choices=[ph.value for ph in Phase])
    g.add_argument("--context", default=None, help="decode: tokens in the KV cache (default: --seq)")
    g.add_argument("--gen-tokens", type=int, default=1, help="decode: tokens generated per sequence")
    g.add_argument("--no-causal", action="store_true", help="bidirectional attention (default causal)")
    g.add_argument("--plan", default="tp=8", help="e.g. 'tp=8,pp=2', 'ring=16', 'tp=2,ring=4', 'ulysses=4'")
    g.add_argument("--microbatches", type=int, default=None, help="micro-batches per batch (pipeline)")
    g.add_argument("--ring-variant", default=RingVariant.ZIGZAG.value, choices=[v.value for v in RingVariant])
    g.add_argument("--decode-attn", default=DecodeAttn.ALLGATHER.value, choices=[v.value for v in DecodeAttn])
    g.add_argument("--attn-kernel", default=AttnKernel.FLASH.value, choices=[k.value for k in AttnKernel])
    g.add_argument("--set", action="append", default=[], metavar="KIND.PATH=VALUE",
                   help="override any preset field, e.g. hardware.peak.hbm_TBps=4.0 or model.vocab=128256")


def config_from_args(a: argparse.Namespace) -> Config:
    hw_over = [s.split(".", 1)[1] for s in a.set if s.startswith("hardware.")]
    model_over = [s.split(".", 1)[1] for s in a.set if s.startswith("model.")]
    bad = [s for s in a.set if not s.startswith(("hardware.", "model."))]
    if bad:
        raise SpecError(f"--set {bad[0]!r} is not valid: it must start with hardware. or model.")
    hw = presets.load_hardware(a.hardware, hw_over)
    model = presets.load_model(a.model, model_over, layers=a.layers, d_model=a.d_model, n_heads=a.heads,
                               n_kv_heads=a.kv_heads, head_dim=a.head_dim, d_ff=a.d_ff, mlp=a.mlp)
    wl = Workload(batch=parse_count(a.batch, "--batch"), seq_len=parse_count(a.seq, "--seq"), phase=a.phase,
                  context_len=parse_count(a.context, "--context") if a.context else 0,
                  gen_tokens=a.gen_tokens, causal=not a.no_causal)
    plan = parse_plan(a.plan, microbatches=a.microbatches, ring_variant=a.ring_variant, decode_attn=a.decode_attn)
    topo = parse_topology(a.topology)
    hw.attn(a.attn_kernel)
    validate(plan, model, wl, topo)
    return Config(hardware=hw, topology=topo, model=model, workload=wl, plan=plan, kernel=a.attn_kernel)
