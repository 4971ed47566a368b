"""Presets: TOML files under ``costmodel/presets/<kind>/<name>.toml`` turned into specs.

Loading is strict: unknown and missing keys are reported by name.  Units in the file carry their
names (``hbm_TBps``, ``launch_us``) and are converted to SI once, here.  Overrides use dotted paths
into the file (``peak.hbm_TBps=4.0``) and are applied before validation, so every field can be set
from the command line.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

from .errors import SpecError
from .specs import AttnFigures, CommFigures, Curve, DecodeAttnModel, Hardware, Model, OpFigures

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"


def available(kind: str) -> list[str]:
    return sorted(p.stem for p in (PRESET_DIR / kind).glob("*.toml"))


def _is_path(name_or_path: str) -> bool:
    """A file path rather than a preset name: ends in .toml or names a folder."""
    return name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path


_PARSED: dict[tuple, dict] = {}  # (path, size, mtime) -> parsed TOML: a file is parsed once while unchanged


def _parsed(path: Path) -> dict:
    """The file's TOML, parsed once per version of the file (a copy: callers change what they get)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PARSED:
        with open(path, "rb") as f:
            got = tomllib.load(f)
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[key] = got
    return copy.deepcopy(_PARSED[key])


def load_toml(kind: str, name_or_path: str) -> dict:
    """Raw TOML of a preset name (``h100-sxm``) or of a file path (a calibrated profile, your own preset)."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise SpecError(
            f"--{kind} {name_or_path!r} is not valid: give a preset name {available(kind)} "
            f"or a path to a .toml file"
        )
    if len(name_or_path) > 255 or "\0" in name_or_path:
        raise SpecError(
            f"--{kind} {name_or_path[:40]!r}... is not valid: give a preset name {available(kind)} "
            f"or a path to a .toml file"
        )
    if _is_path(name_or_path):
        path = Path(name_or_path)
        if path.is_dir():
            raise SpecError(
                f"--{kind} {name_or_path!r} is a directory: give a .toml file or a preset name "
                f"{available(kind)}"
            )
        if not path.is_file():
            raise SpecError(
                f"--{kind} {name_or_path!r}: no such file; give an existing .toml file or a preset "
                f"name {available(kind)}"
            )
    else:
        path = PRESET_DIR / kind / f"{name_or_path}.toml"
        if not path.is_file():
            raise SpecError(
                f"--{kind} {name_or_path!r} is not a known preset: valid are {available(kind)} "
                f"or a path to a .toml file"
            )
    try:
        return _parsed(path)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"--{kind} file {path} is not valid TOML: {' '.join(str(e).split())}") from None
    except UnicodeDecodeError as e:
        raise SpecError(
            f"--{kind} file {path} is not UTF-8 text (byte {e.start}): TOML files must be UTF-8"
        ) from None
    except OSError as e:
        raise SpecError(f"--{kind} file {path} cannot be read: {e.strerror or e}") from None


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
        optional = (kind == "model" and len(parts) == 1 and parts[-1] in MODEL_KEYS) or (
            kind == "hardware" and parts[:-1] == ["achievable"] and parts[-1] in HW_OPTIONAL_ACHIEVABLE
        )  # a field left at its default
        if parts[-1] not in node and not optional:
            known = set(node) | (set(MODEL_KEYS) if kind == "model" and len(parts) == 1 else set())
            raise SpecError(f"--set {item!r}: {kind} has no key {key!r}; known here: {sorted(known)}")
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
                raise SpecError(
                    f"{self.where}: missing key {key!r}; add it (see docs/templates/ for every key)"
                )
            return default
        return self.t[key]

    def sub(self, key: str) -> _Strict:
        return _Strict(self(key), f"{self.where}.{key}")

    def done(self) -> None:
        extra = sorted(set(self.t) - self.used)
        if extra:
            raise SpecError(f"{self.where}: unknown key(s) {extra}; known: {sorted(self.used)}")


def _num(x: Any, where: str) -> float:
    """A finite number (not a boolean, not a string, not inf or nan)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise SpecError(f"{where}={x!r} is not valid: must be a number")
    if not math.isfinite(x):
        raise SpecError(f"{where}={x!r} is not valid: must be a finite number")
    return float(x)


def _get(t: _Strict, key: str, default: Any = ...) -> float:
    """Number ``key`` of table ``t``, named in full (``hardware.peak.hbm_TBps``) when it is not one."""
    return _num(t(key, default), f"{t.where}.{key}")


