"""The dense transformer the executor runs: weights and inputs drawn from a seed, and its layer math.

A layer is pre-norm: ``x += o_proj(attn(rope(qkv(rmsnorm(x)))))``, then
``x += mlp_down(act(mlp_up(rmsnorm(x))))`` with GELU (tanh) or SwiGLU; biases on Q, K, V only when the
model has ``qkv_bias``; RoPE (theta 1e4) on queries and keys; softmax scale 1/sqrt(head_dim).  A model
with a vocabulary ends with the LM head: ``logits = rmsnorm(x) @ W^T`` (W: the LM head, or the embedding
when tied; vocab-parallel: TP rank t holds rows [t c, (t + 1) c), c = ceil(vocab / tp)).
Every tensor is drawn in FP32 from its own generator, seeded from (seed, name), on the device that
uses it, so the same seed gives the same model on every rank and in the single-device reference of
the same device type; TP ranks then keep their slices (``layer_shard``, ``head_shard``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from costmodel.specs import MlpKind, Model

from . import layout

ROPE_THETA = 10000.0


def randn(shape, key: str, seed: int, device, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
    g = torch.Generator(device=device)
    g.manual_seed((zlib.crc32(key.encode()) * 1_000_003 + seed) % (2**63 - 1))
    t = torch.randn(tuple(shape), generator=g, device=device, dtype=torch.float32)
    return t.mul_(std).add_(mean) if (std != 1.0 or mean != 0.0) else t


@dataclass
class LayerWeights:
    g1: torch.Tensor  # (d,)
    wqkv: torch.Tensor  # (hq*D + 2*hk*D, d): query heads, then keys, then values
    wo: torch.Tensor  # (d, hq*D)
    g2: torch.Tensor
    wup: torch.Tensor  # (up_n, d): [gate; up] for SwiGLU
    wdown: torch.Tensor  # (d, f)
    hq: int
    hk: int
    fp8: dict | None = None  # role value ("qkv", "o_proj", "mlp_up", "mlp_down") -> Fp8Weight, for FP8 GEMMs
    bqkv: torch.Tensor | None = None  # (hq*D + 2*hk*D,): Q, K, V biases (qkv_bias models)


@dataclass
class HeadWeights:
    g: torch.Tensor  # (d,): the final norm
    w: torch.Tensor  # (cols, d): this TP rank's vocabulary rows (zero rows pad the vocabulary)
    lo: int  # first vocabulary id of the slice
    valid: int  # rows of the slice that are real tokens


def head_shard(model: Model, seed: int, tp: int, t: int, device, dtype) -> HeadWeights:
    """TP rank ``t``'s slice of the LM head (tp=1: all of it): the embedding matrix when tied, else its
    own."""
    d, V = model.d_model, model.vocab
    cols = -(-V // tp)
    lo, hi = min(t * cols, V), min((t + 1) * cols, V)
    key = "embed" if model.tie_embeddings else "lm_head"
    full = randn((V, d), key, seed, device, 1 / math.sqrt(d))
    w = torch.zeros(cols, d, device=device, dtype=torch.float32)
    w[: hi - lo] = full[lo:hi]
    del full
    g = randn((d,), "final_norm", seed, device, 0.1, 1.0)
    return HeadWeights(g=g.to(dtype), w=w.to(dtype).contiguous(), lo=lo, valid=hi - lo)


def layer_shard(model: Model, layer: int, seed: int, tp: int, t: int, device, dtype) -> LayerWeights:
    """TP rank ``t``'s slice of layer ``layer`` (tp=1: the whole layer)."""
    d, D, f = model.d_model, model.head_dim, model.d_ff
    key = f"L{layer}/"
    qh, kh = layout.tp_q_heads(model, tp, t), layout.tp_kv_heads(model, tp, t)
    wq = randn((model.n_heads, D, d), key + "wq", seed, device, 1 / math.sqrt(d))[qh.start : qh.stop]
    wk = randn((model.n_kv_heads, D, d), key + "wk", seed, device, 1 / math.sqrt(d))[kh.start : kh.stop]
    wv = randn((model.n_kv_heads, D, d), key + "wv", seed, device, 1 / math.sqrt(d))[kh.start : kh.stop]
    wqkv = torch.cat([wq.reshape(-1, d), wk.reshape(-1, d), wv.reshape(-1, d)])
    wo = randn((d, model.n_heads * D), key + "wo", seed, device, 0.5 / math.sqrt(model.q_dim))
    wo = wo[:, qh.start * D : qh.stop * D]
    fs = slice(t * f // tp, (t + 1) * f // tp)
    ups = [randn((f, d), key + "wup", seed, device, 1 / math.sqrt(d))[fs]]
    if model.mlp == MlpKind.SWIGLU:
        ups.insert(0, randn((f, d), key + "wgate", seed, device, 1 / math.sqrt(d))[fs])
    wdown = randn((d, f), key + "wdown", seed, device, 0.5 / math.sqrt(f))[:, fs]
    g1 = randn((d,), key + "g1", seed, device, 0.1, 1.0)
    g2 = randn((d,), key + "g2", seed, device, 0.1, 1.0)
    bqkv = None
    if model.qkv_bias:
        bq = randn((model.n_heads, D), key + "bq", seed, device, 0.1)[qh.start : qh.stop]
        bk = randn((model.n_kv_heads, D), key + "bk", seed, device, 0.1)[kh.start : kh.stop]
        bv = randn((model.n_kv_heads, D), key + "bv", seed, device, 0.1)[kh.start : kh.stop]
        bqkv = torch.cat([bq.reshape(-1), bk.reshape(-1), bv.reshape(-1)])
    cv = lambda x: x.to(dtype).contiguous()
    return LayerWeights(
        g1=cv(g1),
        wqkv=cv(wqkv),
        wo=cv(wo),
        g2=cv(g2),
        wup=cv(torch.cat(ups)),
        wdown=cv(wdown),
        hq=len(qh),
        hk=len(kh),
        bqkv=None if bqkv is None else cv(bqkv),
    )


def prefill_input(model: Model, batch: int, seq_len: int, seed: int, device) -> torch.Tensor:
    """Hidden states entering layer 0: (batch, seq_len, d_model), FP32."""
    return randn((batch, seq_len, model.d_model), "input/prefill", seed, device)


def decode_input(model: Model, n: int, seed: int, device, mb: int) -> torch.Tensor:
    """Hidden states of the new tokens of micro-batch ``mb``'s ``n`` (virtual) sequences: (n, d)."""
    return randn((n, model.d_model), f"input/decode/mb{mb}", seed, device)


def decode_cache_seq(
    model: Model, layer: int, mb: int, seq: int, context: int, seed: int, device
) -> torch.Tensor:
    """The KV cache of sequence ``seq`` of micro-batch ``mb`` at ``layer``: (2, context, kv_heads, D), FP32;
    its last slot is overwritten by the token decoded now.  Drawn per sequence, so that a rank can build
    its shard one sequence at a time (a whole batch in FP32 would not fit beside the shards)."""
    return randn(
        (2, context, model.n_kv_heads, model.head_dim), f"cache/L{layer}/mb{mb}/seq{seq}", seed, device
    )


def prefix_kv(model: Model, layer: int, seq: int, cached: int, seed: int, device) -> torch.Tensor:
    """Partial prefill: the cached K/V (already rotated, as a cache stores them) of global sequence ``seq``
    at ``layer``, positions 0..cached-1: (2, cached, kv_heads, D), FP32.  Drawn per sequence and layer, so
    that every rank and the reference build the same cache without a prefill of their own."""
    return randn((2, cached, model.n_kv_heads, model.head_dim), f"prefix/L{layer}/seq{seq}", seed, device)


def decode_cache(model: Model, layer: int, mb: int, n: int, context: int, seed: int, device) -> torch.Tensor:
    """The first ``n`` sequences' caches of micro-batch ``mb`` at ``layer``: (2, n, context, kv_heads, D),
    FP32."""
    return torch.stack(
        [decode_cache_seq(model, layer, mb, b, context, seed, device) for b in range(n)], dim=1
    )


# ---------------------------------------------------------------------------------------------
# elementwise pieces (shared by the executor and the reference)
# ---------------------------------------------------------------------------------------------
def rmsnorm(x: torch.Tensor, g: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * g.float()).to(x.dtype)


def activation(model: Model, u: torch.Tensor) -> torch.Tensor:
    if model.mlp == MlpKind.SWIGLU:
        gate, up = u.chunk(2, dim=-1)
        return F.silu(gate) * up
    return F.gelu(u, approximate="tanh")


def rope_tables(positions: torch.Tensor, head_dim: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (S, 1, D) for rotate-half RoPE at the given global positions."""
    inv = 1.0 / (
        ROPE_THETA ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64) / head_dim)
    )
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype)[:, None, :], ang.sin().to(dtype)[:, None, :]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor | None = None):
    """x (..., S, H, D) with cos/sin (S, 1, D)."""
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    if out is None:
        return x * cos + rot * sin
    torch.mul(x, cos, out=out)
    return out.addcmul_(rot, sin)


# ---------------------------------------------------------------------------------------------
# FP8 linear layers (--fp8): e4m3 inputs, one FP32 scale per activation row and per weight output channel
# ---------------------------------------------------------------------------------------------
FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # the largest finite float8_e4m3fn


@dataclass
class Fp8Weight:
    """A weight (N, K) in FP8, row-major (``w8.t()`` is the column-major (K, N) operand ``_scaled_mm``
    takes), with one FP32 scale per output channel, shaped (1, N)."""

    w8: torch.Tensor
    scale: torch.Tensor

    @property
    def shape(self):
        return self.w8.shape


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, K) -> (x8 (M, K) float8_e4m3fn, scale (M, 1) FP32) with x ~= x8 * scale: each row's largest
    magnitude maps to 448.  Four passes in x's dtype, no FP32 copy of x: amax per row (an infinity norm),
    divide by the scale (rounded to x's dtype first, so that the FP32 scale returned is exactly the one
    divided by), clamp, cast."""
    amax = torch.linalg.vector_norm(x, ord=float("inf"), dim=-1, keepdim=True)
    scale = (amax.float().clamp_(min=1e-12) / FP8_MAX).to(x.dtype)
    x8 = (x / scale).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return x8.contiguous(), scale.float()  # row-major, as _scaled_mm's first operand must be (a no-op here)


def quantize_weight(w: torch.Tensor) -> Fp8Weight:
    """Per-output-channel quantisation of a weight (N, K)."""
    w8, s = quantize_rows(w)
    return Fp8Weight(w8=w8.contiguous(), scale=s.reshape(1, -1).contiguous())


def quantize_layer(w: LayerWeights, roles) -> LayerWeights:
    """The layer with the GEMMs of ``roles`` in FP8 (their BF16 weights dropped: memory as deployed)."""
    names = {"qkv": "wqkv", "o_proj": "wo", "mlp_up": "wup", "mlp_down": "wdown"}
    w.fp8 = {}
    for role in sorted(roles):
        w.fp8[role] = quantize_weight(getattr(w, names[role]))
        setattr(w, names[role], None)
    return w


def scaled_mm_available(device) -> str | None:
    """None when ``torch._scaled_mm`` runs FP8 row-wise-scaled GEMMs on ``device``, else why not."""
    if device.type != "cuda":
        return (
            f"torch._scaled_mm FP8 GEMMs need a CUDA GPU (device {device.type}): the CPU path emulates them"
        )
    if not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no torch._scaled_mm"
    cap = torch.cuda.get_device_capability(device)
    if cap < (8, 9):
        return f"FP8 GEMMs need compute capability >= 8.9 (Ada/Hopper); this GPU has {cap[0]}.{cap[1]}"
    return None


def fp8_linear(x: torch.Tensor, w: Fp8Weight, emulate: bool | None = None) -> torch.Tensor:
    """y = x @ W^T in FP8: x quantised per row, W per output channel; output in x's dtype.

    On a GPU: ``torch._scaled_mm(x8, w8.t(), scale_a (M, 1), scale_b (1, N), out_dtype)`` (FP32
    accumulation in the tensor cores).  ``emulate`` (default: on CPU): the same quantised operands
    dequantised to FP32 and multiplied there, so that CPU tests see FP8's rounding."""
    shp = x.shape
    x2 = x.reshape(-1, shp[-1])
    x8, sa = quantize_rows(x2)
    if emulate is None:
        emulate = x.device.type != "cuda"
    if emulate:
        y = (x8.float() * sa) @ (w.w8.float() * w.scale.t()).t()
        y = y.to(x.dtype)
    else:
        y = torch._scaled_mm(x8, w.w8.t(), scale_a=sa, scale_b=w.scale, out_dtype=x.dtype)
    return y.reshape(*shp[:-1], w.w8.shape[0])


# --kv-dtype fp8: K and V stored (and sent) as e4m3 with a static scale of 1 (vLLM's default when no KV scales
# are calibrated: K/V of these models are O(1), far inside e4m3's range); attention dequantises them on load
KV_FP8_SCALE = 1.0


def to_kv8(t: torch.Tensor) -> torch.Tensor:
    """K/V -> float8_e4m3fn at the static scale (clamped to the finite range: e4m3fn has no infinity)."""
    return (t / KV_FP8_SCALE).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)


def from_kv8(t: torch.Tensor, dtype) -> torch.Tensor:
    """FP8 K/V -> ``dtype`` for the attention kernel (a tensor already in another dtype is returned as is)."""
    if t.dtype != FP8_DTYPE:
        return t
    return t.to(dtype) * KV_FP8_SCALE if KV_FP8_SCALE != 1.0 else t.to(dtype)
