"""Presets: TOML files under ``costmodel/presets/<kind>/<name>.toml`` turned into specs.

Loading is strict: unknown and missing keys are reported by name.  Units in the file carry their
names (``hbm_TBps``, ``launch_us``) and are converted to SI once, here.  Overrides use dotted paths
into the file (``peak.hbm_TBps=4.0``) and are applied before validation, so every field can be set
from the command line.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

from .errors import SpecError
from .specs import AttnFigures, CommFigures, Curve, Hardware, Model, OpFigures

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"


def available(kind: str) -> list[str]:
    return sorted(p.stem for p in (PRESET_DIR / kind).glob("*.toml"))


def load_toml(kind: str, name_or_path: str) -> dict:
    """Raw TOML of a preset name (``h100-sxm``) or of a file path (a calibrated profile)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.exists():
        path = p
    else:
        path = PRESET_DIR / kind / f"{name_or_path}.toml"
        if not path.exists():
            raise SpecError(f"--{kind} {name_or_path!r} is not a known preset: valid are {available(kind)} "
                            f"or a path to a .toml file")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"--{kind} file {path} is not valid TOML: {e}") from None


def apply_overrides(raw: dict, overrides: list[str] | None, kind: str) -> dict:
    """Apply ``a.b.c=value`` overrides (value parsed as TOML: numbers, strings, lists)."""
    out = copy.deepcopy(raw)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r} is not valid: use {kind}.path.to.key=value")
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise SpecError(f"--set {item!r}: {kind} has no section {part!r}")
            node = node[part]
        if parts[-1] not in node:
            raise SpecError(f"--set {item!r}: {kind} has no key {key!r}; known here: {sorted(node)}")
        try:
            node[parts[-1]] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            node[parts[-1]] = value
    return out


