"""ringsim best: every plan that can be placed on N GPUs, ranked on the analytic model, with the reason
each other plan loses (does not fit, does not divide, slower by how much); optionally confirmed by
the simulator."""

from __future__ import annotations

import argparse
import re

from costmodel.errors import SpecError
from costmodel.options import add_config_arguments, config_from_args
from costmodel.results import dumps
from costmodel.units import fmt_bytes, fmt_count, fmt_seconds
from ringsim.argtypes import ascii_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.set_defaults(plan=None)
    p.add_argument(
        "--gpus", type=ascii_int, required=True, help="GPUs to place the plan on (= the topology's)"
    )
    p.add_argument(
        "--objective",
        choices=["latency", "throughput"],
        default="latency",
        help="latency at --batch, or TPS at the largest batch that fits (up to --max-batch)",
    )
    p.add_argument("--max-batch", type=ascii_int, default=4096, help="throughput: largest batch tried")
    p.add_argument("--top", type=ascii_int, default=10, help="ranked plans shown")
    p.add_argument(
        "--confirm-with-sim", type=ascii_int, default=0, metavar="K", help="simulate the top K plans"
    )
    p.add_argument("--all-rejected", action="store_true", help="list every rejected plan (default: 12)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _confirm(cfg, rows, k) -> str | None:
    try:
        from sim import run_config
    except ImportError as e:
        return f"simulator not importable ({e})"
    from costmodel.search import config_for

    for r in rows[:k]:
        run = run_config(config_for(cfg, r))
        r["sim_latency_s"] = run.latency_s
        r["sim_vs_analytic"] = run.latency_s / r["latency_s"] - 1
    return None


def _config(a: argparse.Namespace):
    """The configuration without a plan: built on one GPU with tp=1 (always valid), then given the
    topology."""
    from dataclasses import replace

    from costmodel.topology import parse_topology

    if a.plan is not None:
        raise SpecError("ringsim best searches the plans itself: drop --plan")
    one = argparse.Namespace(**{**vars(a), "plan": "tp=1", "topology": "nvswitch:1", "microbatches": None})
    return replace(config_from_args(one), topology=parse_topology(a.topology))


def _row(i: int, r: dict, objective: str) -> str:
    vs = "best" if i == 1 else f"+{r['slower_by']:.1%}"
    line = (
        f"{i:>3}  {r['plan']:34} {r['batch']:>6} {fmt_seconds(r['latency_s']):>10} {fmt_count(r['tps']):>10} "
        f"{fmt_bytes(r['mem_total_bytes']):>9}  {r['bottleneck']:15} {vs:>8}"
    )
    if "sim_latency_s" in r:
        line += f"  {fmt_seconds(r['sim_latency_s'])} ({r['sim_vs_analytic']:+.1%})"
    return line


def run(a: argparse.Namespace) -> int:
    from costmodel.search import rank_plans

    for flag, v, lo in (
        ("--max-batch", a.max_batch, 1),
        ("--top", a.top, 1),
        ("--confirm-with-sim", a.confirm_with_sim, 0),
        ("--gpus", a.gpus, 1),
    ):
        if v < lo:
            raise SpecError(f"{flag} {v} is not valid: it must be an integer >= {lo}")
    cfg = _config(a)
    res = rank_plans(cfg, a.gpus, a.objective, a.max_batch)
    if a.confirm_with_sim:
        why = _confirm(cfg, res["ranked"], a.confirm_with_sim)
        if why:
            res["sim_skipped"] = why
    if a.json:
        print(dumps(res, indent=2))
        if not res["ranked"]:
            raise SpecError(_nothing_fits(res))
        return 0
    wl = cfg.workload
    length = f"prompt {wl.seq_len:,}" if wl.phase == "prefill" else f"context {wl.context:,}"
    print(
        f"{res['evaluated']} plans evaluated on {cfg.hardware.name} {cfg.topology.spec}, {wl.phase}, batch "
        f"{wl.batch}, {length}; objective {a.objective}"
        + (" (each plan at the largest batch that fits)" if a.objective == "throughput" else "")
        + f"; {len(res['ranked'])} fit, {len(res['rejected'])} rejected"
    )
    hdr = (
        f"{'#':>3}  {'plan':34} {'batch':>6} {'latency':>10} {'TPS':>10} {'memory':>9}  "
        f"{'bottleneck':15} {'vs best':>8}"
    )
    print(hdr + ("  sim latency (vs analytic)" if any("sim_latency_s" in r for r in res["ranked"]) else ""))
    for i, r in enumerate(res["ranked"][: a.top], 1):
        print(_row(i, r, a.objective))
    if len(res["ranked"]) > a.top:
        rest = res["ranked"][a.top :]
        print(
            f"     ... {len(rest)} more that fit, {rest[0]['slower_by']:.1%} to {rest[-1]['slower_by']:.1%} "
            f"{'slower' if a.objective == 'latency' else 'lower TPS'} than the best"
        )
    if "sim_skipped" in res:
        print(f"simulator: {res['sim_skipped']}")
    rej = res["rejected"]
    if rej:
        print(f"rejected ({len(rej)}):")
        for r in rej if a.all_rejected else rej[:12]:
            print(f"  {r['plan']:34} {r.get('kind', 'invalid')}: {r['reason']}")
        if len(rej) > 12 and not a.all_rejected:
            print(f"  ... {len(rej) - 12} more (--all-rejected lists them)")
    if not res["ranked"]:
        raise SpecError(_nothing_fits(res))
    return 0


def _nothing_fits(res: dict) -> str:
    """The reason an empty ranking is an error: how close the nearest plan came."""
    need = [
        (float(m.group(1)), float(m.group(2)), r["plan"])
        for r in res["rejected"]
        if (m := re.match(r"needs ([0-9.]+) GB of ([0-9.]+) GB", r["reason"]))
    ]
    if not need:
        return f"no plan can be placed: all {len(res['rejected'])} were rejected (listed above); check --gpus"
    gb, cap, plan = min(need)
    return (
        f"no plan fits in memory: the smallest, {plan}, needs {gb:.1f} GB of {cap:.1f} GB per device; "
        "reduce --batch or --seq, or add GPUs"
    )
