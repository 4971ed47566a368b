"""Who holds what: tokens, heads and KV heads per rank, ring blocks and the calls of each ring step,
ulysses pieces, decode owners and cache chunks, and the size of every message a plan sends.

This is the one place these facts are written.  The schedule builder (scalars), the closed forms
(numpy arrays over L, B and the plan's degrees) and the executor's data layout (``real/layout.py``)
all read it; ``tests/test_geometry.py`` walks every plan family and checks the three against it.

``Geometry`` takes scalars or arrays for every count (they broadcast together); with Python ints in,
sizes come out as Python ints.  Only the categorical choices (phase, ring layout, decode merge) are
scalars.

Layouts (prefill): ring rank ``r`` holds a ring-local sequence of ``L / ring`` tokens in the variant's
layout (plain: chunk r of R; zigzag: chunks r and 2R-1-r of 2R; striped: tokens r, r+R, ...); ulysses
rank ``u`` holds the u-th contiguous piece of it, so an all-to-all over the ulysses group puts the
ring-local sequence back together.  Heads: TP rank ``t`` holds query heads [t*H/tp, (t+1)*H/tp) and
the KV heads they use (replicated when tp exceeds the KV heads); ulysses splits those again after its
all-to-all.  Decode: the cache of ``context`` tokens is split in ``sp`` chunks per sequence.  Owners
(pass-KV, pass-Q, ulysses) compute the new tokens of sequences [i*c, (i+1)*c), c = ceil(mb/sp), padding
the micro-batch to c*sp rows, and hold the *last* chunk of those sequences; with the all-gather merge
every rank computes every new token and ring rank R-1 holds the last chunk of every sequence.

Partial prefill (``--cached C``): C tokens per sequence sit in the KV cache (positions 0..C-1) before the
prefill of the L new ones (positions C..C+L-1).  A ring shards the cache like the prompt: ring rank ``r``
holds the cached positions ``ring_positions(variant, R, r, C)`` (plain: a contiguous C/R; zigzag: chunks
r and 2R-1-r of 2R) and the new positions C + ``ring_positions(variant, R, r, L)``; ulysses ranks hold
their heads of their ring rank's cache; without a ring a rank holds the whole cache of its heads.  A
rank's local K/V is [cached | new] (``ring_cached`` + ``ring_len`` rows): the block pass-KV sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .plan import AXIS_NAMES, DecodeAttn, Plan, RingVariant
from .specs import Model, Phase, Workload


def _max1(x):
    return x if isinstance(x, int) and x >= 1 else (1 if isinstance(x, int) else np.maximum(x, 1))


def ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Geometry:
    """The geometry of one plan (scalars) or of a grid of plans (arrays), for one micro-batch.  Derived
    sizes are computed once (``cached_property``: the closed forms read them many times)."""

    model: Model
    phase: str
    batch: object  # B
    seq: object  # L (prefill prompt)
    context: object  # C (decode cache length)
    tp: object = 1
    ulysses: object = 1
    ring: object = 1
    pp: object = 1
    microbatches: object = 1
    ring_variant: str = RingVariant.ZIGZAG
    decode_attn: str = DecodeAttn.ALLGATHER
    causal: bool = True
    pp_send: str = "scatter"
    chunks: object = 1  # prefill: chunks of each sequence flowing through the pipeline (chunked prefill)
    cached: object = 0  # prefill: tokens per sequence already in the KV cache (partial prefill)
    prefill_attn: str = "pass-kv"  # prefill ring: pass-kv | pass-q

    @classmethod
    def of(cls, model: Model, wl: Workload, plan: Plan) -> Geometry:
        return cls(
            model=model,
            phase=wl.phase,
            batch=wl.batch,
            seq=wl.seq_len,
            context=wl.context,
            tp=plan.tp,
            ulysses=plan.ulysses,
            ring=plan.ring,
            pp=plan.pp,
            microbatches=plan.microbatches,
            ring_variant=plan.ring_variant,
            decode_attn=plan.decode_attn,
            causal=wl.causal,
            pp_send=plan.pp_send,
            chunks=plan.chunks,
            cached=wl.cached_len,
            prefill_attn=plan.prefill_attn,
        )

    @property
    def decode(self) -> bool:
        return self.phase == Phase.DECODE

    # -- batch and tokens -----------------------------------------------------------------------
    @cached_property
    def mb(self):
        """Sequences of one micro-batch."""
        return self.batch // self.microbatches

    @cached_property
    def sp(self):
        return self.ring * self.ulysses

    def span(self, axis: str):
        """Consecutive GPUs one group of ``axis`` spans (the mesh lays axes out innermost first):
        the placement rule behind every 'does this group cross a node?' of the closed forms."""
        s = 1
        for name in AXIS_NAMES:
            s = s * getattr(self, name)
            if name == axis:
                return s
        raise ValueError(f"unknown axis {axis!r}")

    @cached_property
    def owners(self):
        """Decode: whether new tokens are computed by their owners (pass-KV, pass-Q, ulysses), each
        owning ceil(mb / sp) sequences, rather than by every rank of the ring (all-gather merge)."""
        allgather = self.decode_attn == DecodeAttn.ALLGATHER
        if isinstance(self.sp, int):
            return self.sp > 1 and not (self.ring > 1 and allgather)
        return (np.asarray(self.sp) > 1) & ~((np.asarray(self.ring) > 1) & allgather)

    @cached_property
    def owner_rows(self):
        """Decode: rows (sequences) one owner computes: ceil(mb / sp)."""
        return ceil_div(self.mb, self.sp)

    @cached_property
    def dense_tokens(self):
        """Token rows of the dense part (GEMMs) on one rank for one micro-batch."""
        if not self.decode:
            return self.mb * self.seq // (self.sp * self.chunks)
        if isinstance(self.sp, int):
            return self.owner_rows if self.owners else self.mb
        return np.where(self.owners, self.owner_rows, self.mb)

    @cached_property
    def cache_batch(self):
        """Decode: sequences of one micro-batch the cache holds per rank (owners pad to rows x sp)."""
        if isinstance(self.sp, int):
            return self.owner_rows * self.sp if self.owners else self.mb
        return np.where(self.owners, self.owner_rows * self.sp, self.mb)

    # -- heads ----------------------------------------------------------------------------------
    @cached_property
    def q_heads(self):
        """Query heads one rank attends with (after tp and ulysses)."""
        return self.model.n_heads // (self.tp * self.ulysses)

    @cached_property
    def kv_heads(self):
        """KV heads one rank attends with (after tp and ulysses; replicated below one)."""
        return _max1(self.model.n_kv_heads // (self.tp * self.ulysses))

    @cached_property
    def kv_heads_tp(self):
        """KV heads a TP rank holds (replicated when tp exceeds the KV heads)."""
        return _max1(self.model.n_kv_heads // self.tp)

    @cached_property
    def qkv_cols(self):
        """Columns of a TP rank's fused QKV projection."""
        return (self.model.q_dim + 2 * self.model.head_dim * self.kv_heads_tp * self.tp) // self.tp

    # -- sequence -------------------------------------------------------------------------------
    @cached_property
    def ring_len(self):
        """Ring-local tokens per sequence (prefill, after the ulysses all-to-all)."""
        return self.seq // self.ring

    @cached_property
    def ring_cached(self):
        """Partial prefill: cached tokens per sequence one ring rank holds (all of them without a ring)."""
        return self.cached // self.ring

    @cached_property
    def shard_len(self):
        """Decode: cache tokens per sequence one ring rank holds."""
        return self.context // self.ring

    # -- messages (bytes) ------------------------------------------------------------------------
    @cached_property
    def act_bytes(self):
        """One rank's activations of one micro-batch: a TP all-reduce, a pipeline transfer."""
        return self.dense_tokens * self.model.d_model * self.model.dtype_bytes

    @property
    def chunk_len(self):
        """Prefill with chunks: the tokens of one chunk of a sequence."""
        return self.seq // self.chunks

    @property
    def pp_scatter(self):
        """True where a stage's TP ranks each send 1/tp of the activations (the next stage all-gathers)."""
        return (self.pp_send == "scatter") & (np.asarray(self.tp) > 1) & (np.asarray(self.pp) > 1)

    @property
    def pp_msg_bytes(self):
        """What one rank sends to the next stage per micro-batch: its 1/tp slice (scatter) or all of it."""
        return np.where(self.pp_scatter, self.act_bytes / self.tp, self.act_bytes)

    @cached_property
    def kv_block_bytes(self):
        """Prefill pass-KV: the K/V block one ring step moves (the rank's cached shard and its new tokens;
        the KV heads it holds, not the query heads)."""
        m = self.model
        return self.mb * (self.ring_len + self.ring_cached) * 2 * self.kv_heads * m.head_dim * m.kv_elem_bytes

    @cached_property
    def q_block_bytes(self):
        """Prefill pass-Q: the new queries one ring step moves (a rank's L/R tokens, its query heads)."""
        m = self.model
        return self.mb * self.ring_len * self.q_heads * m.head_dim * m.dtype_bytes

    @cached_property
    def out_parts_bytes(self):
        """Prefill pass-Q: the all-to-all returning partial outputs (FP32) and log-sum-exps to the queries'
        owners, nccl-tests 'size' (the whole send buffer: one block per ring rank, the own one included)."""
        m = self.model
        return self.ring * self.mb * self.ring_len * self.q_heads * (m.head_dim * m.accum_bytes + 4)

    @cached_property
    def a2a_qkv_bytes(self):
        """Ulysses: the all-to-all of Q, K, V (tokens split -> heads split), nccl-tests 'size'."""
        m = self.model
        return (
            self.dense_tokens * self.ulysses * (self.q_heads + 2 * self.kv_heads) * m.head_dim * m.dtype_bytes
        )

    @cached_property
    def a2a_o_bytes(self):
        m = self.model
        return self.dense_tokens * self.ulysses * self.q_heads * m.head_dim * m.dtype_bytes

    @cached_property
    def partial_bytes(self):
        """Decode all-gather: one rank's partial output (FP32) and log-sum-exp for every row."""
        m = self.model
        return self.mb * self.q_heads * (m.head_dim * m.accum_bytes + 4)

    @cached_property
    def q_packet_bytes(self):
        """Decode pass-Q: queries with their running output (FP32) and log-sum-exp."""
        m = self.model
        return self.dense_tokens * self.q_heads * (m.head_dim * (m.dtype_bytes + m.accum_bytes) + 4)

    @cached_property
    def cache_shard_bytes(self):
        """Decode pass-KV: one rank's cache shard of the owners' padded micro-batch."""
        m = self.model
        return self.cache_batch * self.shard_len * 2 * self.kv_heads * m.head_dim * m.kv_elem_bytes

    # -- LM head (last stage) ----------------------------------------------------------------------
    @cached_property
    def head_rows(self):
        """LM head: rows that get logits per micro-batch on a rank that computes them: decode, every new
        token the rank's dense part computes; prefill, the last token of each sequence (on the ranks
        holding it, ``holds_last_token``; with chunks, in the last chunk only)."""
        return self.dense_tokens if self.decode else self.mb

    @cached_property
    def vocab_cols(self):
        """LM head: logit columns of a TP rank (vocab-parallel; the vocabulary padded to a multiple of tp)."""
        return ceil_div(self.model.vocab, self.tp)

    @cached_property
    def logits_gather_bytes(self):
        """LM head under TP: the all-gather of each rank's (largest logit, its index) per row, FP32 each
        (nccl-tests 'size': the gathered buffer)."""
        return self.head_rows * self.tp * 2 * 4

    def accum_bytes(self, tokens):
        """An FP32 accumulator of ``tokens`` rows and its BF16 output (init / finalize traffic)."""
        m = self.model
        return tokens * self.q_heads * m.head_dim * (m.accum_bytes + m.dtype_bytes)


