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

import json
from dataclasses import asdict, dataclass, field
from typing import Iterator

from .layers import COMPUTE_KINDS


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    id: int
    rank: int
    stream: str  # "compute" | "comm"
    kind: str  # layers.Kind
    tag: str  # e.g. "L3/mb0/ring/step2/attn"
    deps: tuple[int, ...] = ()
    flops: float = 0.0
    hbm_bytes: float = 0.0
    link_bytes: float = 0.0  # bytes this rank sends over links for this op
    msg_bytes: float = 0.0  # comm: message size (p2p payload; collective buffer as nccl-tests 'size')
    link: str = ""  # comm: "nvlink" | "ib" (the slowest link the op crosses)
    peers: tuple[int, ...] = ()  # send: (dst,); recv: (src,); collective: the group's ranks
    match: int = -1
    batch: int = -1
    shape: tuple = ()  # gemm: (m, n, k); attention: (batch, heads, q_len, kv_len, head_dim)
    causal: bool = False
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    est_s: float = 0.0
    issue_s: float = 0.0  # host time to issue the op (the host walks a rank's ops in list order)

    @property
    def is_compute(self) -> bool:
        return self.kind in COMPUTE_KINDS


@dataclass
class Schedule:
    """Ops of every rank, plus the specs that made them (so any result can be traced back)."""

    n_ranks: int
    ops: list[Op]
    specs: dict = field(default_factory=dict)
    layers_built: int = 0  # layers actually expanded (== model.layers unless coarsened)
    layer_repeat: float = 1.0  # each built layer stands for this many identical layers
    launch_s: float = 0.0  # every rank's first op waits this long (the launch of a captured CUDA graph)
    ring_steps_built: int = 0  # prefill rings built with only k middle steps (build_schedule(ring_steps=k)), else 0
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
        """Per-rank sums: FLOPs, HBM bytes, bytes sent by link type.  Ops of a layer (tags ``L<n>/...``)
        count ``layer_repeat`` times; pipeline transfers (``pp/...``) once per micro-batch."""
        flops = hbm = 0.0
        sent = {"nvlink": 0.0, "ib": 0.0}
        r = self.layer_repeat
        for op in self.rank_ops(rank):
            k = r if op.tag.startswith("L") else 1.0
            flops += op.flops * k
            hbm += op.hbm_bytes * k
            if op.link_bytes:
                sent[op.link] += op.link_bytes * k
        return {"flops": flops, "hbm_bytes": hbm, "sent_bytes": sent}

    def to_jsonl(self, path) -> None:
        with open(path, "w") as f:
            f.write(json.dumps({"specs": self.specs, "n_ranks": self.n_ranks}) + "\n")
            for op in self.ops:
                f.write(json.dumps(asdict(op)) + "\n")
