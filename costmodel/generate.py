"""Multi-token decode (``--gen-tokens N``): N decode steps from ``--context`` with the cache growing.

Step i (0..N-1) attends to the cache plus the i tokens generated before it.  A cache sharded q ways
(``strategies.length_multiple``: the ring, ulysses) grows on the rank that holds the newest tokens, so
the busiest shard holds C/q + i tokens: step i is costed as a step at context C + q*i (exact for the
busiest rank, which is on the critical path; for q = 1 it is C + i).  The phase's figures become:
latency_s = the N steps' total, tpot_s = its mean per token, tps = B*N / total, memory and ``feasible``
at the last step (the cache is largest there); ``generation`` holds the per-step detail.

The analytic model evaluates every step (vectorised); the simulator simulates the first, middle and
last steps and interpolates the others linearly in i (``sim/generate.py``; the step time is smooth in
the context, tests hold the interpolation to 0.5% of the sum of every step).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import strategies
from .config import Config
from .result import Result
from .specs import Phase


def steps(cfg: Config) -> int:
    wl = cfg.workload
    return wl.gen_tokens if wl.phase == Phase.DECODE else 1


def step_contexts(cfg: Config) -> np.ndarray:
    """The context each of the N steps is costed at (C + q*i)."""
    q = strategies.length_multiple(cfg.plan, Phase.DECODE)
    return cfg.workload.context + q * np.arange(steps(cfg))


def step_config(cfg: Config, i: int) -> Config:
    """The one-step configuration of step i (its context; gen_tokens 1)."""
    ctx = int(step_contexts(cfg)[i])
    return replace(cfg, workload=replace(cfg.workload, context_len=ctx, gen_tokens=1))


def extend(cfg: Config, res: Result, step_s: np.ndarray, how: str, extra: dict | None = None) -> Result:
    """``res`` (a one-step result at the first context) turned into the N-step figures from the step
    latencies ``step_s`` (one per step); memory and feasibility at the last step (analytic)."""
    from .predict import _eval  # the vectorised model at the last step's context

    n = steps(cfg)
    ctxs = step_contexts(cfg)
    last = _eval(cfg, context=int(ctxs[-1]))

    def f(k):
        return float(np.asarray(last[k]).reshape(-1)[0])

    total = float(np.sum(step_s))
    mem = {
        "weights": f("mem_weights_bytes"),
        "kv_cache": f("mem_kv_cache_bytes"),
        "activations": f("mem_activations_bytes"),
        "comm_buffers": f("mem_comm_buffers_bytes"),
        "workspace": f("mem_workspace_bytes"),
        "total": f("mem_total_bytes"),
    }
    feasible = bool(np.asarray(last["feasible"]).reshape(-1)[0])
    verdict = (
        res.verdict
        if feasible
        else (
            f"does not fit at the last of {n} steps (context {int(ctxs[-1])}): needs "
            f"{mem['total'] / 1e9:.1f} GB of {f('capacity_bytes') / 1e9:.1f} GB per device"
        )
    )
    gen = {
        "tokens": n,
        "context_first": int(ctxs[0]),
        "context_last": int(ctxs[-1]),
        "cache_growth_per_step": int(ctxs[1] - ctxs[0]) if n > 1 else 0,
        "step_first_s": float(step_s[0]),
        "step_last_s": float(step_s[-1]),
        "total_s": total,
        "tpot_mean_s": total / n,
        "tps": cfg.workload.batch * n / total if total > 0 else None,
        "how": how,
        **(extra or {}),
    }
    return replace(
        res,
        latency_s=total,
        tpot_s=total / n,
        tps=gen["tps"],
        memory_bytes_per_device=mem,
        feasible=feasible,
        verdict=verdict,
        generation=gen,
    )


def analytic(cfg: Config, res: Result) -> Result:
    """The analytic N-step figures: every step evaluated (one vectorised call)."""
    if steps(cfg) <= 1:
        return res
    from .predict import _eval

    step_s = np.asarray(_eval(cfg, context=step_contexts(cfg))["latency_s"], dtype=float).reshape(-1)
    return extend(cfg, res, step_s, "analytic: every step evaluated at its context (C + q*i)")


__all__ = ["analytic", "extend", "step_config", "step_contexts", "steps"]
