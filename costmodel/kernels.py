"""Device time of one op on a hardware profile: the calibrated cost every engine shares (the host's
time to issue an op is the profile's ``op(cls).issue_s``, kept apart: see ``schedule.py``).

All functions are numpy-vectorised: the analytic model calls them with arrays over L and P, the
schedule builder with scalars (stamping each op's uncontended time), the simulator per op.
"""

from __future__ import annotations

import numpy as np

from .specs import Collective, Hardware


def gemm_device_time(hw: Hardware, flops, hbm_bytes, m, fp8: bool = False):
    """max(compute at the shape's efficiency, memory); efficiency by rows (tokens) or by FLOPs per call.
    ``fp8``: at the FP8 peak, with the calibrated FP8 curve (by FLOPs per call), or without one the BF16
    curve's efficiency at the FP8 peak (an estimate: ``Hardware.fp8_calibrated`` says which)."""
    x = np.maximum(m, 1) if hw.gemm_efficiency_by == "tokens" else np.maximum(flops, 1)
    if fp8 and hw.gemm_fp8_efficiency is not None:
        peak, eff = hw.fp8_peak_flops, hw.gemm_fp8_efficiency(np.maximum(flops, 1))
    else:
        peak, eff = (hw.fp8_peak_flops if fp8 else hw.peak_flops), hw.gemm_efficiency(x)
    return np.maximum(flops / (peak * eff), hbm_bytes / hw.elementwise_bw_Bps)


def fp8_quant_time(hw: Hardware, quant_bytes):
    """The activation quantise before an FP8 GEMM (amax per row, scale, cast): an elementwise pass over
    ``quant_bytes`` (read BF16, write FP8 and the row scales) at the profile's measured factor and floor."""
    t = hw.fp8_quant_bytes_factor * quant_bytes / hw.elementwise_bw_Bps
    return np.where(np.asarray(quant_bytes) > 0, np.maximum(t, hw.fp8_quant_floor_s), 0.0)


def attn_device_time(hw: Hardware, kernel: str, flops, hbm_bytes, kv_len, causal: bool, q_len=None):
    """Fused attention: throughput by key length from the profile; a decode-shaped call (one query
    per sequence) is memory-bound and uses the kernel's decode bandwidth curve when the profile has one.
    ``kernel="auto"``: the fastest of the profile's kernels for this shape (``attn_choice``)."""
    if kernel == "auto":
        return attn_choice(hw, flops, hbm_bytes, kv_len, causal, q_len)[0]
    fig = hw.attn(kernel)
    thr = (fig.causal if causal else fig.full)(np.maximum(kv_len, 1))
    t = np.maximum(flops / thr, hbm_bytes / hw.elementwise_bw_Bps)
    if fig.decode_bw is not None and q_len is not None:
        t = np.where(np.asarray(q_len) <= 1, hbm_bytes / fig.decode_bw(np.maximum(hbm_bytes, 1)), t)
    return t


def attn_choice(hw: Hardware, flops, hbm_bytes, kv_len, causal: bool, q_len=None):
    """(time, index) of the fastest kernel of the profile for this call, per point; the index is into
    ``sorted(hw.attention)`` (ties: the first name)."""
    names = sorted(hw.attention)
    ts = np.stack(
        [
            np.asarray(attn_device_time(hw, k, flops, hbm_bytes, kv_len, causal, q_len), dtype=float)
            for k in names
        ]
    )
    return ts.min(axis=0), ts.argmin(axis=0)


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

    t = one(base)
    for g in sorted(base.by_group):
        t = np.where(np.asarray(group) >= g, one(base.by_group[g]), t)
    return np.where(np.asarray(group) > 1, t, 0.0) if coll != Collective.P2P else t