# ----------------------------------------------------------------------------------------------
# ring prefill: which block meets which at step t
# ----------------------------------------------------------------------------------------------
def seq_multiple(ring: int, ulysses: int, variant: str) -> int:
    """What a prefill length must be a multiple of (zigzag needs two chunks per ring rank)."""
    if ring > 1 and variant == RingVariant.ZIGZAG:
        return 2 * ring * ulysses
    return ring * ulysses


def ring_blocks(
    variant: str, causal: bool, ring: int, lr: int, p: int, t: int
) -> list[tuple[slice, slice, bool]]:
    """(query rows, key rows, causal) of each attention call ring rank ``p`` makes at step ``t``
    (pass-KV: the block that left rank p - t, t steps ago), in ring-local rows of ``lr`` tokens.
    A fully masked block makes no call."""
    src = (p - t) % ring
    full = slice(0, lr)
    if not causal:
        return [(full, full, False)]
    if variant == RingVariant.PLAIN:
        return [(full, full, True)] if src == p else ([(full, full, False)] if src < p else [])
    if variant == RingVariant.ZIGZAG:
        h = lr // 2
        if src == p:
            return [(full, full, True)]
        return [(full, slice(0, h), False)] if src < p else [(slice(h, lr), full, False)]
    # striped: a block from a later rank loses its diagonal (drop the first query and the last key)
    if src <= p:
        return [(full, full, True)]
    return [(slice(1, lr), slice(0, lr - 1), True)] if lr > 1 else []


