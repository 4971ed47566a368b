"""The maps of ``ringsim explore``, drawn from ``data/maps.json`` alone (``ringsim plot data/maps.json``).

* Winner map per (topology, phase, batch): length on x (log scale, Ki/Mi ticks), GPU count on y; each cell
  coloured by its fastest plan that fits and marked with the plan's key (``R1``, ``TP3``, ...), the keys
  and colours the same in every map of the file (``plan_styles``); cells where nothing fits are grey and
  hatched; the legend sits outside the data.
* Speed-up map: best ring-family plan over best TP/PP-family plan (latency of TP/PP / latency of ring, > 1:
  ring is faster) on a diverging colour scale centred at 1, numbers in the cells where they are readable;
  cells where only one side (or neither) fits are hatched and say which.

``plan_styles`` is the one per-plan colour function of the explore figures: colours by family (ring reds,
hybrids oranges, Ulysses purples, TP blues, TP x PP greens, chunked pipelines teals, PP browns), shades
within a family, assigned over the sorted set of every plan in the file.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import TwoSlopeNorm, to_rgb
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.textpath import TextPath
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from matplotlib.transforms import Affine2D, IdentityTransform

from costmodel.errors import SpecError

from .style import plt, save

FAMILY_ORDER = ("ring", "hybrid", "ulysses", "tp", "tp-pp", "chunked", "pp", "single")
FAMILY_KEY = {
    "ring": "R",
    "hybrid": "H",
    "ulysses": "U",
    "tp": "T",
    "tp-pp": "TP",
    "chunked": "C",
    "pp": "P",
    "single": "S",
}
# colour maps per colour group: warm for plans with a ring, cool for TP/PP, purple for Ulysses alone
GROUP_CMAPS = {
    "ring": "Reds",
    "hybrid-tp": "Oranges",
    "hybrid-u": "RdPu",
    "hybrid-pp": "YlOrBr",
    "ulysses": "Purples",
    "tp": "Blues",
    "tp-pp": "Greens",
    "chunked": "GnBu",
    "pp": "Greys",
    "single": "Greys",
}
NOFIT = {"facecolor": "#e6e6e6", "hatch": "xxx", "edgecolor": "#9a9a9a"}
ONLY_RING = {"facecolor": "#f6d5d3", "hatch": "///", "edgecolor": "#c0504d"}
ONLY_TPPP = {"facecolor": "#d6e4f2", "hatch": "\\\\\\", "edgecolor": "#4f81bd"}


def _natural(label: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label)]


def _group(label: str, fam: str) -> str:
    """The colour group: hybrids split by what the ring is combined with."""
    if fam != "hybrid":
        return fam if fam in GROUP_CMAPS else "single"
    if "ulysses=" in label:
        return "hybrid-u"
    if "pp=" in label:
        return "hybrid-pp"
    return "hybrid-tp"


def _spread(n: int) -> list[int]:
    """0..n-1 reordered so that neighbours in the order are far apart in shade (0, n/2, 1, n/2+1, ...)."""
    h = (n + 1) // 2
    return [x for pair in zip(range(h), range(h, n)) for x in pair] + ([h - 1] if n % 2 else [])


def plan_styles(families: dict[str, str]) -> dict[str, tuple[str, tuple]]:
    """{plan label: (key, colour)} for every plan of ``families`` ({label: family}): keys R1, R2, ... by
    family, in natural order of the labels; colours from the family's colour map (hybrids by what the
    ring is combined with), shades spread so that neighbouring keys differ; the same plan gets the same
    key and colour in every map of a file."""
    by_fam: dict[str, list[str]] = {}
    for lab, fam in families.items():
        by_fam.setdefault(fam if fam in FAMILY_KEY else "single", []).append(lab)
    out = {}
    for fam in FAMILY_ORDER:
        labs = sorted(by_fam.get(fam, []), key=_natural)
        by_group: dict[str, list[str]] = {}
        for lab in labs:
            by_group.setdefault(_group(lab, fam), []).append(lab)
        colours = {}
        for g, members in by_group.items():
            n = len(members)
            shades = np.linspace(0.45, 0.9, n) if n > 1 else [0.7]
            order = _spread(n)
            cmap = plt.get_cmap(GROUP_CMAPS[g])
            for i, lab in enumerate(members):
                colours[lab] = tuple(cmap(shades[order.index(i)])[:3])
        for i, lab in enumerate(labs):
            out[lab] = (f"{FAMILY_KEY[fam]}{i + 1}", colours[lab])
    return out


def _text_color(c) -> str:
    r, g, b = to_rgb(c)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def fmt_len(v: float, _pos=None) -> str:
    v = float(v)
    if v >= 2**20 and v % 2**20 == 0:
        return f"{v / 2**20:g}Mi"
    if v >= 1024 and v % 1024 == 0:
        return f"{v / 1024:g}Ki"
    return f"{v:g}"


def _edges(L: list[int]) -> np.ndarray:
    """Cell edges on a log axis: geometric midpoints, the outer ones mirrored."""
    x = np.log2(np.asarray(L, float))
    if len(x) == 1:
        return 2.0 ** np.array([x[0] - 0.5, x[0] + 0.5])
    mid = (x[1:] + x[:-1]) / 2
    return 2.0 ** np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def _axes(ax, m: dict, edges: np.ndarray) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlim(edges[0], edges[-1])
    lo, hi = math.ceil(math.log2(edges[0])), math.floor(math.log2(edges[-1]))
    step = 1 if hi - lo <= 10 else 2
    ax.xaxis.set_major_locator(FixedLocator([2.0**k for k in range(lo, hi + 1, step)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(fmt_len))
    ax.set_xlabel("sequence length L (prompt in prefill, context in decode)")
    nP = len(m["P"])
    ax.set_ylim(-0.5, nP - 0.5)
    ax.set_yticks(range(nP))
    ax.set_yticklabels([f"{p}  ({s})" for p, s in zip(m["P"], m["topology_specs"])])
    ax.set_ylabel("GPUs P  (topology)")
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)


def _cells(ax, edges, cells: list[tuple[int, int, dict]]) -> None:
    """Draw the cells ``(column, row, style)`` (a style: facecolor, edgecolor, optional hatch) as
    rectangles of linewidth 0.4, in the given order: each run of cells sharing an edge colour and hatch
    is one ``PolyCollection`` (one artist, not one patch per cell: the same rectangles, drawn in the same
    order, so where a cell's edge overlaps its neighbour the later one is on top as before)."""
    run: list[tuple[int, int, dict]] = []

    def flush():
        if not run:
            return
        st = run[0][2]
        verts = [
            [(edges[c], r - 0.5), (edges[c + 1], r - 0.5), (edges[c + 1], r + 0.5), (edges[c], r + 0.5)]
            for c, r, _ in run
        ]
        # a collection's hatch colour is read from rcParams when it is made (every matplotlib >= 3.7); a
        # patch's follows its edge colour: the same colour either way
        with plt.rc_context({"hatch.color": st["edgecolor"]}):
            coll = PolyCollection(
                verts,
                closed=True,
                facecolors=[x[2]["facecolor"] for x in run],
                edgecolors=st["edgecolor"],
                linewidths=0.4,
                hatch=st.get("hatch"),
            )
        ax.add_collection(coll, autolim=False)
        run.clear()

    for cell in cells:
        st = cell[2]
        if run and (run[0][2]["edgecolor"], run[0][2].get("hatch")) != (st["edgecolor"], st.get("hatch")):
            flush()
        run.append(cell)
    flush()


class _Labels(Artist):
    """The cells' texts as one artist, centred in their cells like ``ax.text(..., ha="center",
    va="center")``.  SVG (and any renderer but Agg): one ``Text`` moved to each cell and drawn there, so
    the file holds the same ``<text>`` elements as one ``ax.text`` per cell.  PNG (Agg): the outline of each
    distinct (label, colour) is made once (``TextPath``, placed where that ``Text`` puts its baseline) and
    stamped at every cell holding it by one ``PathCollection`` (the label is the same glyphs at the same
    place, filled as a path instead of rasterised per cell: the same look at a fifth of the cost)."""

    zorder = 3  # a Text's

    def __init__(self, items: list[tuple[float, float, str, str]], fontsize: float):
        super().__init__()
        self._items = items
        self._text = Text(0, 0, "", ha="center", va="center", fontsize=fontsize)

    def set_figure(self, fig):
        super().set_figure(fig)
        self._text.set_figure(fig)

    def draw(self, renderer):
        if not self.get_visible():
            return
        t = self._text
        t.set_transform(self.get_transform())
        renderer.open_group("cell_labels", gid=self.get_gid())
        if isinstance(renderer, RendererAgg):
            self._stamp(renderer)
        else:
            for x, y, s, c in self._items:
                t.set_position((x, y))
                t.set_text(s)
                t.set_color(c)
                t.draw(renderer)
        renderer.close_group("cell_labels")
        self.stale = False

    def _stamp(self, renderer) -> None:
        t, tr = self._text, self.get_transform()
        prop = t.get_fontproperties()
        groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for x, y, s, c in self._items:
            groups.setdefault((s, c), []).append((x, y))
        px = renderer.points_to_pixels(1.0)
        lp_d = renderer.get_text_width_height_descent("lp", prop, ismath=False)[2]
        for (s, c), xy in groups.items():
            # where Text puts this label's baseline start, relative to its anchor (the cell's centre): the
            # left of its box, and the box's bottom raised by its descent (the larger of the label's and
            # "lp"'s, as Text's layout takes it)
            t.set_position(xy[0])
            t.set_text(s)
            box = t.get_window_extent(renderer)
            d = max(renderer.get_text_width_height_descent(s, prop, ismath=False)[2], lp_d)
            x0, y0 = tr.transform(xy[0])
            glyphs = (
                Affine2D()
                .scale(px)
                .translate(box.x0 - x0, box.y0 + d - y0)
                .transform_path(TextPath((0, 0), s, prop=prop))
            )
            stamp = PathCollection(
                [glyphs],
                offsets=tr.transform(np.asarray(xy, dtype=float)),
                offset_transform=IdentityTransform(),
                transform=IdentityTransform(),
                facecolors=[c],
                edgecolors="none",
                linewidths=0,
            )
            stamp.set_figure(self.figure)
            stamp.set_clip_path(t.get_clip_path())
            stamp.draw(renderer)


def _labels(ax, items, fontsize: float) -> None:
    if items:
        art = _Labels(items, fontsize)
        art.set_transform(ax.transData)
        ax.add_artist(art)
        art._text.set_clip_path(ax.patch)  # as ax.text clips its text to the axes


def _fontsize(edges, fig_w_in, ax_frac) -> float:
    """Points that fit the narrowest cell's width (about 3.5 characters)."""
    w = np.diff(np.log2(edges)).min() / (np.log2(edges[-1]) - np.log2(edges[0])) * fig_w_in * ax_frac * 72
    return float(np.clip(w / 2.4, 0, 8))


def _title(m: dict, what: str) -> str:
    return f"{m['topology']} · {m['phase']} · B = {m['batch']}: {what}"


def _size(m: dict, n_legend: int, legend_cols: int) -> tuple[float, float, float]:
    nL, nP = len(m["L"]), len(m["P"])
    w_data = max(6.0, 0.36 * nL)
    w_leg = 2.6 * legend_cols
    h = max(1.9 + 0.42 * nP, 1.2 + 0.19 * math.ceil(n_legend / legend_cols))
    return w_data + w_leg + _left_in(m) + 0.2, h, w_data


def _left_in(m: dict) -> float:
    """Inches left of the data: the longest row label (about 0.075 in a character) and the axis label."""
    n = max(len(f"{p}  ({s})") for p, s in zip(m["P"], m["topology_specs"]))
    return 0.55 + 0.075 * n


def _place(fig, w_in, h_in, w_data, left_in):
    left, bottom = left_in / w_in, 0.85 / h_in
    top = 1 - 0.6 / h_in
    return fig.add_axes([left, bottom, w_data / w_in, top - bottom])


def fig_winner(m: dict, styles: dict, out, name: str) -> list[Path]:
    L, P = m["L"], m["P"]
    edges = _edges(L)
    present = sorted(
        {w for row in m["winner"] for w in row if w is not None}, key=lambda s: _natural(styles[s][0])
    )
    present.sort(key=lambda s: (FAMILY_ORDER.index(_family_of(styles[s][0])), _natural(styles[s][0])))
    ncol = 1 if len(present) <= 14 else 2
    w_in, h_in, w_data = _size(m, len(present) + 1, ncol)
    fig = plt.figure(figsize=(w_in, h_in))
    ax = _place(fig, w_in, h_in, w_data, _left_in(m))
    fs = _fontsize(edges, w_in, w_data / w_in)
    nofit = False
    cells, labels = [], []
    for r in range(len(P)):
        for c in range(len(L)):
            w = m["winner"][r][c]
            if w is None:
                nofit = True
                cells.append((c, r, NOFIT))
                continue
            key, col = styles[w]
            cells.append((c, r, {"facecolor": col, "edgecolor": "white"}))
            if fs >= 4:
                x = math.sqrt(edges[c] * edges[c + 1])
                labels.append((x, r, key, _text_color(col)))
    _cells(ax, edges, cells)
    _labels(ax, labels, fs)
    _axes(ax, m, edges)
    ax.set_title(_title(m, "the fastest plan that fits"), loc="left")
    handles = [Patch(facecolor=styles[p][1], edgecolor="none", label=f"{styles[p][0]}  {p}") for p in present]
    if nofit:
        handles.append(Patch(label="no plan fits in memory", **NOFIT))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        ncol=ncol,
        fontsize=7,
        frameon=False,
        title="plan (key in cell)",
        title_fontsize=8,
        handlelength=1.6,
        borderaxespad=0.0,
    )
    return save(fig, out, name)


