"""Predicted vs measured: every measurement record beside the analytic model and the simulator.

A record (one JSONL line written by ``real.run``) carries the options it was run with, the
measured latency (max over ranks; median, min, max of the repetitions) and its provenance.  The
configuration is rebuilt from the options alone, the profile named there (a calibrated one; the
validation data never feeds it) is loaded, and both engines predict the phase latency.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from costmodel import presets
from costmodel.config import Config
from costmodel.errors import SpecError
from costmodel.options import add_config_arguments, config_from_args
from costmodel.predict import predict
from costmodel.results import read_jsonl_lines

# the whole table's guards (in-sample records included: shapes and leases of calibration runs)
TARGETS = {"prefill": {"median": 0.05, "max": 0.15}, "decode": {"median": 0.10}}
# issue 12: the records no calibration measured (``seen_by_calibration`` None), by phase group; a group not
# named here is held to the whole table's guard of its phase
UNSEEN_TARGETS = {
    "prefill": {"median": 0.03, "max": 0.08},
    "decode-graph": {"median": 0.05, "max": 0.12},
}
# issue 12: the ideal-kernel profile (h200-sxm: ideal fused kernels from a CUDA graph) against the executor's
# fused mode (real.run --exec-mode fused), at P <= 2
FUSED_TARGETS = {"median": 0.05}
EXEC_MODES = ("eager", "fused")  # a record's exec_mode: the executor's kernels (real/fused.py)


def exec_mode_of(rec: dict) -> str:
    """A record's kernels: 'eager' (the executor's own, and every record written before the fused mode)
    or 'fused'."""
    m = rec.get("exec_mode", "eager")
    if m not in EXEC_MODES:
        raise SpecError(f"its exec_mode is {m!r}: valid are {', '.join(repr(x) for x in EXEC_MODES)}")
    return m


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


class _Parser(argparse.ArgumentParser):
    """A bad option in a record is a bad record: one sentence, not argparse's usage text and exit."""

    def error(self, message):
        raise SpecError(f"its options are not valid: {message}")


# the folder holding ``validation/`` (the repository, or site-packages in an installed copy)
_ROOT = Path(__file__).resolve().parent.parent


def _model_path(model):
    """A record's ``--model`` as given, or, where it names a .toml that is not there from here, the same
    path under the folder that holds this package: the records of models of no preset name their file as
    the repository holds it (``validation/models/...``), which an installed copy ships as package data."""
    if isinstance(model, str) and model.endswith(".toml") and not Path(model).exists():
        alt = _ROOT / model
        if alt.exists():
            return str(alt)
    return model


def config_of(rec: dict, hardware: str | None = None) -> Config:
    p = _Parser(add_help=False)
    add_config_arguments(p)
    a, _ = p.parse_known_args(options_of(rec))
    a.model = _model_path(a.model)
    mode = rec.get("exec", "eager")  # how the executor ran: issued op by op, or replayed from a CUDA graph
    if hardware:
        a.hardware = hardware
    elif exec_mode_of(rec) == "fused":
        pass  # fused kernels: the profile named (the ideal one, h200-sxm) is what they are held against
    elif f"{a.hardware}-{mode}" in presets.available("hardware"):
        a.hardware = f"{a.hardware}-{mode}"  # the profile of the executor as it ran: its own op figures
    elif mode == "graph":
        raise SpecError(
            f"record measured with --exec graph needs the profile {a.hardware}-graph "
            f"(ringsim calibrate writes it); available: {presets.available('hardware')}"
        )
    chosen = (rec.get("attn_kernel_real") or {}).get("chosen")
    if chosen in ("flash", "cudnn"):  # predict with the kernel the run actually used
        a.attn_kernel = chosen
    cfg = config_from_args(a)
    return replace(cfg, model=replace(cfg.model, lm_head=ran_lm_head(rec)))


def ran_lm_head(rec: dict) -> bool:
    """Whether the executor ran the LM head in a record: its specs say so (``model.lm_head``); records
    measured before the executor ran one do not name it and did not run it."""
    model = (rec.get("specs") or {}).get("model") or {}
    v = model.get("lm_head", False) if isinstance(model, dict) else False
    if not isinstance(v, bool):
        raise SpecError(f"its specs.model.lm_head is {v!r}: true or false")
    return v


