"""What one transformer layer asks of one rank: the recipe of kernels both the schedule builder
(scalars) and the analytic model (numpy arrays over L, P, B) are made from.

A ``Work`` is one compute kernel's cost inputs.  Its fields may be scalars or arrays; ``work_time``
gives its time on a profile.  Keeping the recipe in one place is what makes the closed forms and the
op graph agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import kernels
from .schedule import OpKind, Role
from .specs import Hardware, Model


@dataclass(frozen=True)
class Work:
    role: Role
    kind: OpKind
    flops: object = 0.0
    hbm_bytes: object = 0.0
    m: object = 0  # GEMM rows (tokens)
    n: object = 0
    k: object = 0
    kv_len: object = 0  # attention: keys per call
    q_len: object = 0  # attention: queries per call (1: decode-shaped)
    causal: bool = False
    shape: tuple = ()  # attention: (batch, heads, q_len, kv_len, head_dim)
    dims: tuple = ()  # attention: (batch, heads, kv_heads, head_dim, dtype_bytes), for the decode model
    reads: tuple = ()
    writes: tuple = ()
    fp8: bool = False  # GEMM: FP8 operands (--fp8), its input quantised first
    quant_bytes: object = 0.0  # FP8 GEMM: the quantise's traffic (part of hbm_bytes, timed as elementwise)
    glu: bool = False  # the gated activation (SwiGLU): its implementation's traffic over the ideal's applies
    weight_bytes: object = None  # GEMM: the weight's bytes (what a call of few rows streams)


def work_time(hw: Hardware, w: Work, kernel: str):
    """Device time of one run of w, at least its op class's floor (the host's time to issue it is the
    profile's ``op(cls).issue_s``, kept apart)."""
    cls = w.role.op_class
    if w.kind == OpKind.GEMM and w.fp8:  # the quantise of the input rows, then the FP8 GEMM
        t = kernels.gemm_device_time(hw, w.flops, w.hbm_bytes - w.quant_bytes, w.m, True, w.weight_bytes)
        t = t + kernels.fp8_quant_time(hw, w.quant_bytes)
    elif w.kind == OpKind.GEMM:
        t = kernels.gemm_device_time(hw, w.flops, w.hbm_bytes, w.m, False, w.weight_bytes)
    elif w.kind == OpKind.ATTN:
        t = kernels.attn_device_time(hw, kernel, w.flops, w.hbm_bytes, w.kv_len, w.causal, w.q_len, w.dims)
    else:
        t = kernels.elementwise_device_time(hw, w.hbm_bytes, cls)
        if w.glu and hw.glu_act_traffic != 1.0:
            t = t * hw.glu_act_traffic
    floor = hw.op(cls).floor_at(w.m) if w.kind != OpKind.GEMM else hw.op(cls).floor_s
    if w.glu:
        floor = floor * hw.glu_act_floor_ratio
    # a floor by rows is an array where the rows are (a sweep's points): its truth value is ambiguous
    return kernels.at_least(t, floor) if (type(floor) is np.ndarray or floor) else t


def gemm(role, m, n, k, dtype_bytes, reads, writes, fp8: bool = False) -> Work:
    """y (m, n) = x (m, k) W^T.  ``fp8``: x is quantised first (read in the model's dtype, written as FP8
    with one FP32 scale per row), the GEMM reads FP8 x and W (W with one FP32 scale per output channel)
    and writes y in the model's dtype."""
    if fp8:
        quant = m * k * (dtype_bytes + 1) + 4 * m
        return Work(
            Role(role),
            OpKind.GEMM,
            flops=2.0 * m * n * k,
            hbm_bytes=m * k + k * n + 4 * n + 4 * m + m * n * dtype_bytes + quant,
            m=m,
            n=n,
            k=k,
            reads=reads,
            writes=writes,
            fp8=True,
            quant_bytes=quant,
            weight_bytes=k * n + 4 * n,
        )
    return Work(
        Role(role),
        OpKind.GEMM,
        flops=2.0 * m * n * k,
        hbm_bytes=(m * k + k * n + m * n) * dtype_bytes,
        m=m,
        n=n,
        k=k,
        reads=reads,
        writes=writes,
        weight_bytes=k * n * dtype_bytes,
    )


def elementwise(role, hbm_bytes, reads, writes, kind=OpKind.ELEMENTWISE, rows=0) -> Work:
    """An op that streams its bytes; ``rows``: the rows (tokens) of one call, where its floor grows with
    them (``OpFigures.floor_at``; 0: not counted, the floor at one row)."""
    return Work(Role(role), kind, hbm_bytes=hbm_bytes, reads=reads, writes=writes, m=rows)


