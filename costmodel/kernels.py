"""Device time of one op on a hardware profile: the calibrated cost every engine shares (the host's
time to issue an op is the profile's ``op(cls).issue_s``, kept apart: see ``schedule.py``).

All functions are numpy-vectorised: the analytic model calls them with arrays over L and P, the
schedule builder with scalars (stamping each op's uncontended time), the simulator per op.
"""

from __future__ import annotations

import numpy as np

from .specs import Collective, Hardware


def select(cond, a, b):
    """``np.where(cond, a, b)``, the same array (shape, dtype, values), without numpy's per-element
    branch where a boolean ``cond`` is the same everywhere (in a sweep, most conditions are one plan's
    property over a block: numpy's select costs ~10x an add on a mixed mask, and as much on a uniform one)."""
    c = np.asarray(cond)
    if c.dtype != np.bool_ or not c.size:
        return np.where(cond, a, b)
    if c.all():
        pick = a
    elif not c.any():
        pick = b
    else:
        return np.where(c, a, b)
    out = np.empty(np.broadcast(c, a, b).shape, np.result_type(a, b))
    out[...] = pick
    return out


_CONSTANT: dict = {}  # (value, shape, dtype) -> a read-only array of that value (``at_least``)


def at_least(x, floor):
    """``np.maximum(x, floor)`` (the same values, type and shape) for a number ``floor``: where x is a large
    array, against a cached read-only array of the floor, since numpy's loop with a broadcast operand runs
    ~2.5x slower than with two arrays."""
    if (
        type(x) is np.ndarray
        and x.size >= 4096
        and type(floor) in (float, int, np.float64)
        and x.dtype == np.float64
    ):
        key = (float(floor), x.shape)
        c = _CONSTANT.get(key)
        if c is None:
            if len(_CONSTANT) > 32:
                _CONSTANT.clear()
            c = _CONSTANT[key] = np.full(x.shape, float(floor))
            c.flags.writeable = False
        return np.maximum(x, c)
    return np.maximum(x, floor)


def gemm_device_time(hw: Hardware, flops, hbm_bytes, m, fp8: bool = False, weight_bytes=None):
    """max(compute at the shape's efficiency, memory); efficiency by rows (tokens) or by FLOPs per call.
    ``fp8``: at the FP8 peak, with the calibrated FP8 curve (by FLOPs per call), or without one the BF16
    curve's efficiency at the FP8 peak (an estimate: ``Hardware.fp8_calibrated`` says which).  Memory: the
    call's bytes at the elementwise bandwidth; with a weight-streaming curve (``gemm_stream_bw``, measured
    as the time of whole few-row calls of that many weight bytes), its ``weight_bytes`` at that bandwidth
    plus the rest of its bytes (the rows in and out) at the elementwise one: a streamed weight reads at
    what was measured for it, faster than the elementwise bandwidth (an add: reads and writes) from ~1 GB
    up (4.0-4.1 against 3.9 TB/s on the H200), slower for small weights."""
    x = at_least(m, 1) if hw.gemm_efficiency_by == "tokens" else at_least(flops, 1)
    if fp8 and hw.gemm_fp8_efficiency is not None:
        peak, eff = hw.fp8_peak_flops, hw.gemm_fp8_efficiency(np.maximum(flops, 1))
    else:
        peak, eff = (hw.fp8_peak_flops if fp8 else hw.peak_flops), hw.gemm_efficiency(x)
    stream = hw.gemm_fp8_stream_bw if fp8 else hw.gemm_stream_bw
    if stream is not None and weight_bytes is not None:
        rest = hbm_bytes - weight_bytes
        rest = rest * (rest > 0)  # not np.maximum: a Python int beyond int64 (a fuzzed preset) stays one
        mem = weight_bytes / stream(np.maximum(weight_bytes, 1)) + rest / hw.elementwise_bw_Bps
    else:
        mem = hbm_bytes / hw.elementwise_bw_Bps
    return np.maximum(flops / (peak * eff), mem)


def fp8_quant_time(hw: Hardware, quant_bytes):
    """The activation quantise before an FP8 GEMM (amax per row, scale, cast): an elementwise pass over
    ``quant_bytes`` (read BF16, write FP8 and the row scales) at the profile's measured factor and floor."""
    t = hw.fp8_quant_bytes_factor * quant_bytes / hw.elementwise_bw_Bps
    return select(np.asarray(quant_bytes) > 0, np.maximum(t, hw.fp8_quant_floor_s), 0.0)