def ring_blocks_cached(
    variant: str, causal: bool, ring: int, lr: int, lc: int, p: int, t: int, pass_q: bool = False
) -> list[tuple[slice, slice, bool]]:
    """Partial prefill: (query rows, key rows, causal) of each call ring rank ``p`` makes at step ``t``, key
    rows in a [cached ``lc`` | new ``lr``] block.  The first call (if ``lc``) takes the whole cached shard
    (every cached position precedes every new one: no mask), then ``ring_blocks``' calls on the new keys.
    pass-KV: p's queries against the block of rank s = p - t; ``pass_q``: the queries of rank s (which
    visit p) against p's own block, i.e. ``ring_blocks`` of s at the step where s meets p's block."""
    if pass_q:
        s = (p - t) % ring
        new = ring_blocks(variant, causal, ring, lr, s, (s - p) % ring)
    else:
        new = ring_blocks(variant, causal, ring, lr, p, t)
    head = [(slice(0, lr), slice(0, lc), False)] if lc else []
    return head + [(q, slice(k.start + lc, k.stop + lc), c) for q, k, c in new]


def ring_calls(variant: str, causal: bool, ring: int, lr: int, p: int, t: int) -> list[tuple[int, int, bool]]:
    """(q_len, kv_len, causal) of the calls of ``ring_blocks``."""
    return [
        (q.stop - q.start, k.stop - k.start, c) for q, k, c in ring_blocks(variant, causal, ring, lr, p, t)
    ]


