"""Plan search: every plan that can be placed on N GPUs for a workload, ranked on the analytic model.

Enumerates tp x ulysses x ring x pp = N, ring variants (prefill layouts or decode merges) and
micro-batch counts; each candidate is validated (``plan.validate``: the reason is kept when it does
not divide), the valid ones are evaluated in one numpy call per categorical setting, and those that do
not fit in memory are rejected with their numbers.  ``latency`` ranks by latency at the given batch;
``throughput`` ranks by TPS at the largest batch (a multiple of the micro-batch count, up to
``max_batch``) that fits in memory.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import strategies
from .analytic import evaluate, evaluate_memory
from .closedform import Setting
from .config import Config
from .errors import SpecError
from .plan import AXIS_NAMES, DecodeAttn, Plan, RingVariant
from .specs import Phase


def factorisations(n: int, axes: tuple[str, ...] = AXIS_NAMES) -> list[dict[str, int]]:
    """Every {axis: degree} over ``axes`` with product n (degree 1 included)."""
    if len(axes) == 1:
        return [{axes[0]: n}]
    out = []
    for d in range(1, n + 1):
        if n % d == 0:
            out += [{axes[0]: d, **rest} for rest in factorisations(n // d, axes[1:])]
    return out


def microbatch_counts(batch: int, pp: int) -> list[int]:
    """1 without a pipeline; with one: powers of two dividing the batch, and the batch itself."""
    if pp == 1:
        return [1]
    ms = {m for m in (2**k for k in range(0, 21)) if m <= batch and batch % m == 0}
    return sorted(ms | {batch})


def chunk_counts(wl, mesh: dict) -> list[int]:
    """Chunked prefill (TP x PP plans): 1 and the powers of two up to 32 that divide the prompt."""
    if wl.phase == Phase.DECODE or mesh["pp"] == 1 or mesh["ring"] > 1 or mesh["ulysses"] > 1:
        return [1]
    if wl.cached_len:  # partial prefill runs without chunks (strategies.prefix_cache.rules)
        return [1]
    return [1] + [n for n in (2, 4, 8, 16, 32) if wl.seq_len % n == 0]


def _prefill_attns(wl) -> tuple[str, ...]:
    """What a prefill ring may circulate: the K/V blocks, and with cached tokens (partial prefill) also the
    new queries (pass-Q, which only pays off when the cache is large)."""
    return ("pass-kv", "pass-q") if wl.cached_len else ("pass-kv",)


def enumerate_plans(cfg: Config, n_gpus: int) -> tuple[list[Plan], list[dict]]:
    """(valid plans, rejected [{plan, reason}]) for the configuration's model, workload and topology."""
    wl = cfg.workload
    decode = wl.phase == Phase.DECODE
    ok, rejected = [], []
    for mesh in factorisations(n_gpus):
        variants = (
            [{}]
            if mesh["ring"] == 1
            else [{"decode_attn": v} for v in DecodeAttn]
            if decode
            else [{"ring_variant": v, "prefill_attn": a} for v in RingVariant for a in _prefill_attns(wl)]
        )
        for var in variants:
            counts = [(m, n) for m in microbatch_counts(wl.batch, mesh["pp"]) for n in chunk_counts(wl, mesh)]
            for m, n in counts:
                plan = Plan(microbatches=m, pp_send=cfg.plan.pp_send, chunks=n, **mesh, **var)
                try:
                    strategies.validate(plan, cfg.model, wl, cfg.topology)
                except SpecError as e:
                    rejected.append(
                        {"plan": plan_label(plan, decode), "kind": "does not divide", "reason": str(e)}
                    )
                    continue
                ok.append(plan)
    return ok, rejected


def plan_label(plan: Plan, decode: bool) -> str:
    return plan.label(Phase.DECODE if decode else Phase.PREFILL)


def _setting(cfg: Config, plan: Plan) -> Setting:
    wl, t = cfg.workload, cfg.topology
    return Setting(
        phase=wl.phase,
        causal=wl.causal,
        kernel=cfg.kernel,
        ring_variant=plan.ring_variant,
        decode_attn=plan.decode_attn,
        topo_kind=t.kind.value,
        gpus_per_node=t.gpus_per_node,
        pp_send=plan.pp_send,
        cached=wl.cached_len,
        prefill_attn=plan.prefill_attn,
    )


def _evaluate_group(cfg: Config, plans: list[Plan], batch, memory_only: bool = False) -> dict:
    """The model over the plans (one row each) at ``batch``; ``memory_only``: only its memory part
    (``analytic.evaluate_memory``: the same ``feasible``, without the latency model)."""
    deg = {k: np.array([getattr(p, k) for p in plans]) for k in AXIS_NAMES + ("microbatches", "chunks")}
    wl = cfg.workload
    return (evaluate_memory if memory_only else evaluate)(
        cfg.model,
        cfg.hardware,
        _setting(cfg, plans[0]),
        batch=batch,
        seq=wl.seq_len,
        context=wl.context,
        **{k: (v if np.ndim(batch) < 2 else v[:, None]) for k, v in deg.items()},
    )


