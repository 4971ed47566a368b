"""Which lengths of a grid a plan can run at, decided for the whole grid at once.

``strategies.validate`` checks one plan at one workload.  Over a grid of lengths only a few of its rules
depend on the length, and each of those is a divisibility rule:

* ``ring_prefill`` (prefill, ring > 1): the prompt splits into ``geometry.seq_multiple(ring, ulysses,
  variant)`` blocks (zigzag: two per ring rank);
* ``ulysses`` (ulysses > 1): prefill without a ring, the prompt splits ``ulysses`` ways; decode, the
  context splits ``ulysses`` ways;
* ``chunked`` (prefill, chunks > 1): the prompt splits into ``chunks`` chunks;
* ``_decode`` (decode, ring > 1): the context splits ``ring x ulysses`` ways.

Every other rule (mesh against topology, heads, layers, micro-batches, the cache's shards, what is not
modelled) reads no length.  So a plan is valid at length n exactly when it is valid at one length that
every length rule accepts (checked once with ``strategies.validate``) and n is a multiple of
``length_need``.  ``valid_lengths`` gives that mask; tests/test_validity.py checks it against
``strategies.validate`` at every length on random plans, models and topologies, refusals included.
"""

from __future__ import annotations

import math

import numpy as np

from . import strategies
from .errors import SpecError
from .geometry import seq_multiple
from .plan import Plan
from .specs import Model, Phase, Workload
from .topology import Topology


def length_need(plan: Plan, phase: str) -> int:
    """What every length must be a multiple of for the plan's length rules to accept it (the least
    common multiple of the rules listed in the module's docstring that apply)."""
    need = 1
    if phase == Phase.PREFILL:
        if plan.ring > 1:
            need = math.lcm(need, seq_multiple(plan.ring, plan.ulysses, plan.ring_variant))
        elif plan.ulysses > 1:
            need = math.lcm(need, plan.ulysses)
        if plan.chunks > 1:
            need = math.lcm(need, plan.chunks)
    else:
        if plan.ulysses > 1:
            need = math.lcm(need, plan.ulysses)
        if plan.ring > 1:
            need = math.lcm(need, plan.sp)
    return need


def at_length(workload: Workload, n: int) -> Workload:
    """The workload at length ``n``: the prompt (prefill) or the prompt and the context (decode)."""
    from dataclasses import replace

    if workload.phase == Phase.DECODE:
        return replace(workload, seq_len=int(n), context_len=int(n))
    return replace(workload, seq_len=int(n))


def valid_lengths(
    plans: list[Plan], model: Model, workload: Workload, topo: Topology, lengths
) -> tuple[np.ndarray, list[str | None]]:
    """(mask, reasons): ``mask[i, j]`` is whether ``strategies.validate(plans[j], model, at_length(
    workload, lengths[i]), topo)`` passes; ``reasons[j]`` is the refusal (one sentence) of a plan refused
    by a rule that reads no length (then its whole column is False), else None.  One ``validate`` per
    plan, not per length."""
    L = np.asarray(lengths, dtype=np.int64).reshape(-1)
    mask = np.zeros((len(L), len(plans)), bool)
    reasons: list[str | None] = []
    for j, p in enumerate(plans):
        need = length_need(p, workload.phase)
        try:
            strategies.validate(p, model, at_length(workload, need), topo)
        except SpecError as e:
            reasons.append(str(e))
            continue
        reasons.append(None)
        mask[:, j] = L % need == 0
    return mask, reasons


__all__ = ["at_length", "length_need", "valid_lengths"]
