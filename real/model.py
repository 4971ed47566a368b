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