def _largest_batch(cfg: Config, plans: list[Plan], max_batch: int) -> tuple[np.ndarray, dict]:
    """Per plan: the largest batch (multiple of its micro-batches, <= max_batch) that fits; its outputs.

    Memory grows with the batch, so a geometric grid of multiples brackets the answer and a vectorised
    bisection between the bracket's ends finds it exactly; both ask the memory part of the model only,
    and the whole model runs once, at the batches found."""
    m = np.array([p.microbatches for p in plans])
    k = np.unique(np.round(np.geomspace(1, max_batch, 96)).astype(int))[None, :]
    b = m[:, None] * k
    b = np.where(b <= max_batch, b, m[:, None])  # out-of-range candidates collapse onto the smallest batch
    fit = _evaluate_group(cfg, plans, b, memory_only=True)["feasible"]
    rows = np.arange(len(plans))
    j = np.argmax(np.where(fit, b, -1), axis=1)
    lo = np.where(fit.any(axis=1), b[rows, j] // m, 1)  # a multiple that fits (or 1: none does)
    nxt = np.where(k[0][None, :] > lo[:, None], k[0][None, :], np.iinfo(np.int64).max).min(axis=1)
    hi = np.minimum(nxt, max_batch // m + 1)  # the first multiple not known to fit
    hi = np.where(fit.any(axis=1), hi, lo)
    while np.any(hi - lo > 1):
        mid = np.where(hi - lo > 1, (lo + hi) // 2, lo)
        ok = np.asarray(_evaluate_group(cfg, plans, (mid * m)[:, None], memory_only=True)["feasible"])[:, 0]
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    o = _evaluate_group(cfg, plans, (lo * m)[:, None])
    return lo * m, {key: np.asarray(v)[:, 0] if np.ndim(v) == 2 else v for key, v in o.items()}


def rank_plans(cfg: Config, n_gpus: int, objective: str = "latency", max_batch: int = 4096) -> dict:
    """Evaluate every valid plan; returns {"ranked": [...], "rejected": [...], "objective": ...}."""
    if objective not in ("latency", "throughput"):
        raise SpecError(f"--objective {objective!r} is not valid: choose latency or throughput")
    if n_gpus != cfg.topology.n_gpus:
        raise SpecError(f"--gpus {n_gpus} but topology {cfg.topology.spec} has {cfg.topology.n_gpus} GPUs")
    plans, rejected = enumerate_plans(cfg, n_gpus)
    decode = cfg.workload.phase == Phase.DECODE
    groups: dict[tuple, list[Plan]] = {}
    for p in plans:
        # one call per (setting, tp, ulysses, ring): analytic._ring_prefill picks the slowest-rank kernel by
        # its mean over the whole array, so only plans sharing these degrees may share a call (exactness)
        groups.setdefault(
            (p.ring_variant, p.decode_attn, p.prefill_attn)
            + tuple(d for n, d in p.mesh().items() if n != "pp"),
            [],
        ).append(p)
    rows = []
    for group in groups.values():
        if objective == "latency":
            o = _evaluate_group(cfg, group, cfg.workload.batch)
            batches = np.full(len(group), cfg.workload.batch)
        else:
            batches, o = _largest_batch(cfg, group, max_batch)
        for i, p in enumerate(group):

            def g(k, o=o, i=i):
                return np.asarray(o[k]).reshape(-1)[i] if np.size(o[k]) > 1 else np.asarray(o[k]).item()

            rows.append(
                {
                    "plan": plan_label(p, decode),
                    "degrees": p.to_dict(),
                    "batch": int(batches[i]),
                    "latency_s": float(g("latency_s")),
                    "tps": float(g("tps")),
                    "tpot_s": float(g("tpot_s")) if decode else None,
                    "mem_total_bytes": float(g("mem_total_bytes")),
                    "mem_weights_bytes": float(g("mem_weights_bytes")),
                    "mem_kv_cache_bytes": float(g("mem_kv_cache_bytes")),
                    "mem_activations_bytes": float(g("mem_activations_bytes")),
                    "capacity_bytes": float(g("capacity_bytes")),
                    "feasible": bool(g("feasible")),
                    "bottleneck": str(g("bottleneck")),
                    "roofline_latency_s": float(g("roofline_latency_s")),
                }
            )
    fits = [r for r in rows if r["feasible"]]
    for r in rows:
        if not r["feasible"]:
            rejected.append(
                {
                    "plan": r["plan"],
                    "kind": "does not fit",
                    "reason": (
                        f"needs {r['mem_total_bytes'] / 1e9:.1f} GB "
                        f"of {r['capacity_bytes'] / 1e9:.1f} GB per device "
                        f"(weights {r['mem_weights_bytes'] / 1e9:.1f}, "
                        f"KV cache {r['mem_kv_cache_bytes'] / 1e9:.1f}, "
                        f"activations {r['mem_activations_bytes'] / 1e9:.1f} GB) at batch {r['batch']}"
                    ),
                }
            )
    key = (lambda r: r["latency_s"]) if objective == "latency" else (lambda r: -r["tps"])
    fits.sort(key=lambda r: (key(r), r["plan"]))
    if fits:
        best = fits[0]
        for r in fits:
            r["slower_by"] = (
                r["latency_s"] / best["latency_s"] - 1
                if objective == "latency"
                else best["tps"] / r["tps"] - 1
            )
    return {
        "objective": objective,
        "gpus": n_gpus,
        "ranked": fits,
        "rejected": rejected,
        "evaluated": len(rows),
        "specs": cfg.specs(),
    }


def config_for(cfg: Config, row: dict) -> Config:
    """The Config of a ranked row (its plan and batch)."""
    plan = Plan.from_dict(row["degrees"])
    return replace(cfg, plan=plan, workload=replace(cfg.workload, batch=row["batch"]))


__all__ = ["enumerate_plans", "rank_plans", "factorisations", "microbatch_counts", "config_for"]