def _list(t: _Strict, key: str) -> list:
    v = t(key)
    if not isinstance(v, list):
        raise SpecError(f"{t.where}.{key}={v!r} is not valid: must be a list of numbers")
    return v


def _curve(t: _Strict, xkey: str, ykey: str, scale: float = 1.0) -> Curve:
    xs, ys = _list(t, xkey), _list(t, ykey)
    return Curve(
        x=tuple(_num(v, f"{t.where}.{xkey}") for v in xs),
        y=tuple(_num(v, f"{t.where}.{ykey}") * scale for v in ys),
        name=f"{t.where}.{ykey}",
    )


HW_OPTIONAL_ACHIEVABLE = (
    "comm_gate_kinds",
    "comm_gate_lead_us",
    "attention_slowdown_under_comm",
    "a2a_copy_passes_qkv",
    "a2a_copy_passes_o",
    "glu_act_traffic",
    "glu_act_floor_ratio",
)  # default if absent


def _gate_kinds(ach: _Strict) -> tuple[str, ...]:
    """``achievable.comm_gate_kinds``: a list of op kind names (absent: no gate)."""
    v = ach("comm_gate_kinds", [])
    if not isinstance(v, list) or not all(isinstance(k, str) for k in v):
        raise SpecError(
            f"{ach.where}.comm_gate_kinds={v!r} is not valid: must be a list of op kind names, "
            'e.g. ["attention"]'
        )
    return tuple(v)


def _comm_figures(c: _Strict, by_group: dict | None = None) -> CommFigures:
    """One table of communication figures (and its checked keys)."""
    curve = _curve(c, "msg_bytes", "bus_GBps", 1e9) if "bus_GBps" in c.t else None
    f = CommFigures(
        latency_s=_get(c, "latency_us") * 1e-6,
        hop_latency_s=_get(c, "hop_latency_us", 0.0) * 1e-6,
        bw_Bps=_get(c, "bw_GBps") * 1e9,
        bw_curve=curve,
        by_group=by_group or {},
    )
    c.done()
    return f


DECODE_MODEL_KEYS = ("decode_floor_us", "decode_occupancy", "decode_occupancy_TBps", "decode_split_keys")
DECODE_MODEL_OPTIONAL = (
    "decode_sms",
    "decode_ctas_per_sm",
    "decode_TFLOPs",
    "decode_kv_expanded",
    "decode_expand_TBps",
    "decode_expand_contig_TBps",
    "decode_expand_floor_us",
    "decode_items",
    "decode_items_factor",
)


def _stream(t: _Strict) -> Curve | None:
    """``stream_weight_MB`` and ``stream_TBps`` of a GEMM table (the weight-streaming bandwidth of calls of
    few rows by weight bytes): both or neither."""
    have = [key for key in ("stream_weight_MB", "stream_TBps") if key in t.t]
    if not have:
        return None
    if len(have) == 1:
        raise SpecError(f"{t.where}.{have[0]} is not valid alone: give stream_weight_MB and stream_TBps")
    c = _curve(t, "stream_weight_MB", "stream_TBps", 1e12)
    return Curve(x=tuple(v * 1e6 for v in c.x), y=c.y, name=c.name)


def _decode_model(k: _Strict) -> DecodeAttnModel | None:
    """The decode-attention physics of one kernel (issue 12): all of ``DECODE_MODEL_KEYS`` or none."""
    have = [key for key in DECODE_MODEL_KEYS if key in k.t]
    if not have:
        extra = [key for key in DECODE_MODEL_OPTIONAL if key in k.t]
        if extra:
            raise SpecError(f"{k.where}.{extra[0]} is not valid alone: give {list(DECODE_MODEL_KEYS)} too")
        return None
    if len(have) != len(DECODE_MODEL_KEYS):
        miss = [key for key in DECODE_MODEL_KEYS if key not in k.t]
        raise SpecError(
            f"{k.where}: decode model keys {miss} missing; give all of {list(DECODE_MODEL_KEYS)} or none"
        )
    exp = k("decode_kv_expanded", False)
    if not isinstance(exp, bool):
        raise SpecError(f"{k.where}.decode_kv_expanded={exp!r} is not valid: must be true or false")
    sms, per_sm = k("decode_sms", 132), k("decode_ctas_per_sm", 1)
    for key, v in (("decode_sms", sms), ("decode_ctas_per_sm", per_sm)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"{k.where}.{key}={v!r} is not valid: must be an integer")
    occ = _curve(k, "decode_occupancy", "decode_occupancy_TBps", 1e12)
    return DecodeAttnModel(
        floor_s=_get(k, "decode_floor_us") * 1e-6,
        occupancy=occ.x,
        bw_Bps=occ.y,
        split_keys=_get(k, "decode_split_keys"),
        sms=sms,
        ctas_per_sm=per_sm,
        flops=_get(k, "decode_TFLOPs", 0.0) * 1e12,
        kv_expanded=exp,
        expand_bw_Bps=_get(k, "decode_expand_TBps", 1.0) * 1e12,
        expand_contig_bw_Bps=_get(k, "decode_expand_contig_TBps", 1.0) * 1e12,
        expand_floor_s=_get(k, "decode_expand_floor_us", 0.0) * 1e-6,
        **_items_factor(k),
    )


