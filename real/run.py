"""Measure configurations for real: ``torchrun --nproc-per-node N -m real.run <predict's options> \
--out F.jsonl``.

Every option of ``ringsim predict`` describes the configuration; any of them may list several values
separated by ';' (quote it), and one JSONL record is appended per combination, as soon as it is
measured (flushed and fsynced: an interrupted run keeps the records already written).

Per configuration: the model's verdict first (a configuration it says does not fit, or that needs
more memory than this GPU has free, is refused with that verdict and recorded as refused); then
``--warmup`` unmeasured and ``--reps`` measured forward passes, each timed with CUDA events on every
rank and reduced to the maximum over ranks (ranks aligned by a barrier before each).  With
``--exec graph`` the pass is captured as a CUDA graph after the eager warm-up and every measured
repetition is one replay (the launch included).  Then the check:
the same plan, in the run's dtype, against a single-device FP32 reference (on GPU at
``min(seq, --check-seq)`` tokens; the record says which), relative error <= 1e-2 on GPU (BF16),
1e-5 in FP32.

A record whose check fails says ``status: "failed"`` (with the error and the tolerance); the run goes
on with the other configurations and exits 1 at the end (``ringsim validate`` leaves such records out).

Bad input: one sentence, exit 2, before anything is measured (every option of every configuration,
``--out`` and ``--profile-dir`` writable, on every rank).  Only configuration options may list values.

A rank that stops answering ends the job with a line naming it (``real/watchdog.py``): every step (a
configuration's setup, each pass, the check) must end within max(``--timeout-s``, 20 x the model's
predicted time of that step); setup within at least 60 s.  A failure on any rank (NCCL error, ...)
ends every rank with an error naming the rank; torchrun then stops the others.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import math
import os
import re
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist

from costmodel import generate
from costmodel.config import Config
from costmodel.errors import SpecError
from costmodel.options import add_config_arguments, config_from_args
from costmodel.predict import predict
from costmodel.results import append_jsonl
from costmodel.specs import Phase
from costmodel.units import parse_count

from . import comm, harness, kernels, provenance
from .watchdog import Watchdog

MULTI_SEP = ";"
TOL = {torch.bfloat16: 1e-2, torch.float16: 1e-2, torch.float32: 1e-5}
# --fp8: e4m3 keeps 3 mantissa bits; per-row (activation) and per-output-channel (weight) scaling rounds each
# operand with an RMS relative error u ~= 0.027 (measured), so one FP8 GEMM's output is off by ~sqrt(2) u
# ~= 0.038 of its norm (random signs: the error and the output both grow as sqrt(K), their ratio does not
# shrink with K); a layer adds such errors on independent terms, so the output's error grows as
# sqrt(layers).  Tolerance: FP8_TOL_PER_SQRT_LAYER * sqrt(layers), about twice what the emulated CPU path
# gives at the test shapes (real/README.md, "FP8"), capped at FP8_TOL_MAX.
FP8_TOL_PER_SQRT_LAYER, FP8_TOL_MAX = 0.04, 0.3
FP8_ATTN_TOL_PER_SQRT_GEMM = 0.08  # the per-layer attention check: twice ~0.038 per FP8 GEMM on its path


NOISE_FACTOR = 2.0  # a check's tolerance is at least this many times the reference's own rounding error


def check_tolerance(cfg: Config, dtype) -> float:
    """The check's relative-error tolerance: the dtype's, or (--fp8, --kv-dtype fp8) what FP8 rounding
    justifies."""
    if cfg.model.fp8 == "none" and cfg.model.kv_dtype == "bf16":
        return TOL[dtype]
    return min(FP8_TOL_MAX, FP8_TOL_PER_SQRT_LAYER * math.sqrt(cfg.model.layers) + TOL[dtype])


def attn_check_tolerances(cfg: Config, dtype) -> list[float]:
    """The per-layer attention check's tolerance of each layer.  Without FP8, the dtype's.  With FP8, each
    FP8 GEMM on the way to layer l's attention output (its QKV and O projections if they are FP8, and every
    FP8 GEMM of the layers before it, which perturb its input; an FP8 KV cache counts as one more per layer)
    adds ~0.038 of that output's norm on independent terms (README: FP8), so the tolerance is twice that,
    0.08 sqrt(n), plus the dtype's, at most 0.3 (the whole output's rule keeps the same margin).  Unlike
    the whole output, an attention output carries no untouched residual part to dilute the error, so it
    gets its own count (measured on CPU, d = 64, `--fp8 linear`: 0.059 at layer 0, 0.073 at layer 1)."""
    roles = cfg.model.fp8_roles
    per_layer = len(roles) + (1 if cfg.model.kv_dtype == "fp8" else 0)
    own = len(roles & {"qkv", "o_proj"}) + (1 if cfg.model.kv_dtype == "fp8" else 0)
    out = []
    for layer in range(cfg.model.layers):
        n = per_layer * layer + own
        out.append(
            TOL[dtype] if n == 0 else min(FP8_TOL_MAX, FP8_ATTN_TOL_PER_SQRT_GEMM * math.sqrt(n) + TOL[dtype])
        )
    return out


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
REPS_MAX, WARMUP_MAX = 10_000, 1_000
TIMEOUT_FLOOR_S = 30.0  # --timeout-s default: the least time any step gets
SETUP_FLOOR_S = 60.0  # a configuration's setup (executors, process groups; NCCL's first pass on GPU)
STEP_FACTOR = 20.0  # a step may take this many times the model's prediction
CPU_FLOPS = 5e9  # on CPU the GPU prediction means nothing: a pass is bounded by its FLOP at this rate


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option as one sentence (exit 2 through SpecError) instead of usage text."""

    def error(self, message):
        raise SpecError(message)


