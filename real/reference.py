"""Single-device reference forward passes: the whole sequence, all heads, one device, no schedule.

Written independently of the executor (plain softmax attention, no log-sum-exp merge, no sharding) so
that an executor that matches it is right, whatever plan it ran.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from costmodel.specs import Model

from . import model as M


def _attention(q, k, v, causal: bool) -> torch.Tensor:
    """q (B, S, H, D), k/v (B, Sk, Hk, D) -> (B, S, H, D); plain softmax (CPU) or SDPA (GPU)."""
    h, hk = q.shape[2], k.shape[2]
    if hk != h:
        k, v = k.repeat_interleave(h // hk, dim=2), v.repeat_interleave(h // hk, dim=2)
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    if (
        q.device.type == "cuda" and causal and 1 < q.shape[2] < k.shape[2]
    ):  # a prefix cache: aligned at the end
        sq, sk = q.shape[2], k.shape[2]
        mask = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril(sk - sq)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    elif q.device.type == "cuda":
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal and q.shape[2] > 1)
    else:
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if causal:
            sq, sk = s.shape[-2:]
            mask = torch.ones(sq, sk, dtype=torch.bool, device=s.device).tril(sk - sq)
            s = s.masked_fill(~mask, float("-inf"))
        o = torch.matmul(torch.softmax(s, dim=-1), v)
    return o.transpose(1, 2)


def _mlp_and_proj(model: Model, w: M.LayerWeights, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``a``: the layer's attention output, projected (before the residual add)."""
    x = x + a
    h = M.rmsnorm(x, w.g2)
    return x + F.linear(M.activation(model, F.linear(h, w.wup)), w.wdown)


def _qkv(model: Model, w: M.LayerWeights, x: torch.Tensor):
    D = model.head_dim
    qkv = F.linear(M.rmsnorm(x, w.g1), w.wqkv)
    if w.bqkv is not None:
        qkv = qkv + w.bqkv
    q = qkv[..., : w.hq * D].unflatten(-1, (w.hq, D))
    k = qkv[..., w.hq * D : (w.hq + w.hk) * D].unflatten(-1, (w.hk, D))
    v = qkv[..., (w.hq + w.hk) * D :].unflatten(-1, (w.hk, D))
    return q, k, v


def prefill(
    model: Model,
    layers: int,
    batch: int,
    seq_len: int,
    causal: bool,
    seed: int,
    device,
    dtype=torch.float32,
    on_attn=None,
    cached: int = 0,
) -> torch.Tensor:
    """Output hidden states (batch, seq_len, d) after ``layers`` layers.  ``cached``: tokens per sequence
    already in the KV cache (``model.prefix_kv``); the new ones sit at positions cached..cached+seq_len-1.

    ``on_attn(layer, a)``, if given, sees each layer's attention output after the output projection and
    before the residual add, (batch, seq_len, d): the per-layer check compares it with the executor's."""
    x = M.prefill_input(model, batch, seq_len, seed, device).to(dtype)
    cos, sin = M.rope_tables(torch.arange(cached, cached + seq_len, device=device), model.head_dim, dtype)
    for layer in range(layers):
        w = M.layer_shard(model, layer, seed, 1, 0, device, dtype)
        q, k, v = _qkv(model, w, x)
        q, k = M.apply_rope(q, cos, sin), M.apply_rope(k, cos, sin)
        if cached:
            pre = torch.stack([M.prefix_kv(model, layer, b, cached, seed, device) for b in range(batch)], 1)
            pre = pre.to(dtype)
            k, v = torch.cat([pre[0], k], dim=1), torch.cat([pre[1], v], dim=1)
            del pre
        a = F.linear(_attention(q, k, v, causal).flatten(-2), w.wo)
        del q, k, v
        if on_attn is not None:
            on_attn(layer, a)
        x = _mlp_and_proj(model, w, x, a)
    return x


def decode(
    model: Model,
    layers: int,
    batch: int,
    microbatches: int,
    context: int,
    seed: int,
    device,
    virtual: int,
    dtype=torch.float32,
    attn: list | None = None,
) -> torch.Tensor:
    """One decode step: output hidden states (batch, d) of the new tokens at position context-1.

    ``attn``, if given (a list), receives each layer's attention output after the output projection and
    before the residual add, (batch, d) per layer.

    ``virtual`` is the per-micro-batch number of sequences the executor draws inputs for (>= batch /
    microbatches); only the first batch/microbatches of each are real.
    """
    mb = batch // microbatches
    outs = []
    per_layer: list[list[torch.Tensor]] = [[] for _ in range(layers)]
    pos = torch.tensor([context - 1], device=device)
    cos, sin = M.rope_tables(pos, model.head_dim, dtype)
    for j in range(microbatches):
        x = M.decode_input(model, virtual, seed, device, j)[:mb].to(dtype)[:, None, :]  # (mb, 1, d)
        for layer in range(layers):
            w = M.layer_shard(model, layer, seed, 1, 0, device, dtype)
            q, k, v = _qkv(model, w, x)
            q, k = M.apply_rope(q, cos, sin), M.apply_rope(k, cos, sin)
            cache = M.decode_cache(model, layer, j, mb, context, seed, device).to(dtype)
            kc = torch.cat([cache[0, :, : context - 1], k], dim=1)
            vc = torch.cat([cache[1, :, : context - 1], v], dim=1)
            a = F.linear(_attention(q, kc, vc, False).flatten(-2), w.wo)
            per_layer[layer].append(a[:, 0])
            x = _mlp_and_proj(model, w, x, a)
        outs.append(x[:, 0])
    if attn is not None:
        attn.extend(torch.cat(p) for p in per_layer)
    return torch.cat(outs)


def logits(model: Model, rows: torch.Tensor, seed: int, device, dtype=torch.float32) -> torch.Tensor:
    """The LM head of the rows that get logits ((n, d): prefill, each sequence's last token; decode, the
    new tokens): final norm, then the whole vocabulary, (n, vocab)."""
    h = M.head_shard(model, seed, 1, 0, device, dtype)
    return F.linear(M.rmsnorm(rows.to(dtype), h.g), h.w)
