"""Plans: a mesh of named parallel axes, and where each rank sits on the topology.

A plan is a set of named axes with degrees (``AXES``: ``tp`` tensor, ``ulysses`` all-to-all sequence
/ head, ``ring`` Ring Attention sequence parallelism, ``pp`` pipeline stages), plus the choices that
are not degrees (micro-batches, ring layout, decode merge).  Ranks are laid out with the first axis
innermost: rank r runs on GPU r, so TP groups stay inside a node and rings and pipeline stages cross
nodes only when they must.  Everything that iterates parallel dimensions (labels, process groups,
sweep templates, the plan search) iterates ``AXES``; adding an axis is one entry here plus the
strategy that uses it (``costmodel/strategies/``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import SpecError, check


class RingVariant(enum.StrEnum):
    PLAIN = "plain"
    ZIGZAG = "zigzag"
    STRIPED = "striped"


class PpSend(enum.StrEnum):
    """How a stage hands its activations to the next with TP inside the stage: ``scatter`` (Megatron:
    each TP rank sends its 1/tp slice, the next stage all-gathers) or ``full`` (every rank sends all)."""

    SCATTER = "scatter"
    FULL = "full"


class PrefillAttn(enum.StrEnum):
    """What a prefill ring circulates: the K/V blocks (``pass-kv``) or the new queries (``pass-q``, whose
    partial outputs return to their owners by an all-to-all; Meta, arXiv 2411.01783)."""

    PASS_KV = "pass-kv"
    PASS_Q = "pass-q"


class DecodeAttn(enum.StrEnum):
    PASS_KV = "pass-kv"
    PASS_Q = "pass-q"
    ALLGATHER = "allgather"


@dataclass(frozen=True)
class Axis:
    """One parallel axis of the mesh: its name, what it splits, and the aliases the plan grammar takes."""

    name: str
    splits: str
    aliases: tuple[str, ...] = ()


# innermost first: the order of the rank layout
AXES: tuple[Axis, ...] = (
    Axis("tp", "weights and heads (Megatron tensor parallelism: two all-reduces per layer)"),
    Axis("ulysses", "heads of attention after an all-to-all; tokens of the dense part"),
    Axis("ring", "the sequence (Ring Attention: K/V blocks or queries travel the ring)", aliases=("sp",)),
    Axis("pp", "layers (pipeline stages)"),
)
AXIS_NAMES: tuple[str, ...] = tuple(a.name for a in AXES)
_ALIAS = {al: a.name for a in AXES for al in a.aliases}


class Plan:
    """A mesh of degrees over ``AXES`` plus micro-batches, the ring layout and the decode merge.

    ``Plan(tp=8, pp=2, microbatches=4)``; ``plan.tp`` (any axis name) is that axis' degree.
    Immutable and hashable."""

    __slots__ = (
        "degrees",
        "microbatches",
        "ring_variant",
        "decode_attn",
        "pp_send",
        "chunks",
        "prefill_attn",
    )

    def __init__(
        self,
        *,
        microbatches: int = 1,
        ring_variant: str = RingVariant.ZIGZAG,
        decode_attn: str = DecodeAttn.ALLGATHER,
        pp_send: str = PpSend.SCATTER,
        chunks: int = 1,
        prefill_attn: str = PrefillAttn.PASS_KV,
        **degrees: int,
    ) -> None:
        unknown = [k for k in degrees if k not in AXIS_NAMES]
        if unknown:
            raise SpecError(f"plan axis {unknown[0]!r} is not valid: choose from {list(AXIS_NAMES)}")
        degs = tuple(degrees.get(n, 1) for n in AXIS_NAMES)
        for n, v in zip(AXIS_NAMES, degs):
            check(type(v) is int and v >= 1, f"plan {n}", v, "must be a positive integer")
        check(
            type(microbatches) is int and microbatches >= 1,
            "plan microbatches",
            microbatches,
            "must be a positive integer",
        )
        set_ = object.__setattr__
        set_(self, "degrees", degs)
        set_(self, "microbatches", microbatches)
        check(type(chunks) is int and chunks >= 1, "--chunks", chunks, "must be a positive integer")
        set_(self, "chunks", chunks)
        for f, enum_, v in (
            ("ring_variant", RingVariant, ring_variant),
            ("decode_attn", DecodeAttn, decode_attn),
            ("pp_send", PpSend, pp_send),
            ("prefill_attn", PrefillAttn, prefill_attn),
        ):
            try:
                set_(self, f, enum_(v))
            except ValueError:
                raise SpecError(
                    f"--{f.replace('_', '-')} {v!r} is not valid: choose one of {[e.value for e in enum_]}"
                ) from None

    def __setattr__(self, k, v):  # immutable
        raise AttributeError(f"Plan is immutable: use plan.replace({k}=...)")

    def __getattr__(self, name: str) -> int:
        if name in AXIS_NAMES:
            return self.degrees[AXIS_NAMES.index(name)]
        raise AttributeError(name)

    def _key(self) -> tuple:
        return (
            self.degrees,
            self.microbatches,
            self.ring_variant,
            self.decode_attn,
            self.pp_send,
            self.chunks,
            self.prefill_attn,
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Plan) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Plan({self.label()})"

    def replace(self, **kw) -> Plan:
        d = {
            **self.mesh(),
            "microbatches": self.microbatches,
            "ring_variant": self.ring_variant,
            "decode_attn": self.decode_attn,
            "pp_send": self.pp_send,
            "chunks": self.chunks,
            "prefill_attn": self.prefill_attn,
        }
        d.update(kw)
        return Plan(**d)

    # -- the mesh -------------------------------------------------------------------------------
    def mesh(self) -> dict[str, int]:
        """{axis: degree} over every axis (degree 1 included), innermost first."""
        return dict(zip(AXIS_NAMES, self.degrees))

    def active(self) -> Iterator[tuple[str, int]]:
        """(axis, degree) of the axes with degree > 1, innermost first."""
        return ((n, d) for n, d in zip(AXIS_NAMES, self.degrees) if d > 1)

    @property
    def n_ranks(self) -> int:
        n = 1
        for d in self.degrees:
            n *= d
        return n

    def stride(self, axis: str) -> int:
        """Rank distance between neighbours along ``axis``."""
        s = 1
        for n, d in zip(AXIS_NAMES, self.degrees):
            if n == axis:
                return s
            s *= d
        raise SpecError(f"plan axis {axis!r} is not valid: choose from {list(AXIS_NAMES)}")

    def span(self, axis: str) -> int:
        """Consecutive ranks (GPUs) one group of ``axis`` spans: stride x degree."""
        return self.stride(axis) * getattr(self, axis)

    def coords(self, rank: int) -> dict[str, int]:
        """{axis: index} of a rank."""
        out = {}
        for n, d in zip(AXIS_NAMES, self.degrees):
            out[n] = rank % d
            rank //= d
        return out

    def rank_of(self, **coords: int) -> int:
        r, s = 0, 1
        for n, d in zip(AXIS_NAMES, self.degrees):
            r += coords.get(n, 0) * s
            s *= d
        return r

    def group(self, axis: str, rank: int) -> tuple[int, ...]:
        """The ranks of ``rank``'s group along ``axis``, in axis order."""
        st, deg = self.stride(axis), getattr(self, axis)
        base = rank - ((rank // st) % deg) * st
        return tuple(base + i * st for i in range(deg))

    def groups(self, axis: str) -> list[tuple[int, ...]]:
        """Every group along ``axis`` (each rank in exactly one)."""
        return sorted({self.group(axis, r) for r in range(self.n_ranks)})

    def neighbour(self, axis: str, rank: int, delta: int) -> int | None:
        """The rank ``delta`` steps along ``axis`` (None past the ends; rings wrap with ``ring_peer``)."""
        i = self.coords(rank)[axis] + delta
        if not 0 <= i < getattr(self, axis):
            return None
        return rank + delta * self.stride(axis)

    @property
    def sp(self) -> int:
        """Degree of sequence sharding of the dense part (ring x ulysses)."""
        return self.ring * self.ulysses

    # -- names ----------------------------------------------------------------------------------
    def label(self, phase: str | None = None, kernel: str | None = None) -> str:
        """The full label, the one every table, legend, CSV column and trace prints: every degree > 1,
        then every choice that changes what runs.

        ``tp=8,pp=2,mb=4``; ``tp=8,mb=8`` (micro-batches run one after another even without stages);
        ``tp=4,pp=2,mb=1,chunks=4``; ``tp=8,pp=2,mb=1,send=full`` (the pipeline send when it is not the
        default ``scatter`` and a stage has TP ranks to scatter over); ``ring=16:zigzag`` (prefill) or
        ``ring=16:pass-kv`` (decode); ``single`` for one GPU; ``,kernel=flash`` when the attention kernel
        is not the default ``auto``.  Without ``phase`` a ring shows both its layout and its decode
        merge.  Two plans that run differently never share a label (tests/test_labels.py)."""
        s = ",".join(f"{n}={d}" for n, d in self.active()) or "single"
        if self.pp > 1 or self.microbatches > 1:  # micro-batches run one after another even without stages
            s += f",mb={self.microbatches}"
        if self.chunks > 1:
            s += f",chunks={self.chunks}"
        if self.pp > 1 and self.tp > 1 and self.pp_send != PpSend.SCATTER:
            s += f",send={self.pp_send.value}"
        if self.ring > 1:
            pq = "/pass-q" if self.prefill_attn == PrefillAttn.PASS_Q else ""
            if phase == "prefill":
                s += f":{self.ring_variant.value}{pq}"
            elif phase == "decode":
                s += f":{self.decode_attn.value}"
            else:
                s += f":{self.ring_variant.value}{pq}/{self.decode_attn.value}"
        if kernel is not None and str(kernel) != "auto":
            s += f",kernel={kernel}"
        return s

    def runs_as(self, phase: str | None = None) -> Plan:
        """The plan with the choices that do not change what runs in ``phase`` set to their defaults
        (the ring layout without a ring or in decode, the decode merge without a ring or in prefill, the
        pipeline send without TP x PP): two plans run the same iff their ``runs_as`` are equal."""
        kw = {}
        if self.ring == 1 or phase == "decode":
            kw["ring_variant"] = RingVariant.ZIGZAG
        if self.ring == 1 or phase == "prefill":
            kw["decode_attn"] = DecodeAttn.ALLGATHER
        if self.ring == 1 or phase == "decode":
            kw["prefill_attn"] = PrefillAttn.PASS_KV
        if self.pp == 1 or self.tp == 1:
            kw["pp_send"] = PpSend.SCATTER
        return self.replace(**kw) if kw else self

    @property
    def name(self) -> str:
        """Short name (degrees, ring layout, micro-batches) used in older records and file names."""
        s = ",".join(f"{n}={d}" for n, d in self.active()) or "single"
        if self.ring > 1:
            s += f"[{self.ring_variant.value}]"
            if self.prefill_attn == PrefillAttn.PASS_Q:
                s += "[pass-q]"
        if self.pp > 1:
            s += f"[m={self.microbatches}]"
        if self.chunks > 1:
            s += f"[c={self.chunks}]"
        return s

    def to_dict(self, phase: str | None = None, kernel: str | None = None) -> dict:
        """The plan's fields, its short ``name`` and its full ``label`` (``label(phase, kernel)``)."""
        return {
            **self.mesh(),
            "microbatches": self.microbatches,
            "ring_variant": self.ring_variant.value,
            "decode_attn": self.decode_attn.value,
            "pp_send": self.pp_send.value,
            "chunks": self.chunks,
            "prefill_attn": self.prefill_attn.value,
            "name": self.name,
            "label": self.label(phase, kernel),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        kw = {k: d[k] for k in AXIS_NAMES if k in d}
        for k in ("microbatches", "ring_variant", "decode_attn", "pp_send", "chunks", "prefill_attn"):
            if k in d:
                kw[k] = d[k]
        return cls(**kw)


_ITEM = re.compile(r"^([a-z]+)=([0-9]+)$")


def parse_plan(text: str, **kw) -> Plan:
    """Parse ``tp=8,pp=2`` / ``ring=16`` / ``tp=2,ring=4`` / ``ulysses=4`` (+ keyword extras)."""
    degrees: dict[str, int] = {}
    valid = ", ".join(f"{n}=N" for n in AXIS_NAMES)
    for item in str(text).replace(" ", "").split(","):
        m = _ITEM.match(item) if item.isascii() else None
        key = None if m is None else {**_ALIAS, "mb": "microbatches"}.get(m.group(1), m.group(1))
        if m is None or key not in AXIS_NAMES + ("microbatches", "chunks"):
            raise SpecError(
                f"--plan {text!r}: item {item!r} is not valid: use {valid} (and mb=M) joined by "
                f"commas, e.g. 'tp=8,pp=2' or 'ring=16'"
            )
        if key in degrees:
            raise SpecError(f"--plan {text!r} gives {key} twice")
        degrees[key] = int(m.group(2))
    degrees.update({k: v for k, v in kw.items() if v is not None})
    return Plan(**degrees)


__all__ = [
    "AXES",
    "AXIS_NAMES",
    "Axis",
    "DecodeAttn",
    "Plan",
    "PpSend",
    "PrefillAttn",
    "RingVariant",
    "parse_plan",
]
