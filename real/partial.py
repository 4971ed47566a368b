"""The executor's partial prefill (``--cached C``) and pass-Q prefill ring (``--prefill-attn pass-q``).

Setup (not timed): each rank's cached K/V is drawn deterministically (``model.prefix_kv``, per global
sequence and layer) before the timed prefill and laid out as ``costmodel.geometry`` says: a ring rank
holds the cached positions ``cached_positions`` of its KV heads (its ulysses slice of them), with room
behind them for its new K/V (``kv_append`` writes it there: the block pass-KV sends and pass-Q's local
keys); without a ring a rank holds the whole cache of its heads.  The new tokens' RoPE positions start
at C.

Ops (``costmodel/strategies/prefix_cache.py``, ``ring_prefill.py``, ``ring_prefill_pass_q.py``):
``kv_append``; ``a2a_parts``, the all-to-all that returns each visiting query block's partial output and
log-sum-exp (FP32) to its owner; and the owner's ``merge_parts`` of its R partials.  The attention calls
themselves are the executor's ``ring_attn`` / ``chunk_attn`` ops, with the blocks of
``geometry.ring_blocks_cached``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from costmodel.plan import PrefillAttn
from costmodel.schedule import Op
from costmodel.strategies.prefix_cache import cache_name
from costmodel.strategies.ring_prefill_pass_q import acc_name

from . import layout
from . import model as M


def setup(ex, pos: list[int]) -> None:
    """Called by ``Executor._setup_prefill`` when the workload has cached tokens: RoPE of the new tokens
    at C + their positions, and this rank's cached K/V of every layer and micro-batch in ``ex.inputs``."""
    plan, model, wl, dev = ex.plan, ex.model, ex.wl, ex.device
    C, R = wl.cached_len, plan.ring
    ex.lc = C // R
    ex.cos, ex.sin = M.rope_tables(torch.tensor(pos, device=dev) + C, model.head_dim, ex.dtype)
    cpos = torch.tensor(layout.cached_positions(plan.ring_variant, R, ex.r, C), device=dev)
    kvh = layout.tp_kv_heads(model, plan.tp, ex.t)
    heads = ex.uk if plan.ulysses > 1 else slice(0, ex.hk)
    hk = heads.stop - heads.start
    room = ex.lr if R > 1 else 0  # a ring's block: [cached | new]
    for i in ex.layer_ids:
        for j in range(plan.microbatches):
            buf = torch.empty(2, ex.mb, ex.lc + room, hk, model.head_dim, device=dev, dtype=ex.kv_dtype)
            for b in range(ex.mb):
                full = M.prefix_kv(model, i, j * ex.mb + b, C, ex.seed, dev)[:, :, kvh.start : kvh.stop]
                blk = full[:, cpos][:, :, heads]
                buf[:, b, : ex.lc] = M.to_kv8(blk) if ex.kv8 else blk
                del full
            ex.inputs[cache_name(i, j)] = buf


def attn_blocks(ex, op: Op) -> tuple[slice, slice, bool]:
    """(query rows, key rows, causal) of a prefill ring step's call ``op.call`` (pass-KV or pass-Q, with or
    without a cache), checked against the schedule's shape."""
    return layout.checked_ring_blocks(
        ex.plan.ring_variant,
        ex.wl.causal,
        ex.plan.ring,
        ex.lr,
        ex.r,
        op.step,
        op.call,
        op.shape,
        lc=ex.lc,
        pass_q=ex.plan.prefill_attn == PrefillAttn.PASS_Q,
    )


def recv_buffer(ex, name: str) -> torch.Tensor | None:
    """Receive buffer of a prefill pass-Q query block (None for other names)."""
    D, dev = ex.model.head_dim, ex.device
    if name.startswith("qbuf"):
        return torch.empty(ex.mb, ex.lr, _q_heads(ex), D, device=dev, dtype=ex.dtype)
    return None


def _q_heads(ex) -> int:
    return ex.uq.stop - ex.uq.start if ex.plan.ulysses > 1 else ex.hq


def op_kv_append(ex, op: Op) -> None:
    """The new K/V written behind the cached rows of this rank's block (in place: the cache keeps it)."""
    buf, kv = ex.env[op.reads[0]], ex.env[op.reads[1]]
    buf[:, :, ex.lc :].copy_(kv)
    ex.env[op.writes[0]] = buf


def op_a2a_parts(ex, op: Op) -> None:
    """Every visiting block's partial output (FP32) and log-sum-exp back to its owner: block t came from
    ring rank p - t.  A block that met no key here (a causal layout's empty step) sends lse = -inf."""
    R, p, D = ex.plan.ring, ex.r, ex.model.head_dim
    send = torch.zeros(R, ex.mb, ex.lr, _q_heads(ex), D + 1, device=ex.device, dtype=torch.float32)
    send[..., D] = float("-inf")
    for name in op.reads:
        t = int(name.removeprefix(acc_name("")))
        acc = ex.env[name]  # o (B, H, S, D), lse (B, H, S)
        s = (p - t) % R
        send[s, ..., :D] = acc.o.transpose(1, 2)
        send[s, ..., D] = acc.lse.transpose(1, 2)
    recv = torch.empty_like(send)
    ex._on_comm(send, recv)
    dist.all_to_all_single(recv, send, group=ex.groups(op.peers))
    ex.env[op.writes[0]] = recv


def op_merge_parts(ex, op: Op) -> None:
    """The owner's R partials (R, B, S, H, D + 1) merged by their log-sum-exps -> the output ((B S, H D),
    or (B, S, H, D) for the ulysses all-to-all)."""
    parts = ex.env[op.reads[0]]
    o, lse = parts[..., :-1], parts[..., -1]
    total = torch.logsumexp(lse, dim=0)
    out = (torch.exp(lse - total).unsqueeze(-1) * o).sum(0).to(ex.dtype)
    ex.env[op.writes[0]] = out.reshape(out.shape[0] * out.shape[1], -1) if op.writes[0] == "o" else out


__all__ = ["attn_blocks", "op_a2a_parts", "op_kv_append", "op_merge_parts", "recv_buffer", "setup"]
