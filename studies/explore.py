"""``ringsim explore``: which plan wins at each length and GPU count, memory included, and by how much.

An *experiment* (a TOML file of the keys in ``KEYS``, or the same options on the command line) names the
hardware, the model (with overrides), topology families or explicit topologies, phases, batches, a length
range, GPU counts and plan families.  For every (topology, phase, batch, P) every placeable plan of those
families is enumerated (``costmodel.search.enumerate_plans``: meshes over every axis, ring layouts, decode
merges, micro-batch and chunk counts) and evaluated over the whole length grid with the analytic model
(``costmodel.analytic.evaluate_blocks``: the plans of every row that share a setting in one numpy call,
plans x lengths; which lengths a plan can split decided as masks by ``costmodel.validity``).  The output
folder holds:

* ``data/explore.npz`` + ``data/explore.csv`` (every evaluated point; the CSV not with ``--no-csv``) with
  ``data/explore.json`` (specs, skipped (topology, P) pairs and plans, columns);
* ``data/maps.json``: per (topology, phase, batch) the grid of winners, best ring-family and best TP/PP-family
  plans (``plots.explore`` draws the maps from it; ``ringsim plot data/maps.json`` re-makes them);
* ``crossover.csv`` + ``crossover.md``: the memory-aware crossover table;
* ``figures/``: a winner map and a speed-up map per (topology, phase, batch);
* ``experiment.toml`` (the resolved experiment: re-running it gives the same folder, ``--no-csv`` aside: the
  file does not record it) and ``EXPLORE.md``.

The folder is written as a unit: into a temporary sibling, renamed into place at the end.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from costmodel import strategies
from costmodel.analytic import evaluate, evaluate_blocks
from costmodel.closedform import Setting
from costmodel.config import Config, build_config, parse_cached
from costmodel.errors import SpecError
from costmodel.plan import AXIS_NAMES, DecodeAttn, Plan, PpSend, PrefillAttn, RingVariant
from costmodel.results import (
    Categorical,
    atomic_write_text,
    ensure_dir,
    small_pages,
    write_csv,
    write_json,
    write_sweep_files,
)
from costmodel.search import enumerate_plans
from costmodel.specs import AttnKernel, Phase, Workload
from costmodel.topology import TopoKind, parse_topology, topology_for
from costmodel.units import parse_count, parse_range
from costmodel.validity import valid_lengths

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXPERIMENTS_DIR = Path(__file__).parent / "experiments"

# plan families (what ``--families`` selects); ``side`` groups them for the speed-up map
FAMILIES: dict[str, str] = {
    "single": "one GPU",
    "tp": "tensor parallelism only",
    "pp": "pipeline stages only (micro-batches)",
    "tp-pp": "TP inside a stage x pipeline stages (micro-batches)",
    "chunked": "chunked prefill through a pipeline (TP x PP, the prompt cut into chunks)",
    "ulysses": "Ulysses (all-to-all) sequence parallelism, alone or with TP/PP",
    "ring": "Ring Attention alone",
    "hybrid": "Ring Attention with TP, Ulysses or PP",
}
RING_SIDE = ("ring", "hybrid")
TPPP_SIDE = ("tp", "pp", "tp-pp", "chunked")


def plan_family(plan: Plan) -> str:
    """The family of a plan (a key of ``FAMILIES``)."""
    if plan.ring > 1:
        return "ring" if plan.n_ranks == plan.ring else "hybrid"
    if plan.ulysses > 1:
        return "ulysses"
    if plan.pp > 1:
        return "chunked" if plan.chunks > 1 else ("tp-pp" if plan.tp > 1 else "pp")
    return "tp" if plan.tp > 1 else "single"


def plan_side(family: str) -> str:
    """ring (Ring Attention in the plan), tppp (TP/PP only) or other (Ulysses without a ring, one GPU)."""
    return "ring" if family in RING_SIDE else "tppp" if family in TPPP_SIDE else "other"


# ----------------------------------------------------------------------------------------------
# the experiment: keys, defaults, validation
# ----------------------------------------------------------------------------------------------
KEYS: dict[str, tuple[object, str]] = {
    "title": ("", "a one-line title for EXPLORE.md"),
    "hardware": ("h100-sxm", "hardware preset (ringsim presets) or a profile .toml"),
    "model": ("llama3-70b", "model preset (ringsim presets) or a model .toml"),
    "layers": (None, "override the model's layer count"),
    "set": ([], "overrides KIND.PATH=VALUE of any preset field, e.g. hardware.peak.hbm_TBps=4.0"),
    "topology": (
        ["ib", "nvlink-domain"],
        "topology families sized per GPU count (ib: 8-GPU nodes; nvl: 72-GPU NVLink domains joined by IB; "
        "nvlink-domain; nvswitch <= 8) or explicit topologies (ib:2x8, nvl:72x4, nvlink-domain:72: one "
        "GPU count each)",
    ),
    "phase": (["prefill", "decode"], "phases: prefill (the whole prompt) and/or decode (one step)"),
    "batch": ([1], "batch sizes (sequences)"),
    "seq": ("4Ki:1Mi", "length range START:END (prompt in prefill, context in decode)"),
    "points": (25, "lengths in the geometric grid between START and END (both included)"),
    "gpus": ([8, 16, 32, 64], "GPU counts P of the topology families"),
    "families": (list(FAMILIES), f"plan families: {', '.join(FAMILIES)}"),
    "ring_variant": ([v.value for v in RingVariant], "prefill ring layouts tried"),
    "decode_attn": ([v.value for v in DecodeAttn], "decode ring merges tried"),
    "cached": (
        0,
        "partial prefill: tokens per sequence already in the KV cache before the prompt (prefill rows; "
        "decode rows take none)",
    ),
    "prefill_attn": (
        [PrefillAttn.PASS_KV.value],
        "prefill ring kinds tried: pass-kv and/or pass-q (pass-Q rings only with cached tokens)",
    ),
    "attn_kernel": ("auto", "attention kernel: auto (the profile's fastest per call) | flash | cudnn"),
    "pp_send": ("scatter", "pipeline sends with TP: scatter (Megatron) | full"),
    "causal": (True, "causal attention"),
}
LIST_KEYS = (
    "set",
    "topology",
    "phase",
    "batch",
    "gpus",
    "families",
    "ring_variant",
    "decode_attn",
    "prefill_attn",
)


@dataclass(frozen=True)
class Experiment:
    title: str
    hardware: str
    model: str
    layers: int | None
    set: tuple[str, ...]
    topology: tuple[str, ...]
    phase: tuple[str, ...]
    batch: tuple[int, ...]
    seq: tuple[int, int]
    points: int
    gpus: tuple[int, ...]
    families: tuple[str, ...]
    ring_variant: tuple[str, ...]
    decode_attn: tuple[str, ...]
    attn_kernel: str
    pp_send: str
    causal: bool
    cached: int = 0  # partial prefill: cached tokens per sequence before the prompt (prefill rows)
    prefill_attn: tuple[str, ...] = (PrefillAttn.PASS_KV.value,)
    source: str = ""  # the experiment file, when there is one
    config: Config = field(default=None, repr=False, compare=False)  # hardware + model, validated

    def to_dict(self) -> dict:
        """The experiment as TOML-able values (lengths as integers)."""
        d = {k: getattr(self, k) for k in KEYS}
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        d["seq"] = f"{self.seq[0]}:{self.seq[1]}"
        if d["layers"] is None:
            del d["layers"]
        return d


def _as_list(key: str, v) -> list:
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, str) and key not in ("set",):
        return [x for x in v.replace(",", " ").split() if x]
    return [v]


def _choose(key: str, values: list, valid) -> tuple[str, ...]:
    valid = list(valid)
    for v in values:
        if v not in valid:
            raise SpecError(f"{key} {v!r} is not valid: choose from {valid}")
    if not values:
        raise SpecError(f"{key} is empty: give at least one of {valid}")
    return tuple(dict.fromkeys(values))


def _topology_item(text: str) -> str:
    t = str(text).strip()
    if t in [k.value for k in TopoKind]:
        return t
    if ":" not in t:
        raise SpecError(
            f"topology {t!r} is not valid: give a family ({', '.join(k.value for k in TopoKind)}) or an "
            "explicit topology such as ib:2x8, nvl:72x4, nvlink-domain:72"
        )
    parse_topology(t)  # its own one-sentence error
    return t


def load_experiment_file(path: str | Path) -> dict:
    """The raw keys of an experiment TOML (unknown keys refused, naming the key and the valid ones)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"experiment file {str(path)!r} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"experiment file {str(path)!r} is not valid TOML: {e}") from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise SpecError(
            f"experiment file {p.name}: key {unknown[0]!r} is not valid: valid keys are {list(KEYS)}"
        )
    return raw