def ring_step_shapes(variant: str, causal: bool, lr) -> tuple[tuple, list[tuple]]:
    """The closed forms' view of a ring: the first step's call (q_len, kv_len, causal) and the call
    shapes a later step can make on some rank (the slowest rank's sets the step; ``lr`` may be an array).
    They are the shapes of ``ring_blocks``: plain's off-diagonal block, zigzag's two halves, and
    striped's diagonal blocks (the dropped row and column change nothing at scale)."""
    first = (lr, lr, causal)
    if not causal:
        return first, [first]
    if variant == RingVariant.ZIGZAG:
        return first, [(lr, lr / 2, False), (lr / 2, lr, False)]
    if variant == RingVariant.PLAIN:
        return first, [(lr, lr, False)]
    return first, [first]


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


def cached_positions(variant: str, ring: int, r: int, cached: int) -> list[int]:
    """Partial prefill: cache positions (0..C-1) ring rank ``r`` holds, in local order (the prompt's layout
    applied to the C cached tokens; all of them without a ring).  Its new ones: C + ``ring_positions``."""
    return ring_positions(variant, ring, r, cached) if cached else []


def last_token_coords(plan: Plan) -> tuple[int, int]:
    """(ring rank, ulysses rank) whose dense rows hold each sequence's last token (prefill): the ring rank
    of the last position (plain and striped: R - 1; zigzag: 0, which holds chunk 2R - 1), and the last
    ulysses piece of its ring-local sequence (the last position is last in every layout's local order)."""
    r = 0 if plan.ring == 1 or plan.ring_variant == RingVariant.ZIGZAG else plan.ring - 1
    return r, plan.ulysses - 1


