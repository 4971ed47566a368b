"""Calibration: microbenchmark results (``real.microbench``) -> a hardware profile TOML.

The fit is deliberately simple and inspectable: each profile figure is read off the measurement at
the shapes the model asks about, never fitted to validation data.

* GEMM efficiency by FLOPs per call: measured FLOP/s over the datasheet peak, time-weighted per size.
* Attention throughput by kernel, mask and length: FLOPs over median time (square shapes, B = 1).
* Decode attention bandwidth by bytes read: K+V bytes over median time; where a decode grid was
  measured (query heads x KV heads x batch x keys), a physical model instead: a floor per call plus the
  bytes read at a bandwidth that grows with the work items the call gives the SMs (``fit_decode_model``).
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
import functools
import math
import statistics
from collections import defaultdict

import numpy as np

from costmodel import kernels, presets
from costmodel import layers as Lr
from costmodel.errors import SpecError


def _by(results: list[dict], op: str) -> list[dict]:
    return [r for r in results if r.get("op") == op and "error" not in r]


GEMM_STREAM_MAX_ROWS = 64  # calls of at most this many rows stream their weights (the stream curve's data)


def _weight_bytes(r: dict, fp8: bool) -> float | None:
    n, k = r.get("n"), r.get("k")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (n, k)):
        return None
    return float(Lr.gemm("qkv", 1, n, k, 2, (), (), fp8).weight_bytes)  # the cost model's own count


def _weight_time(r: dict, t: float, fp8: bool, elem_Bps: float | None) -> float:
    """The part of a few-row call's time ``t`` that reads its weight: ``t`` less its other bytes (the rows
    in and out, the cost model's count) at the elementwise bandwidth, as ``kernels.gemm_device_time`` adds
    them back; ``t`` itself without that bandwidth or the call's shape (or where the rows would take over
    half of it)."""
    m, n, k = r.get("m"), r.get("n"), r.get("k")
    if not elem_Bps or not all(isinstance(v, (int, float)) and v > 0 for v in (m, n, k)):
        return t
    w = Lr.gemm("mlp_up", m, n, k, 2, (), (), fp8)
    rest = (w.hbm_bytes - w.quant_bytes - w.weight_bytes) / elem_Bps
    return t - rest if rest < 0.5 * t else t


def _cold_stream(
    cold: list[dict], fp8: bool = False, elem_Bps: float | None = None
) -> dict[float, list[float]]:
    """Weight-streaming bandwidths of ``gemm_stream`` records (weights rotated out of L2,
    benchmarks/bench_gemm_stream.py), grouped by weight size in half-octaves (log2 rounded to 0.5):
    shapes of one size band share a point, so the curve does not jump between two shapes of nearly one
    size (the FP8 down and up projections of one K x N) and interpolates between bands.  Each call's
    weight bytes over its time less its rows' bytes at ``elem_Bps`` (``_weight_time``)."""
    by: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for r in cold:
        wb, t = r.get("weight_bytes"), r.get("median_s")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in (wb, t)):
            raise SpecError(
                f"calibration data: a gemm_stream record's weight_bytes {wb!r} or median_s {t!r} is not "
                "valid: finite numbers > 0"
            )
        by[round(2 * float(np.log2(wb))) / 2].append((wb, wb / _weight_time(r, t, fp8, elem_Bps)))
    out: dict[float, list[float]] = {}
    for key in sorted(by):
        x = _sig(statistics.median(w for w, _ in by[key]) / 1e6)
        out[x] = [b for _, b in by[key]]
    return out


def fit_gemm(
    results: list[dict],
    peak_flops: float,
    fp8: bool = False,
    cold: list[dict] | None = None,
    elem_Bps: float | None = None,
) -> dict:
    """Efficiency by FLOPs per call, from the measured shapes (sorted, merged where sizes coincide); and,
    where calls of at most ``GEMM_STREAM_MAX_ROWS`` rows were measured, the weight-streaming bandwidth by
    weight bytes (median over those calls of each weight size: weight bytes / time), the efficiency then
    from the larger calls only: at a few rows a call's time is its weights' read, which depends on the
    shape (N and K tiles), not on its FLOPs, so one curve by FLOPs cannot hold both (it put the seed's
    o_proj at 4-64 rows 1.5-2.0x over and its down projection 20-25% under)."""
    g = _by(results, "gemm")
    if not g:
        raise SpecError("calibration data has no GEMM measurements")
    for r in g:
        for key, v in (("flops", r["flops"]), ("median_s", r["median_s"]), ("m", r.get("m", 1))):
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise SpecError(
                    f"calibration data: a GEMM record's {key} {v!r} is not valid: a finite number > 0"
                )
    small = [r for r in g if r.get("m", 1 << 30) <= GEMM_STREAM_MAX_ROWS and _weight_bytes(r, fp8)]
    big = [r for r in g if r not in small]
    # keyed by the weight size as written (MB, _sig): sizes that write alike are one point, so the curve's
    # x increases strictly (e.g. FP8 up and down projections of one K x N differ only by their scales)
    stream: dict[float, list[float]] = defaultdict(list)
    if cold:  # weights read from HBM (rotated out of L2): what a decode step's GEMMs read
        stream.update(_cold_stream(cold, fp8, elem_Bps))
    else:  # one weight re-read call after call: those under a few x the L2 read from it in part
        for r in small:
            wb = _weight_bytes(r, fp8)
            stream[_sig(wb / 1e6)].append(wb / _weight_time(r, r["median_s"], fp8, elem_Bps))
    out = {}
    if stream and big:
        g = big
        xs = sorted(stream)
        out = {
            "stream_weight_MB": xs,
            "stream_TBps": [_sig(statistics.median(stream[x]) / 1e12) for x in xs],
        }
    buckets: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for r in g:
        f, t = r["flops"], r["median_s"]
        buckets[round(float(np.log2(f)), 1)].append((f, t))
    xs, ys = [], []
    for key in sorted(buckets):
        fl = sum(f for f, _ in buckets[key])
        t = sum(s for _, s in buckets[key])
        xs.append(fl / len(buckets[key]))
        ys.append(min(fl / t / peak_flops, 1.0))
    return {"flops": [_sig(x) for x in xs], "efficiency": [_sig(y) for y in ys], **out}


