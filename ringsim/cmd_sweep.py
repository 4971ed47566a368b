"""ringsim sweep: the analytic model over L x P x plans, written as columns (sweep.npz, sweep.csv) beside a
manifest (sweep.json: specs, skipped pairs, point count, file names)."""

from __future__ import annotations

import argparse
import importlib
import os
import threading
import time
from pathlib import Path

import numpy as np

from costmodel import presets
from costmodel.config import parse_cached
from costmodel.errors import SpecError
from costmodel.npzstream import NpzStream
from costmodel.plan import DecodeAttn, PrefillAttn, RingVariant
from costmodel.results import CsvStream, write_sweep_files
from costmodel.specs import AttnKernel, Phase
from costmodel.sweep import lcm_multiple, parse_template, run_sweep, seq_grid
from costmodel.topology import TopoKind
from costmodel.units import parse_count, parse_range
from ringsim.argtypes import ascii_int

DEFAULT_PLANS = ["ring=P", "tp=8,pp=P/8", "tp=8,ring=P/8"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seq",
        default="8Ki:1Mi",
        help="range START:END of sequence (or context) lengths, both ends in the grid "
        "(k, M: x1000, x1000000; Ki, Mi: x1024, x1048576)",
    )
    p.add_argument("--points", type=ascii_int, default=48, help="lengths in the geometric grid")
    p.add_argument("--gpus", default="8,16,32,64", help="device counts P, comma separated")
    p.add_argument(
        "--plans", nargs="+", default=DEFAULT_PLANS, help="plan templates in P, e.g. 'ring=P' 'tp=8,pp=P/8'"
    )
    p.add_argument(
        "--topology",
        default="nvlink-domain",
        choices=[k.value for k in TopoKind],
        help="topology kind; its size follows P (ib: 8-GPU nodes; nvl: NVLink domains of up to 72 GPUs "
        "joined by InfiniBand)",
    )
    p.add_argument(
        "--hardware", default="h100-sxm", help="hardware preset (ringsim presets) or a profile .toml"
    )
    p.add_argument("--model", default="seed-dense", help="model preset (ringsim presets) or a model .toml")
    p.add_argument("--layers", type=ascii_int, default=None)
    p.add_argument(
        "--fp8", default=None, choices=["none", "ffn", "linear"], help="GEMMs in FP8 (default: the model's)"
    )
    p.add_argument(
        "--kv-dtype", default=None, choices=["bf16", "fp8"], help="KV cache dtype (default: the model's)"
    )
    p.add_argument("--batch", default="1")
    p.add_argument("--phase", default="prefill", choices=[ph.value for ph in Phase])
    p.add_argument("--no-causal", action="store_true")
    p.add_argument("--ring-variant", default="zigzag", choices=[v.value for v in RingVariant])
    p.add_argument("--decode-attn", default="allgather", choices=[v.value for v in DecodeAttn])
    p.add_argument(
        "--cached",
        default="0",
        help="prefill: tokens per sequence already in the KV cache before the L new ones (partial prefill)",
    )
    p.add_argument(
        "--prefill-attn",
        default="pass-kv",
        choices=[v.value for v in PrefillAttn],
        help="what the plans with a ring circulate in prefill: pass-kv (K/V blocks) | pass-q (new queries)",
    )
    p.add_argument(
        "--attn-kernel",
        default="auto",
        choices=[k.value for k in AttnKernel],
        help="auto (default): the fastest of the profile's kernels call by call; the attn_kernel_used "
        "column names the kernel(s) each point assumed",
    )
    p.add_argument("--out", required=True, help="output folder (sweep.npz, sweep.csv, sweep.json)")
    p.add_argument(
        "--no-csv",
        action="store_true",
        help="write the binary columns (sweep.npz) and the manifest only: the CSV is about half of the "
        "time of a sweep of millions of points",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _bar(it):
    """A progress bar over the plans (tqdm imported here: --quiet runs without it, ~0.1 s of start-up)."""
    from tqdm import tqdm

    return tqdm(it, desc="plans", unit="plan")


def _check_out(path: str) -> None:
    """--out can be made and written, checked before the sweep runs (and before anything is created)."""
    p = Path(path).absolute()
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise SpecError(f"--out {path!r} cannot be created: {str(q)!r} is not a folder")
    if not os.access(q, os.W_OK):
        raise SpecError(f"--out {path!r} is not writable")


def _reuse_freed_memory() -> None:
    """glibc's allocator told to serve blocks up to 32 MiB from its heaps and to keep up to 128 MiB freed
    there (the defaults: a fresh ``mmap`` from 128 KiB-32 MiB up, returned to the kernel when freed):
    the sweep's temporaries and the CSV writer's buffers (polars hands each ~8 MB of text to Python as a
    fresh bytes object) then reuse memory instead of faulting in fresh pages (~70k page faults and
    0.1-0.3 s of system time fewer on this project's VMs; peak memory the same).  Nothing where the C
    library is not glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError, TypeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 128 << 20)  # M_TRIM_THRESHOLD


def run(a: argparse.Namespace) -> int:
    lo, hi = parse_range(a.seq)
    try:
        if not a.gpus.isascii():  # int() would read '８' or '٨' as 8
            raise ValueError
        gpus = sorted({int(x) for x in a.gpus.split(",")})
    except ValueError:
        raise SpecError(
            f"--gpus {a.gpus!r} is not valid: use comma-separated integers, e.g. 8,16,32"
        ) from None
    if min(gpus) < 1:
        raise SpecError(
            f"--gpus {a.gpus!r} is not valid: device counts must be positive integers, e.g. 8,16,32"
        )
    if a.points < 1:
        raise SpecError(f"--points {a.points} must be >= 1")
    cached = parse_cached(a.cached)
    if cached and a.phase != "prefill":
        raise SpecError(
            f"--cached {cached} applies to prefill only: a decode step's cache is --seq (its context)"
        )
    _check_out(a.out)
    templates = [parse_template(t) for t in a.plans]
    hw = presets.load_hardware(a.hardware)
    model = presets.load_model(a.model, layers=a.layers, fp8=a.fp8, kv_dtype=a.kv_dtype)
    mult = lcm_multiple(templates, gpus, a.ring_variant)
    seqs = seq_grid(lo, hi, a.points, mult)
    if not a.no_csv:  # the CSV's writer (polars: ~0.35 s of imports) loads beside the sweep, not after it
        threading.Thread(target=importlib.import_module, args=("polars",), name="import-polars").start()
    batch = parse_count(a.batch, "--batch")
    specs = {
        "kind": "sweep",
        "engine": "analytic",
        "hardware": hw.name,
        "hardware_provenance": dict(hw.provenance),
        "model": model.name,
        "model_fields": {
            k: str(getattr(model, k)) if k in ("fp8", "kv_dtype") else getattr(model, k)
            for k in ("layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "fp8", "kv_dtype")
        },
        "topology": a.topology,
        "phase": a.phase,
        "causal": not a.no_causal,
        "batch": batch,
        "ring_variant": a.ring_variant,
        "decode_attn": a.decode_attn,
        "cached": cached,
        "prefill_attn": a.prefill_attn,
        "attn_kernel": a.attn_kernel,
        "gpus": gpus,
        "plans": a.plans,
        "seq_range": [lo, hi],
        "seq_multiple": mult,
    }
    # the CSV's rows written while the sweep runs (a thread: polars and the file's writes beside the
    # compute of the next plans); its file is taken at the end where it is the CSV of the whole columns
    # (else the CSV is written from them as before), and removed if the run stops first
    stream = None if a.no_csv else CsvStream(a.out, specs)
    # likewise the npz's numeric columns, each block of rows to its place in the file (npzstream)
    npz = NpzStream(a.out)

    def on_block(columns: dict, start: int, total: int) -> None:
        npz.feed(columns, start, total)
        if stream is not None:
            stream.feed(columns, start, total)

    _reuse_freed_memory()
    try:
        t0 = time.perf_counter()
        cols, skipped = run_sweep(
            model,
            hw,
            topo_kind=a.topology,
            phase=a.phase,
            causal=not a.no_causal,
            kernel=a.attn_kernel,
            ring_variant=a.ring_variant,
            decode_attn=a.decode_attn,
            cached=cached,
            prefill_attn=a.prefill_attn,
            batch=batch,
            seqs=seqs,
            gpus=gpus,
            templates=templates,
            progress=None if a.quiet else _bar,
            coded=True,  # string and grid columns as codes: the files' writers use them as they are
            on_block=on_block,
        )
        dt = time.perf_counter() - t0
        n = len(next(iter(cols.values()))) if cols else 0
        if n == 0:
            why = "; ".join(f"{s['plan']} at P={s['P']}: {s['reason']}" for s in skipped[:3])
            raise SpecError(
                f"no point was evaluated: every (plan, P) was skipped ({why}"
                f"{'; ...' if len(skipped) > 3 else ''})"
            )
        if "feasible" in cols and not cols["feasible"].any():  # an empty result is an error, nothing written
            i = int(np.nanargmin(cols["mem_total_bytes"]))
            raise SpecError(
                f"no point of the sweep fits in memory: the smallest, {cols['plan'][i]} at P={cols['P'][i]}, "
                f"L={int(cols['L'][i]):,}, needs {cols['mem_total_bytes'][i] / 1e9:.1f} GB of "
                f"{cols['capacity_bytes'][i] / 1e9:.1f} GB per device; reduce --batch or --seq, or add GPUs"
            )
        t1 = time.perf_counter()
        files = write_sweep_files(
            a.out, cols, specs, skipped, with_csv=not a.no_csv, csv_stream=stream, npz_stream=npz
        )
        dw = time.perf_counter() - t1
    finally:
        # the CSV's stream first: the npz's, fed first, made a new --out folder, which its close removes
        # only once the CSV's file has left it
        if stream is not None:
            stream.close()
        npz.close()
    print(
        f"{n} points ({len(seqs)} lengths x {len(gpus)} device counts x {len(templates)} plans) in "
        f"{dt * 1e3:.1f} ms, written in {dw * 1e3:.1f} ms; {len(skipped)} (plan, P) skipped; wrote "
        + ", ".join(str(f) for f in files.values())
    )
    for s in skipped:
        print(f"  skipped {s['plan']} at P={s['P']}: {s['reason']}")
    return 0