def attention(role, model: Model, batch, heads, q_len, kv_len, causal, reads, writes, kv_heads=None) -> Work:
    """One fused attention call: q_len queries against kv_len keys, causal (aligned at the end) or full.

    HBM bytes: read Q, K, V once, write O (BF16) and the log-sum-exp (FP32).
    """
    kvh = heads if kv_heads is None else kv_heads
    q = np.asarray(q_len, dtype=float)
    kv = np.asarray(kv_len, dtype=float)
    pairs = ((kv - q) * q + q * (q + 1) / 2) if causal else q * kv
    flops = 4.0 * batch * heads * model.head_dim * pairs
    # K/V as the cache stores them (--kv-dtype fp8: read as FP8, dequantised in the kernel; math in BF16)
    hd, b, kvb = model.head_dim, model.dtype_bytes, model.kv_elem_bytes
    hbm = batch * hd * (2 * q * heads * b + 2 * kv * kvh * kvb) + batch * heads * q * 4
    return Work(
        Role(role),
        OpKind.ATTN,
        flops=flops,
        hbm_bytes=hbm,
        kv_len=kv_len,
        q_len=q_len,
        causal=causal,
        shape=(batch, heads, q_len, kv_len, model.head_dim),
        dims=(batch, heads, kvh, model.head_dim, kvb),  # the decode model reads the cache as stored
        reads=reads,
        writes=writes,
    )


def lse_merge(role, model: Model, tokens, heads, reads, writes) -> Work:
    """Merge a partial attention output into the FP32 accumulator with their log-sum-exps:
    read acc (FP32) and partial (BF16), write acc; read/write both lse (FP32)."""
    hd = model.head_dim
    hbm = tokens * heads * (hd * (2 * model.accum_bytes + model.dtype_bytes) + 3 * 4)
    return elementwise(role, hbm, reads, writes, kind=OpKind.LSE_MERGE)


# ----------------------------------------------------------------------------------------------
# the dense part of a layer on one rank: `tok` token rows, weights split tp ways
# ----------------------------------------------------------------------------------------------
def pre_attention(model: Model, tok, qkv_n, q_n=None) -> list[Work]:
    """Norm, the fused QKV projection (``qkv_n`` output columns on this rank, ``q_n`` of them the query
    heads'; default: every query head) and RoPE, which rotates the query and key heads (not V): with
    grouped KV heads that is q_n + (qkv_n - q_n) / 2 columns, not two thirds of them."""
    d, b = model.d_model, model.dtype_bytes
    q_n = model.q_dim if q_n is None else q_n
    rope_n = q_n + (qkv_n - q_n) / 2
    bias = (  # qkv_bias: add the biases to the projection's output (read it and the bias, write it)
        [elementwise("qkv_bias", (2 * tok + 1) * qkv_n * b, ("q", "kv_local"), ("q", "kv_local"))]
        if model.qkv_bias
        else []
    )
    return [
        elementwise("norm1", 2 * tok * d * b, ("x",), ("h",), rows=tok),
        gemm("qkv", tok, qkv_n, d, b, ("h",), ("q", "kv_local"), "qkv" in model.fp8_roles),
        *bias,
        elementwise("rope", 2 * tok * rope_n * b, ("q", "kv_local"), ("q", "kv_local"), rows=tok),
    ]


def lm_head_works(model: Model, rows, cols) -> list[Work]:
    """The LM head on one rank: the final norm of ``rows`` rows (their hidden states read from the
    activations), the logits GEMM against the rank's ``cols`` vocabulary columns, and each row's largest
    logit and its index in that slice (greedy choice; under TP the ranks then all-gather those pairs)."""
    d, b = model.d_model, model.dtype_bytes
    return [
        elementwise("final_norm", 2 * rows * d * b, ("x",), ("h_last",), rows=rows),
        gemm("lm_head", rows, cols, d, b, ("h_last",), ("logits",)),
        elementwise("logits_max", rows * cols * b + rows * 8, ("logits",), ("top",)),
    ]


def post_attention_proj(model: Model, tok, tp) -> list[Work]:
    fp8 = "o_proj" in model.fp8_roles
    return [gemm("o_proj", tok, model.d_model, model.q_dim / tp, model.dtype_bytes, ("o",), ("y",), fp8)]


def residual(name, model: Model, tok) -> Work:
    return elementwise(name, 3 * tok * model.d_model * model.dtype_bytes, ("x", "y"), ("x",), rows=tok)


def mlp_in(model: Model, tok, tp) -> list[Work]:
    d, b, f = model.d_model, model.dtype_bytes, model.d_ff / tp
    up_n = f * (model.mlp_mats - 1)
    act_bytes = (2 if model.mlp_mats == 2 else 3) * tok * f * b
    return [
        elementwise("norm2", 2 * tok * d * b, ("x",), ("h",), rows=tok),
        gemm("mlp_up", tok, up_n, d, b, ("h",), ("u",), "mlp_up" in model.fp8_roles),
        replace(elementwise("act", act_bytes, ("u",), ("a",), rows=tok), glu=model.mlp_mats == 3),
        gemm("mlp_down", tok, d, f, b, ("a",), ("y",), "mlp_down" in model.fp8_roles),
    ]


def layer_dense_works(geo) -> list[Work]:
    """Every compute kernel of a layer except attention itself (and its merge), in issue order, for
    one rank of a ``geometry.Geometry`` (its dense token rows, its TP shard)."""
    model, tok, tp = geo.model, geo.dense_tokens, geo.tp
    return (
        pre_attention(model, tok, geo.qkv_cols, model.q_dim / tp)
        + post_attention_proj(model, tok, tp)
        + [residual("resid1", model, tok)]
        + mlp_in(model, tok, tp)
        + [residual("resid2", model, tok)]
    )