def _items_factor(k: _Strict) -> dict:
    """``decode_items`` and ``decode_items_factor``: both or neither."""
    have = [key for key in ("decode_items", "decode_items_factor") if key in k.t]
    if not have:
        return {}
    if len(have) == 1:
        raise SpecError(f"{k.where}.{have[0]} is not valid alone: give decode_items and decode_items_factor")
    c = _curve(k, "decode_items", "decode_items_factor", 1.0)
    return {"items": c.x, "items_factor": c.y}


def hardware_from_dict(raw: dict) -> Hardware:
    top = _Strict(raw, "hardware")
    peak, ach = top.sub("peak"), top.sub("achievable")
    gemm = ach.sub("gemm")
    attn_t = ach.sub("attention")
    attention = {}
    for kname in list(attn_t.t):
        k = attn_t.sub(kname)
        dec = _curve(k, "decode_kv_bytes", "decode_TBps", 1e12) if "decode_TBps" in k.t else None
        attention[kname] = AttnFigures(
            causal=_curve(k, "kv_len", "causal_TFLOPs", 1e12),
            full=_curve(k, "kv_len", "full_TFLOPs", 1e12),
            decode_bw=dec,
            decode=_decode_model(k),
        )
        k.done()
    attn_t.done()
    comm_t = ach.sub("comm")
    comm: dict[str, dict[str, CommFigures]] = {}
    for link in list(comm_t.t):
        lt = comm_t.sub(link)
        comm[link] = {}
        for coll in list(lt.t):
            c = lt.sub(coll)
            by_group = {}
            for key in [k for k in c.t if k.startswith("group")]:  # figures measured in a larger group
                if not key[5:].isdigit() or int(key[5:]) < 2:
                    raise SpecError(
                        f"{c.where}.{key} is not valid: name a measured group size as groupN, N >= 2"
                    )
                by_group[int(key[5:])] = _comm_figures(c.sub(key))
            comm[link][coll] = _comm_figures(c, by_group)
        lt.done()
    comm_t.done()
    gemm_fp8 = gemm_fp8_stream = None
    if "gemm_fp8" in ach.t:  # calibrated FP8 GEMM efficiency (over the FP8 peak) by FLOPs per call
        g8 = ach.sub("gemm_fp8")
        gemm_fp8 = _curve(g8, "flops", "efficiency")
        gemm_fp8_stream = _stream(g8)
        g8.done()
    quant = {"bytes_factor": 1.0, "floor_us": 0.0}
    if "fp8_quant" in ach.t:  # the activation quantise (amax per row, scale, cast), measured
        q8 = ach.sub("fp8_quant")
        quant = {k: _get(q8, k, v) for k, v in quant.items()}
        q8.done()
    ops = {}
    if "ops" in ach.t:
        ops_t = ach.sub("ops")
        for cls in list(ops_t.t):
            o = ops_t.sub(cls)
            rows = _curve(o, "floor_rows", "floor_rows_factor") if "floor_rows" in o.t else None
            ops[cls] = OpFigures(
                bytes_factor=_get(o, "bytes_factor", 1.0),
                issue_s=_get(o, "issue_us") * 1e-6,
                floor_s=_get(o, "floor_us", 0.0) * 1e-6,
                floor_rows=rows.x if rows else (),
                floor_rows_factor=rows.y if rows else (),
            )
            o.done()
        ops_t.done()
    name = top("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"hardware.name={name!r} is not valid: must be a non-empty string")
    prov = top("provenance", {})
    if not isinstance(prov, dict):
        raise SpecError(f"hardware.provenance={prov!r} is not valid: must be a table")
    hw = Hardware(
        ops=ops,
        name=name,
        peak_flops=_get(peak, "bf16_TFLOPs") * 1e12,
        peak_fp8_flops=_get(peak, "fp8_TFLOPs", 0.0) * 1e12,
        hbm_bw_Bps=_get(peak, "hbm_TBps") * 1e12,
        hbm_capacity_bytes=_get(peak, "hbm_capacity_MiB") * 2**20,
        nvlink_bw_Bps=_get(peak, "nvlink_links") * _get(peak, "nvlink_link_GBps") * 1e9,
        nic_bw_Bps=_get(peak, "nic_Gbps") * 1e9 / 8,
        gemm_efficiency=_curve(gemm, "flops" if "flops" in gemm.t else "tokens", "efficiency"),
        gemm_efficiency_by="flops" if "flops" in gemm.t else "tokens",
        gemm_fp8_efficiency=gemm_fp8,
        gemm_stream_bw=_stream(gemm),
        gemm_fp8_stream_bw=gemm_fp8_stream,
        fp8_quant_bytes_factor=quant["bytes_factor"],
        fp8_quant_floor_s=quant["floor_us"] * 1e-6,
        attention=attention,
        elementwise_bw_Bps=_get(ach, "elementwise_TBps") * 1e12,
        launch_s=_get(ach, "launch_us") * 1e-6,
        pass_launch_s=_get(ach, "pass_launch_us", 0.0) * 1e-6,
        start_skew=_curve(ach, "start_skew_ranks", "start_skew_us", 1e-6)
        if "start_skew_ranks" in ach.t
        else None,
        comm=comm,
        compute_slowdown_under_comm=_get(ach, "compute_slowdown_under_comm"),
        attention_slowdown_under_comm=_get(ach, "attention_slowdown_under_comm", 1.0),
        comm_gate_kinds=_gate_kinds(ach),
        comm_gate_lead_s=_get(ach, "comm_gate_lead_us", 0.0) * 1e-6,
        a2a_copy_passes_qkv=_get(ach, "a2a_copy_passes_qkv", 0.0),
        a2a_copy_passes_o=_get(ach, "a2a_copy_passes_o", 0.0),
        glu_act_traffic=_get(ach, "glu_act_traffic", 1.0),
        glu_act_floor_ratio=_get(ach, "glu_act_floor_ratio", 1.0),
        workspace_bytes=_get(ach, "workspace_GiB") * 2**30,
        provenance=dict(prov),
    )
    for t in (peak, gemm, ach, top):
        t.done()
    return hw


# peak (datasheet) -> the achievable figures it bounds: an override of the peak caps them (a measured
# bandwidth or throughput cannot exceed the datasheet's); raising a peak leaves them as measured
_PEAK_BOUNDS = {
    "peak.hbm_TBps": "memory bandwidths (achievable.elementwise_TBps, attention decode_TBps and "
    "decode_occupancy_TBps)",
    "peak.bf16_TFLOPs": "attention throughputs (achievable.attention.*.causal/full_TFLOPs)",
}


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
            occ_bw = k.get("decode_occupancy_TBps")
            if (
                isinstance(occ_bw, list)
                and occ_bw
                and all(isinstance(v, num) for v in occ_bw)
                and max(occ_bw) > cap
            ):
                notes.append(
                    f"achievable.attention.{kname}.decode_occupancy_TBps capped at peak.hbm_TBps {cap}"
                )
                k["decode_occupancy_TBps"] = [min(float(v), cap) for v in occ_bw]
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


MODEL_REQUIRED = ("layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff")
MODEL_KEYS = (
    "name",
    *MODEL_REQUIRED,
    "mlp",
    "dtype_bytes",
    "accum_bytes",
    "vocab",
    "rope_theta",
    "tie_embeddings",
    "qkv_bias",
    "lm_head",
    "source",
    "fp8",
    "kv_dtype",
)


def model_from_dict(raw: dict) -> Model:
    t = _Strict(raw, "model")
    kw = {k: t(k) for k in MODEL_KEYS if k in raw or k in MODEL_REQUIRED}
    t.done()
    return Model(**kw)


def load_model(name: str, overrides: list[str] | None = None, **fields) -> Model:
    raw = apply_overrides(load_toml("model", name), overrides, "model")
    raw.update({k: v for k, v in fields.items() if v is not None})
    return model_from_dict(raw)
