"""ringsim explore: which plan wins at each length and GPU count for a model on a cluster, memory included
-> winner and speed-up maps, a crossover table, every point as columns, EXPLORE.md."""

from __future__ import annotations

import argparse
import shlex
import sys

from ringsim.argtypes import ascii_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    from studies.explore import FAMILIES, KEYS

    p.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help="an experiment TOML (keys: " + ", ".join(KEYS) + "); the options below override its values. "
        "Shipped examples: studies/experiments/*.toml",
    )
    d = {k: v for k, (v, _) in KEYS.items()}
    p.add_argument("--title", default=None, help="title of EXPLORE.md")
    p.add_argument(
        "--hardware", default=None, help=f"hardware preset or profile .toml (default {d['hardware']})"
    )
    p.add_argument("--model", default=None, help=f"model preset or model .toml (default {d['model']})")
    p.add_argument("--layers", type=ascii_int, default=None, help="override the model's layer count")
    p.add_argument(
        "--set",
        action="append",
        default=None,
        metavar="KIND.PATH=VALUE",
        help=KEYS["set"][1] + " (repeatable)",
    )
    p.add_argument(
        "--topology",
        nargs="+",
        default=None,
        help=KEYS["topology"][1] + f" (default {' '.join(d['topology'])})",
    )
    p.add_argument("--phase", nargs="+", default=None, help="prefill and/or decode (default both)")
    p.add_argument("--batch", nargs="+", default=None, help="batch sizes (default 1)")
    p.add_argument("--seq", default=None, help=f"length range START:END, e.g. 4Ki:1Mi (default {d['seq']})")
    p.add_argument(
        "--points", type=ascii_int, default=None, help=f"lengths in the grid (default {d['points']})"
    )
    p.add_argument(
        "--gpus", nargs="+", default=None, help="GPU counts of the topology families (default 8 16 32 64)"
    )
    p.add_argument(
        "--families",
        nargs="+",
        default=None,
        help="plan families (default all): " + ", ".join(f"{k} ({v})" for k, v in FAMILIES.items()),
    )
    p.add_argument("--ring-variant", nargs="+", default=None, help="prefill ring layouts (default all three)")
    p.add_argument("--decode-attn", nargs="+", default=None, help="decode ring merges (default all three)")
    p.add_argument("--cached", default=None, help=KEYS["cached"][1] + " (default 0)")
    p.add_argument(
        "--prefill-attn", nargs="+", default=None, help=KEYS["prefill_attn"][1] + " (default pass-kv)"
    )
    p.add_argument("--attn-kernel", default=None, help="auto (default: the fastest per call) | flash | cudnn")
    p.add_argument("--pp-send", default=None, help="scatter (default: Megatron) | full")
    p.add_argument("--no-causal", action="store_true", help="bidirectional attention")
    p.add_argument("--out", default="explore", help="output folder (default ./explore), written as a unit")
    p.add_argument("--quiet", action="store_true", help="no progress bar, print only the EXPLORE.md path")
    p.add_argument(
        "--no-csv",
        action="store_true",
        help="write the points as data/explore.npz only (no data/explore.csv: at 1e6 points ~0.5 GB of "
        "text and most of the files' time)",
    )


def _bar(it):
    """A progress bar over the model's calls (one per shared setting and loop count; tqdm imported here:
    --quiet runs without it, ~0.1 s of start-up)."""
    from tqdm import tqdm

    return tqdm(it, desc="explore", unit="call", file=sys.stderr)


def _split(values):
    if values is None:
        return None
    return [x for v in values for x in str(v).replace(",", " ").split() if x]


def experiment_from_args(a: argparse.Namespace):
    from studies.explore import load_experiment_file, make_experiment

    raw = load_experiment_file(a.experiment) if a.experiment else {}
    over = {
        "title": a.title,
        "hardware": a.hardware,
        "model": a.model,
        "layers": a.layers,
        "set": a.set,
        "topology": _split(a.topology),
        "phase": _split(a.phase),
        "batch": _split(a.batch),
        "seq": a.seq,
        "points": a.points,
        "gpus": _split(a.gpus),
        "families": _split(a.families),
        "ring_variant": _split(a.ring_variant),
        "decode_attn": _split(a.decode_attn),
        "cached": a.cached,
        "prefill_attn": _split(a.prefill_attn),
        "attn_kernel": a.attn_kernel,
        "pp_send": a.pp_send,
        "causal": False if a.no_causal else None,
    }
    vals = {**raw, **{k: v for k, v in over.items() if v is not None}}
    return make_experiment(vals, source=a.experiment or "")


def run(a: argparse.Namespace) -> int:
    from ringsim import __version__
    from ringsim.cmd_sweep import _check_out
    from studies.explore import explore

    exp = experiment_from_args(a)
    _check_out(a.out)
    quiet = a.quiet or not sys.stderr.isatty()
    progress = None if quiet else _bar
    argv = " ".join(shlex.quote(x) for x in sys.argv[1:]) if sys.argv[1:2] == ["explore"] else "explore"
    r = explore(
        a.out,
        exp,
        version=__version__,
        command=f"ringsim {argv}",
        progress=progress,
        log=(lambda *x: None) if a.quiet else print,
        csv=not a.no_csv,
    )
    md = r["out"] / "EXPLORE.md"
    if a.quiet:
        print(md)
        return 0
    from studies.explore import sentence

    for row in r["crossover"]:
        print("* " + sentence(row))
    print(f"wrote {md}")
    return 0


__all__ = ["add_arguments", "run", "experiment_from_args"]
