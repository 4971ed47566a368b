"""Calibration: microbenchmark results (``real.microbench``) -> a hardware profile TOML.

The fit is deliberately simple and inspectable: each profile figure is read off the measurement at
the shapes the model asks about, never fitted to validation data.

* GEMM efficiency by FLOPs per call: measured FLOP/s over the datasheet peak, time-weighted per size.
* Attention throughput by kernel, mask and length: FLOPs over median time (square shapes, B = 1).
* Decode attention bandwidth by bytes read: K+V bytes over median time.
* Elementwise bandwidth: bytes over time of the largest add.
* Launch overhead: wall time per tiny eager op.
* Communication at the measured group size (one node): latency = median time of the smallest message
  minus the published per-hop latency steps; bus bandwidth = volume / (time - latency) at the
  largest message, and by message size (a curve) wherever the transfer is at least a quarter of the
  time.  InfiniBand figures stay published: a single node cannot measure them.
* Compute slowdown while a transfer runs beside it: median time ratio, at least 1.

Three profiles come from one raw file (``mode``): ``ideal`` (the hardware with fused kernels issued
from a CUDA graph, as a serving engine runs them: the predictions; per-kernel figures are the
graph-timed ones where the raw file has them, each op is one kernel with the in-place floor of one
elementwise kernel, and a pass pays one graph launch), ``eager`` (this repository's executor with the
host issuing op by op: per-class bytes factors and host issue times) and ``graph`` (the same
executor replayed from CUDA graphs: every figure that has a graph-replay measurement uses it; op
classes get a device floor from the in-place op measurement, no host issue time, and a pass pays one
graph launch).
"""

from __future__ import annotations

import copy
import statistics
from collections import defaultdict

import numpy as np

from costmodel import kernels, presets
from costmodel.errors import SpecError


def _by(results: list[dict], op: str) -> list[dict]:
    return [r for r in results if r.get("op") == op and "error" not in r]


def fit_gemm(results: list[dict], peak_flops: float) -> dict:
    """Efficiency by FLOPs per call, from all measured shapes (sorted, merged where sizes coincide)."""
    g = _by(results, "gemm")
    if not g:
        raise SpecError("calibration data has no GEMM measurements")
    buckets: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for r in g:
        buckets[round(float(np.log2(r["flops"])), 1)].append((r["flops"], r["median_s"]))
    xs, ys = [], []
    for key in sorted(buckets):
        fl = sum(f for f, _ in buckets[key])
        t = sum(s for _, s in buckets[key])
        xs.append(fl / len(buckets[key]))
        ys.append(min(fl / t / peak_flops, 1.0))
    return {"flops": [_sig(x) for x in xs], "efficiency": [_sig(y) for y in ys]}


def fit_attention(results: list[dict], kernel: str, layout: str = "contiguous") -> dict | None:
    """The measured parts of one kernel's figures: prefill curves (both masks at the same lengths) and/or
    the decode bandwidth curve; None when neither was measured."""
    a = [r for r in _by(results, "attention") if r["kernel"] == kernel]
    out: dict = {}
    lengths = sorted({r["kv_len"] for r in a})
    for causal, key in ((True, "causal_TFLOPs"), (False, "full_TFLOPs")):
        rows: dict[int, list[float]] = {}  # kv_len -> throughput of every record (batches, runs) there
        for r in a:
            if r["causal"] == causal:
                rows.setdefault(r["kv_len"], []).append(r["flops"] / r["median_s"] / 1e12)
        if not a or set(rows) != set(lengths):
            out = {}
            break
        out[key] = [_sig(statistics.median(rows[L])) for L in lengths]
    if out:
        out = {"kv_len": lengths, **out}
    d = sorted(
        (
            r
            for r in _by(results, "decode_attention")
            if r["kernel"] == kernel and r.get("layout", "contiguous") == layout
        ),
        key=lambda r: r["kv_bytes"],
    )
    if d:
        xs, ys = [], []
        for r in d:
            bw = r["kv_bytes"] / r["median_s"] / 1e12
            if xs and r["kv_bytes"] <= xs[-1] * 1.01:  # same bytes, other batch/length split: average
                ys[-1] = (ys[-1] + bw) / 2
                continue
            xs.append(r["kv_bytes"])
            ys.append(bw)
        out["decode_kv_bytes"] = xs
        out["decode_TBps"] = [_sig(y) for y in ys]
    return out or None


