"""The shared IR: a Schedule is, for every rank, an ordered list of ops (DESIGN.md).

Semantics every interpreter follows (analytic, ``sim``, ``real``):

* Each op runs on its rank's ``stream`` (``compute`` or ``comm``); ops of one stream run in list
  order, one at a time.  Ops of one rank and stream that share a ``batch`` id >= 0 are issued together
  (one NCCL group) and the stream is free when all of them are done.
* An op starts when its ``deps`` (op ids of the same rank) are done and its stream is free.
* A ``send`` and the ``recv`` with the same ``match`` id (on the peer) form a pair: the transfer starts
  when both have started and both complete together.  The ops of one collective call share a
  ``match`` id and complete together.
* ``reads``/``writes`` name buffers; ``deps`` were derived from them (read-after-write,
  write-after-read, write-after-write), so an executor can allocate exactly those buffers.
* ``est_s`` is the op's uncontended device time on the profile the schedule was built with
  (kernels.py); ``issue_s`` is the host's time to issue it.  The host of a rank issues its ops in list
  order, one after another, ahead of the GPU: an op cannot start before the host has issued it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass, field

from .specs import Collective


class OpKind(enum.StrEnum):
    """What an op does to the machine (the engines' dispatch and the profile's cost kind)."""

    GEMM = "gemm"
    ATTN = "attention"
    ELEMENTWISE = "elementwise"
    LSE_MERGE = "lse_merge"
    SEND = "send"
    RECV = "recv"
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    ALL_TO_ALL = "all_to_all"

    @property
    def is_compute(self) -> bool:
        return self in _COMPUTE

    @property
    def collective(self) -> Collective:
        """The profile's communication primitive of a comm op (send/recv: point-to-point)."""
        return Collective.P2P if self in (OpKind.SEND, OpKind.RECV) else Collective(self.value)


_COMPUTE = frozenset({OpKind.GEMM, OpKind.ATTN, OpKind.ELEMENTWISE, OpKind.LSE_MERGE})
COMPUTE_KINDS = tuple(_COMPUTE)


class Role(enum.StrEnum):
    """What an op means in the model (the executor's dispatch): which kernel of the layer, which
    message.  Values are the tags' last words, so a trace reads as before."""

    NORM1 = "norm1"
    QKV = "qkv"
    ROPE = "rope"
    ATTN = "attn"  # attention of the rank's own tokens against its own (or gathered) keys
    RING_ATTN = "ring_attn"  # attention of a ring step (a travelling block, or a cache shard)
    CHUNK_ATTN = "chunk_attn"  # queries against cached K/V (chunked prefill's earlier chunks, or a prefix
    # cache without a ring: partial prefill), or against their own K/V (causal)
    INIT = "init"  # first partial output -> FP32 accumulator
    MERGE = "merge"  # partial output merged into the accumulator (log-sum-exp)
    MERGE_PARTS = "merge_parts"  # every ring rank's gathered partials merged at once (decode all-gather)
    FINALIZE = "finalize"
    O_PROJ = "o_proj"
    RESID1 = "resid1"
    NORM2 = "norm2"
    MLP_UP = "mlp_up"
    ACT = "act"
    MLP_DOWN = "mlp_down"
    RESID2 = "resid2"
    TP_ALL_REDUCE = "tp_all_reduce"
    A2A_QKV = "a2a_qkv"  # ulysses: tokens split -> heads split
    A2A_O = "a2a_o"  # ulysses: back
    A2A_PACK = "a2a_pack"  # ulysses: the layout copies of an all-to-all's buffer (profile: passes over it)
    RING_KV = "ring_kv"  # a K/V block (prefill) or cache shard (decode pass-KV) to the next ring rank
    RING_Q = "ring_q"  # pass-Q: the queries that visit the next ring rank (decode: with their running output)
    A2A_PARTS = "a2a_parts"  # prefill pass-Q: partial outputs and log-sum-exps back to the queries' owners
    KV_APPEND = "kv_append"  # partial prefill: the new tokens' K/V written behind the rank's cached shard
    GATHER_PARTS = "gather_parts"  # decode all-gather of partial outputs
    PP_ACT = "pp_act"  # activations to the next pipeline stage (all of them, or a TP rank's 1/tp slice)
    PP_GATHER = "pp_gather"  # the receiving stage's all-gather of the slices over its TP group (scatter)
    QKV_BIAS = "qkv_bias"  # the Q, K, V biases added to the QKV projection's output (qkv_bias models)
    FINAL_NORM = "final_norm"  # LM head (last stage): the final norm of the rows that get logits
    LM_HEAD = "lm_head"  # the logits GEMM, vocab-parallel under TP (vocab / tp columns per rank)
    LOGITS_MAX = "logits_max"  # each row's largest logit and its index in the rank's vocab slice
    LOGITS_GATHER = "logits_gather"  # all-gather of (max, index) over the TP group: the chosen token

    @property
    def op_class(self) -> str:
        """The profile's op class (``hardware.achievable.ops``)."""
        return _OP_CLASS[self]