def _family_of(key: str) -> str:
    k = re.match(r"[A-Z]+", key).group(0)
    return next(f for f, v in FAMILY_KEY.items() if v == k)


def fig_speedup(m: dict, out, name: str) -> list[Path]:
    L, P = m["L"], m["P"]
    edges = _edges(L)
    rl, tl = m["ring_latency_s"], m["tppp_latency_s"]
    sp = np.full((len(P), len(L)), np.nan)
    for r in range(len(P)):
        for c in range(len(L)):
            if rl[r][c] is not None and tl[r][c] is not None:
                sp[r, c] = tl[r][c] / rl[r][c]
    lg = np.log2(sp)
    span = np.nanmax(np.abs(lg)) if np.isfinite(lg).any() else 1.0
    span = max(span, math.log2(1.25))
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    cmap = plt.get_cmap("RdBu_r")
    w_in, h_in, w_data = _size(m, 4, 1)
    w_in += 0.6 if not np.isfinite(sp).all() else -1.4  # the hatch legend only where a cell needs it
    fig = plt.figure(figsize=(w_in, h_in))
    ax = _place(fig, w_in, h_in, w_data, _left_in(m))
    fs = _fontsize(edges, w_in, w_data / w_in)
    used = set()
    cells, labels = [], []
    for r in range(len(P)):
        for c in range(len(L)):
            if np.isfinite(sp[r, c]):
                col = cmap(norm(lg[r, c]))
                cells.append((c, r, {"facecolor": col, "edgecolor": "white"}))
                if fs >= 4:
                    x = math.sqrt(edges[c] * edges[c + 1])
                    v = sp[r, c]
                    txt = f"{v:.2f}" if v < 10 else f"{v:.0f}"
                    labels.append((x, r, txt, _text_color(col)))
                continue
            has_r, has_t = rl[r][c] is not None, tl[r][c] is not None
            style = ONLY_RING if has_r else ONLY_TPPP if has_t else NOFIT
            used.add("r" if has_r else "t" if has_t else "n")
            cells.append((c, r, style))
    _cells(ax, edges, cells)
    _labels(ax, labels, fs * 0.9)
    _axes(ax, m, edges)
    ax.set_title(
        _title(m, "speed-up of the best ring plan")
        + "\nover the best TP/PP plan (latency ratio; > 1: ring faster)",
        loc="left",
    )
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    cax = fig.add_axes(
        [
            ax.get_position().x1 + 0.12 / w_in * 2,
            ax.get_position().y0,
            0.14 / w_in * 1.2,
            ax.get_position().height,
        ]
    )
    cb = fig.colorbar(sm, cax=cax)
    ticks = [t for t in range(-8, 9) if abs(t) <= span + 1e-9] if span >= 1 else [-span, 0.0, span]
    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{2.0**t:.3g}x" for t in ticks])
    cb.set_label("speed-up", fontsize=8)
    handles = []
    if "r" in used:
        handles.append(Patch(label="only a ring plan fits", **ONLY_RING))
    if "t" in used:
        handles.append(Patch(label="only a TP/PP plan fits", **ONLY_TPPP))
    if "n" in used:
        handles.append(Patch(label="neither fits", **NOFIT))
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.0 + 1.25 / w_data, 1.0),
            fontsize=7,
            frameon=False,
            borderaxespad=0.0,
        )
    return save(fig, out, name)


def _stem(m: dict) -> str:
    t = re.sub(r"[^A-Za-z0-9]+", "-", m["topology"]).strip("-")
    return f"{t}_{m['phase']}_B{m['batch']}"


def explore_figures(path: str | Path, out, prefix: str | None = None) -> list[Path]:
    """Every map of a ``maps.json`` (kind ``explore-maps``): winner_* and speedup_* per (topology, phase,
    batch), PNG + SVG."""
    with open(path) as f:
        doc = json.load(f)
    if doc.get("kind") != "explore-maps":
        raise SpecError(f"{path}: not an explore maps file (kind 'explore-maps')")
    maps = doc["maps"]
    if not maps:
        raise SpecError(f"{path}: the maps file holds no map")
    styles = plan_styles(doc["plan_families"])
    paths = []
    pre = f"{prefix}_" if prefix and prefix != "maps" else ""
    for m in maps:
        s = _stem(m)
        paths += fig_winner(m, styles, out, f"{pre}winner_{s}")
        paths += fig_speedup(m, out, f"{pre}speedup_{s}")
    return paths


__all__ = ["explore_figures", "fig_speedup", "fig_winner", "plan_styles"]
