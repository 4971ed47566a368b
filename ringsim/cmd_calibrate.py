"""ringsim calibrate: measure the microbenchmarks and write a calibrated hardware profile.

On the GPU machine (one process per GPU):
    torchrun --standalone --nproc-per-node 4 -m ringsim calibrate --base h200-sxm-published \\
        --name h200-sxm --out h200-sxm.toml
Re-fit a stored raw file anywhere (no GPU, no torch):
    ringsim calibrate --from-raw raw.json --base h200-sxm-published --name h200-sxm --out h200-sxm.toml
"""

from __future__ import annotations

import argparse
import os

from costmodel import presets
from costmodel.errors import SpecError
from costmodel.results import atomic_write_text, write_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base", default="h200-sxm-published", help=f"preset to start from {presets.available('hardware')}"
    )
    p.add_argument("--name", default=None, help="profile name (default: the base's)")
    p.add_argument("--out", required=True, help="profile TOML to write")
    p.add_argument("--raw-out", default=None, help="also keep the raw measurements here (JSON)")
    p.add_argument(
        "--from-raw",
        action="append",
        default=None,
        help="fit stored raw JSON instead of measuring; repeat to add supplements (e.g. attention at "
        "longer lengths), whose records are added to the first file's",
    )
    p.add_argument("--model", default="seed-dense", help="model whose layer shapes are measured")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, e.g. on CPU)")
    p.add_argument(
        "--suite",
        default="eager,graph",
        help="microbenchmark suites, comma-separated: eager (host issues op by op), graph (CUDA graph "
        "replay, GPU only), fp8 (torch._scaled_mm FP8 GEMMs and the activation quantise, GPU only); "
        "default eager,graph",
    )


def _suites(s: str) -> tuple[str, ...]:
    out = tuple(x.strip() for x in s.split(",") if x.strip())
    bad = [x for x in out if x not in ("eager", "graph", "fp8")]
    if bad or not out:
        raise SpecError(
            f"--suite {s!r} is not valid: give one or more of eager, graph, fp8 (comma-separated)"
        )
    return out


def _measure(a) -> dict | None:
    import torch
    import torch.distributed as dist

    from real import microbench

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    m = presets.load_model(a.model)
    dims = {
        "d_model": m.d_model,
        "d_ff": m.d_ff,
        "q_dim": m.q_dim,
        "kv_dim": m.kv_dim,
        "head_dim": m.head_dim,
    }
    rank = dist.get_rank() if dist.is_initialized() else 0
    from .progress import bar

    with bar(desc="calibrate", unit="stage", total=microbench.RUN_ALL_STAGES, quiet=rank != 0) as b:
        raw = microbench.run_all(
            dims,
            quick=a.quick,
            suites=_suites(a.suite),
            progress=lambda s: (b.set_postfix_str(s), b.update()),
        )
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return raw if rank == 0 else None


def run(a: argparse.Namespace) -> int:
    import tomli_w

    from validation.calibrate import fit_profile, load_raw

    if a.from_raw:
        raw = load_raw(a.from_raw)
    else:
        raw = _measure(a)
        if raw is None:
            return 0  # not rank 0
    if a.raw_out and not a.from_raw:
        write_json(a.raw_out, raw)
    import sys
    from pathlib import Path

    name = a.name or a.base
    modes = {r.get("mode", "eager") for r in raw.get("results", [])}
    outputs = []  # every profile is made before any is written: a bad raw file leaves nothing half-written
    for mode in ("ideal", "eager", "graph"):
        if {"ideal": "eager", "eager": "eager", "graph": "graph"}[mode] not in modes:
            continue  # the suite this profile is fitted from was not run
        path = Path(a.out) if mode == "ideal" else Path(a.out).with_name(f"{Path(a.out).stem}-{mode}.toml")
        nm = name if mode == "ideal" else f"{name}-{mode}"
        try:
            made = _profile_text(raw, a, nm, mode, modes, sys.argv, tomli_w, fit_profile)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError, ZeroDivisionError) as e:
            if not a.from_raw:
                raise
            what = f"a record lacks the field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            raise SpecError(
                f"--from-raw {a.from_raw!r} is not a calibration raw file this version fits ({what})"
            ) from None
        if made is not None:
            outputs.append((path, *made))
    if not outputs:
        raise SpecError(
            f"--from-raw {a.from_raw!r} holds no measurements of a suite this version fits "
            f"(record modes {sorted(map(str, modes))}; valid: 'eager', 'graph')"
        )
    for path, text, notes in outputs:
        atomic_write_text(path, text)
        print(f"wrote {path}")
        for n in notes:
            print(f"  {n}")
    return 0


def _profile_text(raw, a, nm, mode, modes, argv, tomli_w, fit_profile):
    """(TOML text, notes) of the profile of ``mode`` fitted from ``raw``; None if the raw file has no
    executor measurements of that kind."""
    prof, notes = fit_profile(raw, a.base, nm, mode=mode)
    if mode != "ideal" and "ops" not in prof["achievable"]:
        return None
    if a.from_raw:
        prof["provenance"]["fitted_by"] = "ringsim calibrate " + " ".join(
            argv[2:] if argv[1:2] == ["calibrate"] else argv[1:]
        )
    kind = {
        "ideal": "the hardware with ideal fused kernels"
        + (" issued from a CUDA graph" if "graph" in modes else "")
        + ": predictions",
        "eager": "this repository's executor (real/) issued op by op: validation of its eager measurements",
        "graph": "this repository's executor (real/) replayed from CUDA graphs: validation of its "
        "--exec graph measurements",
    }[mode]
    header = (
        f"# Calibrated by `ringsim calibrate` on {prof['provenance']['gpu']} "
        f"({prof['provenance']['date']}).\n"
        f"# Profile of {kind}.\n"
        "# Measured fields and the ones kept from the published preset are listed in provenance.notes.\n"
    )
    return header + tomli_w.dumps(prof), notes