_OP_CLASS = {
    Role.NORM1: "norm",
    Role.NORM2: "norm",
    Role.ROPE: "rope",
    Role.QKV_BIAS: "residual",
    Role.FINAL_NORM: "norm",
    Role.LOGITS_MAX: "norm",
    Role.LM_HEAD: "gemm",
    Role.RESID1: "residual",
    Role.RESID2: "residual",
    Role.ACT: "act",
    Role.MERGE: "merge",
    Role.MERGE_PARTS: "merge",
    Role.INIT: "init",
    Role.KV_APPEND: "init",
    Role.A2A_PACK: "residual",  # plain copies: an elementwise pass at the measured add bandwidth
    Role.FINALIZE: "finalize",
    Role.QKV: "gemm",
    Role.O_PROJ: "gemm",
    Role.MLP_UP: "gemm",
    Role.MLP_DOWN: "gemm",
    Role.ATTN: "attention",
    Role.RING_ATTN: "attention",
    Role.CHUNK_ATTN: "attention",
    **{
        r: "comm"
        for r in (
            Role.TP_ALL_REDUCE,
            Role.A2A_QKV,
            Role.A2A_O,
            Role.RING_KV,
            Role.RING_Q,
            Role.A2A_PARTS,
            Role.GATHER_PARTS,
            Role.PP_ACT,
            Role.PP_GATHER,
            Role.LOGITS_GATHER,
        )
    },
}


OP_FIELDS = (
    "id",
    "rank",
    "stream",
    "kind",
    "role",
    "tag",
    "layer",
    "mb",
    "step",
    "call",
    "chunk",
    "deps",
    "flops",
    "hbm_bytes",
    "link_bytes",
    "msg_bytes",
    "link",
    "peers",
    "match",
    "batch",
    "shape",
    "causal",
    "reads",
    "writes",
    "est_s",
    "issue_s",
)


class _OpSlots:
    """An op's storage (a mutable record, only ever seen while ``Op`` fills it in)."""

    __slots__ = OP_FIELDS


_new = object.__new__


class Op(_OpSlots):
    """One op of a rank's program: immutable (assigning a field raises ``FrozenInstanceError``), equal
    to and hashed like another op of the same fields, keyword-only fields with the defaults below.

    A plain slotted class rather than a frozen dataclass: a schedule has 1e4-1e6 ops and the frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` a field) cost ~5 us an op, most of building a
    schedule; here the fields are stored into a ``_OpSlots`` record, which then becomes an ``Op``."""

    __slots__ = ()

    def __new__(
        cls,
        *,
        id: int,
        rank: int,
        stream: str,  # "compute" | "comm"
        kind: OpKind,
        role: Role,
        tag: str,  # a label for traces only, e.g. "L3/mb0/ring/step2/attn"
        layer: int = -1,  # the model layer the op belongs to (-1: none, e.g. a pipeline transfer)
        mb: int = -1,  # micro-batch
        step: int = -1,  # ring step (-1: not a ring step)
        call: int = 0,  # index of the op among the attention calls of one ring step
        chunk: int = -1,  # chunked prefill: the chunk of the micro-batch's sequences (-1: no chunks)
        deps: tuple[int, ...] = (),
        flops: float = 0.0,
        hbm_bytes: float = 0.0,
        link_bytes: float = 0.0,  # bytes this rank sends over links for this op
        msg_bytes: float = 0.0,  # comm: message size (p2p payload; collective buffer as nccl-tests 'size')
        link: str = "",  # comm: "nvlink" | "ib" (the slowest link the op crosses)
        peers: tuple[int, ...] = (),  # send: (dst,); recv: (src,); collective: the group's ranks
        match: int = -1,
        batch: int = -1,
        shape: tuple = (),  # gemm: (m, n, k); attention: (batch, heads, q_len, kv_len, head_dim)
        causal: bool = False,
        reads: tuple[str, ...] = (),
        writes: tuple[str, ...] = (),
        est_s: float = 0.0,
        issue_s: float = 0.0,  # host time to issue the op (the host walks a rank's ops in list order)
    ) -> Op:
        return make_op(
            id,
            rank,
            stream,
            kind,
            role,
            tag,
            layer,
            mb,
            step,
            call,
            chunk,
            deps,
            flops,
            hbm_bytes,
            link_bytes,
            msg_bytes,
            link,
            peers,
            match,
            batch,
            shape,
            causal,
            reads,
            writes,
            est_s,
            issue_s,
            cls,
        )

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in OP_FIELDS)

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"Op({', '.join(f'{f}={getattr(self, f)!r}' for f in OP_FIELDS)})"

    def __reduce__(self):
        return _op_from_values, (self.__class__, self._values())

    def replace(self, **changes) -> Op:
        """A copy with ``changes`` (what ``dataclasses.replace`` did for the frozen dataclass)."""
        return self.__class__(**{**dict(zip(OP_FIELDS, self._values())), **changes})

    @property
    def is_compute(self) -> bool:
        return self.kind.is_compute


