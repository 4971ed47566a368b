"""Plans: how the work is split over ranks, and where each rank sits on the topology.

A plan is the product of degrees ``tp`` (tensor), ``ulysses`` (all-to-all sequence/head), ``ring``
(Ring Attention sequence parallelism) and ``pp`` (pipeline stages).  Ranks are laid out with tp
innermost, then ulysses, then ring, then pp outermost, and rank r runs on GPU r: TP groups stay
inside a node, rings and pipeline stages cross nodes only when they must.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace

from .errors import SpecError, check
from .specs import Model, Phase, Workload
from .topology import Topology


class RingVariant(enum.StrEnum):
    PLAIN = "plain"
    ZIGZAG = "zigzag"
    STRIPED = "striped"


class DecodeAttn(enum.StrEnum):
    PASS_KV = "pass-kv"
    PASS_Q = "pass-q"
    ALLGATHER = "allgather"


@dataclass(frozen=True, kw_only=True)
class Plan:
    tp: int = 1
    pp: int = 1
    ring: int = 1
    ulysses: int = 1
    microbatches: int = 1
    ring_variant: RingVariant = RingVariant.ZIGZAG
    decode_attn: DecodeAttn = DecodeAttn.ALLGATHER

    def __post_init__(self) -> None:
        for f in ("tp", "pp", "ring", "ulysses", "microbatches"):
            v = getattr(self, f)
            check(isinstance(v, int) and v >= 1, f"plan {f}", v, "must be a positive integer")
        for f, enum_ in (("ring_variant", RingVariant), ("decode_attn", DecodeAttn)):
            try:
                object.__setattr__(self, f, enum_(getattr(self, f)))
            except ValueError:
                raise SpecError(f"--{f.replace('_', '-')} {getattr(self, f)!r} is not valid: choose one of "
                                f"{[e.value for e in enum_]}") from None

    @property
    def n_ranks(self) -> int:
        return self.tp * self.pp * self.ring * self.ulysses

    @property
    def sp(self) -> int:
        """Degree of sequence sharding of the dense part (ring x ulysses)."""
        return self.ring * self.ulysses

    @property
    def name(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("tp", "ulysses", "ring", "pp") if getattr(self, k) > 1]
        s = ",".join(parts) or "single"
        if self.ring > 1:
            s += f"[{self.ring_variant.value}]"
        if self.pp > 1:
            s += f"[m={self.microbatches}]"
        return s

    def coords(self, rank: int) -> tuple[int, int, int, int]:
        """(pp, ring, ulysses, tp) index of a rank."""
        t = rank % self.tp
        u = (rank // self.tp) % self.ulysses
        r = (rank // (self.tp * self.ulysses)) % self.ring
        s = rank // (self.tp * self.ulysses * self.ring)
        return s, r, u, t

    def rank_of(self, s: int, r: int, u: int, t: int) -> int:
        return ((s * self.ring + r) * self.ulysses + u) * self.tp + t

    def tp_group(self, rank: int) -> tuple[int, ...]:
        s, r, u, _ = self.coords(rank)
        return tuple(self.rank_of(s, r, u, i) for i in range(self.tp))

    def ulysses_group(self, rank: int) -> tuple[int, ...]:
        s, r, _, t = self.coords(rank)
        return tuple(self.rank_of(s, r, i, t) for i in range(self.ulysses))

    def ring_group(self, rank: int) -> tuple[int, ...]:
        s, _, u, t = self.coords(rank)
        return tuple(self.rank_of(s, i, u, t) for i in range(self.ring))

    def to_dict(self) -> dict:
        return {"tp": self.tp, "pp": self.pp, "ring": self.ring, "ulysses": self.ulysses,
                "microbatches": self.microbatches, "ring_variant": self.ring_variant.value,
                "decode_attn": self.decode_attn.value, "name": self.name}


_ITEM = re.compile(r"^(tp|pp|ring|ulysses|sp|mb|microbatches)=(\d+)$")


def parse_plan(text: str, **kw) -> Plan:
    """Parse ``tp=8,pp=2`` / ``ring=16`` / ``tp=2,ring=4`` / ``ulysses=4`` (+ keyword extras)."""
    degrees: dict[str, int] = {}
    for item in str(text).replace(" ", "").split(","):
        m = _ITEM.match(item)
        if not m:
            raise SpecError(f"--plan {text!r}: item {item!r} is not valid: use tp=T, pp=S, ring=R, ulysses=U "
                            f"joined by commas, e.g. 'tp=8,pp=2' or 'ring=16'")
        key = {"sp": "ring", "mb": "microbatches"}.get(m.group(1), m.group(1))
        if key in degrees:
            raise SpecError(f"--plan {text!r} gives {key} twice")
        degrees[key] = int(m.group(2))
    degrees.update({k: v for k, v in kw.items() if v is not None})
    return Plan(**degrees)


def validate(plan: Plan, model: Model, workload: Workload, topo: Topology) -> None:
    """One check of the plan as a whole: every factor named in its message (SpecError)."""
    if plan.n_ranks != topo.n_gpus:
        raise SpecError(
            f"plan {plan.name}: tp={plan.tp} x ulysses={plan.ulysses} x ring={plan.ring} x pp={plan.pp} = "
            f"{plan.n_ranks} ranks, but topology {topo.spec} has {topo.n_gpus} GPUs; the product must equal it")
    if topo.kind.value == "ib" and plan.tp > topo.gpus_per_node:
        raise SpecError(f"plan tp={plan.tp} exceeds the {topo.gpus_per_node} GPUs of one node of {topo.spec}: "
                        f"TP groups must stay inside a node")
    heads_split = plan.tp * plan.ulysses
    if model.n_heads % heads_split:
        raise SpecError(f"plan tp={plan.tp} x ulysses={plan.ulysses} = {heads_split} does not divide "
                        f"n_heads={model.n_heads}")
    if model.n_kv_heads % plan.tp and plan.tp % model.n_kv_heads:
        raise SpecError(f"plan tp={plan.tp} and n_kv_heads={model.n_kv_heads}: one must divide the other")
    if model.d_ff % plan.tp:
        raise SpecError(f"plan tp={plan.tp} does not divide d_ff={model.d_ff}")
    if model.layers % plan.pp:
        raise SpecError(f"plan pp={plan.pp} does not divide layers={model.layers}; try pp in "
                        f"{[d for d in range(1, model.layers + 1) if model.layers % d == 0]}")
    if workload.batch % plan.microbatches:
        raise SpecError(f"--microbatches {plan.microbatches} does not divide --batch {workload.batch}")
    if workload.phase == Phase.PREFILL:
        need = seq_multiple(plan)
        if workload.seq_len % need:
            up = -(-workload.seq_len // need) * need
            why = {RingVariant.ZIGZAG: f"2 x ring={plan.ring} x ulysses={plan.ulysses} required by the zigzag layout",
                   RingVariant.PLAIN: f"ring={plan.ring} x ulysses={plan.ulysses} required by the sequence split",
                   RingVariant.STRIPED: f"ring={plan.ring} x ulysses={plan.ulysses} required by the striped layout"}
            raise SpecError(f"--seq {workload.seq_len} is not divisible by {need} = "
                            f"{why[plan.ring_variant] if plan.ring > 1 else f'ulysses={plan.ulysses}'}; try {up}")
    else:
        if workload.context % plan.sp:
            up = -(-workload.context // plan.sp) * plan.sp
            raise SpecError(f"--context {workload.context} is not divisible by ring x ulysses = {plan.sp}, "
                            f"which shards the KV cache; try {up}")


def seq_multiple(plan: Plan) -> int:
    """What the prefill sequence length must be a multiple of under this plan."""
    if plan.ring > 1 and plan.ring_variant == RingVariant.ZIGZAG:
        return 2 * plan.ring * plan.ulysses
    return plan.ring * plan.ulysses


def with_microbatches(plan: Plan, m: int) -> Plan:
    return replace(plan, microbatches=m)
