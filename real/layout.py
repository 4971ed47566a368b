"""Where tokens, heads and sequences live on each rank: the data layout behind a schedule.

Every fact here is read from ``costmodel.geometry`` (the one place the builder and the closed forms
read too); this module only adds what the executor needs on top (checks that the executor's slices
are the calls the schedule counted).
"""

from __future__ import annotations

from costmodel.geometry import (
    Geometry,
    cached_positions,
    decode_chunk,
    decode_group,
    decode_rows,
    dense_positions,
    ring_blocks,
    ring_blocks_cached,
    ring_positions,
    tp_kv_heads,
    tp_q_heads,
    ulysses_heads,
)

__all__ = [
    "ring_positions",
    "dense_positions",
    "ring_blocks",
    "ring_blocks_cached",
    "cached_positions",
    "tp_q_heads",
    "tp_kv_heads",
    "ulysses_heads",
    "decode_group",
    "decode_rows",
    "decode_chunk",
    "decode_owners",
    "checked_ring_blocks",
]


def decode_owners(plan, wl) -> bool:
    """Whether new tokens are computed by their owners (else by every rank of the ring)."""
    return bool(Geometry.of(None, wl, plan).owners)


def checked_ring_blocks(
    variant: str,
    causal: bool,
    ring: int,
    lr: int,
    p: int,
    t: int,
    call: int,
    op_shape: tuple,
    lc: int = 0,
    pass_q: bool = False,
) -> tuple[slice, slice, bool]:
    """Call ``call`` of ``ring_blocks`` (with ``lc`` cached rows per block or pass-Q:
    ``ring_blocks_cached``), checked against the attention op's shape (batch, heads, q_len, kv_len,
    head_dim): the executor must run the call the schedule counted."""
    if lc or pass_q:
        qs, ks, causal_ = ring_blocks_cached(variant, causal, ring, lr, lc, p, t, pass_q)[call]
    else:
        qs, ks, causal_ = ring_blocks(variant, causal, ring, lr, p, t)[call]
    if (qs.stop - qs.start, ks.stop - ks.start) != tuple(op_shape[2:4]):
        raise RuntimeError(
            f"ring layout {variant} p={p} t={t} call {call}: executor block "
            f"{(qs.stop - qs.start, ks.stop - ks.start)} != the schedule's call {op_shape}"
        )
    return qs, ks, causal_