def make_op(
    id,
    rank,
    stream,
    kind,
    role,
    tag,
    layer,
    mb,
    step,
    call,
    chunk,
    deps,
    flops,
    hbm_bytes,
    link_bytes,
    msg_bytes,
    link,
    peers,
    match,
    batch,
    shape,
    causal,
    reads,
    writes,
    est_s,
    issue_s,
    cls=Op,
) -> Op:
    """An ``Op`` of its fields, positionally in ``OP_FIELDS`` order (the builder's fast path)."""
    self = _new(_OpSlots)
    self.id = id
    self.rank = rank
    self.stream = stream
    self.tag = tag
    self.layer = layer
    self.mb = mb
    self.step = step
    self.call = call
    self.chunk = chunk
    self.deps = deps
    self.flops = flops
    self.hbm_bytes = hbm_bytes
    self.link_bytes = link_bytes
    self.msg_bytes = msg_bytes
    self.link = link
    self.peers = peers
    self.match = match
    self.batch = batch
    self.shape = shape
    self.causal = causal
    self.reads = reads
    self.writes = writes
    self.est_s = est_s
    self.issue_s = issue_s
    self.kind = kind if type(kind) is OpKind else OpKind(kind)
    self.role = role if type(role) is Role else Role(role)
    self.__class__ = cls
    return self


def _op_from_values(cls, values: tuple) -> Op:
    return make_op(*values, cls)


@dataclass
class Schedule:
    """Ops of every rank, plus the specs that made them (so any result can be traced back)."""

    n_ranks: int
    ops: list[Op]
    specs: dict = field(default_factory=dict)
    layers_built: int = 0  # layers actually expanded (== model.layers unless coarsened)
    layer_repeat: float = 1.0  # each built layer stands for this many identical layers
    launch_s: float = 0.0  # every rank's first op waits this long (the launch of a captured CUDA graph)
    ring_steps_built: int = (
        0  # prefill rings built with only k middle steps (build_schedule(ring_steps=k)), else 0
    )
    ring_steps_total: int = 0  # middle steps (1..R-2) those k stand for; totals() counts only what was built
    ring_steps_uniform: bool = True  # the middle steps stood for all cost the same on every rank

    def __post_init__(self) -> None:
        self._by_rank: list[list[Op]] | None = None

    def rank_ops(self, rank: int) -> list[Op]:
        if self._by_rank is None:
            by: list[list[Op]] = [[] for _ in range(self.n_ranks)]
            for op in self.ops:
                by[op.rank].append(op)
            self._by_rank = by
        return self._by_rank[rank]

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def totals(self, rank: int) -> dict:
        """Per-rank sums: FLOPs, HBM bytes, bytes sent by link type.  Ops of a layer (``layer >= 0``)
        count ``layer_repeat`` times; pipeline transfers once per micro-batch."""
        flops = hbm = 0.0
        sent = {"nvlink": 0.0, "ib": 0.0}
        r = self.layer_repeat
        for op in self.rank_ops(rank):
            k = r if op.layer >= 0 else 1.0
            flops += op.flops * k
            hbm += op.hbm_bytes * k
            if op.link_bytes:
                sent[op.link] += op.link_bytes * k
        return {"flops": flops, "hbm_bytes": hbm, "sent_bytes": sent}