def fit_comm(results: list[dict], base_comm: dict) -> dict:
    """Per collective: latency and bus bandwidth (see module docstring) at the smallest measured group
    size; figures measured in larger groups (a supplement run on more GPUs) go under ``groupN``."""
    c = _by(results, "comm")
    out = copy.deepcopy(base_comm)
    for coll in {r["coll"] for r in c}:
        sizes = sorted({r["group"] for r in c if r["coll"] == coll})
        for n, g in enumerate(sizes):
            rows = sorted(
                (r for r in c if r["coll"] == coll and r["group"] == g), key=lambda r: r["msg_bytes"]
            )
            fig = _fit_one_comm(coll, g, rows, base_comm[coll].get("hop_latency_us", 0.0) * 1e-6)
            if n == 0:
                out[coll] = fig
            else:
                out[coll][f"group{g}"] = fig
    return out


def _fit_one_comm(coll: str, g: int, rows: list[dict], hop: float) -> dict:
    steps, vol = (float(v) for v in kernels.ring_factors(coll, g))
    alpha = rows[0]["median_s"]
    big = rows[-1]
    bw = vol * big["msg_bytes"] / max(big["median_s"] - alpha, 1e-9)
    out = {
        "latency_us": _sig(max(alpha - steps * hop, 0.0) * 1e6),
        "hop_latency_us": _sig(hop * 1e6),
        "bw_GBps": _sig(bw / 1e9),
    }
    # bandwidth by message size, where the transfer (not the latency) is at least a quarter of the time
    pts = [
        (r["msg_bytes"], vol * r["msg_bytes"] / (r["median_s"] - alpha))
        for r in rows[1:]
        if r["median_s"] - alpha >= 0.25 * r["median_s"]
    ]
    if len(pts) >= 2:
        out["msg_bytes"] = [float(n) for n, _ in pts]
        out["bus_GBps"] = [_sig(b / 1e9) for _, b in pts]
    return out


def fit_ops(results: list[dict], elementwise_Bps: float) -> dict | None:
    """Per op class of the executor: bytes factor over the ideal fused traffic (full-size shape) and host
    issue time (tiny shape), plus the executor's own dispatch cost per op spread over every class."""
    dev = {r["cls"]: r for r in _by(results, "op_device")}
    iss = {r["cls"]: r for r in _by(results, "op_issue")}
    if not iss:
        return None
    walk = _by(results, "executor_walk")
    extra = 0.0
    if walk:
        w = walk[0]
        host = sum(n * iss[c]["median_s"] for c, n in w["ops"].items() if c in iss)
        extra = max(0.0, (w["median_s"] - host) / max(sum(w["ops"].values()), 1))
    out = {}
    for cls, r in iss.items():
        d = {"issue_us": _sig((r["median_s"] + extra) * 1e6)}
        if cls in dev:
            ideal = dev[cls]["ideal_bytes"] / elementwise_Bps
            d["bytes_factor"] = _sig(min(max(dev[cls]["median_s"] / ideal, 0.1), 100.0))
        out[cls] = d
    return out


def fit_ops_graph(results: list[dict], elementwise_Bps: float) -> tuple[dict | None, list[str]]:
    """Per op class under graph replay: no host issue time; a device floor (median in-place time of the
    executor's ops of that class at one sequence) for the elementwise classes and attention; bytes factor
    from the graph-timed full-size op.  GEMM and communication need no floor: their curves and latencies
    are graph-timed per call already."""
    floors: dict[str, list[float]] = defaultdict(list)
    for r in _by(results, "op_floor"):
        floors[r["cls"]].append(r["median_s"])
    if not floors:
        return None, []
    dev = {r["cls"]: r for r in _by(results, "op_device") if r.get("mode") == "graph"}
    from costmodel.specs import OP_CLASSES

    out, notes = {}, []
    for cls in OP_CLASSES:
        d: dict = {"issue_us": 0.0}
        if cls not in ("gemm", "comm") and floors.get(cls):
            d["floor_us"] = _sig(float(np.median(floors[cls])) * 1e6)
        if cls in dev:
            ideal = dev[cls]["ideal_bytes"] / elementwise_Bps
            d["bytes_factor"] = _sig(min(max(dev[cls]["median_s"] / ideal, 0.1), 100.0))
        out[cls] = d
    missing = [c for c in OP_CLASSES if c not in ("gemm", "comm") and not floors.get(c)]
    if missing:
        notes.append(f"achievable.ops floors not measured for {missing} (not in a decode step): floor 0")
    return out, notes


