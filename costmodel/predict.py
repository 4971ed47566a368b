"""``predict``: the analytic model on one configuration, as the JSON contract other tools rely on."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import predict_fast, strategies
from .analytic import evaluate, evaluate_memory
from .closedform import Setting
from .config import Config
from .result import Result
from .specs import Phase


def setting(cfg: Config) -> Setting:
    return Setting(
        phase=cfg.workload.phase,
        causal=cfg.workload.causal,
        kernel=cfg.kernel,
        ring_variant=cfg.plan.ring_variant,
        decode_attn=cfg.plan.decode_attn,
        topo_kind=cfg.topology.kind.value,
        gpus_per_node=cfg.topology.gpus_per_node,
        pp_send=cfg.plan.pp_send,
        cached=cfg.workload.cached_len,
        prefill_attn=cfg.plan.prefill_attn,
    )


def _eval(cfg: Config, batch=None, seq=None, context=None, fast: bool = False) -> dict:
    """The model at ``cfg`` (or at other batches / lengths, arrays).  ``fast``: one point by the scalar
    copy of the model (``predict_fast``: the same values, without numpy's per-call overhead)."""
    p, wl = cfg.plan, cfg.workload
    return (predict_fast.evaluate if fast else evaluate)(
        cfg.model,
        cfg.hardware,
        setting(cfg),
        batch=wl.batch if batch is None else batch,
        seq=wl.seq_len if seq is None else seq,
        tp=p.tp,
        pp=p.pp,
        ring=p.ring,
        ulysses=p.ulysses,
        microbatches=p.microbatches,
        context=wl.context if context is None else context,
        chunks=p.chunks,
        gen_tokens=wl.gen_tokens,
    )


def _mb_size(cfg: Config) -> int:
    """Step of the batch search: 1 with one micro-batch (the batch runs whole), else the micro-batch size."""
    m = cfg.plan.microbatches
    return 1 if m == 1 else max(cfg.workload.batch // m, 1)


def _inputs(cfg: Config, batch=None, seq=None, context=None) -> dict:
    """The numeric inputs of the memory model at other batches or lengths (1-D arrays of one size): at
    other batch sizes one micro-batch stays one; otherwise the micro-batch *size* is kept."""
    p, wl = cfg.plan, cfg.workload
    n = len(next(v for v in (batch, seq, context) if v is not None))
    m = np.full(n, p.microbatches)
    if batch is not None and p.microbatches != 1:
        m = batch // _mb_size(cfg)
    return {
        "batch": np.full(n, wl.batch) if batch is None else batch,
        "seq": np.full(n, wl.seq_len) if seq is None else seq,
        "context": np.full(n, wl.context) if context is None else context,
        "microbatches": m,
    }


def _fits(cfg: Config, parts: list[dict]) -> list[np.ndarray]:
    """Whether the configuration fits in memory at each part's inputs: one call of the memory part of
    the model (``analytic.evaluate_memory``, the values ``evaluate`` reports) over all the parts."""
    p = cfg.plan
    cat = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    ok = evaluate_memory(
        cfg.model,
        cfg.hardware,
        setting(cfg),
        tp=p.tp,
        pp=p.pp,
        ring=p.ring,
        ulysses=p.ulysses,
        chunks=p.chunks,
        **cat,
    )["feasible"]
    out, i = [], 0
    for q in parts:  # each part's slice (np.split's bookkeeping costs more than the slicing)
        n = len(q["batch"])
        out.append(ok[i : i + n])
        i += n
    return out


def _distinct(sorted_ints: np.ndarray) -> np.ndarray:
    """``np.unique`` of a sorted array (np.unique imports numpy.ma, some 30 ms at start-up)."""
    return sorted_ints[np.concatenate(([True], sorted_ints[1:] != sorted_ints[:-1]))]


_BATCH_GRID = _distinct(np.round(np.geomspace(1, 2**20, 400)).astype(int))


@lru_cache(maxsize=64)
def _length_grid(mult: int) -> np.ndarray:
    return mult * _distinct(np.round(np.geomspace(1, 2**26 / mult, 600)).astype(int))


def _searches(cfg: Config, which=("batch", "length"), at: dict | None = None) -> list[int]:
    """The largest batch and/or length that fit: the largest candidate (geometric grid) that does, then
    every step up to the next candidate (0 if the smallest does not fit).  Both searches share two calls
    of the memory model (the candidates, then the steps).

    ``at``: the model's memory figures at the configuration itself (``predict`` has them).  Memory does
    not shrink as the batch or length grows (the grid search above rests on that too), so the answer
    is the grid's last candidate if it fits, 0 if the first does not, else the largest multiple of the
    step that fits: the x that fits while x + step does not.  From ``at`` the crossing is estimated in
    closed form (memory affine in the batch or length), and one call of the memory model checks both
    ends of the grid and a few steps around each estimate; only when no such pair is among them does
    the search fall back to the grid."""
    key = "seq" if cfg.workload.phase == Phase.PREFILL else "context"
    wl = cfg.workload
    qs = []  # (candidates, step, inputs builder, the configuration's value)
    if "batch" in which:
        size = _mb_size(cfg)
        qs.append((size * _BATCH_GRID, size, lambda v: _inputs(cfg, batch=v), wl.batch))
    if "length" in which:
        mult = strategies.length_multiple(cfg.plan, cfg.workload.phase)
        qs.append(
            (
                _length_grid(mult),
                mult,
                lambda v: _inputs(cfg, **{key: v}),
                wl.seq_len if key == "seq" else wl.context,
            )
        )
    if at is not None:
        got = _searches_at(cfg, qs, at)
        if got is not None:
            return got
    oks = _fits(cfg, [f(c) for c, _, f, _ in qs])
    out, fine = [0] * len(qs), []
    for j, ((cands, step, f, _), ok) in enumerate(zip(qs, oks)):
        if ok[0]:
            i = int(np.flatnonzero(ok)[-1])
            hi, nxt = int(cands[i]), int(cands[min(i + 1, len(cands) - 1)])
            fine.append((j, np.arange(hi, max(nxt, hi + step), step), f))
    if fine:
        for (j, v, _), ok in zip(fine, _fits(cfg, [f(v) for _, v, f in fine])):
            out[j] = int(v[ok].max())
    return out


def _searches_at(cfg: Config, qs: list, at: dict) -> list[int] | None:
    """``_searches`` in one call of the memory model, from the memory figures ``at`` the configuration
    (see there); None where a crossing was not among the points asked."""
    fixed = at["mem_weights_bytes"] + at["mem_workspace_bytes"]
    kv, act, buf = at["mem_kv_cache_bytes"], at["mem_activations_bytes"], at["mem_comm_buffers_bytes"]
    room = at["capacity_bytes"] - fixed
    points = []
    for cands, step, _, x0 in qs:
        ks = set()
        # memory affine in x, these parts growing in proportion to x and the others fixed: where it
        # reaches the capacity (a few steps either side)
        for grow, other in ((kv + act + buf, 0.0), (kv, act + buf), (kv + buf, act)):
            e = x0 * (room - other) / grow if grow > 0 else math.nan
            if math.isfinite(e) and 0 < e < cands[-1]:
                ks.update(int(e // step) + d for d in (-1, 0, 1, 2))
        near = [k * step for k in sorted(ks) if k >= 1 and k * step < cands[-1]]
        points.append(np.array([cands[0], cands[-1], *near], dtype=np.int64))
    oks = _fits(cfg, [f(x) for (_, _, f, _), x in zip(qs, points)])
    out = []
    for (cands, step, _, _), x, ok in zip(qs, points, oks):
        if not ok[0]:
            out.append(0)
        elif ok[1]:
            out.append(int(cands[-1]))
        else:
            fits = dict(zip(x.tolist(), ok.tolist()))
            top = [v for v, o in fits.items() if o and fits.get(v + step) is False]
            if not top:
                return None
            out.append(max(top))
    return out


def _point(cfg: Config, fast: bool = True) -> dict:
    """The outputs at the configuration itself, each as a numpy scalar (or 0-d array)."""
    if fast:
        return _eval(cfg, fast=True)
    return {k: np.asarray(v) for k, v in _eval(cfg).items()}


def max_batch(cfg: Config) -> int:
    """Largest batch that fits (with one micro-batch, or at this plan's micro-batch size); 0 if none."""
    return _searches(cfg, ("batch",))[0]


def max_length(cfg: Config) -> int:
    """Largest prompt (prefill) or context (decode) length that fits at this batch, 0 if none."""
    return _searches(cfg, ("length",))[0]


_calls = [0]  # predict calls in this process (the first runs the array code: see predict)


def predict(cfg: Config, fast: bool | None = None) -> Result:
    """The analytic model's figures for one configuration, with the largest batch and length that fit.
    ``fast``: the point evaluated by the scalar copy of the model (``predict_fast``) or (False) by the
    array code: the values are the same (tests compare).  None: the scalar copy from the second call
    on (loading it costs some 30 ms once, more than one call saves: a command that predicts once, such
    as ``ringsim predict`` or ``simulate``, does not load it)."""
    if fast is None:
        _calls[0] += 1
        fast = _calls[0] > 1
    o = {k: v.item() for k, v in _point(cfg, fast).items()}
    decode = cfg.workload.phase == Phase.DECODE
    feasible = bool(o["feasible"])
    mem = {
        "weights": o["mem_weights_bytes"],
        "kv_cache": o["mem_kv_cache_bytes"],
        "activations": o["mem_activations_bytes"],
        "comm_buffers": o["mem_comm_buffers_bytes"],
        "workspace": o["mem_workspace_bytes"],
        "total": o["mem_total_bytes"],
    }
    mb, ml = _searches(cfg, at=o)
    verdict = (
        "fits"
        if feasible
        else f"does not fit: needs {o['mem_total_bytes'] / 1e9:.1f} GB "
        f"of {o['capacity_bytes'] / 1e9:.1f} GB per "
        f"device ({', '.join(f'{k} {v / 1e9:.1f} GB' for k, v in mem.items() if k != 'total')}); "
        f"largest batch that fits at this length"
        f"{'' if cfg.plan.microbatches == 1 else f' (micro-batches of {_mb_size(cfg)})'}: {mb}; largest "
        f"{'context' if decode else 'prompt'} that fits at this batch: {ml}"
    )
    from .generate import analytic as generation

    return generation(
        cfg,
        Result(
            engine="analytic",
            latency_s=o["latency_s"],
            tps=o["tps"],
            tpot_s=o["tpot_s"] if decode else None,
            ttft_s=None if decode else o["latency_s"],
            flops_per_device=o["flops_per_device"],
            hbm_bytes_per_device=o["hbm_bytes_per_device"],
            comm_bytes_per_device={
                "nvlink": o["comm_nvlink_bytes"],
                "ib": o["comm_ib_bytes"],
                "total": o["comm_nvlink_bytes"] + o["comm_ib_bytes"],
            },
            memory_bytes_per_device=mem,
            capacity_bytes=o["capacity_bytes"],
            feasible=feasible,
            verdict=verdict,
            max_batch=mb,
            max_length=ml,
            bottleneck=str(o["bottleneck"]),
            roofline_latency_s=o["roofline_latency_s"],
            roofline={
                "bound": str(o["roofline_bound"]),
                "compute_s": o["roofline_compute_s"],
                "hbm_s": o["roofline_hbm_s"],
                "nvlink_s": o["roofline_nvlink_s"],
                "ib_s": o["roofline_ib_s"],
            },
            time_breakdown_s={
                "compute_bound_kernels": o["t_compute_s"],
                "memory_bound_kernels": o["t_memory_s"],
                "launch_overhead": o["t_overhead_s"],
                "communication_on_path": o["t_comm_s"],
                "communication_exposed": o["t_comm_exposed_s"],
                "pipeline_bubble": o["t_bubble_s"],
            },
            total_flops=o["total_flops"],
            specs={**cfg.specs(), "attn_kernels_used": str(o["attn_kernel_used"]).split("+")},
        ),
    )


__all__ = ["max_batch", "max_length", "predict", "setting"]
