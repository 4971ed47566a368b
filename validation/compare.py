"""Predicted vs measured: every measurement record beside the analytic model and the simulator.

A record (one JSONL line written by ``real.run``) carries the options it was run with, the
measured latency (max over ranks; median, min, max of the repetitions) and its provenance.  The
configuration is rebuilt from the options alone, the profile named there (a calibrated one; the
validation data never feeds it) is loaded, and both engines predict the phase latency.
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

from costmodel import presets
from costmodel.config import Config
from ringsim.options import add_config_arguments, config_from_args
from costmodel.errors import SpecError
from costmodel.predict import predict
from costmodel.results import read_jsonl

TARGETS = {"prefill": {"median": 0.05, "max": 0.15}, "decode": {"median": 0.10}}


def options_of(rec: dict) -> list[str]:
    """The command-line options (predict's) a record was measured with."""
    for key in ("args", "argv", "options_argv"):
        if isinstance(rec.get(key), list):
            return [str(x) for x in rec[key]]
    opts = rec.get("options")
    if isinstance(opts, dict):
        argv: list[str] = []
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                argv.append(flag)
            elif isinstance(v, list):
                for item in v:
                    argv += [flag, str(item)]
            elif v is not None and v is not False:
                argv += [flag, str(v)]
        return argv
    raise SpecError("a validation record has neither 'argv' nor 'options': cannot rebuild its configuration")


def config_of(rec: dict, hardware: str | None = None) -> Config:
    p = argparse.ArgumentParser(add_help=False)
    add_config_arguments(p)
    a, _ = p.parse_known_args(options_of(rec))
    mode = rec.get("exec", "eager")  # how the executor ran: issued op by op, or replayed from a CUDA graph
    if hardware:
        a.hardware = hardware
    elif f"{a.hardware}-{mode}" in presets.available("hardware"):
        a.hardware = f"{a.hardware}-{mode}"  # the profile of the executor as it ran: its own op figures
    elif mode == "graph":
        raise SpecError(f"record measured with --exec graph needs the profile {a.hardware}-graph "
                        f"(ringsim calibrate writes it); available: {presets.available('hardware')}")
    chosen = (rec.get("attn_kernel_real") or {}).get("chosen")
    if chosen in ("flash", "cudnn"):  # predict with the kernel the run actually used
        a.attn_kernel = chosen
    return config_from_args(a)


def measured_s(rec: dict) -> float:
    lat = rec.get("latency_s")
    if isinstance(lat, dict) and "median" in lat:
        return float(lat["median"])
    m = rec.get("measured") or rec.get("timing") or {}
    for key in ("median_s", "latency_s"):
        if key in m:
            return float(m[key])
    if "median_s" in rec:
        return float(rec["median_s"])
    raise SpecError("a validation record has no measured median_s")


@dataclass
class Row:
    label: str
    phase: str
    measured_s: float
    analytic_s: float
    simulated_s: float | None
    spread: float  # (max - min) / median of the measurement
    source: str
    exec: str = "eager"  # how the executor ran: op by op (eager) or replayed from a CUDA graph (graph)

    @property
    def group(self) -> str:
        """Summary group: the phase, and '-graph' for graph-replayed runs (device-bound, no host issue)."""
        return self.phase if self.exec == "eager" else f"{self.phase}-{self.exec}"

    def err(self, engine: str) -> float | None:
        v = self.analytic_s if engine == "analytic" else self.simulated_s
        return None if v is None else v / self.measured_s - 1.0

    def as_dict(self) -> dict:
        return {"label": self.label, "phase": self.phase, "measured_s": self.measured_s,
                "analytic_s": self.analytic_s, "simulated_s": self.simulated_s,
                "analytic_err": self.err("analytic"), "simulated_err": self.err("simulator"),
                "measured_spread": self.spread, "source": self.source, "exec": self.exec}


def label_of(cfg: Config) -> str:
    """A readable name of a configuration (plan, phase, sizes, kernel)."""
    wl, p = cfg.workload, cfg.plan
    size = f"L={wl.seq_len}" if wl.phase == "prefill" else f"ctx={wl.context}"
    name = p.name + (f"[{p.decode_attn.value}]" if wl.phase == "decode" and p.ring > 1 else "")
    return f"{name} {wl.phase} B={wl.batch} {size} layers={cfg.model.layers} {cfg.kernel}"


def compare(paths: list[str], hardware: str | None = None, simulate: bool = True, progress=None) -> list[Row]:
    recs: list[tuple[str, dict]] = []
    for path in paths:
        try:
            recs += [(Path(path).name, r) for r in read_jsonl(path)]
        except (OSError, ValueError) as e:
            raise SpecError(f"validation data {path!r} cannot be read: {e}") from None
    rows = []
    it = recs if progress is None else progress(recs)
    for src, rec in it:
        if rec.get("status", "ok") != "ok":
            continue
        cfg = config_of(rec, hardware)
        a = predict(cfg)["latency_s"]
        s = None
        if simulate:
            from sim import run_config  # validation may import every engine
            s = run_config(cfg).latency_s
        med = measured_s(rec)
        lat = rec.get("latency_s") if isinstance(rec.get("latency_s"), dict) else {}
        m = {"max_s": lat.get("max"), "min_s": lat.get("min")} if lat else (rec.get("measured") or {})
        hi, lo = m.get("max_s") or med, m.get("min_s") or med
        spread = (hi - lo) / med if med else 0.0
        mode = rec.get("exec", "eager")
        label = label_of(cfg) + ("" if mode == "eager" else f" {mode}")
        rows.append(Row(label, str(cfg.workload.phase), med, a, s, spread, src, mode))
    return rows


def summarise(rows: list[Row]) -> dict:
    """Median and max absolute % error per engine and phase, with the targets and whether each holds."""
    out: dict = {}
    groups = sorted({r.group for r in rows}, key=lambda g: (g.split("-")[0] != "prefill", g))
    for group in groups:
        phase = group.split("-")[0]
        for engine in ("analytic", "simulator"):
            errs = [abs(e) for r in rows if r.group == group and (e := r.err(engine)) is not None]
            if not errs:
                continue
            d = {"n": len(errs), "median_abs_err": statistics.median(errs), "max_abs_err": max(errs)}
            t = TARGETS[phase]
            d["targets"] = t
            d["meets_targets"] = (d["median_abs_err"] <= t["median"]) and (d["max_abs_err"] <= t.get("max", 1e9))
            out[f"{group}/{engine}"] = d
    return out


def format_table(rows: list[Row], summary: dict) -> str:
    w = max([len(r.label) for r in rows] + [13])
    lines = [f"{'configuration':<{w}}  {'measured':>10}  {'analytic':>10}  {'err':>7}  {'simulated':>10}  {'err':>7}",
             "-" * (w + 56)]
    for r in rows:
        sim = f"{r.simulated_s * 1e3:10.3f}  {r.err('simulator') * 100:+6.1f}%" if r.simulated_s else f"{'-':>10}  {'':>7}"
        lines.append(f"{r.label:<{w}}  {r.measured_s * 1e3:10.3f}  {r.analytic_s * 1e3:10.3f}  "
                     f"{r.err('analytic') * 100:+6.1f}%  {sim}")
    lines.append("(times in ms; err = predicted / measured - 1)")
    lines.append("")
    lines.append("summary: median and max |error| per phase and engine")
    for k, d in summary.items():
        tgt = ", ".join(f"{n} <= {v:.0%}" for n, v in d["targets"].items())
        lines.append(f"  {k:<23} n={d['n']:<3} median {d['median_abs_err']:6.1%}  max {d['max_abs_err']:6.1%}  "
                     f"(target {tgt}: {'met' if d['meets_targets'] else 'NOT met'})")
    return "\n".join(lines)
