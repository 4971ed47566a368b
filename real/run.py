"""Measure configurations for real: ``torchrun --nproc-per-node N -m real.run <predict's options> --out F.jsonl``.

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

Bad input: one sentence, exit 2.  A failure on any rank (NCCL error or a collective that outlives
``--timeout-s``) ends every rank with an error naming the rank; torchrun then stops the others.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import sys
import time
import traceback

import torch
import torch.distributed as dist

from costmodel import generate
from costmodel.config import Config
from ringsim.options import add_config_arguments, config_from_args
from costmodel.errors import SpecError
from costmodel.predict import predict
from costmodel.results import append_jsonl
from costmodel.specs import Phase
from costmodel.units import parse_count

from . import comm, harness, kernels, provenance

MULTI_SEP = ";"
TOL = {torch.bfloat16: 1e-2, torch.float16: 1e-2, torch.float32: 1e-5}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun --nproc-per-node N -m real.run", description=__doc__.split("\n")[0])
    add_config_arguments(p)
    g = p.add_argument_group("measurement")
    g.add_argument("--out", required=True, help="JSONL file; one record is appended per configuration")
    g.add_argument("--reps", type=int, default=5, help="measured repetitions (>= 5; default 5)")
    g.add_argument("--warmup", type=int, default=2, help="unmeasured repetitions first (default 2)")
    g.add_argument("--kernel", default="auto", choices=["auto"] + list(kernels.KERNELS[:3]),
                   help="attention kernel run for real (default auto: the fastest that works here)")
    g.add_argument("--dtype", default=None, choices=list(_DTYPES), help="default bf16 on GPU, fp32 on CPU")
    g.add_argument("--exec", dest="exec_mode", default="eager", choices=["eager", "graph"],
                   help="eager: the host issues op by op (default); graph: one CUDA graph replay per pass (GPU only)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    g.add_argument("--check-seq", default="8Ki",
                   help="GPU check length: the check runs at min(--seq, this) (decode: --context); 0 = full")
    g.add_argument("--no-check", action="store_true", help="skip the check against the FP32 reference")
    g.add_argument("--timeout-s", type=float, default=600.0, help="a collective that takes longer fails the run")
    g.add_argument("--profile-dir", default=None, help="write a Chrome trace of one extra pass per rank here")
    return p


def expand(argv: list[str]) -> list[list[str]]:
    """Split every option value holding ';' into the product of argv lists."""
    slots: list[list[str]] = []
    for a in argv:
        slots.append([v for v in a.split(MULTI_SEP)] if (MULTI_SEP in a and not a.startswith("--")) else [a])
    return [list(c) for c in itertools.product(*slots)]


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


def _time_reps(ex, n: int, device) -> list[float]:
    """Per-repetition seconds, max over ranks."""
    ts = []
    for _ in range(n):
        dist.barrier()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            ex.run()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            ex.run()
            ts.append(time.perf_counter() - t0)
    t = torch.tensor(ts, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


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
            return (f"the model predicts {need / 1e9:.1f} GB per device but this GPU has {free / 1e9:.1f} GB free "
                    f"of {total / 1e9:.1f} GB")
    return None


def precheck(argv: list[str], world: int) -> Config:
    """What ``real.run`` checks of one configuration before it measures it: the configuration itself,
    by the same rules as predict and simulate (``strategies.validate``), and the process count."""
    cfg = config_from_args(build_parser().parse_args(argv))
    if cfg.plan.n_ranks != world:
        raise SpecError(f"plan {cfg.plan.name} has {cfg.plan.n_ranks} ranks but torchrun started {world} processes; "
                        f"use --nproc-per-node/--nnodes so that they match")
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
    out.update(specs=cfg.specs(), args=argv,
               predicted={k: pred[k] for k in ("latency_s", "tps", "feasible", "verdict", "bottleneck",
                                               "memory_bytes_per_device", "roofline_latency_s")},
               latency_s={"median": med, "min": min(samples), "max": max(samples), "samples": samples,
                          "reps": a.reps, "warmup": a.warmup,
                          "how": f"sum over {n} independent decode steps at the growing contexts (each step: "
                                 + recs[0]["latency_s"]["how"] + "), per repetition"},
               tps=wl.batch * n / med, predicted_over_measured_latency=pred["latency_s"] / med,
               generation={"tokens": n, "how": "N independent steps at the growing contexts, each a fresh "
                                               "executor with the cache at that length (not one cache grown "
                                               "in place)",
                           "steps": [{"context": r["specs"]["workload"]["context_len"],
                                      "median_s": r["latency_s"]["median"],
                                      "check_passed": (r.get("check") or {}).get("passed")} for r in recs],
                           "tpot_mean_s": med / n, "predicted": pred.get("generation")})
    out.pop("check", None)
    out["checks_passed"] = all(s["check_passed"] is not False for s in out["generation"]["steps"])
    return out


def measure(argv: list[str], a: argparse.Namespace, groups: comm.Groups, device, dtype, prov: dict) -> dict:
    world = dist.get_world_size()
    cfg = precheck(argv, world)
    if generate.steps(cfg) > 1:
        return measure_generation(argv, cfg, a, groups, device, dtype, prov)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # what the previous configuration left cached is free for this one
    pred = predict(cfg)
    rec: dict = {"record": "real.run", "schema": 1, "specs": cfg.specs(), "args": argv, "world_size": world,
                 "dtype": str(dtype).replace("torch.", ""), "seed": a.seed,
                 "predicted": {k: pred[k] for k in ("latency_s", "tps", "feasible", "verdict", "bottleneck",
                                                    "memory_bytes_per_device", "roofline_latency_s")},
                 "provenance": prov}
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
    ex = harness.make_executor(cfg, device=device, dtype=dtype, kernel=choice["chosen"], seed=a.seed, groups=groups)
    _stall_for_tests()
    graph = a.exec_mode == "graph"
    _time_reps(ex, max(a.warmup, 1) if graph else a.warmup, device)
    if graph:
        ex.capture()
        _time_reps(ex, a.warmup, device)
    samples = _time_reps(ex, a.reps, device)
    if a.profile_dir:
        wl = cfg.workload
        size = f"ctx{wl.context}_B{wl.batch}_{cfg.plan.decode_attn}" if wl.phase == Phase.DECODE else f"L{wl.seq_len}_B{wl.batch}"
        _profile(ex, a.profile_dir, f"{cfg.plan.name}_{size}_layers{cfg.model.layers}_{a.exec_mode}")
    peak = torch.tensor([torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0], device=device)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    flops = max(sched.totals(r)["flops"] for r in range(world))
    del ex
    med = statistics.median(samples)
    wl = cfg.workload
    tokens = wl.batch * (wl.seq_len if wl.phase == Phase.PREFILL else 1)
    how = ("CUDA events around one forward pass on each rank's compute stream (after a barrier and a device "
           "synchronise), maximum over ranks per repetition" if device.type == "cuda" else
           "host clock, maximum over ranks")
    if graph:
        how = how.replace("one forward pass", "one replay of the captured forward pass (its launch included)")
    rec.update(status="ok", attn_kernel_real=choice, exec=a.exec_mode,
               latency_s={"median": med, "min": min(samples), "max": max(samples), "samples": samples,
                          "reps": a.reps, "warmup": a.warmup, "how": how},
               tps=tokens / med, tflops_per_gpu=flops / med / 1e12, flops_per_gpu=flops,
               memory={"peak_allocated_bytes_max_over_ranks": int(peak.item()),
                       "predicted_total_bytes": pred["memory_bytes_per_device"]["total"],
                       "gpu_total_bytes": prov.get("gpu_memory_bytes")},
               predicted_over_measured_latency=pred["latency_s"] / med)
    if not a.no_check:
        rec["check"] = check(argv, cfg, a, groups, device, dtype, choice["chosen"])
    return rec


def _stall_for_tests() -> None:
    """Fault injection for the tests: RINGSIM_REAL_STALL='RANK:SECONDS' makes that rank stop answering."""
    spec = os.environ.get("RINGSIM_REAL_STALL")
    if spec and int(spec.split(":")[0]) == dist.get_rank():
        time.sleep(float(spec.split(":")[1]))


def check(argv, cfg: Config, a, groups, device, dtype, kernel: str) -> dict:
    cargv, info = _check_argv(argv, cfg, parse_count(a.check_seq, "--check-seq") if a.check_seq != "0" else 0)
    ccfg = config_from_args(build_parser().parse_args(cargv))
    ex = harness.make_executor(ccfg, device=device, dtype=dtype, kernel=kernel, seed=a.seed + 1, groups=groups)
    ex.run()
    if a.exec_mode == "graph":  # check what was measured: the replay of the captured pass
        ex.capture()
        ex.run()
    out = harness.gather_output(ex)
    del ex
    err = None
    if dist.get_rank() == 0:
        ref = harness.reference_output(ccfg, device=device, seed=a.seed + 1, dtype=torch.float32)
        err = harness.rel_err(out, ref)
        del ref
    del out
    t = torch.tensor([err if err is not None else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    err = float(t.item())
    tol = TOL[dtype]
    return {**info, "layers": ccfg.model.layers, "batch": ccfg.workload.batch, "kernel": kernel, "exec": a.exec_mode,
            "rel_err": err, "tol": tol, "passed": err <= tol,
            "reference": "single device, whole sequence, FP32 (SDPA on GPU, TF32 off; plain softmax on CPU)",
            "metric": "||out - ref||_F / ||ref||_F over the whole output"}


def _profile(ex, out_dir: str, name: str) -> None:
    from torch.profiler import ProfilerActivity, profile
    os.makedirs(out_dir, exist_ok=True)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ex.device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        ex.run()
        if ex.device.type == "cuda":
            torch.cuda.synchronize(ex.device)
    prof.export_chrome_trace(os.path.join(out_dir, re.sub(r"[^A-Za-z0-9_.-]+", "_", f"trace_{name}_rank{dist.get_rank()}.json")))


def _main(argv: list[str]) -> int:
    combos = expand(argv)
    a = build_parser().parse_args(combos[0])
    if a.reps < 5:
        raise SpecError(f"--reps {a.reps} is not valid: at least 5 repetitions are measured")
    if a.warmup < 0:
        raise SpecError(f"--warmup {a.warmup} is not valid: must be >= 0")
    for c in combos:  # every combination is valid before anything runs
        n = generate.steps(config_from_args(build_parser().parse_args(c)))
        if n > GEN_STEPS_MAX:
            raise SpecError(f"--gen-tokens {n} is not valid for real.run: it measures every step, at most "
                            f"{GEN_STEPS_MAX}; predict and simulate take any N")
    device = harness.local_device()
    if a.exec_mode == "graph" and device.type != "cuda":
        raise SpecError("--exec graph needs a CUDA GPU (it captures the pass as a CUDA graph); valid here: --exec eager")
    dtype = _DTYPES[a.dtype] if a.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    harness.init_distributed("nccl" if device.type == "cuda" else "gloo", a.timeout_s, device)
    per_rank: list = [None] * dist.get_world_size()
    dist.all_gather_object(per_rank, provenance.local())
    prov = provenance.collect(per_rank)
    groups = comm.Groups()
    rank = dist.get_rank()
    for c in combos:
        rec = measure(c, build_parser().parse_args(c), groups, device, dtype, prov)
        if rank == 0:
            append_jsonl(a.out, rec)
            _say(rec)
    dist.barrier()
    dist.destroy_process_group()
    return 0


def _say(rec: dict) -> None:
    s = rec["specs"]
    wl = s["workload"]
    n = f"context={wl['context_len'] or wl['seq_len']}" if wl["phase"] == "decode" else f"L={wl['seq_len']}"
    name = (f"{s['plan']['name']} {n} B={wl['batch']} layers={s['model']['layers']} {wl['phase']}"
            + (f" {s['plan']['decode_attn']}" if wl["phase"] == "decode" and s["plan"]["ring"] > 1 else ""))
    if rec["status"] != "ok":
        print(f"real.run: REFUSED {name}: {rec['reason']}", flush=True)
        return
    lat = rec["latency_s"]
    chk = rec.get("check")
    c = f" check rel_err={chk['rel_err']:.2e} ({'pass' if chk['passed'] else 'FAIL'})" if chk else ""
    print(f"real.run: {name} kernel={rec['attn_kernel_real']['chosen']} median {lat['median'] * 1e3:.2f} ms "
          f"(min {lat['min'] * 1e3:.2f}, max {lat['max'] * 1e3:.2f}) {rec['tflops_per_gpu']:.1f} TFLOP/s/GPU "
          f"predicted {rec['predicted']['latency_s'] * 1e3:.2f} ms{c}", flush=True)


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
        print(f"real.run: rank {rank}: interrupted; records already written are kept", file=sys.stderr, flush=True)
        return 130
    except Exception as e:  # noqa: BLE001 - any failure ends this rank with a clear line
        traceback.print_exc()
        print(f"real.run: rank {rank}: error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
              f"(every rank stops; records already written are kept)", file=sys.stderr, flush=True)
        sys.stderr.flush()
        os._exit(1)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