def attn_device_time(hw: Hardware, kernel: str, flops, hbm_bytes, kv_len, causal: bool, q_len=None, dims=()):
    """Fused attention: throughput by key length from the profile; a decode-shaped call (one query
    per sequence) is memory-bound: it uses the kernel's decode model by batch, query heads, KV heads and
    keys (``DecodeAttnModel``) when the profile has one and ``dims`` = (batch, heads, kv_heads, head_dim,
    dtype_bytes) is given, else the kernel's decode bandwidth curve by bytes when the profile has one.
    ``kernel="auto"``: the fastest of the profile's kernels for this shape (``attn_choice``)."""
    if kernel == "auto":
        return attn_choice(hw, flops, hbm_bytes, kv_len, causal, q_len, dims)[0]
    fig = hw.attn(kernel)
    one_q = None if q_len is None or (fig.decode is None or not dims) and fig.decode_bw is None else q_len
    if one_q is not None:
        one_q = np.asarray(one_q) <= 1
        if not one_q.any():  # no decode-shaped call (a prefill): the decode model would be thrown away
            one_q = None
    t = None
    if one_q is None or not one_q.all():  # (a decode: every call decode-shaped, this one is not needed)
        thr = (fig.causal if causal else fig.full)(at_least(kv_len, 1))
        t = np.maximum(flops / thr, hbm_bytes / hw.elementwise_bw_Bps)
        if one_q is None:
            return t
    if fig.decode is not None and dims:
        b, h, hk, hd, db = dims
        d = fig.decode.time(b, h, hk, kv_len, hd, db)
    else:
        d = hbm_bytes / fig.decode_bw(np.maximum(hbm_bytes, 1))
    if t is None:  # what np.where(one_q, d, t) gives where one_q holds everywhere, at its shape
        shape = np.broadcast_shapes(one_q.shape, np.shape(d), np.shape(flops), np.shape(hbm_bytes))
        shape = np.broadcast_shapes(shape, np.shape(kv_len))
        return np.array(np.broadcast_to(np.asarray(d, dtype=float), shape))
    return select(one_q, d, t)


_MINIMUM, _MAXIMUM = np.minimum, np.maximum  # numpy's own (predict's copy of this module replaces np's)


def first_max(rows, least: bool = False):
    """``(st.max(axis=0), st.argmax(axis=0))`` of ``st = np.stack(rows)`` (``least``: min and argmin), the
    first of equal extremes winning, computed by comparisons a row at a time: numpy's arg-reductions
    along the first axis cost ~30x an elementwise pass.  Rows with NaN take numpy's own path."""
    best = np.array(rows[0], dtype=float)  # a new array, as the reduction gives
    idx = np.zeros(best.shape, np.intp)
    own = type(best) is np.ndarray and best.ndim > 0  # (arrays written in place: best and idx are new)
    for i in range(1, len(rows)):
        r = np.asarray(rows[i], dtype=float)
        beats = r < best if least else r > best
        # i grows: the last row to beat the best so far is the first extreme
        if own and beats.shape == idx.shape and r.shape == best.shape:
            np.copyto(idx, i, where=beats)
            (_MINIMUM if least else _MAXIMUM)(best, r, out=best)
            continue
        idx = np.maximum(idx, beats * i)
        best = np.minimum(best, r) if least else np.maximum(best, r)
    if np.isnan(best).any():
        st = np.stack(np.broadcast_arrays(*(np.asarray(r, dtype=float) for r in rows)))
        return (st.min(axis=0), st.argmin(axis=0)) if least else (st.max(axis=0), st.argmax(axis=0))
    return (best[()], idx[()]) if best.ndim == 0 else (best, idx)


def attn_choice(hw: Hardware, flops, hbm_bytes, kv_len, causal: bool, q_len=None, dims=()):
    """(time, index) of the fastest kernel of the profile for this call, per point; the index is into
    ``sorted(hw.attention)`` (ties: the first name).  Where every point's keys lie where the first kernel's
    throughput curve is above every other's (``_first_wins_from``), no other kernel is timed: its time
    could not be less (the same FLOPs over a lower throughput, the same bytes), and the first wins ties."""
    names = sorted(hw.attention)
    if (
        type(kv_len) is np.ndarray
        and kv_len.ndim
        and len(names) > 1
        and (q_len is None or bool((np.asarray(q_len) > 1).all()))  # no decode-shaped call
    ):
        least = _first_wins_from(hw, causal)
        if least is not None and bool((kv_len >= least).all()) and bool((np.asarray(flops) >= 0).all()):
            return first_max(
                [np.asarray(attn_device_time(hw, names[0], flops, hbm_bytes, kv_len, causal, q_len, dims))],
                least=True,
            )
    ts = [np.asarray(attn_device_time(hw, k, flops, hbm_bytes, kv_len, causal, q_len, dims)) for k in names]
    if len({t.shape for t in ts}) > 1:  # what np.stack asks of the kernels' times
        raise ValueError("attn_choice: the kernels' times differ in shape")
    return first_max(ts, least=True)