def make_experiment(values: dict, source: str = "") -> Experiment:
    """A validated experiment from raw values (file values with command-line values laid over them).
    Every field is checked here, before any work: a bad one is one ``SpecError`` naming it."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise SpecError(f"experiment key {unknown[0]!r} is not valid: valid keys are {list(KEYS)}")
    v = {k: (values[k] if values.get(k) is not None else d) for k, (d, _) in KEYS.items()}
    for k in LIST_KEYS:
        v[k] = _as_list(k, v[k])
    title = str(v["title"])
    phases = _choose("phase", v["phase"], [p.value for p in Phase])
    fams = _choose("families", v["families"], FAMILIES)
    rvs = _choose("ring_variant", v["ring_variant"], [r.value for r in RingVariant])
    das = _choose("decode_attn", v["decode_attn"], [d.value for d in DecodeAttn])
    pas = _choose("prefill_attn", v["prefill_attn"], [d.value for d in PrefillAttn])
    cached = parse_cached(v["cached"])
    kern = _choose("attn_kernel", [v["attn_kernel"]], [k.value for k in AttnKernel])[0]
    pps = _choose("pp_send", [v["pp_send"]], [s.value for s in PpSend])[0]
    if not isinstance(v["causal"], bool):
        raise SpecError(f"causal {v['causal']!r} is not valid: it must be true or false")
    if not v["batch"]:
        raise SpecError("batch is empty: give at least one batch size, e.g. 1")
    batches = tuple(dict.fromkeys(parse_count(b, "batch") for b in v["batch"]))
    lo, hi = parse_range(v["seq"], "seq")
    pts = v["points"]
    if isinstance(pts, str) and pts.strip().isdigit():
        pts = int(pts)
    if isinstance(pts, bool) or not isinstance(pts, int) or pts < 1:
        raise SpecError(f"points {v['points']!r} is not valid: it must be a positive integer, e.g. 25")
    if lo == hi:
        pts = 1
    gpus = []
    for g in v["gpus"]:
        try:
            n = int(g)
        except (TypeError, ValueError):
            n = 0
        if isinstance(g, bool) or n < 1 or str(n) != str(g).strip():
            raise SpecError(f"gpus {g!r} is not valid: GPU counts are positive integers, e.g. 8, 16, 32")
        gpus.append(n)
    topos = tuple(dict.fromkeys(_topology_item(t) for t in v["topology"]))
    if not topos:
        raise SpecError("topology is empty: give a family (ib, nvlink-domain, ...) or a topology (ib:2x8)")
    if any(":" not in t for t in topos) and not gpus:
        raise SpecError("gpus is empty: a topology family needs GPU counts, e.g. 8, 16, 32")
    layers = v["layers"]
    if layers is not None and (isinstance(layers, bool) or not str(layers).strip().isdigit()):
        raise SpecError(f"layers {layers!r} is not valid: it must be a positive integer")
    sets = tuple(str(s) for s in v["set"])
    cfg = build_config(
        {
            "hardware": str(v["hardware"]),
            "model": str(v["model"]),
            "layers": int(layers) if layers is not None else None,
            "set": list(sets),
            "plan": "tp=1",
            "topology": "nvswitch:1",
            "attn_kernel": kern,
        }
    )
    return Experiment(
        title=title,
        hardware=str(v["hardware"]),
        model=str(v["model"]),
        layers=int(layers) if layers is not None else None,
        set=sets,
        topology=topos,
        phase=phases,
        batch=batches,
        seq=(lo, hi),
        points=pts,
        gpus=tuple(sorted(set(gpus))),
        families=fams,
        ring_variant=rvs,
        decode_attn=das,
        attn_kernel=kern,
        pp_send=pps,
        causal=v["causal"],
        cached=cached,
        prefill_attn=pas,
        source=source,
        config=cfg,
    )


# ----------------------------------------------------------------------------------------------
# the grid and the evaluation
# ----------------------------------------------------------------------------------------------
def nominal_grid(lo: int, hi: int, points: int) -> np.ndarray:
    """Geometric lengths from lo to hi (both exact), rounded to a multiple of the largest power of two up
    to 1024 that divides both ends, unique."""
    if points <= 1 or lo == hi:
        return np.array([lo], dtype=np.int64)
    m = math.gcd(math.gcd(lo, hi), 1024)
    raw = np.geomspace(lo, hi, points)
    g = np.maximum(np.round(raw / m), 1).astype(np.int64) * m
    g[0], g[-1] = lo, hi
    return np.unique(g)


def sized_topologies(item: str, gpus) -> list[tuple[int, object | None, str]]:
    """(P, Topology or None, reason) of a topology item: a family at every P, an explicit one at its own."""
    if ":" in item:
        t = parse_topology(item)
        return [(t.n_gpus, t, "")]
    out = []
    for P in gpus:
        try:
            out.append((P, topology_for(item, P), ""))
        except SpecError as e:
            out.append((P, None, str(e)))
    return out


def _plans(exp: Experiment, cfg: Config, P: int, phase: str) -> tuple[list[Plan], list[dict]]:
    """The placeable plans of the experiment's families at P (every mesh, variant, micro-batch and chunk
    count ``enumerate_plans`` tries), filtered by family and ring variant / decode merge."""
    plans, rejected = enumerate_plans(cfg, P)
    keep = []
    for p in plans:
        if plan_family(p) not in exp.families:
            continue
        if p.ring > 1 and phase == Phase.PREFILL and p.ring_variant not in exp.ring_variant:
            continue
        if p.ring > 1 and phase == Phase.DECODE and p.decode_attn not in exp.decode_attn:
            continue
        if p.ring > 1 and phase == Phase.PREFILL and p.prefill_attn not in exp.prefill_attn:
            continue
        keep.append(p)
    return keep, rejected


# every length is a multiple of this when plans are enumerated (so every chunk count and ring divides it)
_ENUM_LEN = 2**20 * 9 * 5 * 7


def tasks(exp: Experiment) -> list[tuple[str, int, object, str, int]]:
    """(topology item, P, Topology, phase, batch) of every map row to evaluate; unplaceable sizes are
    returned by ``skipped_sizes``."""
    out = []
    for item in exp.topology:
        for P, topo, _ in sized_topologies(item, exp.gpus):
            if topo is None:
                continue
            for phase in exp.phase:
                for b in exp.batch:
                    out.append((item, P, topo, phase, b))
    return out


def skipped_sizes(exp: Experiment) -> list[dict]:
    return [
        {"topology": item, "P": P, "reason": why}
        for item in exp.topology
        for P, topo, why in sized_topologies(item, exp.gpus)
        if topo is None
    ]


def evaluate_row_per_length(
    exp: Experiment, item: str, P: int, topo, phase: str, batch: int, nominal: np.ndarray
):
    """Every plan of one (topology, P, phase, batch) at every length: (columns or None, skipped list).

    The reference path (``run_experiment(..., per_length=True)``): each plan validated at each length,
    one ``evaluate`` call per (variant, tp, ulysses, ring) group.  ``run_experiment`` takes the fast path
    (``_row_plans`` + ``_evaluate_rows``); tests/test_explore.py checks both give the same columns."""
    cfg = exp.config
    skipped = []
    cached = exp.cached if phase == Phase.PREFILL else 0  # partial prefill: prefill rows only
    wl0 = Workload(
        batch=batch,
        seq_len=_ENUM_LEN,
        phase=phase,
        context_len=_ENUM_LEN if phase == Phase.DECODE else 0,
        causal=exp.causal,
        cached_len=cached,
    )
    base = replace(cfg, topology=topo, workload=wl0, plan=cfg.plan.replace(pp_send=exp.pp_send))
    plans, _ = _plans(exp, base, P, phase)
    if not plans:
        skipped.append(
            {
                "topology": item,
                "P": P,
                "phase": phase,
                "batch": batch,
                "reason": "no plan of the chosen "
                f"families ({', '.join(exp.families)}) can be placed on {topo.spec}",
            }
        )
        return None, skipped
    mult = 1
    for p in plans:
        m = strategies.length_multiple(p, phase) * (p.chunks if phase == Phase.PREFILL else 1)
        mult = mult * m // math.gcd(mult, m)
    L = np.maximum(np.round(nominal / mult), 1).astype(np.int64) * mult
    # validate each plan at each (distinct) length; a plan refused at a length is not evaluated there
    ok = np.ones((len(L), len(plans)), bool)
    for i, n in enumerate(L):
        if i and n == L[i - 1]:
            ok[i] = ok[i - 1]
            continue
        wl = Workload(
            batch=batch,
            seq_len=int(n),
            phase=phase,
            context_len=int(n) if phase == Phase.DECODE else 0,
            causal=exp.causal,
            cached_len=cached,
        )
        for j, p in enumerate(plans):
            try:
                strategies.validate(p, cfg.model, wl, topo)
            except SpecError as e:
                ok[i, j] = False
                if not ok[:i, j].any() and i == len(L) - 1:
                    skipped.append(
                        {
                            "topology": item,
                            "P": P,
                            "phase": phase,
                            "batch": batch,
                            "plan": p.label(phase),
                            "reason": str(e),
                        }
                    )
    groups: dict[tuple, list[int]] = {}
    for j, p in enumerate(plans):
        # one call per (variant, tp, ulysses, ring), as costmodel.search groups them
        groups.setdefault(
            (p.ring_variant, p.decode_attn, p.prefill_attn, p.tp, p.ulysses, p.ring), []
        ).append(j)
    parts = []
    for idx in groups.values():
        g = [plans[j] for j in idx]
        deg = {
            k: np.array([getattr(p, k) for p in g])[None, :] for k in AXIS_NAMES + ("microbatches", "chunks")
        }
        st = Setting(
            phase=phase,
            causal=exp.causal,
            kernel=exp.attn_kernel,
            ring_variant=g[0].ring_variant,
            decode_attn=g[0].decode_attn,
            topo_kind=topo.kind.value,
            gpus_per_node=topo.gpus_per_node,
            pp_send=g[0].pp_send,
            cached=cached,
            prefill_attn=g[0].prefill_attn,
        )
        Lc = L[:, None].astype(float)
        o = evaluate(cfg.model, cfg.hardware, st, batch=batch, seq=Lc, context=Lc, **deg)
        shape = (len(L), len(g))
        keep = ok[:, idx]
        labels = np.array([p.label(phase) for p in g])
        fam = np.array([plan_family(p) for p in g])
        block = {
            "topology": np.full(shape, item),
            "topology_spec": np.full(shape, topo.spec),
            "phase": np.full(shape, str(phase)),
            "batch": np.full(shape, batch, dtype=np.int64),
            "P": np.full(shape, P, dtype=np.int64),
            "L_nominal": np.broadcast_to(nominal[:, None], shape),
            "L": np.broadcast_to(L[:, None], shape),
            "plan": np.broadcast_to(labels[None, :], shape),
            "family": np.broadcast_to(fam[None, :], shape),
            "side": np.broadcast_to(np.array([plan_side(f) for f in fam])[None, :], shape),
            **{
                k: np.broadcast_to(np.array([getattr(p, k) for p in g])[None, :], shape)
                for k in AXIS_NAMES + ("microbatches", "chunks")
            },
            "ring_variant": np.broadcast_to(
                np.array([p.ring_variant.value if p.ring > 1 else "" for p in g])[None, :], shape
            ),
            "decode_attn": np.broadcast_to(
                np.array([p.decode_attn.value if p.ring > 1 else "" for p in g])[None, :], shape
            ),
            "pp_send": np.broadcast_to(np.array([p.pp_send.value for p in g])[None, :], shape),
            "prefill_attn": np.broadcast_to(
                np.array([p.prefill_attn.value if p.ring > 1 and phase == Phase.PREFILL else "" for p in g])[
                    None, :
                ],
                shape,
            ),
            "cached": np.full(shape, cached, dtype=np.int64),
        }
        for k, val in o.items():
            block[k] = np.broadcast_to(np.asarray(val), shape)
        parts.append({k: np.asarray(val)[keep] for k, val in block.items()})
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return cols, skipped


# ----------------------------------------------------------------------------------------------
# the fast path: validity per length as masks, one evaluation per (row, ring layout/merge)
# ----------------------------------------------------------------------------------------------
_PLAN_TEXT = ("plan", "family", "side", "ring_variant", "decode_attn", "pp_send", "prefill_attn")
_PLAN_INT = (*AXIS_NAMES, "microbatches", "chunks")
_RING = AXIS_NAMES.index("ring")


@dataclass
class _Row:
    """One map row's plans, lengths and where each of its valid (length, plan) points goes: ``pos[i, j]``
    is the point's place among the row's points (-1: plan j refused at length i), in the order the
    reference path writes them (per (variant, tp, ulysses, ring) group, lengths outer, plans inner)."""

    item: str
    P: int
    topo: object
    phase: str
    batch: int
    cached: int
    plans: list
    L: np.ndarray
    pos: np.ndarray
    n: int
    start: int = 0


def _row_plans(exp: Experiment, item: str, P: int, topo, phase: str, batch: int, nominal: np.ndarray):
    """The plans of one (topology, P, phase, batch), its lengths and each plan's valid lengths
    (``costmodel.validity.valid_lengths``: one ``validate`` per plan, the length rules as masks):
    (row or None, skipped list), the same skipped list as ``evaluate_row_per_length``."""
    cfg = exp.config
    cached = exp.cached if phase == Phase.PREFILL else 0
    wl0 = Workload(
        batch=batch,
        seq_len=_ENUM_LEN,
        phase=phase,
        context_len=_ENUM_LEN if phase == Phase.DECODE else 0,
        causal=exp.causal,
        cached_len=cached,
    )
    base = replace(cfg, topology=topo, workload=wl0, plan=cfg.plan.replace(pp_send=exp.pp_send))
    plans, _ = _plans(exp, base, P, phase)
    where = {"topology": item, "P": P, "phase": phase, "batch": batch}
    if not plans:
        why = f"no plan of the chosen families ({', '.join(exp.families)}) can be placed on {topo.spec}"
        return None, [{**where, "reason": why}]
    mult = 1
    for p in plans:
        m = strategies.length_multiple(p, phase) * (p.chunks if phase == Phase.PREFILL else 1)
        mult = mult * m // math.gcd(mult, m)
    L = np.maximum(np.round(nominal / mult), 1).astype(np.int64) * mult
    ok, _ = valid_lengths(plans, cfg.model, wl0, topo, L)
    skipped = []
    # a plan refused at every length is reported with its refusal at the last length (as the reference
    # path does: there only when the last length differs from the one before it)
    if len(L) == 1 or L[-1] != L[-2]:
        wl_last = Workload(
            batch=batch,
            seq_len=int(L[-1]),
            phase=phase,
            context_len=int(L[-1]) if phase == Phase.DECODE else 0,
            causal=exp.causal,
            cached_len=cached,
        )
        for j in np.flatnonzero(~ok.any(axis=0)):
            try:
                strategies.validate(plans[j], cfg.model, wl_last, topo)
            except SpecError as e:
                skipped.append({**where, "plan": plans[j].label(phase), "reason": str(e)})
    groups: dict[tuple, list[int]] = {}
    for j, p in enumerate(plans):
        groups.setdefault(
            (p.ring_variant, p.decode_attn, p.prefill_attn, p.tp, p.ulysses, p.ring), []
        ).append(j)
    pos = np.full(ok.shape, -1, np.int64)
    at = 0
    for idx in groups.values():
        sub = ok[:, idx]
        k = int(sub.sum())
        block = np.full(sub.shape, -1, np.int64)
        block[sub] = np.arange(at, at + k)  # lengths outer, plans inner (C order)
        pos[:, idx] = block
        at += k
    row = _Row(
        item=item, P=P, topo=topo, phase=phase, batch=batch, cached=cached, plans=plans, L=L, pos=pos, n=at
    )
    return row, skipped


class _Codes:
    """A string column being filled: int32 codes into labels gathered as they come."""

    def __init__(self, n: int):
        self.codes = np.empty(n, np.int32)
        self.index: dict[str, int] = {}

    def code(self, label: str) -> int:
        return self.index.setdefault(label, len(self.index))

    def codes_of(self, labels) -> np.ndarray:
        return np.array([self.code(str(x)) for x in labels], np.int32)

    def column(self) -> Categorical:
        """The column with only the labels it uses, sorted, as ``results.categorical`` gives them."""
        labels = np.array(list(self.index), dtype=str) if self.index else np.array([""])
        used = np.flatnonzero(np.bincount(self.codes, minlength=len(labels)))
        kept = sorted(labels[used].tolist())
        remap = np.zeros(len(labels), np.int32)
        remap[used] = np.searchsorted(np.array(kept, dtype=str), labels[used])
        return Categorical(np.array(kept, dtype=str), remap[self.codes])


def _node_size(topo) -> int | None:
    """The node size a Setting needs: only IB-joined kinds (ib, nvl) read it (``closedform.Ctx.crosses_ib``);
    one NVLink domain or switch never leaves its node, so their rows of every size share a call."""
    return topo.gpus_per_node if topo.kind.value in ("ib", "nvl") else None


def _loop_key(p: Plan, phase: str) -> tuple[int, int]:
    """What the model loops over in Python, over every point of a call: its chunks (each chunk's layer is
    evaluated apart, up to the call's largest chunk count) and, for pipelines of several chunked
    micro-batches, the stage x unit grid's longest path (``strategies.pipeline._grid_path``, up to the
    call's largest stage and unit counts).  Plans are evaluated in calls of one chunk count, so no point
    loops over another plan's chunks; where the grid is walked, in calls of one band of stage counts (2-7,
    8-31, 32-127, ...: a call walks at most ~4x the stages of its shortest pipeline).  Micro-batch counts
    and the stage counts of a band share a call: the grid's loop and the chunks' are Python-bound (fewer,
    wider calls walk them faster), and plans that differ in their stage count only share their layers'
    evaluation (``analytic._layer_rows``).  Issue 16, seed.toml at --points 240: one call per stage count
    took ~0.8 s CPU more."""
    if phase != Phase.PREFILL or p.chunks == 1:
        return (1, 0)
    if p.microbatches > 1 and p.pp > 1:
        return (p.chunks, p.pp.bit_length() // 2)  # bands: pp 2-7 -> 1, 8-31 -> 2, 32-127 -> 3
    return (p.chunks, 0)


def _at_valid(v: np.ndarray, m: np.ndarray, src) -> np.ndarray:
    """A block output's values (v, broadcast to the block's shape) at its valid points ``m`` (the flat
    indices ``src`` of m's true elements; None where m holds everywhere), flat, in C order."""
    if v.shape == m.shape:
        return v.reshape(-1) if src is None else v.reshape(-1)[src]
    w = np.broadcast_to(v, m.shape)
    return w.reshape(-1) if src is None else w[m]


def _evaluate_rows(
    exp: Experiment, rows: list[_Row], nominal: np.ndarray, progress=None, *, int_codes: bool = False
) -> dict:
    """Every valid point of every row into columns allocated once (string columns as int32 codes): the
    row's and plan's fields written per row; the model's outputs by one ``evaluate_blocks`` call per shared
    ``Setting`` (phase, topology kind, node size where it matters, cached tokens, ring layout, decode merge,
    ring kind, pipeline send) and loop key (``_loop_key``), over the plans of every row that shares it as
    plans x lengths, each block written straight to its points' places.  The values are those of the
    per-length path (every output of a point depends on that point's inputs only;
    tests/test_explore.py compares them bit for bit).

    The integer columns are filled as int32 codes into their few distinct values (a row's batch, P and
    cached tokens, its lengths, its plans' degrees): ``int_codes`` returns them as ``Categorical`` (the
    files' writers then format each value once instead of sorting a million values to find them),
    otherwise as the plain int64 columns."""
    cfg = exp.config
    total = sum(r.n for r in rows)
    text = {k: _Codes(total) for k in ("topology", "topology_spec", "phase", *_PLAN_TEXT)}
    ints = {k: np.empty(total, np.int32) for k in ("batch", "P", "L_nominal", "L", *_PLAN_INT, "cached")}
    # each integer column's labels (sorted, distinct) and each row's / plan's code into them
    int_labels: dict[str, np.ndarray] = {"L_nominal": np.asarray(nominal, np.int64)}  # sorted, distinct
    row_code, plan_code = {}, {}
    for k in ("batch", "P", "cached"):
        int_labels[k], row_code[k] = np.unique(
            np.array([getattr(r, k) for r in rows], np.int64), return_inverse=True
        )
    # every plan's integer fields (rows' plans one after another; columns as _PLAN_INT)
    pint = np.array([(*p.degrees, p.microbatches, p.chunks) for r in rows for p in r.plans], np.int64)
    pint = pint.reshape(-1, len(_PLAN_INT))
    for i, k in enumerate(_PLAN_INT):
        int_labels[k], plan_code[k] = np.unique(pint[:, i], return_inverse=True)
    int_labels["L"], L_code = np.unique(
        np.concatenate([r.L for r in rows]).astype(np.int64), return_inverse=True
    )
    l_at = np.cumsum([0] + [len(r.L) for r in rows])  # each row's first length / plan in those lists
    p_at = np.cumsum([0] + [len(r.plans) for r in rows])
    out: dict[str, object] = {}  # the model's outputs: arrays, or _Codes for its string outputs
    units: dict[tuple, list[tuple[int, list[int]]]] = {}  # (Setting's fields) -> [(row, its plans)]
    labels_of: dict[tuple, str] = {}  # (plan, phase) -> label: rows of other batches share plans
    for ri, r in enumerate(rows):
        a, b = r.start, r.start + r.n
        sel = r.pos >= 0
        order = np.empty(r.n, np.int64)
        order[r.pos[sel]] = np.flatnonzero(sel.reshape(-1))
        li, pj = np.divmod(order, len(r.plans))  # each point's length and plan, in the row's order
        for k, v in (("topology", r.item), ("topology_spec", r.topo.spec), ("phase", str(r.phase))):
            text[k].codes[a:b] = text[k].code(v)
        for k in ("batch", "P", "cached"):
            ints[k][a:b] = row_code[k][ri]
        ints["L_nominal"][a:b] = li
        ints["L"][a:b] = L_code[l_at[ri] : l_at[ri + 1]][li]
        ph = r.phase
        ring = [p.degrees[_RING] > 1 for p in r.plans]
        fams = [plan_family(p) for p in r.plans]
        per_plan = {
            "plan": [labels_of.get((p, ph)) or labels_of.setdefault((p, ph), p.label(ph)) for p in r.plans],
            "family": fams,
            "side": [plan_side(f) for f in fams],
            "ring_variant": [p.ring_variant.value if g else "" for p, g in zip(r.plans, ring)],
            "decode_attn": [p.decode_attn.value if g else "" for p, g in zip(r.plans, ring)],
            "pp_send": [p.pp_send.value for p in r.plans],
            "prefill_attn": [
                p.prefill_attn.value if g and ph == Phase.PREFILL else "" for p, g in zip(r.plans, ring)
            ],
        }
        for k, labels in per_plan.items():
            text[k].codes[a:b] = text[k].codes_of(labels)[pj]
        for k in _PLAN_INT:
            ints[k][a:b] = plan_code[k][p_at[ri] : p_at[ri + 1]][pj]
        key = (ph, r.topo.kind.value, _node_size(r.topo), r.cached)
        mine: dict[tuple, list[int]] = {}
        for j, p in enumerate(r.plans):
            mine.setdefault(
                (*key, p.ring_variant, p.decode_attn, p.prefill_attn, p.pp_send, _loop_key(p, ph)), []
            ).append(j)
        for k, js in mine.items():
            units.setdefault(k, []).append((ri, js))
    # one model call per Setting: the plans of every row that shares it, each with its row's batch and
    # lengths (plans x lengths; a row's lengths are its nominal grid rounded to its multiple)
    work = list(units.items())
    for (ph, kind, gpn, cached, rv, da, pa, ps, _), members in work if progress is None else progress(work):
        st = Setting(
            phase=ph,
            causal=exp.causal,
            kernel=exp.attn_kernel,
            ring_variant=rv,
            decode_attn=da,
            topo_kind=kind,
            gpus_per_node=rows[members[0][0]].topo.gpus_per_node if gpn is None else gpn,
            pp_send=ps,
            cached=cached,
            prefill_attn=pa,
        )
        which = np.concatenate([p_at[ri] + np.asarray(js) for ri, js in members])  # rows of pint
        deg = {k: pint[which, i][:, None] for i, k in enumerate(_PLAN_INT)}
        batch = np.concatenate([np.full(len(js), rows[ri].batch) for ri, js in members])[:, None]
        seq = np.concatenate(
            [np.broadcast_to(rows[ri].L, (len(js), len(rows[ri].L))) for ri, js in members]
        ).astype(float)
        dest_all = np.concatenate(
            [
                np.where(rows[ri].pos[:, js] >= 0, rows[ri].start + rows[ri].pos[:, js], -1).T
                for ri, js in members
            ]
        )
        for index, o in evaluate_blocks(
            cfg.model, cfg.hardware, st, batch=batch, seq=seq, context=seq, **deg
        ):
            dest = dest_all[index]
            m = dest >= 0
            if not m.any():
                continue
            every = bool(m.all())
            d = dest.reshape(-1) if every else dest[m]
            src = None if every else np.flatnonzero(m.reshape(-1))
            valid = lambda v, m=m, src=src: _at_valid(v, m, src)  # noqa: E731
            for k, v in o.items():
                if isinstance(v, Categorical):
                    col = out.get(k)
                    if col is None:
                        col = out[k] = _Codes(total)
                    col.codes[d] = col.codes_of(v.labels)[valid(np.asarray(v.codes))]
                    continue
                v = np.asarray(v)
                if k not in out:
                    out[k] = np.empty(total, v.dtype)
                out[k][d] = valid(v)
    ints = {
        k: Categorical(int_labels[k], c) if int_codes else int_labels[k][c] for k, c in ints.items()
    }  # labels int64: the plain column's dtype
    cols: dict[str, object] = {}
    for k in ("topology", "topology_spec", "phase", "batch", "P", "L_nominal", "L", "plan", "family", "side"):
        cols[k] = text[k] if k in text else ints[k]
    for k in _PLAN_INT:
        cols[k] = ints[k]
    for k in ("ring_variant", "decode_attn", "pp_send", "prefill_attn"):
        cols[k] = text[k]
    cols["cached"] = ints["cached"]
    cols.update(out)
    return {k: v.column() if isinstance(v, _Codes) else v for k, v in cols.items()}


def run_experiment(
    exp: Experiment,
    progress=None,
    *,
    coded: bool = False,
    per_length: bool = False,
    int_codes: bool = False,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Evaluate every map row of the experiment.  Returns (columns over every evaluated point, skipped).

    ``coded``: the string columns come as ``results.Categorical`` (labels and int32 codes; the files'
    writers use them as they are, and no column of strings is made); with ``int_codes`` the integer
    columns too (their few values and int32 codes: the files' writers then need no sort of a million
    values to find them).  ``per_length``: the reference path
    (``evaluate_row_per_length``: each plan validated at each length, one model call per plan group);
    the default path gives the same columns (tests/test_explore.py) in a few large calls."""
    nominal = nominal_grid(*exp.seq, exp.points)
    skipped = skipped_sizes(exp)
    todo = tasks(exp)
    if per_length:
        parts = []
        it = todo if progress is None else progress(todo)
        for item, P, topo, phase, b in it:
            cols, sk = evaluate_row_per_length(exp, item, P, topo, phase, b, nominal)
            skipped += sk
            if cols is not None:
                parts.append(cols)
        if not parts:
            _nothing(skipped)
        keys = list(parts[0])
        cols = {k: np.concatenate([p[k] for p in parts]) for k in keys}
        return cols, skipped
    rows = []
    at = 0
    for item, P, topo, phase, b in todo:
        row, sk = _row_plans(exp, item, P, topo, phase, b, nominal)
        skipped += sk
        if row is not None:
            row.start = at
            at += row.n
            rows.append(row)
    if not rows:
        _nothing(skipped)
    with small_pages():
        cols = _evaluate_rows(exp, rows, nominal, progress, int_codes=coded and int_codes)
    if coded:
        return cols, skipped
    return {k: v.decode() if isinstance(v, Categorical) else v for k, v in cols.items()}, skipped


def _nothing(skipped: list[dict]) -> None:
    why = "; ".join(f"{s['topology']} at P={s['P']}: {s['reason']}" for s in skipped[:3]) or "no row"
    raise SpecError(f"nothing was evaluated: every (topology, P) was skipped ({why})")


# ----------------------------------------------------------------------------------------------
# analysis: winners per cell, the speed-up, the crossover
# ----------------------------------------------------------------------------------------------
def fmt_len(n: float) -> str:
    """1Mi, 96Ki, 100,000: powers-of-two multiples as Ki/Mi, the rest in full."""
    n = int(n)
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20}Mi"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}Ki"
    if n >= 2**20 and n % 2**14 == 0:
        return f"{n / 2**20:g}Mi"
    return f"{n:,}"


def _best(lat: np.ndarray, labels: list[str]) -> tuple[float, str | None]:
    if len(lat) == 0:
        return math.nan, None
    i = int(np.lexsort((np.array(labels), lat))[0])
    return float(lat[i]), labels[i]


def _labels_codes(col) -> tuple[np.ndarray, np.ndarray]:
    """(sorted labels, codes) of a column: a ``Categorical``'s own (compact: sorted, every label used) or
    those of a plain column."""
    if isinstance(col, Categorical):
        c = col.compact()
        return c.labels, c.codes
    labels, codes = np.unique(np.asarray(col), return_inverse=True)
    return labels, codes.reshape(-1)


def _plan_families(cols: dict, plans) -> dict[str, str]:
    """{plan label: its family} for the labels in ``plans``."""
    pl, pc = _labels_codes(cols["plan"])
    fl, fc = _labels_codes(cols["family"])
    _, first = np.unique(pc, return_index=True)  # a row of each plan (pc's codes are 0..len(pl)-1)
    fam = dict(zip(pl.tolist(), fl[fc[first]].tolist()))
    return {k: fam[k] for k in plans}


_CELL_KEYS = (
    "winner",
    "winner_latency_s",
    "ring_plan",
    "ring_latency_s",
    "tppp_plan",
    "tppp_latency_s",
    "plans_evaluated",
    "plans_fit",
)


def build_maps(cols: dict[str, np.ndarray], exp: Experiment) -> list[dict]:
    """Per (topology, phase, batch): rows P (ascending), columns the nominal lengths; each cell the
    fastest feasible plan (ties: the first label in sorted order), the best ring-family and best
    TP/PP-family plans and their latencies.  Every point is placed in its cell at once (codes, a sort per
    side), not looked up cell by cell; the columns may be plain or ``Categorical``."""
    nominal = [int(x) for x in nominal_grid(*exp.seq, exp.points)]
    nom = np.asarray(nominal, dtype=np.int64)
    tl, tc = _labels_codes(cols["topology"])
    phl, phc = _labels_codes(cols["phase"])
    bl, bc = _labels_codes(cols["batch"])
    Pl, Pc = _labels_codes(cols["P"])
    sl, sc = _labels_codes(cols["topology_spec"])
    plan_l, plan_c = _labels_codes(cols["plan"])  # labels sorted: a code's order is its label's
    side_l, side_c = _labels_codes(cols["side"])
    Ln, Lev = np.asarray(cols["L_nominal"]), np.asarray(cols["L"])
    lat, feas = np.asarray(cols["latency_s"]), np.asarray(cols["feasible"]).astype(bool)
    where = {str(v): i for i, v in enumerate(tl.tolist())}, {str(v): i for i, v in enumerate(phl.tolist())}
    bwhere = {int(v): i for i, v in enumerate(bl.tolist())}
    # map of each point: its (topology, phase, batch) in the experiment's order, -1 when none
    table = np.full((len(tl), len(phl), len(bl)), -1, np.int64)
    keys = []
    for item in exp.topology:
        for ph in exp.phase:
            for b in exp.batch:
                i, j, k = where[0].get(item), where[1].get(str(ph)), bwhere.get(int(b))
                if i is not None and j is not None and k is not None and table[i, j, k] < 0:
                    table[i, j, k] = len(keys)
                    keys.append((item, ph, b))
    n_pts = len(lat)
    mid = table[tc, phc, bc] if n_pts else np.zeros(0, np.int64)
    on = mid >= 0
    # rows: (map, P); columns: the nominal lengths (a point whose L_nominal is not one of them has none)
    row_key = mid * len(Pl) + Pc
    rows, first_of_row, row_of = np.unique(row_key[on], return_index=True, return_inverse=True)
    pts = np.flatnonzero(on)
    row = np.full(n_pts, -1, np.int64)
    row[pts] = row_of.reshape(-1)
    col = np.minimum(np.searchsorted(nom, Ln), len(nom) - 1)
    in_grid = on & (nom[col] == Ln)
    nL = len(nom)
    cell = np.where(in_grid, row * nL + col, -1)
    n_cells = len(rows) * nL
    evaluated = np.bincount(cell[in_grid], minlength=n_cells)
    fitting = np.bincount(cell[in_grid & feas], minlength=n_cells)
    first_L = np.full(n_cells, -1, np.int64)
    filled, first = np.unique(cell[in_grid], return_index=True)
    first_L[filled] = Lev[in_grid][first]  # the L of each cell's first point
    # sides present per row (placed at any length)
    ring_code = np.flatnonzero(side_l == "ring")
    tppp_code = np.flatnonzero(side_l == "tppp")
    is_ring = side_c == ring_code[0] if len(ring_code) else np.zeros(n_pts, bool)
    is_tppp = side_c == tppp_code[0] if len(tppp_code) else np.zeros(n_pts, bool)
    ring_placed = np.bincount(row[on & is_ring], minlength=len(rows)) > 0
    tppp_placed = np.bincount(row[on & is_tppp], minlength=len(rows)) > 0

    def best(mask):
        """Each cell's fastest point of ``mask`` (ties: the first plan label, then the first point), -1."""
        i = np.flatnonzero(mask & in_grid)
        if np.isnan(lat[i]).any():  # NaN latencies order last in a sort, not least: sort as before
            return _best_sorted(i, plan_c, lat, cell, n_cells)
        return _best_least(i, plan_c, lat, cell, n_cells)

    winners = {"winner": best(feas), "ring": best(feas & is_ring), "tppp": best(feas & is_tppp)}
    maps = []
    for k, (item, ph, b) in enumerate(keys):
        r0 = np.searchsorted(rows, k * len(Pl))
        r1 = np.searchsorted(rows, (k + 1) * len(Pl))
        if r0 == r1:
            continue
        Ps = [int(Pl[rows[r] - k * len(Pl)]) for r in range(r0, r1)]
        m = {
            "topology": item,
            "phase": ph,
            "batch": int(b),
            "L": nominal,
            "P": Ps,
            "topology_specs": [str(sl[sc[pts[first_of_row[r]]]]) for r in range(r0, r1)],
            "L_evaluated": [],
            **{key: [] for key in _CELL_KEYS},
        }
        for r in range(r0, r1):
            cells = range(r * nL, (r + 1) * nL)
            m["L_evaluated"].append([int(first_L[c]) if first_L[c] >= 0 else None for c in cells])
            m["plans_evaluated"].append([int(evaluated[c]) for c in cells])
            m["plans_fit"].append([int(fitting[c]) for c in cells])
            for side, got in winners.items():
                name, t = (
                    ("winner", "winner_latency_s")
                    if side == "winner"
                    else (f"{side}_plan", f"{side}_latency_s")
                )
                pick = got[r * nL : (r + 1) * nL]
                m[name].append([str(plan_l[plan_c[i]]) if i >= 0 else None for i in pick])
                m[t].append([float(lat[i]) if i >= 0 else None for i in pick])
        m["ring_placed"] = [bool(x) for x in ring_placed[r0:r1]]
        m["tppp_placed"] = [bool(x) for x in tppp_placed[r0:r1]]
        maps.append(m)
    return maps


def _best_least(i, plan_c, lat, cell, n_cells) -> np.ndarray:
    """Each cell's fastest point of ``i`` (ascending point indices; latencies not NaN), -1 where it has
    none: per cell the least latency, of its points at it the least plan code, of those the first point
    (``np.minimum.at``, no sort of the points); the same points as ``_best_sorted``."""
    t, c = lat[i], cell[i]
    least = np.full(n_cells, np.inf)
    np.minimum.at(least, c, t)
    i = i[t == least[c]]  # each cell's points at its least latency
    pc, c = plan_c[i], cell[i]
    big = np.iinfo(np.int64).max
    first = np.full(n_cells, big)
    np.minimum.at(first, c, pc)
    i = i[pc == first[c]]  # ... of the least plan code
    got = np.full(n_cells, big)
    np.minimum.at(got, cell[i], i)  # ... the first of them
    got[got == big] = -1
    return got


def _best_sorted(i, plan_c, lat, cell, n_cells) -> np.ndarray:
    """Each cell's first point of ``i`` in the order (cell, latency, plan code, index), -1 where it has
    none (``build_maps``'s ``best`` by a sort; kept for NaN latencies, and tests compare the two)."""
    order = i[np.lexsort((plan_c[i], lat[i], cell[i]))]
    cs = cell[order]
    head = np.ones(len(order), bool)
    head[1:] = cs[1:] != cs[:-1]
    got = np.full(n_cells, -1, np.int64)
    got[cs[head]] = order[head]
    return got


def crossover(maps: list[dict]) -> list[dict]:
    """Per (topology, phase, batch, P): where the best ring-family plan beats the best TP/PP-family plan,
    counting only lengths where both fit; the speed-up range there; the longest lengths that fit."""
    rows = []
    for m in maps:
        L = m["L"]
        for r, P in enumerate(m["P"]):
            rl, tl = m["ring_latency_s"][r], m["tppp_latency_s"][r]
            both = [c for c in range(len(L)) if rl[c] is not None and tl[c] is not None]
            sp = {c: tl[c] / rl[c] for c in both}
            wins = [c for c in both if sp[c] > 1]
            if not both:
                verdict, frm = "no both-fit length", None
            elif len(wins) == len(both):
                verdict, frm = "always", L[both[0]]
            elif not wins:
                verdict, frm = "never", None
            else:
                # the shortest both-fit length from which ring wins at every longer both-fit length
                tail = None
                for c in reversed(both):
                    if sp[c] > 1:
                        tail = c
                    else:
                        break
                verdict = "from" if tail is not None else "mixed"
                frm = L[tail] if tail is not None else None

            def fits(lat, L=L):
                return [L[c] for c in range(len(L)) if lat[c] is not None]

            anyfit = [L[c] for c in range(len(L)) if m["winner"][r][c] is not None]
            cmax = max(both, key=lambda c: sp[c]) if both else None
            cmin = min(both, key=lambda c: sp[c]) if both else None
            rows.append(
                {
                    "topology": m["topology"],
                    "topology_spec": m["topology_specs"][r],
                    "phase": m["phase"],
                    "batch": m["batch"],
                    "P": P,
                    "verdict": verdict,
                    "ring_wins_from": frm,
                    "ring_wins_at": len(wins),
                    "both_fit": len(both),
                    "first_ring_win": L[wins[0]] if wins else None,
                    "speedup_min": sp[cmin] if both else None,
                    "speedup_min_at": L[cmin] if both else None,
                    "speedup_max": sp[cmax] if both else None,
                    "speedup_max_at": L[cmax] if both else None,
                    "ring_plan_at_max": m["ring_plan"][r][cmax] if both else None,
                    "tppp_plan_at_max": m["tppp_plan"][r][cmax] if both else None,
                    "longest_fit_any": max(anyfit) if anyfit else None,
                    "longest_fit_ring": max(fits(rl)) if fits(rl) else None,
                    "longest_fit_tppp": max(fits(tl)) if fits(tl) else None,
                    "shortest_fit_any": min(anyfit) if anyfit else None,
                    "ring_placed": m.get("ring_placed", [True] * len(m["P"]))[r],
                    "tppp_placed": m.get("tppp_placed", [True] * len(m["P"]))[r],
                    "grid_min": L[0],
                    "grid_max": L[-1],
                }
            )
    return rows


def _x(v) -> str:
    return f"{v:.2f}x"


def sentence(row: dict) -> str:
    """The answer for one (topology, phase, batch, P) in words."""
    where = f"on {row['topology_spec']} with {row['P']} GPUs ({row['phase']}, B = {row['batch']})"
    if row["longest_fit_any"] is None:
        lo, hi = fmt_len(row["grid_min"]), fmt_len(row["grid_max"])
        return f"{where}, nothing fits at any length of the grid ({lo}..{hi})."
    parts = []
    v = row["verdict"]
    if v == "always":
        parts.append(
            f"ring wins at every length where both a ring and a TP/PP plan fit "
            f"({fmt_len(row['ring_wins_from'])} and up), by {_x(row['speedup_min'])} to "
            f"{_x(row['speedup_max'])} (largest at {fmt_len(row['speedup_max_at'])})"
        )
    elif v == "never":
        parts.append(
            f"ring never wins where both fit (TP/PP is faster by {_x(1 / row['speedup_max'])} or more; the "
            f"closest is {_x(row['speedup_max'])} at {fmt_len(row['speedup_max_at'])})"
        )
    elif v == "from":
        parts.append(
            f"ring wins from {fmt_len(row['ring_wins_from'])}, by up to {_x(row['speedup_max'])} at "
            f"{fmt_len(row['speedup_max_at'])}"
        )
    elif v == "mixed":
        parts.append(
            f"ring wins at {row['ring_wins_at']} of {row['both_fit']} lengths where both fit (first at "
            f"{fmt_len(row['first_ring_win'])}) but not at the longest; at most {_x(row['speedup_max'])} at "
            f"{fmt_len(row['speedup_max_at'])}"
        )
    else:
        parts.append("no length has both a ring plan and a TP/PP plan that fit")
    lr, lt = row["longest_fit_ring"], row["longest_fit_tppp"]
    for side, name in (("tppp", "TP/PP"), ("ring", "ring")):
        if not row.get(f"{side}_placed", True):
            parts.append(
                f"no {name} plan can be placed on {row['P']} GPUs (its degrees do not divide the layers, "
                "heads or nodes)"
            )
    if lr is not None and (lt is None or lr > lt):
        parts.append(f"beyond {fmt_len(lt)} only ring plans fit" if lt is not None else "only ring plans fit")
    elif lt is not None and (lr is None or lt > lr):
        parts.append(
            f"beyond {fmt_len(lr)} only TP/PP plans fit" if lr is not None else "only TP/PP plans fit"
        )
    if row["longest_fit_any"] < row["grid_max"]:
        parts.append(f"beyond {fmt_len(row['longest_fit_any'])} nothing fits")
    else:
        parts.append(f"something fits up to the grid's end ({fmt_len(row['grid_max'])})")
    return f"{where}, " + "; ".join(parts) + "."


CROSSOVER_COLUMNS = (
    "topology",
    "topology_spec",
    "phase",
    "batch",
    "P",
    "verdict",
    "ring_wins_from",
    "ring_wins_at",
    "both_fit",
    "speedup_min",
    "speedup_max",
    "speedup_max_at",
    "ring_plan_at_max",
    "tppp_plan_at_max",
    "longest_fit_ring",
    "longest_fit_tppp",
    "longest_fit_any",
)

VERDICTS = {
    "always": "the best ring-family plan is faster than the best TP/PP-family plan at every length where "
    "both "
    "fit (ring_wins_from is then the shortest such length)",
    "never": "the best TP/PP-family plan is faster at every length where both fit",
    "from": "ring is faster at ring_wins_from and at every longer length where both fit, "
    "slower just below it",
    "mixed": "ring is faster at some lengths where both fit but not at the longest of them",
    "no both-fit length": "at no length of the grid do both a ring-family and a TP/PP-family plan fit "
    "in memory",
}


def crossover_markdown(rows: list[dict]) -> str:
    head = [
        "topology",
        "phase",
        "B",
        "P",
        "verdict",
        "ring wins from",
        "speed-up (ring / TP-PP) where both fit",
        "longest L that fits: ring / TP-PP / any",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    f = lambda v: "—" if v is None else fmt_len(v)  # noqa: E731
    for r in rows:
        sp = (
            "—"
            if r["speedup_max"] is None
            else f"{_x(r['speedup_min'])} .. {_x(r['speedup_max'])} (max at {fmt_len(r['speedup_max_at'])}: "
            f"`{r['ring_plan_at_max']}` vs `{r['tppp_plan_at_max']}`)"
        )
        out.append(
            f"| {r['topology_spec']} | {r['phase']} | {r['batch']} | {r['P']} | {r['verdict']} | "
            f"{f(r['ring_wins_from'])} | {sp} | {f(r['longest_fit_ring'])} / {f(r['longest_fit_tppp'])} / "
            f"{f(r['longest_fit_any'])} |"
        )
    return "\n".join(out)


def crossover_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    def col(k):
        vals = [r[k] for r in rows]
        if all(isinstance(v, str) for v in vals):
            return np.array(vals, dtype=str)
        if any(isinstance(v, str) for v in vals):
            return np.array(["" if v is None else str(v) for v in vals], dtype=str)
        return np.array([np.nan if v is None else v for v in vals], dtype=float)

    return {k: col(k) for k in CROSSOVER_COLUMNS}


# ----------------------------------------------------------------------------------------------
# the output folder
# ----------------------------------------------------------------------------------------------
def specs_of(exp: Experiment, version: str) -> dict:
    cfg = exp.config
    m = cfg.model
    return {
        "kind": "explore",
        "engine": "analytic",
        "ringsim_version": version,
        "experiment": exp.to_dict(),
        "experiment_file": Path(exp.source).name if exp.source else None,
        "hardware": cfg.hardware.name,
        "hardware_provenance": dict(cfg.hardware.provenance),
        "model": m.name,
        "model_fields": {
            k: getattr(m, k) for k in ("layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff")
        },
        "overrides": list(cfg.overrides),
        "overrides_derived": list(cfg.derived),
        "length_grid": [int(x) for x in nominal_grid(*exp.seq, exp.points)],
    }


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


def experiment_toml(exp: Experiment) -> str:
    import tomli_w

    return "# the resolved experiment: `ringsim explore experiment.toml --out DIR` re-makes this folder\n" + (
        tomli_w.dumps(exp.to_dict())
    )


def explore(
    out,
    exp: Experiment,
    *,
    version: str = "",
    command: str = "ringsim explore",
    progress=None,
    log=print,
    csv: bool = True,
) -> dict:
    """Run the experiment and write the output folder as a unit (temporary sibling, then rename).
    ``csv``: write data/explore.csv beside data/explore.npz (the same columns as text; at 1e6 points about
    0.5 GB and most of the files' time)."""
    final = Path(out)
    if final.exists() and not final.is_dir():
        raise SpecError(f"--out {str(out)!r} is a file: name a folder")
    ensure_dir(final.resolve().parent, "--out")
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.resolve().parent))
    try:
        result = write_explore(
            work, exp, version=version, command=command, progress=progress, log=log, csv=csv
        )
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
        work.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result["out"] = final
    return result


def _maps_and_figures(out: Path, data: Path, exp: Experiment, cols: dict, specs: dict):
    """The maps, the crossover and their files (maps.json, crossover.csv/.md, experiment.toml) and the
    figures: (maps, crossover rows, figure paths)."""
    from plots.explore import explore_figures  # matplotlib: imported once the evaluation is done

    maps = build_maps(cols, exp)
    rows = crossover(maps)
    shown = {x for m in maps for row in m["winner"] for x in row if x}  # the plans a winner map colours
    fam = _plan_families(cols, shown)
    maps_file = write_json(
        data / "maps.json",
        {
            "kind": "explore-maps",
            "specs": specs,
            "plan_families": {k: fam[k] for k in sorted(shown)},
            "maps": maps,
            "crossover": rows,
        },
    )
    write_csv(
        out / "crossover.csv",
        crossover_columns(rows),
        header_comment={"kind": "explore-crossover", "verdicts": VERDICTS},
    )
    atomic_write_text(out / "crossover.md", crossover_markdown(rows) + "\n\n" + verdict_legend() + "\n")
    atomic_write_text(out / "experiment.toml", experiment_toml(exp))
    figs = explore_figures(maps_file, out / "figures")
    return maps, rows, figs


def write_explore(
    out: Path,
    exp: Experiment,
    *,
    version="",
    command="ringsim explore",
    progress=None,
    log=print,
    csv: bool = True,
) -> dict:
    """Evaluate and write everything into ``out`` (an existing, empty folder).

    The data files (explore.npz/.csv/.json: ~0.9 GB at 1e6 points, formatted and written mostly in C,
    without the GIL) are written by a thread while the maps, the crossover and the figures are made; an
    error in either is raised once both have stopped (the folder is then removed by ``explore``)."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    cols, skipped = run_experiment(exp, progress=progress, coded=True, int_codes=True)
    feas = cols["feasible"].astype(bool)
    n_plans = len(_labels_codes(cols["plan"])[0])
    if not feas.any():
        raise SpecError(
            f"nothing fits: none of the {len(feas)} evaluated points ({n_plans} plans) "
            f"fits in {exp.config.hardware.name}'s memory at any length of "
            f"{fmt_len(exp.seq[0])}..{fmt_len(exp.seq[1])}; "
            "try more GPUs, a smaller batch or shorter lengths"
        )
    dt = time.perf_counter() - t0
    data = ensure_dir(out / "data", "--out")
    specs = specs_of(exp, version)
    with ThreadPoolExecutor(1, thread_name_prefix="explore-files") as pool:
        files = pool.submit(write_sweep_files, data, cols, specs, skipped, stem="explore", with_csv=csv)
        maps, rows, figs = _maps_and_figures(out, data, exp, cols, specs)
        files.result()
    rel = lambda p: os.path.relpath(p, out).replace(os.sep, "/")  # noqa: E731
    figures = [rel(p) for p in figs if p.suffix == ".png"]
    md = render_markdown(
        exp, specs, maps, rows, figures, skipped, n_points=len(feas), runtime_s=dt, command=command, csv=csv
    )
    atomic_write_text(out / "EXPLORE.md", md)
    log(f"{len(feas)} points ({n_plans} plans) in {dt:.1f} s; {len(maps)} maps")
    return {
        "maps": maps,
        "crossover": rows,
        "figures": figures,
        "skipped": skipped,
        "points": len(feas),
        "specs": specs,
        "runtime_s": dt,
        "csv": csv,
    }


def verdict_legend() -> str:
    return "\n".join(f"* **{k}**: {v}." for k, v in VERDICTS.items())


def render_markdown(
    exp, specs, maps, rows, figures, skipped, *, n_points, runtime_s, command, csv: bool = True
) -> str:
    m = specs["model_fields"]
    title = exp.title or f"{specs['model']} on {specs['hardware']}: which plan wins"
    lines = [
        f"# {title}",
        "",
        f"`{command}` — analytic model, {n_points:,} points in {runtime_s:.1f} s "
        f"(ringsim {specs['ringsim_version'] or '?'}). Hardware **{specs['hardware']}**, "
        f"model **{specs['model']}** "
        f"({m['layers']} layers, d_model {m['d_model']}, {m['n_heads']} heads / {m['n_kv_heads']} KV heads), "
        f"attention kernel `{exp.attn_kernel}`"
        + (
            " (the profile's fastest per call; the `attn_kernel_used` column names it)"
            if exp.attn_kernel == "auto"
            else ""
        )
        + f", pipeline sends `{exp.pp_send}`"
        + (f", overrides {', '.join(specs['overrides'])}" if specs["overrides"] else "")
        + ".",
        "",
        f"Plan families: {', '.join(exp.families)}; prefill ring layouts {', '.join(exp.ring_variant)}; "
        f"decode merges {', '.join(exp.decode_attn)}; micro-batch and chunk counts as `ringsim best` "
        "tries them. "
        + (
            f"Partial prefill: every prefill row follows {exp.cached:,} cached tokens per sequence (the "
            f"length is the new tokens'); prefill rings tried: {', '.join(exp.prefill_attn)}. "
            if exp.cached
            else ""
        )
        + "A plan *fits* when its memory per device (weights, KV cache, activations, buffers, workspace) is "
        "within the HBM capacity; the winner of a cell is the fastest plan that fits (lowest latency: the "
        "prompt's prefill, or one decode step).",
        "",
        "## The answer",
        "",
    ]
    lines += [f"* {sentence(r)}" for r in rows]
    lines += [
        "",
        "## Crossover (memory-aware)",
        "",
        "Only lengths where both a ring-family plan (Ring Attention, alone or with TP/Ulysses/PP) and a "
        "TP/PP-family plan (TP, PP, TP x PP, chunked pipelines) fit are compared; speed-up = latency of the "
        "best TP/PP plan / latency of the best ring plan (> 1: ring is faster). Also in "
        "[crossover.csv](crossover.csv) and [crossover.md](crossover.md).",
        "",
        crossover_markdown(rows),
        "",
        verdict_legend(),
        "",
        "## Maps",
        "",
    ]
    for f in figures:
        lines += [f"![{Path(f).stem}]({f})", ""]
    lines += [
        "## Files",
        "",
        "* [data/explore.npz](data/explore.npz)"
        + (", [data/explore.csv](data/explore.csv)" if csv else " (no CSV: `--no-csv`)")
        + ": every evaluated point "
        "(one row per plan x length x P x topology x phase x batch; `feasible` says whether it fits); "
        "[data/explore.json](data/explore.json): the specs (hardware, model, overrides, version), the "
        "skipped "
        "pairs and the columns.",
        "* [data/maps.json](data/maps.json): the grids the maps are drawn from "
        "(`ringsim plot data/maps.json` "
        "re-makes them).",
        "* [experiment.toml](experiment.toml): this experiment; `ringsim explore experiment.toml` "
        "re-runs it.",
        "",
        f"Lengths: {len(specs['length_grid'])} points from {fmt_len(exp.seq[0])} to "
        f"{fmt_len(exp.seq[1])}; at each "
        "P every plan is evaluated at the nearest multiple of the length all its plans can split (the "
        "`L` column; `L_nominal` is the map's column).",
    ]
    if skipped:
        lines += ["", "Skipped:", ""]
        lines += [
            "* "
            + ", ".join(f"{k} {s[k]}" for k in ("topology", "P", "phase", "batch", "plan") if k in s)
            + f": {s['reason']}"
            for s in skipped[:40]
        ]
        if len(skipped) > 40:
            lines.append(f"* ... and {len(skipped) - 40} more (data/explore.json)")
    return "\n".join(lines) + "\n"


def report_section(r: dict, *, level: int = 3, maps: bool = True) -> str:
    """Markdown for a report that includes an explore folder (``r`` from ``write_explore`` with
    ``folder``, a path relative to the report): the answer in sentences, the crossover table and the maps,
    linking only into that folder."""
    h = "#" * level
    f = r["folder"]
    lines = [
        f"{h} {r.get('title') or f}",
        "",
        f"From [{f}/EXPLORE.md]({f}/EXPLORE.md) ({r['points']:,} points; data in "
        + (
            f"[{f}/data/explore.csv]({f}/data/explore.csv)"
            if r.get("csv", True)
            else f"[{f}/data/explore.npz]({f}/data/explore.npz)"
        )
        + f", the experiment in "
        f"[{f}/experiment.toml]({f}/experiment.toml)).",
        "",
    ]
    lines += [f"* {sentence(row)}" for row in r["crossover"]]
    lines += ["", crossover_markdown(r["crossover"]), ""]
    if maps:
        lines += [f"![{Path(p).stem}]({p})" for p in r["figures"]]
        lines.append("")
    return "\n".join(lines)


def example_experiments() -> list[Path]:
    """The experiment files shipped with ringsim (``studies/experiments/*.toml``)."""
    return sorted(EXPERIMENTS_DIR.glob("*.toml"))


__all__ = [
    "Experiment",
    "FAMILIES",
    "KEYS",
    "build_maps",
    "crossover",
    "explore",
    "load_experiment_file",
    "make_experiment",
    "nominal_grid",
    "plan_family",
    "report_section",
    "run_experiment",
    "sentence",
]