def _ascii_int(text: str) -> int:
    if not (
        isinstance(text, str) and text.strip().lstrip("+-").isascii() and text.strip().lstrip("+-").isdigit()
    ):
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}: use ASCII digits 0-9")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="torchrun --nproc-per-node N -m real.run", description=__doc__.split("\n")[0])
    add_config_arguments(p)
    g = p.add_argument_group("measurement")
    g.add_argument("--out", required=True, help="JSONL file; one record is appended per configuration")
    g.add_argument(
        "--reps", type=_ascii_int, default=5, help=f"measured repetitions (5 to {REPS_MAX}; default 5)"
    )
    g.add_argument(
        "--warmup",
        type=_ascii_int,
        default=2,
        help=f"unmeasured repetitions first (0 to {WARMUP_MAX}; default 2)",
    )
    g.add_argument(
        "--kernel",
        default="auto",
        choices=["auto"] + list(kernels.KERNELS[:3]),
        help="attention kernel run for real (default auto: the fastest that works here)",
    )
    g.add_argument("--dtype", default=None, choices=list(_DTYPES), help="default bf16 on GPU, fp32 on CPU")
    g.add_argument(
        "--exec",
        dest="exec_mode",
        default="eager",
        choices=["eager", "graph"],
        help="eager: the host issues op by op (default); graph: one CUDA graph replay per pass (GPU only)",
    )
    g.add_argument(
        "--exec-mode",
        dest="fusion",
        default="eager",
        choices=["eager", "fused"],
        help="eager: the executor's own op-by-op kernels (default); fused: fused RMSNorm/RoPE/activation/"
        "residual and one-kernel ring merge through torch.compile (real/fused.py; on CPU the same maths "
        "uncompiled): what the ideal profiles (h200-sxm) assume",
    )
    g.add_argument(
        "--timing",
        default="barrier",
        choices=["barrier", "aligned"],
        help="barrier (default, as every committed record before 2026-11-28 17:00): each rank's clock starts "
        "after a host barrier and a device synchronise; aligned: then also a one-element all-reduce and a "
        "300 us GPU spin, so the GPUs start together with the pass already enqueued (measured 0-5%% slower "
        "than barrier for 2-GPU decode steps, 2026-11-28: the barrier's skew is not what slows them)",
    )
    g.add_argument(
        "--comm-priority",
        default="high",
        choices=["high", "normal"],
        help="priority of the communication stream (default high: NCCL's kernels are scheduled before the "
        "remaining blocks of a running compute kernel; normal: they wait for it to drain)",
    )
    g.add_argument(
        "--attn-split",
        type=_ascii_int,
        default=1,
        help="run each attention call as this many kernels over groups of KV heads (default 1: one kernel)",
    )
    g.add_argument("--seed", type=_ascii_int, default=0, help="seed of weights and inputs")
    g.add_argument(
        "--check-seq",
        default="8Ki",
        help="GPU check length: the check runs at min(--seq, this) (decode: --context); 0 = full",
    )
    g.add_argument("--no-check", action="store_true", help="skip the check against the FP32 reference")
    g.add_argument(
        "--timeout-s",
        type=float,
        default=TIMEOUT_FLOOR_S,
        help=f"the least time a step gets: a rank that does not finish a step (setup, a pass, the check) "
        f"within max(this, {STEP_FACTOR:g} x the model's predicted time of the step) ends the job, "
        f"naming the rank (setup: at least {SETUP_FLOOR_S:g} s; default {TIMEOUT_FLOOR_S:g})",
    )
    g.add_argument("--profile-dir", default=None, help="write a Chrome trace of one extra pass per rank here")
    return p


def _options(p: argparse.ArgumentParser) -> dict[str, bool]:
    """Option string -> whether it takes a value."""
    return {o: act.nargs != 0 for act in p._actions for o in act.option_strings}


def _config_options() -> set[str]:
    p = argparse.ArgumentParser(add_help=False)
    add_config_arguments(p)
    return set(_options(p))


def _resolve(name: str, opts: dict[str, bool]) -> str | None:
    """The option ``name`` stands for (argparse takes unique prefixes), or None if unknown."""
    if name in opts:
        return name
    hits = [o for o in opts if o.startswith(name)] if name.startswith("--") else []
    return hits[0] if len(hits) == 1 else None


def expand(argv: list[str]) -> list[list[str]]:
    """Split the values of configuration options holding ';' into the product of argv lists.

    Only configuration options (predict's) may list values; ';' in any other option's value (--out,
    --reps, ...) is refused, as is a non-ASCII digit in a configuration value."""
    opts, conf = _options(build_parser()), _config_options()
    slots: list[list[str]] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        name, eq, val = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        full = _resolve(name, opts) if tok.startswith("--") else None
        if full is None or not opts[full]:
            slots.append([tok])
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                slots.append([tok])  # argparse names the missing value
                break
            val = argv[i + 1]
        vals = _values(full, val, conf)
        slots.append([f"{name}={v}" for v in vals] if eq else [tok])
        if not eq:
            slots.append(vals)
        i += 1 if eq else 2
    return [list(c) for c in itertools.product(*slots)]


def _values(opt: str, val: str, conf: set[str]) -> list[str]:
    if opt not in conf:
        if MULTI_SEP in val:
            raise SpecError(
                f"{opt} {val!r} holds {MULTI_SEP!r}, but only configuration options (--seq, --plan, "
                f"--batch, ...) may list several values: {opt} takes one value"
            )
        return [val]
    vals = val.split(MULTI_SEP)
    for v in vals:
        if any(c.isdigit() and not c.isascii() for c in v):
            raise SpecError(f"{opt} {v!r} is not valid: numbers take ASCII digits 0-9 only")
    return vals