def holds_last_token(plan: Plan, rank: int) -> bool:
    """Prefill: whether ``rank``'s dense rows hold the last token of its sequences (it runs the LM head)."""
    c = plan.coords(rank)
    return (c["ring"], c["ulysses"]) == last_token_coords(plan)


def dense_positions(plan: Plan, rank: int, seq_len: int) -> list[int]:
    """Global positions of the token rows the dense part of ``rank`` computes (prefill)."""
    c = plan.coords(rank)
    pos = ring_positions(plan.ring_variant, plan.ring, c["ring"], seq_len)
    piece = len(pos) // plan.ulysses
    return pos[c["ulysses"] * piece : (c["ulysses"] + 1) * piece]


# ----------------------------------------------------------------------------------------------
# heads
# ----------------------------------------------------------------------------------------------
def tp_q_heads(model: Model, tp: int, t: int) -> range:
    h = model.n_heads // tp
    return range(t * h, (t + 1) * h)


def tp_kv_heads(model: Model, tp: int, t: int) -> range:
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


# ----------------------------------------------------------------------------------------------
# decode: owners and cache chunks
# ----------------------------------------------------------------------------------------------
def decode_group(plan: Plan, rank: int) -> tuple[int, int]:
    """(index, size) of ``rank`` in the group that shards the decode work (ring or ulysses)."""
    c = plan.coords(rank)
    return (c["ring"], plan.ring) if plan.ring > 1 else (c["ulysses"], plan.ulysses)


def decode_rows(plan: Plan, wl: Workload, rank: int) -> tuple[int, int, int]:
    """(first sequence, rows, padded micro-batch) one rank computes in one micro-batch."""
    g = Geometry.of(None, wl, plan)  # counts only: the model is not read
    if not g.owners:
        return 0, g.mb, g.mb
    i, _ = decode_group(plan, rank)
    return i * g.owner_rows, g.owner_rows, g.cache_batch


def decode_chunk(plan: Plan, wl: Workload, rank: int, seq: int) -> int:
    """Which of the ``ring`` context chunks of sequence ``seq`` the ring rank of ``rank`` holds: with
    owners, the owner of ``seq`` holds its last chunk and the chunks before it sit on the ranks before."""
    if plan.ring == 1:
        return 0
    r, R = plan.coords(rank)["ring"], plan.ring
    g = Geometry.of(None, wl, plan)
    if not g.owners:
        return r
    owner = seq // g.owner_rows
    return (r - owner + R - 1) % R


__all__ = [
    "Geometry",
    "cached_positions",
    "ceil_div",
    "decode_chunk",
    "decode_group",
    "decode_rows",
    "dense_positions",
    "holds_last_token",
    "last_token_coords",
    "ring_blocks",
    "ring_blocks_cached",
    "ring_calls",
    "ring_positions",
    "ring_step_shapes",
    "seq_multiple",
    "tp_kv_heads",
    "tp_q_heads",
    "ulysses_heads",
]