def fit_gemm_fp8(results: list[dict], peak_fp8_flops: float, elem_Bps: float | None = None) -> dict | None:
    """FP8 GEMM efficiency (over the FP8 peak) by FLOPs per call, as ``fit_gemm``, from the ``gemm_fp8``
    records of the fp8 suite measured on a GPU (emulated CPU records are left out); None without them."""
    g = [r for r in _by(results, "gemm_fp8") if not r.get("emulated")]
    if not g:
        return None
    cold = [r for r in _by(results, "gemm_stream") if r.get("dtype") == "fp8"]
    return fit_gemm([{**r, "op": "gemm"} for r in g], peak_fp8_flops, fp8=True, cold=cold, elem_Bps=elem_Bps)


def fit_fp8_quant(results: list[dict], elementwise_Bps: float) -> dict | None:
    """The activation quantise (amax per row, scale, cast): bytes factor = median device time over the
    ideal traffic at elementwise bandwidth, over the calls where the traffic is at least 64 MiB (bandwidth-
    bound); floor = the median time of the smallest call (one row).  None without GPU records."""
    q = [r for r in _by(results, "fp8_quant") if r.get("mode") == "graph"]
    if not q:
        return None
    big = [r for r in q if r["ideal_bytes"] >= 2**26] or [max(q, key=lambda r: r["ideal_bytes"])]
    factor = statistics.median(r["median_s"] / (r["ideal_bytes"] / elementwise_Bps) for r in big)
    small = min(r["m"] for r in q)
    floor = statistics.median(r["median_s"] for r in q if r["m"] == small)
    return {"bytes_factor": _sig(min(max(factor, 0.1), 100.0)), "floor_us": _sig(floor * 1e6)}


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


# ---------------------------------------------------------------------------------------------
# decode attention across heads, KV heads, batch and context (issue 12): physics, few parameters
# ---------------------------------------------------------------------------------------------
DECODE_SPLIT_KEYS = tuple(float(2**e) for e in range(8, 21)) + (1e9,)  # 1e9: the kernel never splits
# SMs of an H100 / H200 SXM5: 132 (NVIDIA H100 Tensor Core GPU Architecture whitepaper, "H100 SXM5":
# https://resources.nvidia.com/en-us-tensor-core/gtc22-whitepaper-hopper; the H200 is the same GH100 die)
DECODE_SMS = 132
# L2 of an H200 / H100 SXM: 50 MB (NVIDIA H100 Tensor Core GPU Architecture whitepaper, as above)
DECODE_WARM_MIN_BYTES = 2 * 50e6
# the query heads' FLOP rate of a decode kernel, tried from none (inf: the reads alone) and from about the
# H200's BF16 peak (989 TFLOP/s dense, NVIDIA H200 datasheet) down to a tenth of it: the least error wins
DECODE_READ_BOUND = 0.9  # a call is read-bound where its FLOPs at the rate take under this share of its time
DECODE_FLOPS_CANDIDATES = (float("inf"),) + tuple(float(v) * 1e12 for v in np.geomspace(1000, 100, 11))
DECODE_CTAS_PER_SM = (1, 2, 3, 4)  # thread blocks one SM runs at once: the fit picks the count


def nnls(A: np.ndarray, y: np.ndarray, iters: int = 200) -> np.ndarray:
    """min |A x - y| subject to x >= 0 (Lawson and Hanson's active-set algorithm, 'Solving Least Squares
    Problems', 1974, ch. 23)."""
    n = A.shape[1]
    x = np.zeros(n)
    free = np.zeros(n, dtype=bool)
    for _ in range(iters):
        w = A.T @ (y - A @ x)
        if free.all() or w[~free].max(initial=-np.inf) <= 1e-12 * max(1.0, np.abs(w).max()):
            break
        j = int(np.argmax(np.where(free, -np.inf, w)))
        free[j] = True
        while True:
            z = np.zeros(n)
            z[free] = np.linalg.lstsq(A[:, free], y, rcond=None)[0]
            if (z[free] > 0).all():
                x = z
                break
            neg = free & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            free &= x > 1e-15
            x[~free] = 0.0
    return x


def _decode_shape(r: dict, expanded: bool) -> tuple[float, float, float, float, float]:
    """(cache bytes, bytes the kernel reads, items it works on, expansion bytes from the strided cache,
    expansion bytes from a contiguous one) of one grid record (see ``DecodeAttnModel``)."""
    b, h, hk = (float(r[k]) for k in ("batch", "heads", "kv_heads"))
    cache = float(r["kv_bytes"])
    g = h / hk
    if expanded and g > 1:
        return (
            cache,
            cache * g,
            b * h,
            (2 * g * cache if hk > 1 else 0.0),
            ((1 + g) * cache if hk == 1 else 0.0),
        )
    return cache, cache, b * (h if expanded else hk), 0.0, 0.0


def _grouped(r: dict, expanded: bool) -> bool:
    s = _decode_shape(r, expanded)
    return bool(s[3] or s[4])


def _blocks(items: float, keys: float, split: float, slots: int) -> float:
    """Thread blocks of a call: its items, split along the keys only as far as that fills one wave."""
    return max(items, min(items * max(1.0, keys / split), slots))


def _occupancy(items: float, keys: float, split: float, sms: int, per_sm: int = 1) -> float:
    return _blocks(items, keys, split, sms * per_sm) / sms


def _hat(x: float, knots: np.ndarray) -> np.ndarray:
    """Weights of the piecewise-linear interpolation (in log2 x) at x over ``knots`` (flat beyond).
    A fit asks for a few hundred distinct (x, knots) some 10^5 times: each is computed once (read-only)."""
    return _hat_once(float(x), np.asarray(knots, dtype=np.float64).tobytes())


@functools.lru_cache(maxsize=4096)
def _hat_once(x: float, knots_bytes: bytes) -> np.ndarray:
    knots = np.frombuffer(knots_bytes, dtype=np.float64)
    lx, lk, eye = np.log2(x), np.log2(knots), np.eye(len(knots))
    w = np.array([np.interp(lx, lk, eye[i]) for i in range(len(knots))])
    w.flags.writeable = False
    return w