def _check_argv(argv: list[str], cfg: Config, check_seq: int) -> tuple[list[str], dict]:
    """argv of the check run: the same configuration at a length of at most ``check_seq``."""
    wl = cfg.workload
    key, cur = ("--context", wl.context) if wl.phase == Phase.DECODE else ("--seq", wl.seq_len)
    if check_seq <= 0 or cur <= check_seq:
        return argv, {key.lstrip("-"): cur, "reduced": False}
    from costmodel.strategies import length_multiple

    mult = length_multiple(cfg.plan, wl.phase)
    n = max(mult, check_seq // mult * mult)
    out = list(argv) + [key, str(n)]
    return out, {key.lstrip("-"): n, "reduced": True}


ALIGN_SPIN_S = 300e-6  # longer than a host needs to enqueue an event and a graph launch (tens of us)


def _sm_hz(device) -> float:
    """The SM clock (cycles per second) that torch.cuda._sleep counts, from the device's properties."""
    try:
        return float(torch.cuda.get_device_properties(device).clock_rate) * 1e3  # kHz
    except (AttributeError, RuntimeError):
        return 1.98e9  # H100/H200 SXM boost clock (NVIDIA datasheets)


def _time_reps(
    ex,
    n: int,
    device,
    wd: Watchdog | None = None,
    what: str = "pass",
    bound=(float("inf"), ""),
    first_bound=None,
    timing: str = "barrier",
    hosts: dict | None = None,
) -> list[float]:
    """Per-repetition seconds, max over ranks.  ``hosts`` (GPU, several ranks): filled with each repetition's
    spread of the hosts' start of the pass over ranks (``start_skew_us``: the last rank's host clock,
    CLOCK_MONOTONIC, shared on one machine, minus the first's, at the call of the pass) and each rank's
    time to enqueue it (``enqueue_us``, per rank: the median over repetitions), a diagnostic of what a
    P >= 2 step waits for at its first collective.  Each repetition is a watchdog step with ``bound`` (the
    first one ``first_bound`` if given).  ``timing="aligned"`` (GPU, several ranks): a one-element
    all-reduce on the compute stream just before the start event, so the clocks of all ranks start when the
    last rank's GPU arrives, not when each host left the barrier: the host-side release skew of the
    barrier (measured 60-70 us at P = 2 in a decode step's first all-reduce, 2026-11-28) stays out of the
    pass, as it does between consecutive steps of a serving loop.  The GPU then spins ``ALIGN_SPIN_S``
    before the start event, so that the host's own time to enqueue the pass is not in it either (without
    the spin the aligned steps measured 50-90 us longer than after a barrier alone: the start event ran as
    soon as the all-reduce ended, before the late host had launched the step)."""
    align = (
        torch.zeros(1, device=device)
        if timing == "aligned" and device.type == "cuda" and dist.get_world_size() > 1
        else None
    )
    ts, starts, enq = [], [], []
    for i in range(n):
        if wd is not None:
            b, why = first_bound if (i == 0 and first_bound) else bound
            wd.step(f"{what} {i + 1} of {n}", b, why)
        if i == 0 and first_bound:
            _stall_for_tests()
        if wd is not None:
            wd.tick(f"{what} {i + 1} of {n}: waiting for every rank at the barrier before it")
        dist.barrier()
        if wd is not None:
            wd.tick(f"{what} {i + 1} of {n}: running")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            if align is not None:
                dist.all_reduce(align)  # on the current (compute) stream: every GPU leaves it together
                # then spins ALIGN_SPIN_S on the GPU while this host enqueues the pass behind it: the
                # start event is recorded when the pass is already queued (not host launch latency)
                torch.cuda._sleep(int(ALIGN_SPIN_S * _sm_hz(device)))
            a.record()
            h0 = time.monotonic_ns()
            ex.run()
            h1 = time.monotonic_ns()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) / 1e3)
            starts.append(h0)
            enq.append(h1 - h0)
        else:
            t0 = time.perf_counter()
            ex.run()
            ts.append(time.perf_counter() - t0)
    t = torch.tensor(ts, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if hosts is not None and starts and dist.get_world_size() > 1:
        mine = torch.tensor([starts, enq], dtype=torch.int64, device=device)
        every = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(every, mine)
        st = torch.stack([e[0] for e in every]).double()  # (ranks, reps)
        hosts["start_skew_us"] = ((st.max(0).values - st.min(0).values) / 1e3).tolist()
        hosts["enqueue_us"] = [statistics.median((e[1].double() / 1e3).tolist()) for e in every]
    return t.tolist()


def pass_s(pred: dict, device) -> float:
    """The time one pass is expected to take here: the model's prediction (GPU), or on a CPU, where that
    means nothing, its FLOP at ``CPU_FLOPS`` if longer."""
    p = float(pred["latency_s"])
    if device.type != "cuda":
        p = max(p, float(pred.get("flops_per_device") or 0.0) / CPU_FLOPS)
    return p if math.isfinite(p) and p > 0 else 0.0  # no usable prediction: the floors alone


def bounds(pred: dict, a: argparse.Namespace, world: int, device) -> dict[str, tuple[float, str]]:
    """Seconds each step of one configuration may take, with how the figure was set."""
    floor, p = a.timeout_s, pass_s(pred, device)
    rule = f"max(--timeout-s {floor:g}, {STEP_FACTOR:g} x predicted pass time {p:.3g} s)"
    one = (max(floor, STEP_FACTOR * p), rule)
    # on GPU the first pass also makes NCCL's lazy connections: it gets the setup floor as well
    first = (
        (max(one[0], SETUP_FLOOR_S), f"{rule}, at least {SETUP_FLOOR_S:g} s for the first pass on GPU")
        if device.type == "cuda"
        else one
    )
    # the check: a pass at most this long, then the FP32 reference of all ranks' work on one device
    k = 3 + 16 * world
    check = (
        max(floor, STEP_FACTOR * k * p),
        (
            f"max(--timeout-s {floor:g}, {STEP_FACTOR:g} x {k} x predicted pass "
            f"time {p:.3g} s: the check's passes and its FP32 reference)"
        ),
    )
    setup = (max(floor, SETUP_FLOOR_S), f"max(--timeout-s {floor:g}, {SETUP_FLOOR_S:g} s of setup)")
    profile = (max(floor, SETUP_FLOOR_S + STEP_FACTOR * p), f"{SETUP_FLOOR_S:g} s + {rule}")
    return {"pass": one, "first": first, "check": check, "setup": setup, "profile": profile}


def _agree(flag: bool, device) -> bool:
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _refusal(cfg: Config, pred: dict, device) -> str | None:
    if not pred["feasible"]:
        return f"the model's verdict: {pred['verdict']}"
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        need = pred["memory_bytes_per_device"]["total"]
        if need > free:
            return (
                f"the model predicts {need / 1e9:.1f} GB per device "
                f"but this GPU has {free / 1e9:.1f} GB free "
                f"of {total / 1e9:.1f} GB"
            )
    return None


PREDICTED = (
    "latency_s",
    "tps",
    "feasible",
    "verdict",
    "bottleneck",
    "memory_bytes_per_device",
    "roofline_latency_s",
)


def _predicted(pred) -> dict:
    """What a record keeps of the model's prediction."""
    return {k: pred[k] for k in PREDICTED}


def precheck(argv: list[str], world: int) -> Config:
    """What ``real.run`` checks of one configuration before it measures it: the configuration itself,
    by the same rules as predict and simulate (``strategies.validate``), and the process count."""
    cfg = config_from_args(build_parser().parse_args(argv))
    if cfg.plan.n_ranks != world:
        raise SpecError(
            f"plan {cfg.plan.name} has {cfg.plan.n_ranks} ranks but torchrun started {world} processes; "
            f"use --nproc-per-node/--nnodes so that they match"
        )
    return cfg


GEN_STEPS_MAX = 32  # real.run measures every step of --gen-tokens: a short N


def measure_generation(argv: list[str], cfg: Config, a, groups, device, dtype, prov: dict) -> dict:
    """--gen-tokens N: N INDEPENDENT decode steps at the growing contexts of costmodel/generate.py (each a
    fresh executor whose cache already holds that many tokens), measured one after another and summed;
    not one cache grown in place across N replays."""
    n = generate.steps(cfg)
    recs = []
    for i, ctx in enumerate(generate.step_contexts(cfg)):
        step = list(argv) + ["--context", str(int(ctx)), "--gen-tokens", "1"]
        r = measure(step, a, groups, device, dtype, prov)
        if r.get("status") != "ok":
            return {**r, "generation": {"tokens": n, "failed_step": i, "context": int(ctx)}}
        recs.append(r)
    pred = predict(cfg)
    samples = [sum(s) for s in zip(*(r["latency_s"]["samples"] for r in recs))]
    med = statistics.median(samples)
    wl = cfg.workload
    out = dict(recs[0])
    out.update(
        specs=cfg.specs(),
        args=argv,
        predicted=_predicted(pred),
        latency_s=_latency(
            samples,
            a,
            f"sum over {n} independent decode steps at the growing contexts (each step: "
            + recs[0]["latency_s"]["how"]
            + "), per repetition",
        ),
        tps=wl.batch * n / med,
        predicted_over_measured_latency=pred["latency_s"] / med,
        generation={
            "tokens": n,
            "how": "N independent steps at the growing contexts, each a fresh "
            "executor with the cache at that length (not one cache grown "
            "in place)",
            "steps": [
                {
                    "context": r["specs"]["workload"]["context_len"],
                    "median_s": r["latency_s"]["median"],
                    "check_passed": (r.get("check") or {}).get("passed"),
                }
                for r in recs
            ],
            "tpot_mean_s": med / n,
            "predicted": pred.get("generation"),
        },
    )
    out.pop("check", None)
    # the executor's-profile prediction of the whole generation (the first step's came with recs[0])
    out.pop("predicted_executor", None)
    pe = _executor_prediction(argv, a, out["attn_kernel_real"]["chosen"])
    if pe is not None:
        out["predicted_executor"] = pe
    out["checks_passed"] = all(s["check_passed"] is not False for s in out["generation"]["steps"])
    return out


def measure(
    argv: list[str],
    a: argparse.Namespace,
    groups: comm.Groups,
    device,
    dtype,
    prov: dict,
    wd: Watchdog | None = None,
    index: int = 0,
) -> dict:
    world = dist.get_world_size()
    cfg = precheck(argv, world)
    if generate.steps(cfg) > 1:
        return measure_generation(argv, cfg, a, groups, device, dtype, prov)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # what the previous configuration left cached is free for this one
    pred = predict(cfg)
    bd = bounds(pred, a, world, device)
    name = f"configuration {index + 1} ({_name(cfg.specs())})"
    if wd is not None:
        wd.step(f"{name}: setup", *bd["setup"])
    rec: dict = {
        "record": "real.run",
        "schema": 1,
        "specs": cfg.specs(),
        "args": argv,
        "world_size": world,
        "dtype": str(dtype).replace("torch.", ""),
        "seed": a.seed,
        "exec_mode": a.fusion,  # eager or fused kernels (validate: fused ones vs the ideal profile)
        "predicted": _predicted(pred),
        "provenance": prov,
    }
    why = _refusal(cfg, pred, device)
    if not _agree(why is None, device):
        rec.update(status="refused", reason=why or "another rank refused (its GPU has less free memory)")
        return rec
    from costmodel.build import build_schedule

    sched = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, cfg.hardware, kernel=cfg.kernel)
    hq = cfg.model.n_heads // (cfg.plan.tp * cfg.plan.ulysses)
    probe_s = min(cfg.workload.seq_len // cfg.plan.ring, 8192)
    choice = kernels.choose(a.kernel, device, dtype, (1, hq, max(probe_s, 128), cfg.model.head_dim))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    ex = harness.make_executor(
        cfg,
        device=device,
        dtype=dtype,
        kernel=choice["chosen"],
        seed=a.seed,
        groups=groups,
        comm_priority=a.comm_priority,
        attn_split=a.attn_split,
        exec_mode=a.fusion,
    )
    graph = a.exec_mode == "graph"
    n_warm = max(a.warmup, 1) if graph else a.warmup
    _time_reps(ex, n_warm, device, wd, f"{name}: warm-up pass", bd["pass"], bd["first"], a.timing)
    if graph:
        if wd is not None:
            wd.step(f"{name}: CUDA graph capture", *bd["setup"])
        ex.capture()
        _time_reps(ex, a.warmup, device, wd, f"{name}: warm-up replay", bd["pass"], bd["first"], a.timing)
    hosts: dict = {}
    samples = _time_reps(
        ex,
        a.reps,
        device,
        wd,
        f"{name}: measured pass",
        bd["pass"],
        None if n_warm else bd["first"],
        a.timing,
        hosts,
    )
    if a.profile_dir:
        if wd is not None:
            wd.step(f"{name}: profiled pass", *bd["profile"])
        wl = cfg.workload
        size = (
            f"ctx{wl.context}_B{wl.batch}_{cfg.plan.decode_attn}"
            if wl.phase == Phase.DECODE
            else f"L{wl.seq_len}_B{wl.batch}"
        )
        quant = (f"_fp8{cfg.model.fp8}" if cfg.model.fp8 != "none" else "") + (
            f"_kv{cfg.model.kv_dtype}" if cfg.model.kv_dtype != "bf16" else ""
        )
        _profile(
            ex,
            a.profile_dir,
            f"{cfg.plan.name}_{cfg.model.name}_{size}_layers{cfg.model.layers}{quant}_{a.exec_mode}_{a.fusion}",
        )
    peak = torch.tensor(
        [torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0], device=device
    )
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    flops = max(sched.totals(r)["flops"] for r in range(world))
    fallbacks = _fused_fallbacks(ex)
    del ex
    med = statistics.median(samples)
    wl = cfg.workload
    tokens = wl.batch * (wl.seq_len if wl.phase == Phase.PREFILL else 1)
    how = (
        "CUDA events around one forward pass on each rank's compute stream (after a barrier and a device "
        "synchronise"
        + (
            ", then a one-element all-reduce on that stream: the ranks' clocks start together"
            if a.timing == "aligned" and world > 1
            else ""
        )
        + "), maximum over ranks per repetition"
        if device.type == "cuda"
        else "host clock, maximum over ranks"
    )
    if graph:
        how = how.replace("one forward pass", "one replay of the captured forward pass (its launch included)")
    rec.update(
        status="ok",
        attn_kernel_real=choice,
        exec=a.exec_mode,
        **({"fused_fallbacks": fallbacks} if a.fusion == "fused" else {}),  # {} unless a compile failed
        comm_priority=a.comm_priority,
        attn_split=a.attn_split,
        timing=a.timing if world > 1 else "single",
        **({"hosts": hosts} if hosts else {}),  # the hosts' start skew and enqueue time per pass (diagnostic)
        attn_gqa_native=dict(kernels.GQA_NATIVE),  # grouped-query K/V taken as they are, or expanded first
        latency_s=_latency(samples, a, how),
        tps=tokens / med,
        tflops_per_gpu=flops / med / 1e12,
        flops_per_gpu=flops,
        memory={
            "peak_allocated_bytes_max_over_ranks": int(peak.item()),
            "predicted_total_bytes": pred["memory_bytes_per_device"]["total"],
            "gpu_total_bytes": prov.get("gpu_memory_bytes"),
        },
        predicted_over_measured_latency=pred["latency_s"] / med,
    )
    pe = _executor_prediction(argv, a, choice["chosen"])
    if pe is not None:
        rec["predicted_executor"] = pe
    if not a.no_check:
        if wd is not None:
            wd.step(f"{name}: check against the FP32 reference", *bd["check"])
        rec["check"] = chk = check(argv, cfg, a, groups, device, dtype, choice["chosen"], index)
        if not chk["passed"]:
            worst = _worst(chk["attn_rel_err"])
            rec.update(
                status="failed",
                reason=f"check failed: relative error {chk['rel_err']:.3g} of the output and "
                f"{chk['attn_rel_err_max']:.3g} of layer {worst}'s attention output (the largest of the "
                f"layers) against the FP32 reference; the tolerance {chk['tol']:g} (output) or "
                f"{chk['attn_tol'][worst]:g} (layer {worst}) is exceeded",
            )
    return rec


def _executor_prediction(argv: list[str], a, chosen: str) -> dict | None:
    """The prediction ``ringsim validate`` holds this run against (``validation.compare.config_of``): the
    profile of the executor as it ran (``HW-eager`` or ``HW-graph``: its measured op figures, where the
    named profile has that variant) and the attention kernel the run used; ``predicted`` keeps the named
    profile's (the ideal kernels', 7-25% under what this executor runs).  None for the fused kernels (held
    against the named profile) or a profile without the variant."""
    from costmodel import presets

    if a.fusion == "fused":
        return None
    p = build_parser().parse_args(argv)
    name = f"{p.hardware}-{a.exec_mode}"
    if name not in presets.available("hardware"):
        return None
    p.hardware = name
    if chosen in ("flash", "cudnn"):
        p.attn_kernel = chosen
    pr = predict(config_from_args(p))
    return {"hardware": name, "attn_kernel": p.attn_kernel, "latency_s": pr["latency_s"]}


def _fused_fallbacks(ex) -> dict:
    """Fused mode: the fused functions that ran uncompiled on any rank because their compilation
    failed ({name: error}, rank 0's error for each name; {} when every one compiled)."""
    mine = dict(getattr(getattr(ex, "fk", None), "fallbacks", {}) or {})
    every: list = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    out: dict = {}
    for d in every:
        for k, v in (d or {}).items():
            out.setdefault(k, v)
    return out


def _latency(samples: list[float], a: argparse.Namespace, how: str) -> dict:
    """A record's latency_s: the median, min and max of the timed repetitions, and how they were timed."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
        "reps": a.reps,
        "warmup": a.warmup,
        "how": how,
    }


def _worst(errs: list[float]) -> int:
    """The layer with the largest error (a NaN counts as the largest)."""
    return max(range(len(errs)), key=lambda i: (math.isnan(errs[i]), errs[i]))


def _stall_for_tests() -> None:
    """Fault injection for the tests: RINGSIM_REAL_STALL='RANK:SECONDS' makes that rank stop answering
    (at the start of a configuration's first pass)."""
    spec = os.environ.get("RINGSIM_REAL_STALL")
    if spec and int(spec.split(":")[0]) == dist.get_rank():
        time.sleep(float(spec.split(":")[1]))


def _fault_for_tests(ex) -> None:
    """Fault injection for the tests: RINGSIM_REAL_FAULT=NAME breaks the check's executor the way
    ``real.selftest.FAULTS[NAME]`` says (a dropped ring block, ...), so that its check must fail."""
    name = os.environ.get("RINGSIM_REAL_FAULT")
    if name:
        from .selftest import FAULTS

        FAULTS[name](ex)


def _spoil_for_tests(out: torch.Tensor, index: int) -> torch.Tensor:
    """Fault injection for the tests: RINGSIM_REAL_BAD_CHECK=I (configuration numbers from 0, comma
    separated) makes those configurations' output wrong, so that their check fails."""
    spec = os.environ.get("RINGSIM_REAL_BAD_CHECK")
    if spec and str(index) in spec.split(","):
        return out + 1.0
    return out


def check(argv, cfg: Config, a, groups, device, dtype, kernel: str, index: int = 0) -> dict:
    """The check against the FP32 reference: the whole output (the residual stream after the last layer)
    and each layer's attention output (after the output projection, before the residual add), each
    within the tolerance.  The per-layer check is the one that sees a dropped ring block, LSE correction,
    micro-batch or ulysses piece: those change a layer's attention by tens of percent, but the residual
    stream by a few (``tests/test_fault_injection.py``)."""
    cargv, info = _check_argv(argv, cfg, parse_count(a.check_seq, "--check-seq") if a.check_seq != "0" else 0)
    ccfg = config_from_args(build_parser().parse_args(cargv))
    ex = harness.make_executor(  # the executor as measured: the same stream priority and kernel split
        ccfg,
        device=device,
        dtype=dtype,
        kernel=kernel,
        seed=a.seed + 1,
        groups=groups,
        comm_priority=a.comm_priority,
        attn_split=a.attn_split,
        exec_mode=a.fusion,
    )
    _fault_for_tests(ex)
    ex.probe = {}
    ex.run()
    if a.exec_mode == "graph":  # check what was measured: the replay of the captured pass
        ex.capture()
        ex.run()
    out = _spoil_for_tests(harness.gather_output(ex), index)
    head = harness.gather_logits(ex)  # the LM head's logits (None without one)
    attn = harness.gather_attn(ex)
    del ex
    layers = ccfg.model.layers
    errs = [0.0, -1.0] + [0.0] * layers  # the output, the logits (-1: no LM head), each layer's attention
    floor = [0.0] * (1 + layers)  # the noise floor: the reference itself in the run's dtype vs FP32
    if dist.get_rank() == 0:
        low_attn: list = []
        low = None
        if dtype != torch.float32:  # the same computation on one device in the run's dtype
            low = harness.reference_output(
                ccfg, device=device, seed=a.seed + 1, dtype=dtype, keep_attn=low_attn
            )
        ref32_attn: list | None = [] if low is not None else None
        ref, attn_errs = harness.reference_output(
            ccfg, device=device, seed=a.seed + 1, dtype=torch.float32, attn=attn, keep_attn=ref32_attn
        )
        if low is not None:
            floor = [harness.rel_err(low, ref)] + [
                harness.rel_err(x, r) for x, r in zip(low_attn, ref32_attn, strict=True)
            ]
        del low, low_attn, ref32_attn
        err_logits = -1.0
        if head is not None:
            ref_logits = harness.reference_logits(ccfg, ref, device=device, seed=a.seed + 1)
            err_logits = harness.rel_err(head[0], ref_logits)
            del ref_logits
        errs = [harness.rel_err(out, ref), err_logits, *attn_errs]
        del ref
    del out, attn, head
    t = torch.tensor(errs + floor, dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    vals = [float(x) for x in t.tolist()]
    err, err_logits, *attn_errs = vals[: 2 + layers]
    # a reference that overflowed in the run's dtype says nothing of its rounding: no floor (never an
    # infinite tolerance)
    floor_out, *floor_attn = (f if math.isfinite(f) else 0.0 for f in vals[2 + layers :])
    if err_logits >= 0:  # the LM head ran: its logits are held to the same tolerance
        info["rel_err_hidden"], info["rel_err_logits"] = err, err_logits
        err = max(err, err_logits)
    attn_max = attn_errs[_worst(attn_errs)]  # a NaN is the largest, and fails the check
    # at least NOISE_FACTOR times the noise floor: a deep or long model's BF16 rounding alone reaches the
    # dtype's tolerance (llama3-8b, 32 layers, 10Ki: 0.021 at the last layer, 2026-11-28 lease C)
    tol = max(check_tolerance(ccfg, dtype), NOISE_FACTOR * floor_out)
    attn_tol = [
        max(t_, NOISE_FACTOR * f)
        for t_, f in zip(attn_check_tolerances(ccfg, dtype), floor_attn, strict=True)
    ]
    return {
        **info,
        "layers": layers,
        "batch": ccfg.workload.batch,
        "kernel": kernel,
        "exec": a.exec_mode,
        "exec_mode": a.fusion,
        "rel_err": err,
        "attn_rel_err": attn_errs,
        "noise_floor_rel_err": floor_out,  # the reference in the run's dtype vs FP32 (0: an FP32 run)
        "noise_floor_attn_rel_err": floor_attn,
        "attn_rel_err_max": attn_max,
        "tol": tol,
        "attn_tol": attn_tol,
        "passed": err <= tol and all(e <= t for e, t in zip(attn_errs, attn_tol, strict=True)),
        "reference": "single device, whole sequence, FP32 (SDPA on GPU, TF32 off; plain softmax on CPU)"
        + (
            "; the reference is not quantised (FP8 tolerance)"
            if ccfg.model.fp8 != "none" or ccfg.model.kv_dtype != "bf16"
            else ""
        ),
        "tolerance_rule": f"the dtype's (FP8: the FP8 rule), at least {NOISE_FACTOR:g} x the noise floor: "
        "the same single-device reference run in the run's dtype against the FP32 one, per output and layer",
        "metric": "||out - ref||_F / ||ref||_F over the whole output (rel_err; with an LM head the larger of "
        "that and the same over the logits) and over each layer's attention output after the output "
        "projection, before the residual add (attn_rel_err)",
    }


def _profile(ex, out_dir: str, name: str) -> None:
    from torch.profiler import ProfilerActivity, profile, schedule

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, re.sub(r"[^A-Za-z0-9_.-]+", "_", f"trace_{name}_rank{dist.get_rank()}.json"))
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ex.device.type == "cuda" else [])
    # one pass under the profiler to warm it up (its first pass pays the profiler's own setup), one recorded
    sched = schedule(wait=0, warmup=1, active=1, repeat=1)
    with profile(
        activities=acts, schedule=sched, on_trace_ready=lambda p: p.export_chrome_trace(path)
    ) as prof:
        for _ in range(2):
            ex.run()
            if ex.device.type == "cuda":
                torch.cuda.synchronize(ex.device)
            prof.step()


def preflight(argv: list[str]) -> tuple[list[list[str]], argparse.Namespace, list[Config]]:
    """Every check of the input that needs neither the other ranks nor the files (each rank runs it;
    they all see the same argv): SpecError on the first bad option."""
    combos = expand(argv)
    a = build_parser().parse_args(combos[0])  # measurement options: one value, the same in every combination
    if not (math.isfinite(a.timeout_s) and a.timeout_s > 0):
        raise SpecError(
            f"--timeout-s {a.timeout_s:g} is not valid: a positive, finite number of seconds "
            f"(default {TIMEOUT_FLOOR_S:g})"
        )
    if not 5 <= a.reps <= REPS_MAX:
        raise SpecError(f"--reps {a.reps} is not valid: 5 to {REPS_MAX} repetitions are measured")
    if not 0 <= a.warmup <= WARMUP_MAX:
        raise SpecError(f"--warmup {a.warmup} is not valid: 0 to {WARMUP_MAX} unmeasured repetitions")
    if not 1 <= a.attn_split <= 64:
        raise SpecError(f"--attn-split {a.attn_split} is not valid: 1 to 64 kernels per attention call")
    if not 0 <= a.seed < 2**63:
        raise SpecError(f"--seed {a.seed} is not valid: 0 to 2**63 - 1")
    if a.check_seq.strip() != "0":
        parse_count(a.check_seq, "--check-seq")
    if not a.out.strip():
        raise SpecError("--out '' is not valid: name a JSONL file")
    cfgs = [
        config_from_args(build_parser().parse_args(c)) for c in combos
    ]  # every combination, before any runs
    for c in cfgs:  # --gen-tokens: real.run measures every step
        n = generate.steps(c)
        if n > GEN_STEPS_MAX:
            raise SpecError(
                f"--gen-tokens {n} is not valid for real.run: it measures every step, at most "
                f"{GEN_STEPS_MAX}; predict and simulate take any N"
            )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    for c in cfgs:
        if c.plan.n_ranks != world:
            raise SpecError(
                f"plan {c.plan.name} has {c.plan.n_ranks} ranks but torchrun started {world} processes; "
                f"use --nproc-per-node/--nnodes so that they match"
            )
    return combos, a, cfgs


def _device_checks(a: argparse.Namespace, device, dtype) -> None:
    if a.exec_mode == "graph" and device.type != "cuda":
        raise SpecError(
            "--exec graph needs a CUDA GPU (it captures the pass as a CUDA graph); valid here: --exec eager"
        )
    if a.kernel != "auto":
        why = kernels.probe(a.kernel, device, dtype)
        if why is not None:
            valid = ["auto"] + [
                k for k in kernels.KERNELS[:3] if k == "math" or kernels.probe(k, device, dtype) is None
            ]
            here = (
                "on CPU"
                if device.type != "cuda"
                else f"on {torch.cuda.get_device_name(device)} in {a.dtype or 'bf16'}"
            )
            raise SpecError(
                f"--kernel {a.kernel} does not run {here} ({why}); valid here: {', '.join(valid)}"
            )


def _fp8_checks(cfgs: list[Config], device, dtype) -> None:
    """--fp8 on a GPU runs torch._scaled_mm (BF16 out); on CPU the executor emulates FP8 (any dtype)."""
    fp8 = sorted({str(c.model.fp8) for c in cfgs} - {"none"})
    if not fp8 or device.type != "cuda":
        return
    from .model import scaled_mm_available

    why = scaled_mm_available(device)
    if why is not None:
        raise SpecError(f"--fp8 {fp8[0]} cannot run here: {why}; valid here: --fp8 none")
    if dtype != torch.bfloat16:
        raise SpecError(
            f"--fp8 {fp8[0]} on a GPU needs --dtype bf16 (torch._scaled_mm's row-wise scaling writes BF16)"
        )


def _writable_dir(path: str, field: str) -> None:
    """``path`` is (or can be created as) a folder this process can write in; nothing is left behind."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise SpecError(f"{field} {path!r} is not a folder")
    q = p
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise SpecError(f"{field} {path!r} cannot be created: {str(q)!r} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=q, prefix=".ringsim-probe-").cleanup()
    except OSError as e:
        where = "is" if q == p else f"would be created in {str(q)!r}, which is"
        raise SpecError(f"{field} {path!r} {where} not writable ({e.strerror or e})") from None


def _writable_file(path: str, field: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise SpecError(f"{field} {path!r} is a folder: name a JSONL file, e.g. {str(p / 'records.jsonl')!r}")
    if p.exists():
        try:
            open(p, "ab").close()  # appending nothing: the file is as it was
        except OSError as e:
            raise SpecError(
                f"{field} {path!r} cannot be appended to ({e.strerror or e}): name a writable file"
            ) from None
    else:
        try:
            _writable_dir(str(p.parent), "folder")
        except SpecError as e:
            raise SpecError(f"{field} {path!r} cannot be written: its {e}") from None


def _file_checks(a: argparse.Namespace, rank: int) -> str | None:
    """The files this rank writes can be written: None, or the sentence that says why not (a path the
    system refuses to look at, such as a name longer than the file system takes, included)."""
    checks = ([(_writable_file, a.out, "--out")] if rank == 0 else []) + (
        [(_writable_dir, a.profile_dir, "--profile-dir")] if a.profile_dir else []
    )
    for check, path, field in checks:
        try:
            check(path, field)
        except SpecError as e:
            return str(e)
        except OSError as e:  # ENAMETOOLONG, ELOOP, EACCES on the way, ...: os.stat's own refusal
            return f"{field} {path!r} cannot be used ({e.strerror or e}): name a file it can write"
    return None


def _main(argv: list[str]) -> int:
    combos, a, cfgs = preflight(argv)
    device = harness.local_device()
    dtype = _DTYPES[a.dtype] if a.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    _device_checks(a, device, dtype)
    _fp8_checks(cfgs, device, dtype)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    steps = [b for c in cfgs for b, _ in bounds(predict(c), a, world, device).values()]
    backstop = max(steps) + 2 * SETUP_FLOOR_S  # the process group's own timeout: after the watchdog's
    harness.init_distributed(
        "nccl" if device.type == "cuda" else "gloo", max(a.timeout_s, SETUP_FLOOR_S), device
    )
    rank = dist.get_rank()
    why: list = [None] * dist.get_world_size()
    dist.all_gather_object(why, _file_checks(a, rank))  # every rank stops, or none
    bad = [(r, w) for r, w in enumerate(why) if w]
    if bad:
        dist.destroy_process_group()
        r, w = bad[0]
        raise SpecError(w if r == 0 else f"on rank {r}: {w}")
    with contextlib.suppress(Exception):  # an older torch: the setup timeout stays
        from torch.distributed.distributed_c10d import _set_pg_timeout

        _set_pg_timeout(datetime.timedelta(seconds=backstop))
    wd = Watchdog(rank, dist.get_world_size())
    try:  # the watchdog stops however this ends (an interruption in a job of one process must not leave
        # its thread behind, to end the process later)
        wd.step(
            "start: provenance",
            max(a.timeout_s, SETUP_FLOOR_S),
            f"max(--timeout-s, {SETUP_FLOOR_S:g} s of setup)",
        )
        per_rank: list = [None] * dist.get_world_size()
        dist.all_gather_object(per_rank, provenance.local())
        prov = provenance.collect(per_rank)
        groups = comm.Groups()
        failed = []
        for i, c in enumerate(combos):
            rec = measure(c, build_parser().parse_args(c), groups, device, dtype, prov, wd, i)
            if rec["status"] == "failed":
                failed.append(f"configuration {i + 1} ({_name(rec['specs'])}): {rec['reason']}")
            wd.step(
                f"configuration {i + 1}: writing its record", max(a.timeout_s, SETUP_FLOOR_S), "setup floor"
            )
            if rank == 0:
                append_jsonl(a.out, rec)
                _say(rec)
        wd.step("end: every rank finishing", max(a.timeout_s, SETUP_FLOOR_S), "setup floor")
        dist.barrier()
    finally:
        wd.stop()
    dist.destroy_process_group()
    if failed:
        if rank == 0:
            print(
                f"real.run: error: {len(failed)} of {len(combos)} configurations failed their check (their "
                f"records say status failed; ringsim validate leaves them out): {'; '.join(failed)}",
                file=sys.stderr,
                flush=True,
            )
        return 1
    return 0


def _name(s: dict) -> str:
    wl = s["workload"]
    n = f"context={wl['context_len'] or wl['seq_len']}" if wl["phase"] == "decode" else f"L={wl['seq_len']}"
    if wl.get("cached_len"):  # partial prefill: the cached tokens before the L new ones
        n += f" C={wl['cached_len']}"
    return f"{s['plan']['name']} {n} B={wl['batch']} layers={s['model']['layers']} {wl['phase']}" + (
        f" {s['plan']['decode_attn']}" if wl["phase"] == "decode" and s["plan"]["ring"] > 1 else ""
    )


def _say(rec: dict) -> None:
    name = _name(rec["specs"])
    if rec["status"] == "refused":
        print(f"real.run: REFUSED {name}: {rec['reason']}", flush=True)
        return
    lat = rec["latency_s"]
    chk = rec.get("check")
    c = (
        f" check rel_err={chk['rel_err']:.2e} attn max {chk['attn_rel_err_max']:.2e} "
        f"({'pass' if chk['passed'] else 'FAIL'})"
        if chk
        else ""
    )
    print(
        f"real.run: {'FAILED ' if rec['status'] == 'failed' else ''}{name} "
        f"kernel={rec['attn_kernel_real']['chosen']} "
        f"{rec.get('exec', 'eager')}/{rec.get('exec_mode', 'eager')} "
        f"median {lat['median'] * 1e3:.2f} ms "
        f"(min {lat['min'] * 1e3:.2f}, max {lat['max'] * 1e3:.2f}) {rec['tflops_per_gpu']:.1f} TFLOP/s/GPU "
        f"{_predicted_text(rec)}{c}",
        flush=True,
    )


def _predicted_text(rec: dict) -> str:
    """The record's prediction as its line says it: the executor's profile's where the record has it (what
    ``ringsim validate`` compares), the named profile's beside it."""
    ideal = rec["predicted"]["latency_s"] * 1e3
    pe = rec.get("predicted_executor")
    if not pe:
        return f"predicted {ideal:.2f} ms"
    return (
        f"predicted {pe['latency_s'] * 1e3:.2f} ms with {pe['hardware']} (the executor's profile, as "
        f"validate compares; {ideal:.2f} ms with {rec['specs']['hardware']}'s ideal kernels)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rank = os.environ.get("RANK", "0")
    try:
        return _main(argv)
    except SpecError as e:
        if rank == "0":
            print(f"real.run: error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(
            f"real.run: rank {rank}: interrupted; records already written are kept",
            file=sys.stderr,
            flush=True,
        )
        return 130
    except Exception as e:  # noqa: BLE001 - any failure ends this rank with a clear line
        traceback.print_exc()
        print(
            f"real.run: rank {rank}: error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            f"(every rank stops; records already written are kept)",
            file=sys.stderr,
            flush=True,
        )
        sys.stderr.flush()
        os._exit(1)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
