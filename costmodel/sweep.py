"""Vectorised sweeps over sequence length x device count x plan templates.

A plan template writes degrees as integers or expressions of P (``ring=P``, ``tp=8,pp=P/8``,
``tp=2,ring=P/2``).  Each template is evaluated in one numpy call over the whole L x P grid; points
whose plan does not divide (heads, layers, nodes) are skipped with the reason, points that do not
fit in memory are kept with ``feasible = False``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import strategies
from .analytic import bottleneck, evaluate_blocks
from .closedform import Setting
from .errors import SpecError
from .geometry import seq_multiple
from .plan import AXIS_NAMES, Plan
from .results import Categorical, small_pages
from .specs import Hardware, Model, Phase, Workload
from .topology import topology_for
from .units import length_grid

_TERM = re.compile(r"^(" + "|".join(AXIS_NAMES) + r"|mb|microbatches|chunks)=(\d+|P|P/\d+|P\*\d+|\d+\*P)$")


@dataclass(frozen=True)
class PlanTemplate:
    text: str
    terms: tuple[tuple[str, str], ...]

    def degrees(self, P: int) -> dict[str, int] | None:
        """Degrees at P devices, or None when an expression is not a whole number."""
        out: dict[str, int] = {}
        for key, expr in self.terms:
            if expr == "P":
                v = Fraction(P)
            elif expr.startswith("P/"):
                v = Fraction(P, int(expr[2:]))
            elif "*" in expr:
                v = Fraction(P * int(expr.replace("P", "").replace("*", "")))
            else:
                v = Fraction(int(expr))
            if v.denominator != 1 or v < 1:
                return None
            out["microbatches" if key == "mb" else key] = int(v)
        return out


def parse_template(text: str) -> PlanTemplate:
    terms = []
    for item in text.replace(" ", "").split(","):
        if not _TERM.match(item):
            keys = "|".join(AXIS_NAMES)
            raise SpecError(
                f"--plans {text!r}: item {item!r} is not valid: use {keys}|mb|chunks = an "
                f"integer or P, P/k, k*P, e.g. 'ring=P' or 'tp=8,pp=P/8'"
            )
        k, v = item.split("=")
        if v.startswith("P/") and int(v[2:]) == 0:
            raise SpecError(f"--plans {text!r}: item {item!r} divides by zero: use P/k with k >= 1")
        terms.append((k, v))
    return PlanTemplate(text=text, terms=tuple(terms))


MAX_POINTS = 100_000  # lengths in one grid: 100,000 sweep in about 10 s; a billion would never end


def check_points(points: int, least: int = 1) -> None:
    """--points: the lengths of a sweep's grid, ``least`` to MAX_POINTS (one sentence otherwise)."""
    if isinstance(points, bool) or not isinstance(points, int) or not least <= points <= MAX_POINTS:
        raise SpecError(
            f"--points {points!r} is not valid: an integer from {least} to {MAX_POINTS:,} lengths"
        )


def seq_grid(lo: int, hi: int, points: int, multiple: int) -> np.ndarray:
    """Geometric grid from lo to hi (both exactly; see ``units.length_grid``)."""
    check_points(points)
    return length_grid(lo, hi, points, multiple)