def measured_s(rec: dict) -> float:
    lat = rec.get("latency_s")
    if isinstance(lat, dict) and "median" in lat:
        return _seconds(lat["median"], "latency_s.median")
    m = rec.get("measured") or rec.get("timing") or {}
    if not isinstance(m, dict):
        raise SpecError(f"its 'measured' is a {type(m).__name__}, not an object with median_s")
    for key in ("median_s", "latency_s"):
        if key in m:
            return _seconds(m[key], key)
    if "median_s" in rec:
        return _seconds(rec["median_s"], "median_s")
    raise SpecError("a validation record has no measured median_s")


def _seconds(v, field: str, required: bool = True) -> float | None:
    """A measured time: a finite number of seconds > 0 (a string, zero, negative, NaN or inf is refused)."""
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise SpecError(f"its {field} is {v!r}: a measured time must be a finite number of seconds > 0")
    return float(v)


def _over_tol(chk: dict) -> bool:
    """A check whose recorded error (whole output, or a layer's attention output) exceeds its recorded
    tolerance, whatever its ``passed`` says (a record written before the per-layer check failed records).
    Each layer's attention error is held to that layer's ``attn_tol`` when the record gives them (FP8),
    else to ``tol``."""

    def num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    tol = chk.get("tol")
    if not num(tol):
        return False
    if num(chk.get("rel_err")) and not chk["rel_err"] <= tol:
        return True
    errs = chk.get("attn_rel_err") if isinstance(chk.get("attn_rel_err"), list) else []
    tols = chk.get("attn_tol")
    if isinstance(tols, list) and len(tols) == len(errs) and all(num(t) for t in tols):
        return any(num(e) and not e <= t for e, t in zip(errs, tols))
    errs = errs + [chk.get("attn_rel_err_max")]
    return any(num(e) and not e <= tol for e in errs)


def left_out_reason(rec: dict) -> str | None:
    """Why a record is not a measurement to compare with (refused, failed its check), or None."""
    status = rec.get("status", "ok")
    chk = rec.get("check")
    if status == "refused":
        return "refused (not measured)"
    if status == "ok" and exec_mode_of(rec) == "fused" and rec.get("fused_fallbacks"):
        return "fused mode ran some functions uncompiled (their compilation failed)"
    if status == "failed" or (isinstance(chk, dict) and (chk.get("passed") is False or _over_tol(chk))):
        return "failed its check against the reference"
    if status != "ok":
        raise SpecError(f"its status is {status!r}: valid are 'ok', 'failed', 'refused'")
    if chk is not None and not (isinstance(chk, dict) and chk.get("passed") is True):
        raise SpecError(f"its check is {chk!r}: an object with passed true or false, or absent")
    return None


class Rows(list):
    """The rows of ``compare``, with what was left out and why (``left_out``: {reason: count}) and the
    warnings of reading (``warnings``: a cut last line left out)."""

    def __init__(self, rows=(), left_out: dict | None = None, warnings: list[str] | None = None):
        super().__init__(rows)
        self.left_out = dict(left_out or {})
        self.warnings = list(warnings or [])

    def left_out_line(self) -> str | None:
        n = sum(self.left_out.values())
        if not n:
            return None
        why = ", ".join(f"{c} {r}" for r, c in self.left_out.items())
        return f"left out {n} record{'s' if n != 1 else ''}: {why}"


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
    seen: str | None = None  # why the record is not an unseen one (None: unseen), see ``seen_by_calibration``
    model: str = ""  # the model preset's name (the summary by model)
    family: str = ""  # the plan's family: ring, ulysses, tp, pp, tp+pp, hybrid, single (mean signed error)
    fusion: str = (
        "eager"  # the executor's kernels: its own (eager) or fused (predicted with the ideal profile)
    )
    ranks: int = 1  # the plan's GPU count (P)
    profile: str = ""  # the hardware profile it was predicted with
    partial: bool = False  # partial prefill (issue 13: cached tokens, or the pass-Q prefill ring)
    idle_stages: bool = False  # a pipeline whose stages idle at least half the pass (``idle_stages``)

    @property
    def group(self) -> str:
        """Summary group: the phase, '-partial' for partial prefill (cached tokens or pass-Q rings: a
        workload of its own, added after issue 5's prefill targets were set), '-graph' for graph-replayed
        runs (device-bound, no host issue), and '-fused' for the fused executor (held against the ideal
        profile); '-pipeline-idle' for prefill pipelines whose stages idle at least half the pass (their
        power-limited clocks recover between stages: measured, not modelled; see ``idle_stages``)."""
        ph = f"{self.phase}-partial" if self.partial else self.phase
        if self.idle_stages and self.phase == "prefill" and not self.partial:
            ph = f"{ph}-pipeline-idle"
        g = ph if self.exec == "eager" else f"{ph}-{self.exec}"
        return g if self.fusion == "eager" else f"{g}-{self.fusion}"

    def err(self, engine: str) -> float | None:
        v = self.analytic_s if engine == "analytic" else self.simulated_s
        return None if v is None else v / self.measured_s - 1.0

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "phase": self.phase,
            "measured_s": self.measured_s,
            "analytic_s": self.analytic_s,
            "simulated_s": self.simulated_s,
            "analytic_err": self.err("analytic"),
            "simulated_err": self.err("simulator"),
            "measured_spread": self.spread,
            "source": self.source,
            "exec": self.exec,
            "unseen": self.seen is None,
            "seen_because": self.seen,
            "model": self.model,
            "family": self.family,
            "exec_mode": self.fusion,
            "ranks": self.ranks,
            "profile": self.profile,
        }


