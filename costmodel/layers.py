"""What one transformer layer asks of one rank: the recipe of kernels both the schedule builder
(scalars) and the analytic model (numpy arrays over L, P, B) are made from.

A ``Work`` is one compute kernel's cost inputs.  Its fields may be scalars or arrays; ``work_time``
gives its time on a profile.  Keeping the recipe in one place is what makes the closed forms and the
op graph agree by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from .specs import Hardware, Model


class Kind:  # op kinds of the IR (plain strings, so the IR stays serialisable)
    GEMM = "gemm"
    ATTN = "attention"
    ELEMENTWISE = "elementwise"
    LSE_MERGE = "lse_merge"
    SEND = "send"
    RECV = "recv"
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"


COMPUTE_KINDS = (Kind.GEMM, Kind.ATTN, Kind.ELEMENTWISE, Kind.LSE_MERGE)


@dataclass(frozen=True)
class Work:
    name: str
    kind: str
    flops: object = 0.0
    hbm_bytes: object = 0.0
    m: object = 0  # GEMM rows (tokens)
    n: object = 0
    k: object = 0
    kv_len: object = 0  # attention: keys per call
    q_len: object = 0  # attention: queries per call (1: decode-shaped)
    causal: bool = False
    shape: tuple = ()  # attention: (batch, heads, q_len, kv_len, head_dim)
    reads: tuple = ()
    writes: tuple = ()


_CLASS = {"norm1": "norm", "norm2": "norm", "rope": "rope", "resid1": "residual", "resid2": "residual",
          "act": "act", "merge": "merge", "init": "init", "finalize": "finalize"}


def op_class(w: Work) -> str:
    """The profile's op class of a kernel (``hardware.achievable.ops``)."""
    if w.kind == Kind.GEMM:
        return "gemm"
    if w.kind == Kind.ATTN:
        return "attention"
    return _CLASS.get(w.name, "merge" if w.kind == Kind.LSE_MERGE else "residual")


def work_time(hw: Hardware, w: Work, kernel: str):
    """Device time of one run of w, at least its op class's floor (the host's issue time is separate:
    ``issue_time``)."""
    cls = op_class(w)
    if w.kind == Kind.GEMM:
        t = kernels.gemm_device_time(hw, w.flops, w.hbm_bytes, w.m)
    elif w.kind == Kind.ATTN:
        t = kernels.attn_device_time(hw, kernel, w.flops, w.hbm_bytes, w.kv_len, w.causal, w.q_len)
    else:
        t = kernels.elementwise_device_time(hw, w.hbm_bytes, cls)
    floor = hw.op(cls).floor_s
    return np.maximum(t, floor) if floor else t


def issue_time(hw: Hardware, w: Work) -> float:
    """Host time to issue w (its op class's calibrated figure, or the kernel launch cost)."""
    return hw.op(op_class(w)).issue_s


def gemm(name, m, n, k, dtype_bytes, reads, writes) -> Work:
    return Work(name, Kind.GEMM, flops=2.0 * m * n * k, hbm_bytes=(m * k + k * n + m * n) * dtype_bytes,
                m=m, n=n, k=k, reads=reads, writes=writes)


def elementwise(name, hbm_bytes, reads, writes, kind=Kind.ELEMENTWISE) -> Work:
    return Work(name, kind, hbm_bytes=hbm_bytes, reads=reads, writes=writes)


def attention(name, model: Model, batch, heads, q_len, kv_len, causal, reads, writes, kv_heads=None) -> Work:
    """One fused attention call: q_len queries against kv_len keys, causal (aligned at the end) or full.

    HBM bytes: read Q, K, V once, write O (BF16) and the log-sum-exp (FP32).
    """
    kvh = heads if kv_heads is None else kv_heads
    q = np.asarray(q_len, dtype=float)
    kv = np.asarray(kv_len, dtype=float)
    pairs = ((kv - q) * q + q * (q + 1) / 2) if causal else q * kv
    flops = 4.0 * batch * heads * model.head_dim * pairs
    hbm = batch * model.head_dim * model.dtype_bytes * (2 * q * heads + 2 * kv * kvh) + batch * heads * q * 4
    return Work(name, Kind.ATTN, flops=flops, hbm_bytes=hbm, kv_len=kv_len, q_len=q_len, causal=causal,
                shape=(batch, heads, q_len, kv_len, model.head_dim), reads=reads, writes=writes)


def lse_merge(name, model: Model, tokens, heads, reads, writes) -> Work:
    """Merge a partial attention output into the FP32 accumulator with their log-sum-exps:
    read acc (FP32) and partial (BF16), write acc; read/write both lse (FP32)."""
    hd = model.head_dim
    hbm = tokens * heads * (hd * (2 * model.accum_bytes + model.dtype_bytes) + 3 * 4)
    return elementwise(name, hbm, reads, writes, kind=Kind.LSE_MERGE)


def kv_heads_per_rank(model: Model, tp):
    """KV heads a TP rank holds (replicated when tp exceeds the KV heads)."""
    return np.maximum(model.n_kv_heads // np.asarray(tp), 1)


# ----------------------------------------------------------------------------------------------
# the dense part of a layer on one rank: `tok` token rows, weights split tp ways
# ----------------------------------------------------------------------------------------------
def pre_attention(model: Model, tok, tp) -> list[Work]:
    d, b = model.d_model, model.dtype_bytes
    qkv_n = (model.q_dim + 2 * model.head_dim * kv_heads_per_rank(model, tp) * tp) / tp
    return [
        elementwise("norm1", 2 * tok * d * b, ("x",), ("h",)),
        gemm("qkv", tok, qkv_n, d, b, ("h",), ("q", "kv_local")),
        elementwise("rope", 2 * tok * qkv_n * 2 / 3 * b, ("q", "kv_local"), ("q", "kv_local")),
    ]


def post_attention_proj(model: Model, tok, tp) -> list[Work]:
    return [gemm("o_proj", tok, model.d_model, model.q_dim / tp, model.dtype_bytes, ("o",), ("y",))]


def residual(name, model: Model, tok) -> Work:
    return elementwise(name, 3 * tok * model.d_model * model.dtype_bytes, ("x", "y"), ("x",))


def mlp_in(model: Model, tok, tp) -> list[Work]:
    d, b, f = model.d_model, model.dtype_bytes, model.d_ff / tp
    up_n = f * (model.mlp_mats - 1)
    act_bytes = (2 if model.mlp_mats == 2 else 3) * tok * f * b
    return [
        elementwise("norm2", 2 * tok * d * b, ("x",), ("h",)),
        gemm("mlp_up", tok, up_n, d, b, ("h",), ("u",)),
        elementwise("act", act_bytes, ("u",), ("a",)),
        gemm("mlp_down", tok, d, f, b, ("a",), ("y",)),
    ]


def layer_dense_works(model: Model, tok, tp) -> list[Work]:
    """Every compute kernel of a layer except attention itself (and its merge), in issue order."""
    return (pre_attention(model, tok, tp) + post_attention_proj(model, tok, tp) + [residual("resid1", model, tok)]
            + mlp_in(model, tok, tp) + [residual("resid2", model, tok)])