def _wave_weights(read: float, blocks: float, slots: int, sms: int, knots: np.ndarray) -> np.ndarray:
    """Coefficients of the seconds per byte at each knot in a call's time: full waves at the occupancy
    of a full wave, then the partial last wave at its own."""
    full = np.floor(blocks / slots)
    tail = blocks - full * slots
    w = full * slots * _hat(slots / sms, knots)
    if tail > 0:
        w = w + tail * _hat(tail / sms, knots)
    return read / blocks * w


def _wave_rows(
    reads: list[float], blocks: list[float], slots: int, sms: int, knots: np.ndarray
) -> np.ndarray:
    """``_wave_weights`` of many calls, one row each: the same operations element by element (the same
    bits), the full waves' weights computed once."""
    read, b = np.asarray(reads, dtype=np.float64), np.asarray(blocks, dtype=np.float64)
    full = np.floor(b / slots)
    tail = b - full * slots
    w = (full * slots)[:, None] * _hat(slots / sms, knots)[None, :]
    part = tail > 0
    if part.any():
        w[part] = w[part] + tail[part][:, None] * np.array([_hat(t / sms, knots) for t in tail[part]])
    return (read / b)[:, None] * w


def _read_part(p: dict, r: dict, expanded: bool) -> float:
    """The kernel's reads by the wave model (no floor, no query FLOPs, no items factor)."""
    _, kb, items, *_ = _decode_shape(r, expanded)
    slots = p["sms"] * p["ctas_per_sm"]
    blocks = _blocks(items, float(r["kv_len"]), p["split_keys"], slots)
    w = _wave_weights(kb, blocks, slots, p["sms"], np.asarray(p["occupancy"]))
    return float(w @ (1.0 / np.asarray(p["bw_Bps"])))


def _compute_part(p: dict, r: dict) -> float:
    return _query_flops(r) / p["flops"] if p.get("flops") else 0.0


def _kernel_time(p: dict, r: dict, expanded: bool) -> float:
    """Floor + the longer of the reads and the query heads' FLOPs (they overlap; no items factor)."""
    return p["floor_s"] + max(_read_part(p, r, expanded), _compute_part(p, r))


def _query_flops(r: dict) -> float:
    """FLOPs of a decode call: every query head against every key (QK and PV): 4 B H S D."""
    return 4.0 * r["batch"] * r["heads"] * r["kv_len"] * r["head_dim"]


def _items_factor(p: dict, items: float) -> float:
    if not p.get("items"):
        return 1.0
    return float(np.interp(np.log2(max(items, 1.0)), np.log2(p["items"]), p["items_factor"]))


def _read_time(p: dict, r: dict, expanded: bool) -> float:
    """The read part of the kernel's time (what ``items_factor`` scales): no floor, no query FLOPs."""
    return _read_part(p, r, expanded)


def _expansion(p: dict, r: dict, expanded: bool) -> float:
    s = _decode_shape(r, expanded)
    copy = s[3] / p["expand_bw_Bps"] + s[4] / p["expand_contig_bw_Bps"]
    return p["expand_floor_s"] + copy if s[3] or s[4] else 0.0


def decode_model_time(p: dict, r: dict, expanded: bool) -> float:
    """Seconds the fitted decode model ``p`` gives grid record r (what ``DecodeAttnModel.time`` computes)."""
    s = _decode_shape(r, expanded)
    read = _read_time(p, r, expanded) * _items_factor(p, s[2])
    return p["floor_s"] + max(read, _compute_part(p, r)) + _expansion(p, r, expanded)


DECODE_ITEMS_MIN_POINTS = 2  # records at one work-item count for its factor to be kept


def fit_items_factor(p: dict, fit: list[dict], expanded: bool) -> tuple[list[float], list[float]]:
    """The read-time factor by work items (``DecodeAttnModel.items_factor``): at each count of work items
    (sequences x heads the kernel reads) with at least ``DECODE_ITEMS_MIN_POINTS`` fitted records, the
    median over them of (measured - the rest of the model) / the model's read time; the wave model's
    continuous split cannot follow the kernel's own split and wave rule between the powers of two."""
    by: dict[float, list[float]] = {}
    for r in fit:
        s = _decode_shape(r, expanded)
        read = _read_time(p, r, expanded)
        if read <= 0:
            continue
        left = r["median_s"] - p["floor_s"] - _expansion(p, r, expanded)  # what the reads took
        if left * DECODE_READ_BOUND <= _compute_part(p, r):  # the math set (or nearly) the call's time
            continue
        by.setdefault(s[2], []).append(left / read)
    items = sorted(k for k, v in by.items() if len(v) >= DECODE_ITEMS_MIN_POINTS)
    return [float(k) for k in items], [float(np.clip(statistics.median(by[k]), 0.5, 2.0)) for k in items]