def label_of(cfg: Config) -> str:
    """A readable name of a configuration (plan, phase, sizes, kernel)."""
    wl, p = cfg.workload, cfg.plan
    size = f"L={wl.seq_len}" if wl.phase == "prefill" else f"ctx={wl.context}"
    if wl.cached_len:  # partial prefill
        size += f" C={wl.cached_len}"
    name = p.label(wl.phase)
    m = cfg.model
    prec = "" if str(m.fp8) == "none" else f" fp8={m.fp8}"  # FP8 GEMMs (--fp8 ffn|linear)
    return f"{name} {wl.phase} B={wl.batch} {size} layers={m.layers}{prec} {cfg.kernel}"


def compare(paths: list[str], hardware: str | None = None, simulate: bool = True, progress=None) -> Rows:
    """Every usable record of ``paths`` beside both engines.  Records that were refused or failed their
    check are left out and counted (``Rows.left_out``); a record that is not a valid measurement (an
    array, a median that is not a positive finite number, options that do not parse, ...) raises
    ``SpecError`` naming its file and line."""
    recs: list[tuple[str, int, dict]] = []
    warnings: list[str] = []
    for path in paths:
        try:
            recs += [(path, n, r) for n, r in read_jsonl_lines(path, warnings)]
        except OSError as e:
            raise SpecError(f"validation data {path!r} cannot be read: {e.strerror or e}") from None
    rows = Rows(warnings=warnings)
    it = recs if progress is None else progress(recs)
    for path, n, rec in it:
        try:
            why = left_out_reason(rec)
            if why is not None:
                rows.left_out[why] = rows.left_out.get(why, 0) + 1
                continue
            rows.append(_row(Path(path).name, rec, hardware, simulate))
        except SpecError as e:
            raise SpecError(f"{path}:{n}: record not used: {e}") from None
        except Exception as e:  # noqa: BLE001 - a record the engines cannot take is named, never a traceback
            raise SpecError(
                f"{path}:{n}: record not used: its configuration cannot be predicted "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
    return rows


def _row(src: str, rec: dict, hardware: str | None, simulate: bool) -> Row:
    mode = rec.get("exec", "eager")
    if mode not in ("eager", "graph"):
        raise SpecError(f"its exec is {mode!r}: valid are 'eager', 'graph'")
    if not isinstance(rec.get("attn_kernel_real") or {}, dict):
        raise SpecError(f"its attn_kernel_real is {rec['attn_kernel_real']!r}: an object with 'chosen'")
    med = measured_s(rec)  # checked before the engines run: a bad record is named at once
    lat = rec.get("latency_s") if isinstance(rec.get("latency_s"), dict) else {}
    m = {"max_s": lat.get("max"), "min_s": lat.get("min")} if lat else (rec.get("measured") or {})
    hi = _seconds(m.get("max_s"), "max", required=False) or med
    lo = _seconds(m.get("min_s"), "min", required=False) or med
    spread = (hi - lo) / med
    cfg = config_of(rec, hardware)
    a = predict(cfg)["latency_s"]
    s = None
    if simulate:
        from sim import run_config  # validation may import every engine

        s = run_config(cfg).latency_s
    fusion = exec_mode_of(rec)
    label = label_of(cfg) + ("" if mode == "eager" else f" {mode}") + ("" if fusion == "eager" else " fused")
    return Row(
        label,
        str(cfg.workload.phase),
        med,
        a,
        s,
        spread,
        src,
        mode,
        seen_by_calibration(rec, cfg),
        cfg.model.name,
        plan_family(cfg.plan),
        fusion,
        cfg.plan.n_ranks,
        cfg.hardware.name,
        bool(cfg.workload.cached_len) or str(cfg.plan.prefill_attn) == "pass-q",
        idle_stages(cfg.plan),
    )


def idle_stages(plan) -> bool:
    """A pipeline whose stages idle at least half of a pass: its units (micro-batches x chunks) at most
    pp - 1, so a stage computes in at most half of the (pp + units - 1) slots.  A GPU that idles between
    its GEMMs runs them faster than a loaded one (its power-limited clock recovers: 0.80-0.81 of peak after
    idling as long as the GEMM against 0.66-0.73 back to back, ``benchmarks/bench_gemm_duty.py``); the
    model, fitted on loaded GPUs, does not represent it, and every such record leans pessimistic (+4% to
    +10%).  Their group is summarised apart, held to the whole table's guard."""
    return plan.pp > 1 and plan.microbatches * plan.chunks <= plan.pp - 1


def plan_family(plan) -> str:
    """The family a plan's error is summarised under: its sequence axes first (a ring with TP is 'ring')."""
    if plan.ring > 1:
        return "ring"
    if plan.ulysses > 1:
        return "ulysses"
    if plan.tp > 1 and plan.pp > 1:
        return "tp+pp"
    if plan.tp > 1:
        return "tp"
    return "pp" if plan.pp > 1 else "single"


def breakdown(
    rows: list[Row], unseen: bool = True, by_model: bool = True, engine: str = "analytic"
) -> list[dict]:
    """Error by model, phase group and plan family (unseen records only by default): n, median |error|
    and mean signed error, the figure that shows a systematic lean towards one family.  ``by_model``
    False: every model together (model ``all``), the figure issue 12's target on ring and ulysses reads."""
    if unseen:
        rows = [r for r in rows if r.seen is None]

    def key(r):
        return (r.model if by_model else "all", r.group, r.family)

    keys = sorted({key(r) for r in rows})
    out = []
    for model, group, fam in keys:
        errs = [e for r in rows if key(r) == (model, group, fam) and (e := r.err(engine)) is not None]
        if not errs:
            continue
        out.append(
            {
                "model": model,
                "group": group,
                "family": fam,
                "n": len(errs),
                "median_abs_err": statistics.median(abs(e) for e in errs),
                "mean_signed_err": statistics.fmean(errs),
            }
        )
    return out


SAME_CALL_S = (
    30 * 60
)  # a device call lasts at most 28 minutes: records this close to a calibration may share it


def _calibration(hw) -> dict:
    """Shapes and dates of the calibration runs a profile was fitted from (its ``fitted_by`` raw files)."""
    key = hw.name
    got = _CAL.get(key)
    if got is not None:
        return got
    import json
    import re

    from .stored import DATA_DIR

    files = re.findall(r"--from-raw\s+(\S+)", str(hw.provenance.get("fitted_by", "")))
    got = {
        "attention": set(),
        "decode_attention": set(),
        "gemm_m": set(),
        "dates": [],
        "files": [],
        "boot_ids": set(),
        "runs": [],  # (date or None, its machine boots) of each raw file
    }
    for f in files:
        path = DATA_DIR / "calibration" / Path(f).name
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        got["files"].append(path.name)
        pv = raw.get("provenance", {})
        d = pv.get("date") or pv.get("date_utc")
        if d:
            got["dates"].append(datetime.fromisoformat(d))
        got["boot_ids"].update(pv.get("boot_ids") or [])
        got["runs"].append((datetime.fromisoformat(d) if d else None, set(pv.get("boot_ids") or [])))
        for r in raw.get("results", []):
            op = r.get("op")
            if op == "attention" or "median_overlap_s" in r:
                got["attention"].add(int(r.get("kv_len", 0)))
                got["attention"].add(int(r.get("q_len", 0)))
            elif op in ("decode_attention", "decode_attention_grid"):  # the grid: issue 12
                got["decode_attention"].add(int(r.get("kv_len", 0)))
            elif op in ("gemm", "gemm_fp8", "gemm_bf16_ref"):  # the fp8 suite's GEMMs too
                got["gemm_m"].add(int(r.get("m", 0)))
    _CAL[key] = got
    return got


_CAL: dict[str, dict] = {}


def seen_by_calibration(rec: dict, cfg: Config) -> str | None:
    """Why a record is not an unseen one, or None: it counts as unseen only if no calibration run of its
    profile measured its attention lengths (per rank: the ring's blocks, the cache shard) or its GEMM
    rows, and it was measured in a device call of its own: on another machine boot than every calibration
    run when all of them record their boot, else more than ``SAME_CALL_S`` away from each of them."""
    from costmodel.geometry import Geometry

    cal = _calibration(cfg.hardware)
    if not cal["files"]:
        return "its profile names no calibration raw file"
    g = Geometry.of(cfg.model, cfg.workload, cfg.plan)
    if cfg.workload.phase == "decode":
        lengths, known = {g.shard_len if cfg.plan.ring > 1 else g.context}, cal["decode_attention"]
    else:
        lr = g.ring_len
        lengths = {lr, lr // 2} if cfg.plan.ring > 1 else {lr}
        known = cal["attention"]
    hit = sorted(lengths & known)
    if hit:
        return f"its attention length {hit[0]} was calibrated"
    if int(g.dense_tokens) in cal["gemm_m"]:
        return f"its GEMM rows ({int(g.dense_tokens)}) were calibrated"
    pv = rec.get("provenance") or {}
    if pv.get("boot_ids") and cal["boot_ids"] and len(cal["boot_ids"]) >= len(cal["files"]):
        # every calibration run and the record name their machine's boot: the same lease iff one is shared
        if set(pv["boot_ids"]) & cal["boot_ids"]:
            return "it was measured on the lease (machine boot) of a calibration run"
        return None
    d = pv.get("date_utc")
    if d:
        t = datetime.fromisoformat(d)
        mine = set(pv.get("boot_ids") or [])
        for c, boots in cal["runs"]:
            if c is None or abs((t - c).total_seconds()) > SAME_CALL_S:
                continue
            if mine and boots and not (mine & boots):
                continue  # close in time, but both name their machine's boot and they differ: another call
            return "it was measured within 30 minutes of a calibration run (possibly the same device call)"
    return None


def summarise(rows: list[Row], unseen: bool = False) -> dict:
    """Median and max absolute % error per engine and phase, with the targets and whether each holds;
    ``unseen``: over the unseen records only (shapes never calibrated, another device call), held to issue
    12's targets where it sets them (``UNSEEN_TARGETS``), the whole table to the older guards
    (``TARGETS``)."""
    out: dict = {}
    if unseen:
        rows = [r for r in rows if r.seen is None]
    groups = sorted({r.group for r in rows}, key=lambda g: (g.split("-")[0] != "prefill", g))
    for group in groups:
        phase = group.split("-")[0]
        for engine in ("analytic", "simulator"):
            errs = [abs(e) for r in rows if r.group == group and (e := r.err(engine)) is not None]
            if not errs:
                continue
            d = {"n": len(errs), "median_abs_err": statistics.median(errs), "max_abs_err": max(errs)}
            if group.endswith("-fused"):
                t = FUSED_TARGETS
            elif unseen and group in UNSEEN_TARGETS:
                t = UNSEEN_TARGETS[group]
            else:
                t = TARGETS[phase]
            d["targets"] = t
            d["meets_targets"] = (d["median_abs_err"] <= t["median"]) and (
                d["max_abs_err"] <= t.get("max", 1e9)
            )
            out[f"{group}/{engine}"] = d
    return out


def ideal_vs_fused(rows: list[Row]) -> dict:
    """The ideal profile against the fused executor's records (issue 12): per phase group (prefill,
    prefill-graph, decode-graph, ...) and GPU count, and over all of them at P <= 2, n, median and max
    |error| and the mean signed error of the analytic model; the target median applies at P <= 2."""
    fused = [r for r in rows if r.fusion == "fused"]
    profiles = sorted({r.profile for r in fused if r.profile}) or ["h200-sxm"]
    out: dict = {"profile": ", ".join(profiles), "targets": FUSED_TARGETS, "groups": {}}

    def stats(rs: list[Row]) -> dict:
        errs = [r.err("analytic") for r in rs]
        return {
            "n": len(errs),
            "median_abs_err": statistics.median(abs(e) for e in errs),
            "max_abs_err": max(abs(e) for e in errs),
            "mean_signed_err": statistics.fmean(errs),
        }

    for key in sorted({(r.group, r.ranks) for r in fused}):
        out["groups"][f"{key[0]} P={key[1]}"] = stats([r for r in fused if (r.group, r.ranks) == key])
    small = [r for r in fused if r.ranks <= 2]
    if small:
        out["all_p_le_2"] = d = stats(small)
        d["meets_targets"] = d["median_abs_err"] <= FUSED_TARGETS["median"]
    return out


def _ideal_lines(rows: list[Row]) -> list[str]:
    d = ideal_vs_fused(rows)
    lines = [
        "",
        f"ideal profile ({d['profile']}) vs fused executor records (real.run --exec-mode fused; analytic)",
    ]
    if not d["groups"]:
        return lines + ["  (no fused-executor records yet: benchmarks/device_h200x2_fused.sh measures them)"]
    for key, g in d["groups"].items():
        lines.append(
            f"  {key:<23} n={g['n']:<3} median {g['median_abs_err']:6.1%}  max {g['max_abs_err']:6.1%}  "
            f"mean signed {g['mean_signed_err']:+6.1%}"
        )
    if "all_p_le_2" in d:
        a = d["all_p_le_2"]
        lines.append(
            f"  {'all, P <= 2':<23} n={a['n']:<3} median {a['median_abs_err']:6.1%}  "
            f"max {a['max_abs_err']:6.1%}  "
            f"mean signed {a['mean_signed_err']:+6.1%}  (target median <= {FUSED_TARGETS['median']:.0%}: "
            f"{'met' if a['meets_targets'] else 'NOT met'})"
        )
    return lines


def _summary_line(key: str, d: dict) -> str:
    tgt = ", ".join(f"{n} <= {v:.0%}" for n, v in d["targets"].items())
    return (
        f"  {key:<23} n={d['n']:<3} median {d['median_abs_err']:6.1%}  max {d['max_abs_err']:6.1%}  "
        f"(target {tgt}: {'met' if d['meets_targets'] else 'NOT met'})"
    )


def format_table(rows: list[Row], summary: dict, unseen_summary: dict | None = None) -> str:
    w = max([len(r.label) for r in rows] + [13])
    lines = [
        f"{'configuration':<{w}}  {'measured':>10}  {'analytic':>10}  {'err':>7}  "
        f"{'simulated':>10}  {'err':>7}",
        "-" * (w + 56),
    ]
    for r in rows:
        sim = (
            f"{r.simulated_s * 1e3:10.3f}  {r.err('simulator') * 100:+6.1f}%"
            if r.simulated_s
            else f"{'-':>10}  {'':>7}"
        )
        lines.append(
            f"{r.label:<{w}}  {r.measured_s * 1e3:10.3f}  {r.analytic_s * 1e3:10.3f}  "
            f"{r.err('analytic') * 100:+6.1f}%  {sim}"
        )
    lines.append("(times in ms; err = predicted / measured - 1)")
    lines.append("")
    lines.append(
        "summary: median and max |error| per phase and engine, every record (seen ones included; the older "
        "guards)"
    )
    lines += [_summary_line(k, d) for k, d in summary.items()]
    lines += _ideal_lines(rows)
    if unseen_summary is not None:
        lines.append("")
        lines.append(
            "unseen subset: shapes no calibration run of the profile measured, another device call, check "
            "passed (issue 12's targets: prefill median <= 3%, max <= 8%; graph decode median <= 5%, max "
            "<= 12%)"
        )
        if not unseen_summary:
            lines.append("  (none)")
        lines += [_summary_line(k, d) for k, d in unseen_summary.items()]
        parts = breakdown(rows)
        if parts:
            lines.append("")
            lines.append(
                "unseen subset by model, phase and plan family (analytic): median |error|, mean signed"
            )
            for d in parts:
                lines.append(
                    f"  {d['model']:<14} {d['group']:<13} {d['family']:<8} n={d['n']:<3} "
                    f"median {d['median_abs_err']:6.1%}  mean signed {d['mean_signed_err']:+6.1%}"
                )
            lines.append("")
            lines.append(
                "unseen prefill by plan family, every model (mean signed; issue 12's target for ring and "
                "ulysses: within +-2%)"
            )
            for eng in ("analytic", "simulator"):
                for d in breakdown(rows, by_model=False, engine=eng):
                    if d["group"] != "prefill":
                        continue
                    mark = (
                        ("  (target: met)" if abs(d["mean_signed_err"]) <= 0.02 else "  (target: NOT met)")
                        if d["family"] in ("ring", "ulysses")
                        else ""
                    )
                    lines.append(
                        f"  {eng:<10} {d['family']:<8} n={d['n']:<3} median {d['median_abs_err']:6.1%}  "
                        f"mean signed {d['mean_signed_err']:+6.1%}{mark}"
                    )
    return "\n".join(lines)
