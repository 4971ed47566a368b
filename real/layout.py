"""Where tokens, heads and sequences live on each rank: the data layout behind a schedule.

The schedule (``costmodel.build``) names buffers and gives shapes; this module says *which* rows,
heads and key blocks those are, so every rank of the executor and the single-device reference agree.

* Prefill, sequence: ring rank ``r`` holds a ring-local sequence of ``L / ring`` tokens in the
  variant's layout (plain: chunk r of R; zigzag: chunks r and 2R-1-r of 2R; striped: tokens
  r, r+R, ...).  Ulysses rank ``u`` holds the u-th contiguous piece of that ring-local sequence, so an
  all-to-all over the ulysses group puts the ring-local sequence back together, in order.
* Heads: TP rank ``t`` holds query heads [t*H/tp, (t+1)*H/tp) and the KV heads they use (replicated
  when tp exceeds the KV heads); ulysses splits those again after its all-to-all.
* Decode: the KV cache of ``context`` tokens (the last one being the token decoded now) is split in
  ``sp`` chunks per sequence.  Owners (pass-KV, pass-Q, ulysses) compute the new tokens of
  sequences [i*c, (i+1)*c), c = ceil(mb/sp), and hold the *last* chunk of those sequences, so the new
  token's K/V is written locally; with the all-gather merge every rank computes every new token and
  ring rank R-1 holds the last chunk of every sequence.
"""
from __future__ import annotations

from costmodel.build import ring_calls
from costmodel.plan import DecodeAttn, Plan, RingVariant
from costmodel.specs import Model, Phase, Workload, ceil_div


def ring_positions(variant: str, ring: int, r: int, seq_len: int) -> list[int]:
    """Global token positions of ring rank ``r``'s ring-local sequence, in ring-local order."""
    if ring == 1:
        return list(range(seq_len))
    lr = seq_len // ring
    if variant == RingVariant.PLAIN:
        return list(range(r * lr, (r + 1) * lr))
    if variant == RingVariant.ZIGZAG:
        c = seq_len // (2 * ring)
        return list(range(r * c, (r + 1) * c)) + list(range((2 * ring - 1 - r) * c, (2 * ring - r) * c))
    return list(range(r, seq_len, ring))


def dense_positions(plan: Plan, rank: int, seq_len: int) -> list[int]:
    """Global positions of the token rows the dense part of ``rank`` computes (prefill)."""
    _, r, u, _ = plan.coords(rank)
    pos = ring_positions(plan.ring_variant, plan.ring, r, seq_len)
    piece = len(pos) // plan.ulysses
    return pos[u * piece:(u + 1) * piece]


def ring_blocks(variant: str, causal: bool, ring: int, lr: int, p: int, t: int) -> list[tuple[slice, slice, bool]]:
    """(query rows, key rows, causal) of the attention calls of ring rank ``p`` at step ``t``.

    Same calls, in the same order, as ``costmodel.build.ring_calls``, which gives only their lengths;
    the lengths are checked against it.
    """
    src = (p - t) % ring
    full = slice(0, lr)
    if not causal:
        out = [(full, full, False)]
    elif variant == RingVariant.PLAIN:
        out = [(full, full, True)] if src == p else ([(full, full, False)] if src < p else [])
    elif variant == RingVariant.ZIGZAG:
        h = lr // 2
        if src == p:
            out = [(full, full, True)]
        else:
            out = [(full, slice(0, h), False)] if src < p else [(slice(h, lr), full, False)]
    else:  # striped: a block from a later rank loses its diagonal
        if src <= p:
            out = [(full, full, True)]
        else:
            out = [(slice(1, lr), slice(0, lr - 1), True)] if lr > 1 else []
    lens = [(q.stop - q.start, k.stop - k.start, c) for q, k, c in out]
    expect = [(int(a), int(b), bool(c)) for a, b, c in ring_calls(variant, causal, ring, lr, p, t)]
    if lens != expect:  # the executor and the model must run the same calls
        raise RuntimeError(f"ring layout {variant} p={p} t={t}: executor calls {lens} != schedule {expect}")
    return out


# ---------------------------------------------------------------------------------------------
# heads
# ---------------------------------------------------------------------------------------------
def q_heads(model: Model, tp: int, t: int) -> range:
    h = model.n_heads // tp
    return range(t * h, (t + 1) * h)


def kv_heads(model: Model, tp: int, t: int) -> range:
    """KV heads TP rank ``t`` holds (those its query heads use)."""
    if model.n_kv_heads >= tp:
        h = model.n_kv_heads // tp
        return range(t * h, (t + 1) * h)
    k = t // (tp // model.n_kv_heads)
    return range(k, k + 1)


def ulysses_heads(n_q: int, n_kv: int, ulysses: int, u: int) -> tuple[slice, slice]:
    """(local query heads, local KV heads) ulysses rank ``u`` attends with, out of a TP rank's
    ``n_q`` query and ``n_kv`` KV heads."""
    hq = n_q // ulysses
    if n_kv >= ulysses:
        hk = n_kv // ulysses
        return slice(u * hq, (u + 1) * hq), slice(u * hk, (u + 1) * hk)
    k = (u * hq) // (n_q // n_kv)
    return slice(u * hq, (u + 1) * hq), slice(k, k + 1)


# ---------------------------------------------------------------------------------------------
# decode
# ---------------------------------------------------------------------------------------------
def decode_group(plan: Plan, rank: int) -> tuple[int, int]:
    """(index, size) of ``rank`` in the group that shards the decode work (ring or ulysses)."""
    _, r, u, _ = plan.coords(rank)
    return (r, plan.ring) if plan.ring > 1 else (u, plan.ulysses)


def decode_owners(plan: Plan) -> bool:
    """Whether new tokens are computed by their owners (else by every rank of the group)."""
    return plan.sp > 1 and not (plan.ring > 1 and plan.decode_attn == DecodeAttn.ALLGATHER)


def decode_rows(plan: Plan, wl: Workload, rank: int) -> tuple[int, int, int]:
    """(first sequence, rows, virtual batch) of one micro-batch on ``rank``.

    Rows are ``dense_tokens`` of the schedule; owners pad the micro-batch to ``c * sp`` sequences
    (the extra ones are computed and ignored), so every rank has the same number of rows.
    """
    mb = wl.batch // plan.microbatches
    if not decode_owners(plan):
        return 0, mb, mb
    i, n = decode_group(plan, rank)
    c = ceil_div(mb, n)
    return i * c, c, c * n


def decode_chunk(plan: Plan, wl: Workload, rank: int, seq: int) -> int:
    """Which of the ``ring`` context chunks of sequence ``seq`` ring rank of ``rank`` holds."""
    if plan.ring == 1:
        return 0
    _, r, _, _ = plan.coords(rank)
    R = plan.ring
    if not decode_owners(plan):
        return r
    c = decode_rows(plan, wl, rank)[1]
    owner = seq // c
    return (r - owner + R - 1) % R


def is_decode(wl: Workload) -> bool:
    return wl.phase == Phase.DECODE