def _monotone_bw(occ: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Bandwidth at most proportional to occupancy between knots (so that more bytes over more items never
    take less time): bw[i+1] <= bw[i] (1 + ln(occ[i+1] / occ[i])), the bound for a curve linear in
    log2(occupancy) in seconds per byte."""
    bw = bw.copy()
    for i in range(1, len(bw)):
        bw[i] = min(bw[i], bw[i - 1] * (1 + np.log(occ[i] / occ[i - 1])))
    return bw


def _fit_kernel_part(
    fit: list[dict], y: np.ndarray, peak_Bps: float, expanded: bool, sms: int, per_sm: int, split: float
):
    """(squared relative error, knots, x = [floor, u per knot]) of the kernel's reads fitted at
    one split length and one count of thread blocks per SM; knots 4x apart from the lowest occupancy a
    wave of the data has up to a full wave."""
    slots = sms * per_sm
    shapes = [_decode_shape(r, expanded) for r in fit]
    blocks = [_blocks(s[2], float(r["kv_len"]), split, slots) for s, r in zip(shapes, fit)]
    tails = [b - np.floor(b / slots) * slots for b in blocks]
    lo = min([min(b, slots) for b in blocks] + [t for t in tails if t > 0]) / sms
    hi = float(per_sm)
    n = max(2, int(np.ceil(np.log(hi / lo) / np.log(4))) + 1) if hi > lo * 1.01 else 1
    knots = np.geomspace(lo, hi, n) if n > 1 else np.array([hi])
    rows = _wave_rows([s[1] for s in shapes], blocks, slots, sms, knots)
    A = np.column_stack([np.ones(len(fit)), rows]) / y[:, None]
    rhs = 1.0 - np.array([s[1] for s in shapes]) / peak_Bps / y  # seconds per byte = 1/peak + u, u >= 0
    x = nnls(A, rhs)
    return float(np.sum((A @ x - rhs) ** 2)), knots, x


def fit_decode_model(
    records: list[dict], peak_Bps: float, expanded: bool = True, sms: int = DECODE_SMS
) -> dict:
    """Fit ``DecodeAttnModel`` to decode-grid records of one kernel (those not held out), in two steps.

    The kernel: on the calls without K/V expansion (query heads = KV heads, or every call when the
    records read K/V once), t = floor + read x spb(occupancy) is linear in the floor and the seconds per
    byte at each occupancy knot (knots 4x apart over the measured occupancies) for a given split length:
    a non-negative least-squares fit of relative error for each split length of ``DECODE_SPLIT_KEYS``,
    the best kept; seconds per byte are at least 1 / ``peak_Bps`` (no bandwidth above the datasheet's).
    The expansion (grouped calls of an implementation that expands K/V): what the call takes beyond the
    kernel's part, fitted as expand_floor + (bytes read + written) / expand_bw.  Returns the figures and
    the relative errors on the fitted points and on the held-out ones."""
    fit = [r for r in records if not r.get("held_out")]
    held = [r for r in records if r.get("held_out")]
    plain = [r for r in fit if not _grouped(r, expanded)]
    grouped = [r for r in fit if _grouped(r, expanded)]
    if len(plain) < 8:
        raise SpecError(f"decode grid: {len(plain)} measured points without K/V expansion, need at least 8")
    y = np.array([r["median_s"] for r in plain])
    best = None
    for per_sm in DECODE_CTAS_PER_SM:
        for split in DECODE_SPLIT_KEYS:
            err, knots, x = _fit_kernel_part(plain, y, peak_Bps, expanded, sms, per_sm, split)
            if best is None or err < best[0] * (1 - 1e-9):
                best = (err, split, knots, x, per_sm)
    _, split, knots, x, per_sm = best
    # the query heads' FLOPs overlap the reads (t = floor + max(reads, FLOPs / rate)): the rate is fitted
    # after the reads, each candidate refitting the reads on the calls it leaves read-bound
    q = np.array([_query_flops(r) for r in plain])
    best_f = (None, 0.0, x, knots)
    for rate in DECODE_FLOPS_CANDIDATES:
        keep = q / rate < DECODE_READ_BOUND * y  # the calls this rate leaves read-bound fit the reads
        if keep.sum() < 8:
            continue
        sub = [r for r, k in zip(plain, keep) if k]
        _, kn, xr = _fit_kernel_part(sub, y[keep], peak_Bps, expanded, sms, per_sm, split)
        pr = {
            "floor_s": float(xr[0]),
            "occupancy": list(kn),
            "bw_Bps": list(_monotone_bw(kn, 1.0 / (1.0 / peak_Bps + xr[1:]))),
            "split_keys": split,
            "sms": sms,
            "ctas_per_sm": per_sm,
            "flops": rate if np.isfinite(rate) else 0.0,
        }
        err = float(sum((_kernel_time(pr, r, expanded) / t - 1.0) ** 2 for r, t in zip(plain, y)))
        if best_f[0] is None or err < best_f[0] * (1 - 1e-9):
            best_f = (err, pr["flops"], xr, kn)
    _, rate, x, knots = best_f
    bw = 1.0 / (1.0 / peak_Bps + x[1:])
    p = {
        "floor_s": float(x[0]),
        "occupancy": [float(k) for k in knots],
        "bw_Bps": [float(v) for v in _monotone_bw(knots, bw)],
        "split_keys": split,
        "sms": sms,
        "ctas_per_sm": per_sm,
        "flops": float(rate),
        "expand_bw_Bps": peak_Bps,
        "expand_contig_bw_Bps": peak_Bps,
        "expand_floor_s": 0.0,
    }
    if grouped:
        yg = np.array([r["median_s"] for r in grouped])
        kern = np.array([_kernel_time(p, r, expanded) for r in grouped])
        eb = np.array([_decode_shape(r, expanded)[3:] for r in grouped])
        A = np.column_stack([np.ones(len(grouped)), eb]) / yg[:, None]
        xe = nnls(A, 1.0 - kern / yg)
        p["expand_floor_s"] = float(xe[0])
        p["expand_bw_Bps"] = 1.0 / xe[1] if xe[1] > 0 else peak_Bps
        p["expand_contig_bw_Bps"] = 1.0 / xe[2] if xe[2] > 0 else peak_Bps

    p["items"], p["items_factor"] = fit_items_factor(p, fit, expanded)

    def errs(rows):
        return [abs(decode_model_time(p, r, expanded) / r["median_s"] - 1) for r in rows]

    def part(rows):
        e = errs(rows)
        return {"n": len(e), "median": statistics.median(e), "max": max(e)} if e else None

    e_fit, e_held = errs(fit), errs(held)
    return {
        **p,
        "n_fit": len(fit),
        "n_held_out": len(held),
        "fit_median": statistics.median(e_fit),
        "fit_max": max(e_fit),
        "held_out_median": statistics.median(e_held) if held else None,
        "held_out_max": max(e_held) if held else None,
        "held_out_plain": part([r for r in held if not _grouped(r, expanded)]),
        "held_out_grouped": part([r for r in held if _grouped(r, expanded)]),
    }


def fit_decode_grid(results: list[dict], kernel: str, peak_Bps: float) -> dict | None:
    """The decode model of one kernel from the grid's records (measured as the executor calls the kernel),
    or None when the grid has none for it.  Grouped K/V went to the kernel as they are unless the records
    say ``kv_expanded`` (a record without the field: as they are, the executor's way since it stopped
    expanding them; the run before that is kept in ``calibration/history/``)."""
    every = [r for r in _by(results, "decode_attention_grid") if r["kernel"] == kernel]
    # a grid measured without rotating cache copies re-read one cache call after call: a cache that fits
    # in L2 a few times over was served from L2, which a decode step (each layer's cache read once) never is
    recs = [r for r in every if r.get("cache_copies") or r["kv_bytes"] >= DECODE_WARM_MIN_BYTES]
    if not recs:
        return None
    grouped = [r for r in recs if r["heads"] > r["kv_heads"]]
    expanded = bool(grouped) and all(r.get("kv_expanded", False) for r in grouped)
    if grouped and not expanded and any(r.get("kv_expanded", False) for r in grouped):
        raise SpecError(
            f"decode grid: kernel {kernel!r} has grouped calls both expanded and not; fit one way"
        )
    return {
        **fit_decode_model(recs, peak_Bps, expanded=expanded),
        "expanded": expanded,
        "warm_left_out": len(every) - len(recs),
    }


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
        if "batch" not in r:  # at one sequence (records by rows give the growth, fit_floor_rows)
            floors[r["cls"]].append(r["median_s"])
    if not floors:
        return None, []
    dev = {r["cls"]: r for r in _by(results, "op_device") if r.get("mode") == "graph"}
    by_rows = fit_floor_rows(results)
    from costmodel.specs import OP_CLASSES

    out, notes = {}, []
    for cls in OP_CLASSES:
        d: dict = {"issue_us": 0.0}
        if cls not in ("gemm", "comm") and floors.get(cls):
            d["floor_us"] = _sig(float(np.median(floors[cls])) * 1e6)
            if cls in by_rows:
                d["floor_rows"], d["floor_rows_factor"] = by_rows[cls]
        if cls in dev:
            ideal = dev[cls]["ideal_bytes"] / elementwise_Bps
            d["bytes_factor"] = _sig(min(max(dev[cls]["median_s"] / ideal, 0.1), 100.0))
        out[cls] = d
    missing = [c for c in OP_CLASSES if c not in ("gemm", "comm") and not floors.get(c)]
    if missing:
        notes.append(f"achievable.ops floors not measured for {missing} (not in a decode step): floor 0")
    return out, notes


def fit_start_skew(results: list[dict]) -> dict[int, tuple[float, int]]:
    """{ranks: (median over the runs at that many ranks of each run's median start skew in us, runs)} from
    ``start_skew`` records (``benchmarks/start_skew_raw.py``); groups of one run are kept."""
    by: dict[int, list[float]] = defaultdict(list)
    for r in _by(results, "start_skew"):
        s = [float(x) for x in r.get("samples_us") or []]
        if s and int(r["group"]) >= 2:
            by[int(r["group"])].append(statistics.median(s))
    return {g: (float(statistics.median(v)), len(v)) for g, v in by.items()}


FLOOR_ROWS_CLASSES = ("norm", "rope", "residual", "act")  # the row-wise ops of every decode step


def fit_floor_rows(results: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """How each elementwise class's floor grows with rows (``OpFigures.floor_rows``): from ``op_floor``
    records measured at several batches of one sequence each (``benchmarks/bench_op_floor_rows.py``:
    rows = batch), for each class and row count the median over the models and ops measured of the
    op's time at those rows over its time at one row (the same op, model and run); at least 1.  Classes
    measured at one row only get none."""
    t1: dict[tuple, float] = {}
    at: dict[tuple, float] = {}
    for r in _by(results, "op_floor"):
        if "batch" not in r or r["cls"] not in FLOOR_ROWS_CLASSES:
            continue
        key = (r.get("model"), r.get("plan"), r["tag"], r["cls"])
        if int(r["batch"]) == 1:
            t1[key] = r["median_s"]
        at[(*key, int(r["batch"]))] = r["median_s"]
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (*key, rows), t in at.items():
        one = t1.get(tuple(key))
        if one:
            by[key[3]][rows].append(max(t / one, 1.0))
    return {
        cls: ([float(n) for n in sorted(v)], [_sig(float(np.median(v[n]))) for n in sorted(v)])
        for cls, v in by.items()
        if len(v) >= 2
    }


def fit_ops_ideal(results: list[dict]) -> dict | None:
    """Fused kernels issued from a CUDA graph: no host issue time, bytes factor 1, and for the elementwise
    classes the floor of one elementwise kernel in place (the median graph-timed residual add of the
    executor's decode steps: a single kernel); GEMM, attention and communication curves carry theirs."""
    one = [r["median_s"] for r in _by(results, "op_floor") if r["cls"] == "residual" and "batch" not in r]
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
            + (
                [
                    "achievable.ops.{norm,rope,residual,act}.floor_rows*: the floor's growth with the rows "
                    "of a call, measured at 1-128 sequences of one layer on one GPU (op_floor records with a "
                    "batch; benchmarks/bench_op_floor_rows.py): median over the seed's and llama3-8b's ops "
                    "of the time at those rows over the time at one"
                ]
                if any("floor_rows" in d for d in (ops or {}).values())
                else []
            )
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


# passes over an all-to-all's buffer that the executor's ulysses makes (real/executor.py _a2a_qkv, _a2a_o)
EXECUTOR_A2A_COPY_PASSES = (3, 2)
# the executor's SwiGLU (real/model.py activation: F.silu(gate) * up, two kernels): silu reads gate and
# writes its result, the product reads that and up and writes: 5 units of tokens x d_ff against the ideal
# fused kernel's 3; two kernels where GELU is one (what a profile keeps without benchmarks/bench_act_glu.py)
EXECUTOR_GLU_ACT_TRAFFIC = 5.0 / 3.0
EXECUTOR_GLU_ACT_KERNELS = 2.0


def _fit_glu(ach: dict, results: list[dict]) -> list[str]:
    """``glu_act_traffic`` and ``glu_act_floor_ratio`` of an executor profile: from ``act_variant``
    records (benchmarks/bench_act_glu.py: SwiGLU and GELU as the executor runs them, one lease) when the
    raw files have them, else counted from the code."""
    recs = _by(results, "act_variant")

    def times(mode: str, variant: str, per_byte: bool) -> dict[int, float]:
        return {
            r["tokens"]: r["median_s"] / (r["ideal_bytes"] if per_byte else 1.0)
            for r in recs
            if r["mode"] == mode and r["variant"] == variant
        }

    ratios = {}
    for mode, per_byte in (("eager", True), ("graph", False)):
        # eager: time per ideal byte (SwiGLU over GELU); graph (decode-sized rows: a few KiB): per call
        g, s = times(mode, "gelu", per_byte), times(mode, "swiglu", per_byte)
        common = sorted(set(g) & set(s))
        if mode == "graph":  # the fixed cost: at the fewest rows only (more rows add their bytes' time)
            common = common[:1]
        ratios[mode] = [s[t] / g[t] for t in common]
    if ratios.get("eager"):
        traffic = statistics.median(ratios["eager"])
        floor = statistics.median(ratios["graph"]) if ratios.get("graph") else EXECUTOR_GLU_ACT_KERNELS
        ach["glu_act_traffic"] = _sig(traffic)
        ach["glu_act_floor_ratio"] = _sig(floor)
        return [
            f"achievable.glu_act_traffic = {traffic:.3g}, glu_act_floor_ratio = {floor:.3g}: measured "
            f"(benchmarks/bench_act_glu.py: the executor's SwiGLU, silu over the strided gate half then the "
            f"product, two non-vectorised kernels, against its one-kernel GELU whose figures the act class "
            f"carries: time per ideal byte at {len(ratios['eager'])} token counts, and per call at the "
            "fewest rows replayed from a graph, one row: its fixed cost)"
        ]
    ach["glu_act_traffic"] = round(EXECUTOR_GLU_ACT_TRAFFIC, 4)
    ach["glu_act_floor_ratio"] = EXECUTOR_GLU_ACT_KERNELS
    return [
        "achievable.glu_act_traffic = 5/3, glu_act_floor_ratio = 2: counted from real/model.py, not measured "
        "(the gated activation as two kernels, silu(gate) written and read back before the product: 5 units "
        "of tokens x d_ff against the fused kernel's 3, two kernel floors for GELU's one)"
    ]


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
    cold = [r for r in _by(raw["results"], "gemm_stream") if r.get("dtype") == "bf16"]
    ew = sorted(
        _by(res, "elementwise"), key=lambda r: r["bytes"]
    )  # its bandwidth: the rows of a few-row call
    ew_Bps = float(_sig(ew[-1]["bytes"] / ew[-1]["median_s"] / 1e12)) * 1e12 if ew else None
    ach["gemm"] = fit_gemm(res, peak, cold=cold, elem_Bps=ew_Bps)
    how = (
        f"from {len(cold)} calls of 1-64 rows with the weight rotated out of L2 "
        "(benchmarks/bench_gemm_stream.py; bands of half an octave)"
        if cold
        else f"from the calls of <= {GEMM_STREAM_MAX_ROWS} rows (one weight re-read: in part from L2 below a "
        "few x its 50 MB)"
    )
    notes.append(
        "achievable.gemm: measured (efficiency by FLOPs per call at the model's layer shapes, tp=1 and 2"
        + (
            f"; the bound of a few-row call, weight bytes at the weight-streaming bandwidth "
            f"(stream_weight_MB / stream_TBps) {how}; the efficiency from the calls of more rows)"
            if "stream_TBps" in ach["gemm"]
            else ")"
        )
    )
    if with_ops:  # the executor's layout copies around ulysses' all-to-alls (issue 12), from its code
        ach["a2a_copy_passes_qkv"], ach["a2a_copy_passes_o"] = EXECUTOR_A2A_COPY_PASSES
        notes.append(
            "achievable.a2a_copy_passes_qkv = 3, a2a_copy_passes_o = 2: counted from real/executor.py, not "
            "measured (Q/K/V: each peer's heads cut out and joined, the pieces stacked into the send "
            "buffer, the received pieces joined: 3 reads and writes of the buffer; the output: stacked and "
            "joined: 2), timed as elementwise passes; the P = 4 ulysses trace showed about 2 ms of such "
            "copies inside the all-to-all at 96Ki (benchmarks/results/ring_bias_x4_20261128/gate_model.md)"
        )
        notes += _fit_glu(ach, raw["results"])
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
    for kern in list(ach["attention"]):
        # decode by heads, KV heads, batch and context: graph-timed device time, fitted for every mode
        dm = fit_decode_grid(raw["results"], kern, prof["peak"]["hbm_TBps"] * 1e12)
        if dm is None:
            continue
        ach["attention"][kern].update(
            decode_floor_us=_sig(dm["floor_s"] * 1e6),
            decode_occupancy=[_sig(v) for v in dm["occupancy"]],
            decode_occupancy_TBps=[_sig(v / 1e12) for v in dm["bw_Bps"]],
            decode_split_keys=_sig(dm["split_keys"]),
            decode_sms=dm["sms"],
            decode_ctas_per_sm=dm["ctas_per_sm"],
            decode_TFLOPs=_sig(dm["flops"] / 1e12),
            decode_kv_expanded=with_ops and dm["expanded"],
            decode_expand_TBps=_sig(dm["expand_bw_Bps"] / 1e12),
            decode_expand_contig_TBps=_sig(dm["expand_contig_bw_Bps"] / 1e12),
            decode_expand_floor_us=_sig(dm["expand_floor_s"] * 1e6),
            **(
                {
                    "decode_items": [_sig(v) for v in dm["items"]],
                    "decode_items_factor": [_sig(v) for v in dm["items_factor"]],
                }
                if dm["items"]
                else {}
            ),
        )
        how = "expanded to the query heads" if dm["expanded"] else "as the kernel takes them"
        notes.append(
            f"achievable.attention.{kern}.decode_*: fitted to {dm['n_fit']} points of the decode grid (query "
            f"heads, KV heads, batch, keys per GPU; graph-timed, grouped K/V {how}); relative error median "
            f"{dm['fit_median']:.1%}, max {dm['fit_max']:.1%}; on {dm['n_held_out']} held-out points median "
            f"{dm['held_out_median'] or 0:.1%}, max {dm['held_out_max'] or 0:.1%}"
            + (
                f"; the read time scaled by a measured factor at {len(dm['items'])} work-item counts "
                f"({min(dm['items_factor']):.3f}-{max(dm['items_factor']):.3f}; decode_items)"
                if dm["items"]
                else ""
            )
            + (
                f"; {dm['warm_left_out']} points left out: caches under 100 MB re-read call after call "
                "(served from the 50 MB L2, which a decode step's once-read caches are not)"
                if dm["warm_left_out"]
                else ""
            )
            + (
                "; predictions read each KV head once (a fused GQA kernel)"
                if dm["expanded"] and not with_ops
                else ""
            )
        )
    ew = sorted(_by(res, "elementwise"), key=lambda r: r["bytes"])
    if ew:
        ach["elementwise_TBps"] = _sig(ew[-1]["bytes"] / ew[-1]["median_s"] / 1e12)
        notes.append(
            "achievable.elementwise_TBps: measured (add of the largest size, 3 bytes moved per byte)"
        )
    notes += _fit_fp8(raw["results"], prof, mode)
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
        skew = fit_start_skew(res) if mode == "graph" else {}
        if skew:
            ach["start_skew_ranks"] = [float(g) for g in sorted(skew)]
            ach["start_skew_us"] = [_sig(skew[g][0]) for g in sorted(skew)]
            notes.append(
                "achievable.start_skew_ranks/start_skew_us: the hosts' start skew of the executor's "
                "graph-decode steps (real.run's hosts.start_skew_us, the last rank's host clock minus the "
                "first's at the call of the pass; benchmarks/device_start_skew.sh, calibration calls of "
                "their own, seed 1-8 layers, tp and ring, B = 4, 8Ki): the median over "
                + ", ".join(f"{skew[g][1]} runs at {g} ranks" for g in sorted(skew))
                + " of each run's median; within a run a step lasts longer by about its repetition's skew "
                "(the first rank waits at the first collective); extrapolated beyond the largest group by "
                "its last step per doubling (Hardware.start_skew_s), to pipeline stages and to hosts on "
                "several machines unmeasured; tied to real.run's default timing (--timing barrier: each "
                "host launches its replay after a barrier), which a serving loop whose hosts run ahead "
                "of the GPUs would not pay (the ideal profile carries none)"
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
            + f". Larger groups (the rule, costmodel/kernels.py comm_time): a group of g ranks takes the "
            f"figures of the largest measured group <= g (here {gs[-1]}): its latency and bus bandwidth, "
            "with NCCL's ring algorithm's steps (2(g-1) for all-reduce, g-1 for all-gather, reduce-scatter "
            "and all-to-all) each adding hop_latency_us and each rank sending 2(g-1)/g (all-reduce) or "
            "(g-1)/g of the message, the bus-bandwidth convention of nccl-tests (github.com/NVIDIA/"
            "nccl-tests, doc/PERFORMANCE.md): on one NVSwitch node the bus bandwidth stays flat as g grows"
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
    notes += _gate_figures(res, ach, raw["provenance"].get("gpu", ""))
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


# The kernel-boundary gate where no bench_ring_gate raw is given: what the P = 4 traces of issue 12 show
# (benchmarks/results/ring_bias_x4_20261128: cuDNN attention, NCCL 2.28.9 on H200), applied to H200 runs.
GATE_FALLBACK = {"gpu": "H200", "kinds": ["attention"], "lead_us": 291.0}
GATE_FALLBACK_NOTE = (
    "achievable.comm_gate_kinds, comm_gate_lead_us: FALLBACK from the P = 4 traces of "
    "benchmarks/results/ring_bias_x4_20261128 (cuDNN attention, NCCL 2.28.9): 28 NCCL send/recv kernels that "
    "began inside an attention kernel began 291 us (median; 146-341) before its end; no GEMM was seen to "
    "hold one; to be replaced by the fit of benchmarks/bench_ring_gate.py (ringsim calibrate --from-raw)"
)
_GATE_CLASS = {"gemm": "gemm", "elementwise": "elementwise"}  # bench kernel -> op kind; attn_* -> attention


MODELLED_GATE_KINDS = ("attention",)  # gating kinds both engines model (costmodel closed forms, sim)


def _gate_mode(r: dict) -> str:
    """A comm_gate record's placement: ``gate_mode``; the bench's first schema (the raw of 2026-11-28
    16:35 UTC) called it ``mode``, a name the other records use for eager/graph."""
    return str(r.get("gate_mode", r.get("mode", "")))


def fit_comm_gate(results: list[dict]) -> tuple[dict, list[str]] | None:
    """``achievable.comm_gate_kinds`` and ``comm_gate_lead_us`` from benchmarks/bench_ring_gate.py records
    (``op`` = comm_gate), or None without them.

    A repetition of mode ``both`` (both ranks run the kernel K, the op posted at a fraction of K's time,
    one kernel: ``split`` 1) whose op became ready inside K is *held* when the NCCL kernel began nearer
    to K's end than to its ready time.  A kernel class gates when most such repetitions of each of its
    kernels are held; the lead is the median of (K's end - the NCCL start) over the held repetitions of
    the gating classes.  The tie modes (op and kernel released together) are reported, not fitted: the
    model gives ties to the kernel."""
    recs = [r for r in _by(results, "comm_gate") if _gate_mode(r) == "both" and r.get("split", 1) == 1]
    if not recs:
        return None
    held: dict[str, list[float]] = {}  # class -> per kernel: fraction held
    leads: dict[str, list[float]] = {}
    by_call: dict[str, list[float]] = {}  # the lead per call shape (does it scale with the keys?)
    for r in recs:
        cls = "attention" if str(r["kernel"]).startswith("attn") else _GATE_CLASS.get(r["kernel"])
        if cls is None or not 0 < (r.get("frac") or -1) < 1:
            continue
        reps = [
            x
            for rank in r["ranks"]
            for x in rank
            if x.get("ready_inside_kernel") and "start_minus_kend_s" in x and "ready_minus_kend_s" in x
        ]
        if not reps:
            continue
        h = [x for x in reps if x["start_minus_kend_s"] - x["ready_minus_kend_s"] > -x["start_minus_kend_s"]]
        held.setdefault(cls, []).append(len(h) / len(reps))
        leads.setdefault(cls, []).extend(max(-x["start_minus_kend_s"], 0.0) for x in h)
        if h:
            call = f"{r['kernel']} B={r.get('batch', '?')} keys={r.get('ring_len', '?')}"
            by_call.setdefault(call, []).extend(max(-x["start_minus_kend_s"], 0.0) for x in h)
    if not held:
        return None
    gating = sorted(c for c, f in held.items() if statistics.median(f) > 0.5)
    # the profile gates the kinds both engines model (the closed forms and the ring recurrence hold
    # transfers to attention's last wave only); the others measured are named in the note
    kinds = [c for c in gating if c in MODELLED_GATE_KINDS]
    lead = [v for c in kinds for v in leads[c]]
    lead_us = _sig(statistics.median(lead) * 1e6) if lead else 0.0
    ties = [
        x.get("tie_kernel_first")
        for r in _by(results, "comm_gate")
        if str(_gate_mode(r)).startswith("tie")
        for rank in r["ranks"]
        for x in rank
        if "tie_kernel_first" in x
    ]
    seen = ", ".join(f"{c} {statistics.median(f):.0%} of {len(f)} kernel(s)" for c, f in sorted(held.items()))
    note = (
        f"achievable.comm_gate_kinds = {kinds}, comm_gate_lead_us = {lead_us}: measured (benchmarks/"
        f"bench_ring_gate.py: a transfer posted while a kernel runs, held to its last wave in {seen}; lead = "
        f"median of kernel end - NCCL start over {len(lead)} held repetitions; by call: "
        + ", ".join(f"{c} {statistics.median(v) * 1e6:.0f} us" for c, v in sorted(by_call.items()))
        + ")"
        + (
            f"; also held, not in the profile (the closed forms model attention only): "
            f"{', '.join(c for c in gating if c not in kinds)}, lead "
            + ", ".join(
                f"{c} {statistics.median(leads[c]) * 1e6:.0f} us"
                for c in gating
                if c not in kinds and leads[c]
            )
            if any(c not in kinds for c in gating)
            else ""
        )
        + (
            f"; ties (op and kernel released together): the kernel began first in {sum(ties)} of {len(ties)}"
            if ties
            else ""
        )
    )
    return {"comm_gate_kinds": kinds, "comm_gate_lead_us": lead_us}, [note]


def _gate_figures(res: list[dict], ach: dict, gpu: str) -> list[str]:
    """Set the gate's figures: fitted from bench_ring_gate records, else the H200 fallback (H200 runs only),
    else left as the base profile has them."""
    try:
        fit = fit_comm_gate(res)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SpecError(
            f"the raw calibration data's comm_gate records (benchmarks/bench_ring_gate.py) are malformed: "
            f"{type(e).__name__} {e}"
        ) from None
    if fit is not None:
        ach.update(fit[0])
        return fit[1]
    if GATE_FALLBACK["gpu"] in str(gpu):
        ach["comm_gate_kinds"] = list(GATE_FALLBACK["kinds"])
        ach["comm_gate_lead_us"] = GATE_FALLBACK["lead_us"]
        return [GATE_FALLBACK_NOTE]
    return []


def _fit_fp8(results: list[dict], prof: dict, mode: str = "ideal") -> list[str]:
    """``achievable.gemm_fp8`` and ``achievable.fp8_quant`` from the fp8 suite's records; nothing when the
    raw files have none.  The GEMM curve (graph-timed device time) goes into every profile; the quantise
    as measured (this repository's quantise: several kernels) into the executor's ``eager`` and ``graph``
    profiles, and as a fused kernel would run it (factor 1, no floor of its own: folded into the norm or
    activation before the GEMM, as serving engines do) into the ``ideal`` one."""
    peak = prof["peak"].get("fp8_TFLOPs") or 2.0 * prof["peak"]["bf16_TFLOPs"]
    ach = prof["achievable"]
    notes = []
    ew = ach.get("elementwise_TBps")
    g8 = fit_gemm_fp8(results, peak * 1e12, elem_Bps=float(ew) * 1e12 if ew else None)
    if g8:
        ach["gemm_fp8"] = g8
        src = "peak.fp8_TFLOPs" if prof["peak"].get("fp8_TFLOPs") else "2 x peak.bf16_TFLOPs (no fp8_TFLOPs)"
        notes.append(
            "achievable.gemm_fp8: measured (torch._scaled_mm, e4m3, row-wise scales, BF16 out; efficiency "
            f"over {src} = {peak:g} TFLOP/s by FLOPs per call at the model's layer shapes, graph-timed"
            + (
                "; the bound of a few-row call, weight bytes at the weight-streaming bandwidth "
                "(stream_weight_MB / stream_TBps) "
                + (
                    "from calls with the weight rotated out of L2 (benchmarks/bench_gemm_stream.py)"
                    if any(r.get("op") == "gemm_stream" and r.get("dtype") == "fp8" for r in results)
                    else f"from the calls of <= {GEMM_STREAM_MAX_ROWS} rows"
                )
                + ", the efficiency from the calls of more rows)"
                if "stream_TBps" in g8
                else ")"
            )
        )
    q8 = fit_fp8_quant(results, ach["elementwise_TBps"] * 1e12)
    if q8 and mode == "ideal":
        ach["fp8_quant"] = {"bytes_factor": 1.0, "floor_us": 0.0}
        notes.append(
            f"achievable.fp8_quant: ideal (fused into the op before the GEMM: bytes_factor 1, no floor); "
            f"measured for this repository's quantise: bytes_factor {q8['bytes_factor']}, floor "
            f"{q8['floor_us']} us (the '-eager' and '-graph' profiles)"
        )
    elif q8:
        ach["fp8_quant"] = q8
        notes.append(
            "achievable.fp8_quant: measured (amax per row, scale, cast to e4m3 of the GEMM inputs, "
            "graph-timed: bytes_factor over read BF16 + write FP8 + FP32 scales at elementwise_TBps, "
            "floor at one row)"
        )
    return notes


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