def run_sweep(
    model: Model,
    hw: Hardware,
    *,
    topo_kind: str,
    phase: str,
    causal: bool,
    kernel: str,
    ring_variant: str,
    decode_attn: str,
    batch: int,
    seqs: np.ndarray,
    gpus: list[int],
    templates: list[PlanTemplate],
    progress=None,
    coded: bool = False,
    cached: int = 0,
    prefill_attn: str = "pass-kv",
    on_block=None,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Evaluate every (template, P) over the L grid.  Returns (columns, skipped).

    ``cached``: partial prefill, tokens per sequence in the KV cache before the L new ones; ``prefill_attn``:
    what the plans with a ring circulate (pass-kv | pass-q; plans without one attend locally).

    The (template, P) pairs are checked first, so every output column is allocated once at its final
    length and each block of the model's outputs is written into it (no copies to concatenate).
    ``coded``: the string columns (plan_template, plan, bottleneck, ...) and the grid's P and L come as
    ``results.Categorical`` (labels and codes; ``np.asarray`` gives the plain column): the files'
    writers use the codes, and no column of strings is made.

    ``on_block(columns, start, total)``: called after each template with the rows done so far (views of
    the columns' rows 0..n in their final order, the string columns as ``Categorical`` of the sweep's
    labels, not compacted), of which rows start..n are that template's, and the sweep's row count --
    e.g. ``results.CsvStream.feed``, ``npzstream.NpzStream.feed``."""
    with small_pages():
        return _run_sweep(
            model,
            hw,
            topo_kind=topo_kind,
            phase=phase,
            causal=causal,
            kernel=kernel,
            ring_variant=ring_variant,
            decode_attn=decode_attn,
            batch=batch,
            seqs=seqs,
            gpus=gpus,
            templates=templates,
            progress=progress,
            coded=coded,
            cached=cached,
            prefill_attn=prefill_attn,
            on_block=on_block,
        )


def _run_sweep(
    model: Model,
    hw: Hardware,
    *,
    topo_kind: str,
    phase: str,
    causal: bool,
    kernel: str,
    ring_variant: str,
    decode_attn: str,
    batch: int,
    seqs: np.ndarray,
    gpus: list[int],
    templates: list[PlanTemplate],
    progress,
    coded: bool,
    cached: int,
    prefill_attn: str,
    on_block=None,
) -> tuple[dict[str, np.ndarray], list[dict]]:
    gpn = 8 if topo_kind == "ib" else 72 if topo_kind == "nvl" else max(gpus)  # as topology_for
    skipped: list[dict] = []
    work: list[tuple[PlanTemplate, list]] = []
    for tpl in templates:
        rows = []
        for P in gpus:
            deg = tpl.degrees(P)
            if deg is None:
                skipped.append(
                    {"plan": tpl.text, "P": P, "reason": "an expression of P is not a whole number"}
                )
                continue
            try:
                pa = prefill_attn if deg.get("ring", 1) > 1 else "pass-kv"
                plan = Plan(ring_variant=ring_variant, decode_attn=decode_attn, prefill_attn=pa, **deg)
                topo = topology_for(topo_kind, P)
                wl = Workload(
                    batch=batch,
                    seq_len=int(seqs[0]),
                    phase=phase,
                    context_len=int(seqs[0]),
                    causal=causal,
                    cached_len=cached,
                )
                strategies.validate(plan, model, wl, topo)
            except SpecError as e:
                skipped.append({"plan": tpl.text, "P": P, "reason": str(e)})
                continue
            rows.append((P, plan))
        if rows:
            work.append((tpl, rows))
    nL = len(seqs)
    total = nL * sum(len(rows) for _, rows in work)
    st = Setting(
        phase=phase,
        causal=causal,
        kernel=kernel,
        ring_variant=ring_variant,
        decode_attn=decode_attn,
        topo_kind=topo_kind,
        gpus_per_node=gpn,
        cached=cached,
        prefill_attn=prefill_attn,
    )
    # the grid's columns as codes: template, plan, P (an index into gpus) and L (an index into seqs)
    names = [r[1].label(phase, kernel) for _, rows in work for r in rows]
    grid = {k: np.empty(total, np.int32) for k in ("plan_template", "plan", "P", "L")}
    p_labels = np.unique(np.asarray(gpus, dtype=int))
    out: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}  # string outputs of the model: their labels (codes in out)
    grid_labels = {
        "plan_template": np.array([tpl.text for tpl, _ in work]),
        "plan": np.array(names),
        "P": p_labels,
        "L": seqs.astype(np.int64),
    }
    at = j0 = 0
    it = work if progress is None else progress(work)
    for ti, (_tpl, rows) in enumerate(it):
        n = nL * len(rows)
        view = {k: v[at : at + n].reshape(nL, len(rows)) for k, v in grid.items()}
        view["plan_template"][...] = ti
        view["plan"][...] = np.arange(j0, j0 + len(rows))[None, :]
        view["P"][...] = np.searchsorted(p_labels, [r[0] for r in rows])[None, :]
        view["L"][...] = np.arange(nL)[:, None]
        # evaluated as plans x lengths (lengths the inner, contiguous axis: numpy's loops then run over
        # long rows, about twice as fast as over rows of a few plans), written into the columns' lengths x
        # plans order
        deg = {
            k: np.array([getattr(r[1], k) for r in rows])[:, None]
            for k in AXIS_NAMES + ("microbatches", "chunks")
        }
        L = seqs[None, :].astype(float)
        # each block of the model's outputs goes straight into its place in the columns
        for index, o in evaluate_blocks(model, hw, st, batch=batch, seq=L, context=L, **deg):
            for k, v in o.items():
                if isinstance(v, Categorical):
                    if k not in labels:
                        labels[k] = v.labels
                    elif not np.array_equal(labels[k], v.labels):  # not met: the label sets are fixed
                        raise AssertionError(f"{k}: labels differ between blocks")
                    v = v.codes
                if k not in out:
                    out[k] = _page_aligned_empty(total, np.int32 if k in labels else v.dtype)
                dst = out[k][at : at + n].reshape(nL, len(rows)).T[index]
                if not np.may_share_memory(dst, out[k]):  # index is slices (a view); a fancy index copies
                    raise AssertionError("a block's index must be slices: its rows would not be written")
                for r, row in enumerate(v if v.shape == dst.shape else np.broadcast_to(v, dst.shape)):
                    dst[r] = (
                        row  # a plan at a time: the lengths are numpy's inner loop (the plans: ~2x slower)
                    )
        if on_block is not None:
            on_block(_columns(grid_labels, grid, out, labels, 0, at + n), at, total)
        at += n
        j0 += len(rows)
    cols = _columns(grid_labels, grid, out, labels, 0, total) if work else {}
    if coded:
        return {k: v.compact() if _is_text(v) else v for k, v in cols.items()}, skipped
    return {k: v.decode() if isinstance(v, Categorical) else v for k, v in cols.items()}, skipped


def _page_aligned_empty(n: int, dtype) -> np.ndarray:
    """``np.empty(n, dtype)`` starting on a 4 KiB page boundary: ``npzstream.NpzStream`` writes a column's
    rows to disk past the page cache straight from where they lie (no copy)."""
    dtype = np.dtype(dtype)
    raw = np.empty(n * dtype.itemsize + 4096, np.uint8)
    at = -raw.ctypes.data % 4096
    return raw[at : at + n * dtype.itemsize].view(dtype)


def _columns(grid_labels: dict, grid: dict, out: dict, labels: dict, a: int, b: int) -> dict:
    """Rows a..b of the sweep's columns: the grid's and the model's string outputs as ``Categorical``."""
    cols = {k: Categorical(grid_labels[k], grid[k][a:b]) for k in grid_labels}
    for k, v in out.items():
        cols[k] = Categorical(labels[k], v[a:b]) if k in labels else v[a:b]
    return cols


def _is_text(v) -> bool:
    return isinstance(v, Categorical) and v.labels.dtype.kind == "U"


def lcm_multiple(templates: list[PlanTemplate], gpus: list[int], ring_variant: str) -> int:
    """A length multiple every plan of the sweep can split (zigzag needs 2 x ring x ulysses)."""
    m = 1
    for tpl in templates:
        for P in gpus:
            d = tpl.degrees(P) or {}
            need = seq_multiple(d.get("ring", 1), d.get("ulysses", 1), ring_variant) * d.get("chunks", 1)
            m = m * need // math.gcd(m, need)
    return m


__all__ = ["Phase", "bottleneck", "lcm_multiple", "parse_template", "run_sweep", "seq_grid"]