def fit_ops_ideal(results: list[dict]) -> dict | None:
    """Fused kernels issued from a CUDA graph: no host issue time, bytes factor 1, and for the elementwise
    classes the floor of one elementwise kernel in place (the median graph-timed residual add of the
    executor's decode steps: a single kernel); GEMM, attention and communication curves carry theirs."""
    one = [r["median_s"] for r in _by(results, "op_floor") if r["cls"] == "residual"]
    if not one:
        return None
    from costmodel.specs import OP_CLASSES

    floor = _sig(float(np.median(one)) * 1e6)
    return {
        cls: (
            {"issue_us": 0.0}
            if cls in ("gemm", "attention", "comm")
            else {"issue_us": 0.0, "floor_us": floor}
        )
        for cls in OP_CLASSES
    }


def _select(results: list[dict], mode: str) -> list[dict]:
    """The records a profile is fitted from: eager ones, or (graph) the graph-replay records of every
    kind measured that way and the eager records of the other kinds (e.g. long prefill attention)."""
    eager = [r for r in results if r.get("mode", "eager") != "graph"]
    if mode != "graph":
        # a group size whose communication was only graph-timed (a supplement run on more GPUs): its
        # transfers' device time stands for the eager executor too (its host issue time is the op class's)
        eager_groups = {r["group"] for r in eager if r["op"] == "comm"}
        return eager + [
            r
            for r in results
            if r.get("mode") == "graph" and r["op"] == "comm" and r["group"] not in eager_groups
        ]
    graph = [r for r in results if r.get("mode") == "graph"]
    kinds = {r["op"] for r in graph}
    return [r for r in eager if r["op"] not in kinds] + graph


def _ops_of(
    mode: str, res: list[dict], elementwise_Bps: float, has_graph: bool
) -> tuple[dict | None, list[str]]:
    """``achievable.ops`` of a profile and the notes that say where it comes from."""
    if mode == "eager":
        ops = fit_ops(res, elementwise_Bps)
        return ops, (
            [
                "achievable.ops.*: measured on the real/ executor's own implementations: bytes_factor = "
                "device time at 16384 tokens over the recipe's ideal (fused) traffic; "
                "issue_us = host time per "
                "op at one token, plus the executor's dispatch cost per op (a walk of a tiny decode step)"
            ]
            if ops
            else []
        )
    if mode == "graph":
        ops, notes = fit_ops_graph(res, elementwise_Bps)
        return ops, notes + (
            [
                "achievable.ops.*: the real/ executor replayed from CUDA graphs: issue_us = 0 (one "
                "launch per pass); floor_us = median device time of the executor's own ops of the "
                "class, each captured alone in place in a decode step of one layer at one sequence "
                "(TP and every ring decode variant); bytes_factor = graph-timed device time at 16384 "
                "tokens over the ideal traffic"
            ]
            if ops
            else []
        )
    ops = fit_ops_ideal(res) if has_graph else None
    if ops:
        return ops, [
            "achievable.ops.*: ideal fused kernels issued from a CUDA graph: bytes_factor 1, issue_us 0, "
            "floor_us = the in-place floor of one elementwise kernel (the executor's residual add, "
            "graph-timed) for the elementwise classes; the executor's measured op figures are in the "
            "'-eager' and '-graph' profiles fitted from the same raw file"
        ]
    return None, [
        "achievable.ops: none (ideal fused kernels); the executor's measured op figures are in the "
        "'-eager' profile fitted from the same raw file"
    ]


MODES = ("ideal", "eager", "graph")