_FIRST_WINS: dict = {}  # (id(hw), causal) -> (hw, keys from which the first kernel is the fastest, or None)
FIRST_WINS_MARGIN = 1e-6  # the first kernel's throughput at least this much (relative) above the others'


def _first_wins_from(hw: Hardware, causal: bool):
    """The least key count from which the first of ``sorted(hw.attention)`` has the highest prefill
    throughput of the profile's kernels (by ``FIRST_WINS_MARGIN``: rounding cannot turn it), or None.  The
    curves are linear in log2 between their knots and flat beyond: compared at every knot of either."""
    got = _FIRST_WINS.get((id(hw), causal))
    if got is not None and got[0] is hw:
        return got[1]
    curves = [(f.causal if causal else f.full) for f in (hw.attn(k) for k in sorted(hw.attention))]
    xs = np.array(sorted(set().union(*(c.x for c in curves))))
    first, others = curves[0](xs), [c(xs) for c in curves[1:]]
    wins = np.logical_and.reduce([first >= o * (1 + FIRST_WINS_MARGIN) for o in others])
    least = 0.0 if wins.all() else None  # (below the first knot too: the curves are flat there)
    for x, w in zip(xs[::-1].tolist(), wins[::-1].tolist()):  # from the last knot down, while it wins
        if not w or least == 0.0:
            break
        least = x
    _FIRST_WINS[(id(hw), causal)] = (hw, least)
    return least


def kernels_label(hw: Hardware, kernel: str, mask):
    """Names of the kernels a bit mask over ``hw.attn_names(kernel)`` marks, joined by '+' (vectorised)."""
    names = hw.attn_names(kernel)
    labels = np.array(
        ["+".join(n for i, n in enumerate(names) if m >> i & 1) or "none" for m in range(1 << len(names))]
    )
    return labels[np.asarray(mask, dtype=int)]


def elementwise_device_time(hw: Hardware, hbm_bytes, cls: str | None = None):
    """Ideal traffic at the elementwise bandwidth, times the implementation's factor for this op class."""
    f = hw.op(cls).bytes_factor if cls else 1.0
    return f * hbm_bytes / hw.elementwise_bw_Bps


def ring_factors(coll: str, group):
    """(steps, volume factor) of NCCL's ring algorithm for a group of ``group`` ranks.

    ``volume factor * message bytes`` is what each rank sends; the message is the buffer size
    nccl-tests calls 'size' (all-gather: the gathered output; reduce-scatter: the input).
    """
    g = np.asarray(group, dtype=float)
    if coll == Collective.P2P:
        return np.ones_like(g), np.ones_like(g)
    if coll == Collective.ALL_REDUCE:
        return 2 * (g - 1), 2 * (g - 1) / g
    if coll in (Collective.ALL_GATHER, Collective.REDUCE_SCATTER, Collective.ALL_TO_ALL):
        return g - 1, (g - 1) / g
    raise ValueError(f"unknown collective {coll!r}")


def sent_bytes(coll: str, msg_bytes, group):
    """Bytes one rank sends over its links for one call."""
    return ring_factors(coll, group)[1] * msg_bytes


def comm_time(hw: Hardware, link: str, coll: str, msg_bytes, group):
    """Uncontended alpha-beta time of one call; zero for a group of one (no call is made).  A group of g
    ranks uses the figures measured in the largest group of at most g ranks (``CommFigures.by_group``)."""
    base = hw.comm[str(link)][str(coll)]
    steps, vol = ring_factors(coll, group)

    def one(f):
        return f.latency_s + steps * f.hop_latency_s + vol * msg_bytes / f.bw(msg_bytes)

    # the figures of the largest measured group each point reaches (a figure no point reaches, or one
    # every point passes beyond, is not computed: np.where would throw it away)
    figs = [(None, base)] + [(np.asarray(group) >= g, base.by_group[g]) for g in sorted(base.by_group)]
    first = max(i for i, (on, _) in enumerate(figs) if on is None or on.all())
    t = one(figs[first][1])
    for on, f in figs[first + 1 :]:
        if on.any():
            t = select(on, one(f), t)
    return select(np.asarray(group) > 1, t, 0.0) if coll != Collective.P2P else t
