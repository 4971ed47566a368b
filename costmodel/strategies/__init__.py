"""Strategies: how a plan's axes turn into work, one module each.

Every module keeps together what the strategy emits into the schedule (``emit``), what it costs in
closed form (``closed_form``, numpy-vectorised over the points of a sweep), the communication buffers
it holds (``buffers``) and when it is allowed (``rules``, raising ``SpecError`` with one sentence).

* ``pipeline``  -- stages and micro-batches (the ``pp`` axis): a rank's program, the bubble;
* ``dense``     -- the layer's GEMMs and elementwise kernels split ``tp`` ways, two all-reduces;
* ``lm_head``   -- the final norm and the logits on the last stage (vocab-parallel under TP);
* ``ulysses``   -- all-to-all to heads and back around the attention core (the ``ulysses`` axis);
* attention cores, exactly one per layer: ``local`` (no ring), ``ring_prefill`` (pass-KV ring with
  the plain, zigzag and striped layouts), ``ring_prefill_pass_q`` (the new queries travel, partial
  outputs return by an all-to-all), and the decode merges ``decode_allgather``, ``decode_pass_q`` and
  ``decode_pass_kv``;
* ``prefix_cache``  -- partial prefill (``--cached``): its rules, the cached K/V, the attention without a
  ring.

Adding a strategy: write its module with the functions above and register it below (``CORES`` or
``WRAPPERS``); ``attention_for`` picks it, ``validate`` runs its rules, the builder and the analytic
model call its ``emit`` and ``closed_form``.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import SpecError
from ..plan import DecodeAttn, Plan, PrefillAttn
from ..specs import Model, Phase, Workload
from ..topology import Topology
from . import (
    chunked,
    decode_allgather,
    decode_pass_kv,
    decode_pass_q,
    dense,
    lm_head,
    local,
    pipeline,
    prefix_cache,
    ring_prefill,
    ring_prefill_pass_q,
    ulysses,
)

# the attention core of a layer, by (phase, ring merge); ``local`` when the plan has no ring
CORES: dict[tuple[str, str | None], ModuleType] = {
    (Phase.PREFILL, None): ring_prefill,
    (Phase.PREFILL, PrefillAttn.PASS_Q): ring_prefill_pass_q,
    (Phase.DECODE, DecodeAttn.ALLGATHER): decode_allgather,
    (Phase.DECODE, DecodeAttn.PASS_Q): decode_pass_q,
    (Phase.DECODE, DecodeAttn.PASS_KV): decode_pass_kv,
}
WRAPPERS: tuple[ModuleType, ...] = (ulysses,)  # around the core, outermost first
ALL: tuple[ModuleType, ...] = (
    pipeline,
    dense,
    lm_head,
    *WRAPPERS,
    local,
    chunked,
    prefix_cache,
    *dict.fromkeys(CORES.values()),
)


def core_for_phase(phase: str, decode_attn: str, prefill_attn: str = PrefillAttn.PASS_KV) -> ModuleType:
    """The ring's attention core in this phase (prefill: pass-KV or pass-Q; decode: by its merge)."""
    if phase == Phase.PREFILL:
        return CORES[
            (phase, None if PrefillAttn(prefill_attn) == PrefillAttn.PASS_KV else PrefillAttn.PASS_Q)
        ]
    return CORES[(phase, DecodeAttn(decode_attn))]


def core_for(plan: Plan, phase: str) -> ModuleType:
    """The attention core of a layer of this plan: ``local`` without a ring (``chunked`` with chunks)."""
    if plan.ring == 1:
        return chunked if plan.chunks > 1 and phase == Phase.PREFILL else local
    return core_for_phase(phase, plan.decode_attn, plan.prefill_attn)


def attention_for(plan: Plan, phase: str) -> list[ModuleType]:
    """The wrappers the plan uses (outermost first), then its attention core."""
    return [w for w in WRAPPERS if w.used(plan)] + [core_for(plan, phase)]


def validate(plan: Plan, model: Model, workload: Workload, topo: Topology) -> None:
    """Every rule of the plan, one sentence each (``SpecError``): the mesh fills the topology, then
    each strategy's own rules.  The single feasibility check predict, simulate and ``real.run`` use."""
    if plan.n_ranks != topo.n_gpus:
        factors = " x ".join(f"{n}={d}" for n, d in plan.mesh().items())
        raise SpecError(
            f"plan {plan.name}: {factors} = {plan.n_ranks} ranks, but topology {topo.spec} has "
            f"{topo.n_gpus} GPUs; the product must equal it"
        )
    for s in ALL:
        s.rules(plan, model, workload, topo)


def length_multiple(plan: Plan, phase: str) -> int:
    """What the prompt (prefill) or the context (decode) length must be a multiple of."""
    return max(s.length_multiple(plan, phase) for s in ALL)


__all__ = [
    "CORES",
    "WRAPPERS",
    "ALL",
    "attention_for",
    "core_for",
    "core_for_phase",
    "validate",
    "length_multiple",
]