def fit_profile(raw: dict, base: str, name: str, mode: str = "ideal") -> tuple[dict, list[str]]:
    """The base preset's TOML dict with every measured figure replaced; returns (profile, notes).

    ``mode`` (see the module docstring): ``ideal`` predicts fused kernels; ``eager`` and ``graph`` add
    the executor's own op figures (``achievable.ops``): profiles of *this* implementation, for
    validating its measurements."""
    if mode not in MODES:
        raise SpecError(f"calibration mode {mode!r} is not valid: use one of {list(MODES)}")
    with_ops = mode != "ideal"
    prof = presets.load_toml("hardware", base)
    prof = copy.deepcopy(prof)
    has_graph = any(r.get("mode") == "graph" for r in raw["results"])
    res = _select(raw["results"], "graph" if mode == "ideal" and has_graph else mode)
    if mode == "graph" and not has_graph:
        raise SpecError(
            "the raw calibration file has no CUDA-graph measurements: a '-graph' profile needs "
            "a run of the 'graph' suite on a GPU"
        )
    prof["name"] = name
    peak = prof["peak"]["bf16_TFLOPs"] * 1e12
    ach = prof["achievable"]
    notes = []
    ach["gemm"] = fit_gemm(res, peak)
    notes.append(
        "achievable.gemm: measured (efficiency by FLOPs per call at the model's layer shapes, tp=1 and 2)"
    )
    layouts = {r.get("layout", "contiguous") for r in _by(res, "decode_attention")}
    layout = (
        "executor" if "executor" in layouts and (with_ops or "contiguous" not in layouts) else "contiguous"
    )
    for kern in list(ach["attention"]):
        f = fit_attention(res, kern, layout)
        if f:
            ach["attention"][kern] = {**ach["attention"][kern], **f}
            parts = (["B=1, square, causal and full"] if "kv_len" in f else []) + (
                [f"decode-shaped calls on {layout} K/V"] if "decode_TBps" in f else []
            )
            notes.append(f"achievable.attention.{kern}: measured ({'; '.join(parts)}); the rest published")
        else:
            notes.append(f"achievable.attention.{kern}: NOT measured, published figures kept")
    ew = sorted(_by(res, "elementwise"), key=lambda r: r["bytes"])
    if ew:
        ach["elementwise_TBps"] = _sig(ew[-1]["bytes"] / ew[-1]["median_s"] / 1e12)
        notes.append(
            "achievable.elementwise_TBps: measured (add of the largest size, 3 bytes moved per byte)"
        )
    ops, more = _ops_of(mode, res, ach["elementwise_TBps"] * 1e12, has_graph)
    if ops:
        ach["ops"] = ops
    notes += more
    if has_graph and mode != "eager":
        gl = _by(res, "graph_launch")
        if gl:
            ach["pass_launch_us"] = _sig(gl[0]["launch_s"] * 1e6)
            notes.append(
                "achievable.pass_launch_us: measured (replay time of graphs of 1, 30 and 300 tiny kernels: "
                "the intercept of a straight line)"
            )
        notes.append(
            "GEMM, decode attention, elementwise and communication figures are timed as CUDA graph "
            "replays; prefill attention and the compute slowdown are the eager measurements"
        )
    la = _by(res, "launch")
    if la:
        ach["launch_us"] = _sig(la[0]["median_s"] * 1e6)
        notes.append("achievable.launch_us: measured (wall time per tiny eager op)")
    if _by(res, "comm"):
        ach["comm"]["nvlink"] = fit_comm(res, ach["comm"]["nvlink"])
        gs = sorted({r["group"] for r in _by(res, "comm")})
        notes.append(
            f"achievable.comm.nvlink.*: measured at group size {gs[0]} (latency from the smallest message, "
            "bus bandwidth from the largest); hop_latency_us published"
            + (
                f"; groups of {', '.join(map(str, gs[1:]))} under groupN (measured there)"
                if len(gs) > 1
                else ""
            )
        )
        notes.append("achievable.comm.ib.*: published (one node: InfiniBand not measurable here)")
    else:
        notes.append("achievable.comm.*: published (one process: no communication measured; sources above)")
    sd = _by(res, "slowdown")
    beside = [
        r for r in _by(res, "attention_beside_exchange") if r["median_overlap_s"] >= 0.1 * r["median_alone_s"]
    ]
    if beside:
        # attention is what a ring overlaps with its transfers: while the K/V exchange runs beside it,
        # a call of t alone takes t + ov (1 - 1/s) (compute at 1/s speed during the overlap ov)
        r_med = statistics.median(
            (r["median_beside_s"] - r["median_alone_s"]) / r["median_overlap_s"] for r in beside
        )
        s = 1.0 / (1.0 - r_med)
        ach["attention_slowdown_under_comm"] = _sig(max(1.0, min(s, 2.9)))
        notes.append(
            f"achievable.attention_slowdown_under_comm: measured {s:.3f} beside the ring's K/V exchange "
            f"(median over {len(beside)} attention calls, flash and cuDNN, whose overlap with the "
            "exchange is at least 10% of the call: benchmarks/bench_ring_causes.py)"
        )
    if sd:
        ratio = sd[0]["ratio"]
        ach["compute_slowdown_under_comm"] = _sig(max(1.0, min(ratio, 2.9)))
        clamp = " (below 1: no slowdown seen, clamped to 1.0)" if ratio < 1 else ""
        notes.append(
            f"achievable.compute_slowdown_under_comm: measured ratio {ratio:.3f}{clamp} "
            "(8192^3 GEMM burst alone vs beside 512 MiB neighbour exchanges); it applies to every "
            "kernel but attention"
        )
    else:
        notes.append(
            "achievable.compute_slowdown_under_comm: published estimate (not measured: no second GPU)"
        )
    for s in raw.get("supplements", []):
        sp = s.get("provenance", {})
        notes.append(
            f"supplemented by {s['file']} ({', '.join(s['ops'])}; {sp.get('gpu', '?')}, "
            f"{sp.get('date', sp.get('date_utc', '?'))}): "
            "its records are fitted together with the run's"
        )
    pv = raw["provenance"]
    prof["provenance"] = {
        "kind": "calibrated",
        "gpu": pv.get("gpu", "unknown"),
        "driver": pv.get("driver", "unknown"),
        "torch": pv.get("torch"),
        "cuda": pv.get("cuda", "none"),
        "nccl": pv.get("nccl", "none"),
        "date": pv.get("date"),
        "host": pv.get("host"),
        "world_size": pv.get("world_size"),
        "command": pv.get("command"),
        "base": base,
        "notes": notes,
        "fitted_by": f"ringsim calibrate --from-raw <raw> --base {base} (validation/calibrate.py)",
        "sources": prof.get("provenance", {}).get("sources", []),
    }
    presets.hardware_from_dict(copy.deepcopy(prof))  # validate before anyone writes it
    return prof, notes