class _Strict:
    """Take keys from a TOML table; complain about missing and (at ``done``) unknown ones by name."""

    def __init__(self, table: Any, where: str):
        if not isinstance(table, dict):
            raise SpecError(f"{where} must be a table, got {type(table).__name__}")
        self.t, self.where, self.used = table, where, set()

    def __call__(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.t:
            if default is ...:
                raise SpecError(f"{self.where}: missing key {key!r}")
            return default
        return self.t[key]

    def sub(self, key: str) -> "_Strict":
        return _Strict(self(key), f"{self.where}.{key}")

    def done(self) -> None:
        extra = sorted(set(self.t) - self.used)
        if extra:
            raise SpecError(f"{self.where}: unknown key(s) {extra}; known: {sorted(self.used)}")


def _num(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise SpecError(f"{where}={x!r} must be a number")
    return float(x)


def _curve(t: _Strict, xkey: str, ykey: str, scale: float = 1.0) -> Curve:
    xs, ys = t(xkey), t(ykey)
    return Curve(x=tuple(_num(v, f"{t.where}.{xkey}") for v in xs),
                 y=tuple(_num(v, f"{t.where}.{ykey}") * scale for v in ys), name=f"{t.where}.{ykey}")


def hardware_from_dict(raw: dict) -> Hardware:
    top = _Strict(raw, "hardware")
    peak, ach = top.sub("peak"), top.sub("achievable")
    gemm = ach.sub("gemm")
    attn_t = ach.sub("attention")
    attention = {}
    for kname in list(attn_t.t):
        k = attn_t.sub(kname)
        dec = _curve(k, "decode_kv_bytes", "decode_TBps", 1e12) if "decode_TBps" in k.t else None
        attention[kname] = AttnFigures(causal=_curve(k, "kv_len", "causal_TFLOPs", 1e12),
                                       full=_curve(k, "kv_len", "full_TFLOPs", 1e12), decode_bw=dec)
        k.done()
    attn_t.done()
    comm_t = ach.sub("comm")
    comm: dict[str, dict[str, CommFigures]] = {}
    for link in list(comm_t.t):
        lt = comm_t.sub(link)
        comm[link] = {}
        for coll in list(lt.t):
            c = lt.sub(coll)
            curve = _curve(c, "msg_bytes", "bus_GBps", 1e9) if "bus_GBps" in c.t else None
            comm[link][coll] = CommFigures(latency_s=_num(c("latency_us"), c.where) * 1e-6,
                                           hop_latency_s=_num(c("hop_latency_us", 0.0), c.where) * 1e-6,
                                           bw_Bps=_num(c("bw_GBps"), c.where) * 1e9, bw_curve=curve)
            c.done()
        lt.done()
    comm_t.done()
    ops = {}
    if "ops" in ach.t:
        ops_t = ach.sub("ops")
        for cls in list(ops_t.t):
            o = ops_t.sub(cls)
            ops[cls] = OpFigures(bytes_factor=_num(o("bytes_factor", 1.0), o.where),
                                 issue_s=_num(o("issue_us"), o.where) * 1e-6,
                                 floor_s=_num(o("floor_us", 0.0), o.where) * 1e-6)
            o.done()
        ops_t.done()
    hw = Hardware(
        ops=ops,
        name=str(top("name")),
        peak_flops=_num(peak("bf16_TFLOPs"), "peak.bf16_TFLOPs") * 1e12,
        hbm_bw_Bps=_num(peak("hbm_TBps"), "peak.hbm_TBps") * 1e12,
        hbm_capacity_bytes=_num(peak("hbm_capacity_MiB"), "peak.hbm_capacity_MiB") * 2**20,
        nvlink_bw_Bps=_num(peak("nvlink_links"), "peak.nvlink_links") * _num(peak("nvlink_link_GBps"), "x") * 1e9,
        nic_bw_Bps=_num(peak("nic_Gbps"), "peak.nic_Gbps") * 1e9 / 8,
        gemm_efficiency=_curve(gemm, "flops" if "flops" in gemm.t else "tokens", "efficiency"),
        gemm_efficiency_by="flops" if "flops" in gemm.t else "tokens",
        attention=attention,
        elementwise_bw_Bps=_num(ach("elementwise_TBps"), "achievable.elementwise_TBps") * 1e12,
        launch_s=_num(ach("launch_us"), "achievable.launch_us") * 1e-6,
        pass_launch_s=_num(ach("pass_launch_us", 0.0), "achievable.pass_launch_us") * 1e-6,
        comm=comm,
        compute_slowdown_under_comm=_num(ach("compute_slowdown_under_comm"), "achievable.compute_slowdown_under_comm"),
        workspace_bytes=_num(ach("workspace_GiB"), "achievable.workspace_GiB") * 2**30,
        provenance=dict(top("provenance", {})),
    )
    for t in (peak, gemm, ach, top):
        t.done()
    return hw


# peak (datasheet) -> the achievable figures it bounds: an override of the peak caps them (a measured
# bandwidth or throughput cannot exceed the datasheet's); raising a peak leaves them as measured
_PEAK_BOUNDS = {"peak.hbm_TBps": "memory bandwidths (achievable.elementwise_TBps, attention decode_TBps)",
                "peak.bf16_TFLOPs": "attention throughputs (achievable.attention.*.causal/full_TFLOPs)"}


def peak_rules(raw: dict, overrides: list[str] | None) -> tuple[dict, list[str]]:
    """Apply the peak -> achievable bounds for the peaks that ``overrides`` set; returns the profile and
    one sentence per figure capped (recorded in the output's specs)."""
    keys = {str(o).partition("=")[0] for o in overrides or ()}
    notes: list[str] = []
    peak, ach = raw.get("peak", {}), raw.get("achievable", {})
    num = (int, float)
    if "peak.hbm_TBps" in keys and isinstance(peak.get("hbm_TBps"), num) and peak["hbm_TBps"] > 0:
        cap = float(peak["hbm_TBps"])
        if float(ach.get("elementwise_TBps", 0.0)) > cap:
            was = ach["elementwise_TBps"]
            notes.append(f"achievable.elementwise_TBps {was} capped at peak.hbm_TBps {cap}")
            ach["elementwise_TBps"] = cap
        for kname, k in ach.get("attention", {}).items():
            if "decode_TBps" in k and max(k["decode_TBps"]) > cap:
                notes.append(f"achievable.attention.{kname}.decode_TBps capped at peak.hbm_TBps {cap}")
                k["decode_TBps"] = [min(float(v), cap) for v in k["decode_TBps"]]
    if "peak.bf16_TFLOPs" in keys and isinstance(peak.get("bf16_TFLOPs"), num) and peak["bf16_TFLOPs"] > 0:
        cap = float(peak["bf16_TFLOPs"])
        for kname, k in ach.get("attention", {}).items():
            for f in ("causal_TFLOPs", "full_TFLOPs"):
                if f in k and max(k[f]) > cap:
                    notes.append(f"achievable.attention.{kname}.{f} capped at peak.bf16_TFLOPs {cap}")
                    k[f] = [min(float(v), cap) for v in k[f]]
    return raw, notes


def load_hardware_noted(name: str, overrides: list[str] | None = None) -> tuple[Hardware, list[str]]:
    """The profile with ``overrides`` applied, the peak -> achievable bounds (``peak_rules``) enforced,
    and the sentences saying which achievable figures those bounds changed."""
    raw, notes = peak_rules(apply_overrides(load_toml("hardware", name), overrides, "hardware"), overrides)
    return hardware_from_dict(raw), notes


def load_hardware(name: str, overrides: list[str] | None = None) -> Hardware:
    return load_hardware_noted(name, overrides)[0]


MODEL_KEYS = ("name", "layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "mlp", "dtype_bytes",
              "accum_bytes", "vocab")


def model_from_dict(raw: dict) -> Model:
    t = _Strict(raw, "model")
    kw = {k: t(k) for k in MODEL_KEYS if k in raw or k in ("layers", "d_model", "n_heads", "n_kv_heads",
                                                            "head_dim", "d_ff")}
    t.done()
    return Model(**kw)


def load_model(name: str, overrides: list[str] | None = None, **fields) -> Model:
    raw = apply_overrides(load_toml("model", name), overrides, "model")
    raw.update({k: v for k, v in fields.items() if v is not None})
    return model_from_dict(raw)