def load_raw(paths: list[str]) -> dict:
    """One raw file, or several: the first is the calibration run (its provenance is the profile's); the
    others supplement it (e.g. attention beyond its longest length), their records added to its own and
    their provenance kept under ``supplements``."""
    import json

    raws = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                raws.append(json.load(f))
        except UnicodeDecodeError as e:
            raise SpecError(
                f"--from-raw {p!r} is not UTF-8 text (byte {e.start}): raw files are JSON"
            ) from None
        except (OSError, json.JSONDecodeError, RecursionError) as e:
            raise SpecError(f"--from-raw {p!r} cannot be read as JSON: {e}") from None
        if not isinstance(raws[-1], dict) or not isinstance(raws[-1].get("results"), list):
            raise SpecError(f"--from-raw {p!r} is not a calibration raw file (no 'results' list)")
        bad = next((i for i, x in enumerate(raws[-1]["results"]) if not isinstance(x, dict)), None)
        if bad is not None:
            raise SpecError(f"--from-raw {p!r}: results[{bad}] is not a record (a JSON object)")
        for key in ("provenance", "model_dims"):
            if not isinstance(raws[-1].get(key, {}), dict):
                raise SpecError(f"--from-raw {p!r}: its {key} is {raws[-1][key]!r}, not a JSON object")
    raw = copy.deepcopy(raws[0])
    raw["supplements"] = []
    for p, r in zip(paths[1:], raws[1:]):
        for x in r["results"]:  # bench_ring_causes.py records: attention alone and beside the exchange
            if "op" not in x and "median_overlap_s" in x:
                x["op"] = "attention_beside_exchange"
        raw["results"] = raw["results"] + r["results"]
        raw["supplements"].append(
            {
                "file": str(p).rsplit("/", 1)[-1],
                "provenance": r.get("provenance", {}),
                "ops": sorted({x.get("op", "?") for x in r["results"]}),
            }
        )
    return raw


def _sig(x: float, digits: int = 4) -> float:
    """A figure kept to ``digits`` significant digits (what a measurement supports)."""
    return float(f"{x:.{digits}g}")
