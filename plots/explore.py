"""The maps of ``ringsim explore``, drawn from ``data/maps.json`` alone (``ringsim plot data/maps.json``).

* Winner map per (topology, phase, batch): length on x (log scale, Ki/Mi ticks), GPU count on y; each cell
  coloured by its fastest plan that fits, each run of one plan in a row marked once with the plan's key
  (``R1``, ``TP3``, ...) where the run is wide enough for it and set off from the next run by a white
  line; the keys and colours the same in every map of the file (``plan_styles``); cells where nothing fits
  are grey and hatched; the legend sits outside the data.
* Speed-up map: best ring-family plan over best TP/PP-family plan (latency of TP/PP / latency of ring, > 1:
  ring is faster) on a diverging colour scale centred at 1, a number in every cell where every cell is
  wide enough for its own (else the colour bar carries the values); cells where only one side (or
  neither) fits are hatched and say which.

At any number of lengths a map stays one readable figure: the data is 0.36 in a length wide, between 6
and 12 in; the fills are one ``QuadMesh`` (white cell edges where cells are wide enough, else rasterised in
SVG), each run of hatched cells one rectangle, the labels one artist (``_Labels``).

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
from matplotlib.colors import BoundaryNorm, ListedColormap, TwoSlopeNorm, to_rgb
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.textpath import TextPath, text_to_path
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


# the data's width: 0.36 in a length at few lengths (a cell wide enough for its key, edges and all), never
# under 6 in nor over 12 in (8 octaves of lengths at 1.5 in an octave: a map read whole on a screen or a
# page; beyond ~33 lengths the cells narrow instead of the figure growing)
W_DATA_IN = (6.0, 12.0)
W_CELL_IN = 0.36
EDGE_MIN_PT = 9.0  # white cell edges only where every cell is at least this wide (else they swamp the fill)
RUN_EDGE_PT = (0.8, 1.8)  # the white line between two winners' runs: cells without / with edges
LABEL_PAD_PT = 2.0  # room each side of a label inside its run or cell
WINNER_FS, SPEEDUP_FS = 8.0, 7.2


def _runs(row) -> list[tuple[int, int, object]]:
    """Contiguous runs of one value in a row: ``(first column, one past the last, value)``."""
    out, c0 = [], 0
    for c in range(1, len(row) + 1):
        if c == len(row) or row[c] != row[c0]:
            out.append((c0, c, row[c0]))
            c0 = c
    return out


def _x_pt(edges, w_data: float) -> np.ndarray:
    """Each cell edge's distance from the left of the data, in points (the x axis is log2)."""
    x = np.log2(edges)
    return (x - x[0]) / (x[-1] - x[0]) * w_data * 72


def _wide(edges, w_data: float) -> bool:
    """Whether every cell is wide enough to show white edges round it."""
    return bool(np.diff(_x_pt(edges, w_data)).min() >= EDGE_MIN_PT)


def _mesh(ax, edges, values, cmap, norm, w_data: float):
    """Every cell's fill as one ``QuadMesh`` over the cells' edges (NaN: not drawn, the hatched runs lie
    there).  White cell edges where the narrowest cell is wide enough to show them; else only white lines
    between the rows, and the mesh and lines are rasterised in vector outputs (an image, not a path per
    cell; the texts stay text)."""
    nP = values.shape[0]
    wide = _wide(edges, w_data)
    mesh = ax.pcolormesh(
        edges,
        np.arange(nP + 1) - 0.5,
        np.ma.masked_invalid(values),
        cmap=cmap,
        norm=norm,
        shading="flat",
        edgecolors="white" if wide else "none",
        linewidth=0.4 if wide else 0.0,
        rasterized=not wide,
    )
    if not wide and nP > 1:
        ax.hlines(
            np.arange(1, nP) - 0.5, edges[0], edges[-1], colors="white", linewidth=0.8, zorder=1.5
        ).set_rasterized(True)
    return mesh


def _hatched(ax, edges, runs: list[tuple[int, int, int, dict]]) -> None:
    """The runs ``(first column, one past the last, row, style)`` of cells drawn hatched (nothing fits, or
    only one side), each run one rectangle; one ``PolyCollection`` per style."""
    by_style: dict[int, list] = {}
    for c0, c1, r, st in runs:
        by_style.setdefault(id(st), [st, []])[1].append(
            [(edges[c0], r - 0.5), (edges[c1], r - 0.5), (edges[c1], r + 0.5), (edges[c0], r + 0.5)]
        )
    for st, verts in by_style.values():
        # a collection's hatch colour is read from rcParams when it is made (every matplotlib >= 3.7); a
        # patch's follows its edge colour: the same colour either way
        with plt.rc_context({"hatch.color": st["edgecolor"]}):
            coll = PolyCollection(
                verts,
                closed=True,
                facecolors=st["facecolor"],
                edgecolors=st["edgecolor"],
                linewidths=0.4,
                hatch=st.get("hatch"),
                zorder=1.6,
            )
        ax.add_collection(coll, autolim=False)


_WIDTHS: dict[tuple[str, float], float] = {}


def _text_pt(s: str, fs: float) -> float:
    """The width of a label in points (the default font at ``fs`` points)."""
    k = (s, fs)
    if k not in _WIDTHS:
        _WIDTHS[k] = text_to_path.get_text_width_height_descent(s, FontProperties(size=fs), ismath=False)[0]
    return _WIDTHS[k]


def _fits(s: str, fs: float, width_pt: float) -> bool:
    return _text_pt(s, fs) + 2 * LABEL_PAD_PT <= width_pt


class _Labels(Artist):
    """The maps' labels (keys of runs, numbers of cells) as one artist, each centred at its point like
    ``ax.text(..., ha="center", va="center")``.  SVG (and any renderer but Agg): one ``Text`` moved to each
    point and drawn there, so the file holds the same ``<text>`` elements as one ``ax.text`` per label.
    PNG (Agg): the outline of each distinct (label, colour) is made once (``TextPath``, placed where that
    ``Text`` puts its baseline) and stamped at every point holding it by one ``PathCollection`` (the label
    is the same glyphs at the same place, filled as a path instead of rasterised per label: the same look
    at a fifth of the cost)."""

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


def _labels(ax, items: list[tuple[float, float, str, str]], fontsize: float) -> None:
    """The labels ``(x, row, text, colour)``, centred at their points, clipped to the axes, as one artist."""
    if items:
        art = _Labels(items, fontsize)
        art.set_transform(ax.transData)
        ax.add_artist(art)
        art._text.set_clip_path(ax.patch)  # as ax.text clips its text to the axes


def _title(m: dict, what: str) -> str:
    return f"{m['topology']} · {m['phase']} · B = {m['batch']}: {what}"


def _size(m: dict, n_legend: int, legend_cols: int) -> tuple[float, float, float]:
    nL, nP = len(m["L"]), len(m["P"])
    w_data = float(np.clip(W_CELL_IN * nL, *W_DATA_IN))
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
    L = m["L"]
    edges = _edges(L)
    present = sorted(
        {w for row in m["winner"] for w in row if w is not None}, key=lambda s: _natural(styles[s][0])
    )
    present.sort(key=lambda s: (FAMILY_ORDER.index(_family_of(styles[s][0])), _natural(styles[s][0])))
    ncol = 1 if len(present) <= 14 else 2
    w_in, h_in, w_data = _size(m, len(present) + 1, ncol)
    fig = plt.figure(figsize=(w_in, h_in))
    ax = _place(fig, w_in, h_in, w_data, _left_in(m))
    # the fills: each cell its winner's index in ``present``, one colour per index (the plan's colour)
    index = {p: i for i, p in enumerate(present)}
    cat = np.array([[np.nan if w is None else index[w] for w in row] for row in m["winner"]], dtype=float)
    n = max(len(present), 1)
    cmap = ListedColormap([styles[p][1] for p in present] or ["white"])
    _mesh(ax, edges, cat, cmap, BoundaryNorm(np.arange(n + 1) - 0.5, n), w_data)
    # a key per run of one winner in a row where the run is wide enough for it: centred in the run, or
    # where the cells have edges, in the run's middle cell (not astride an edge)
    x_pt, wide = _x_pt(edges, w_data), _wide(edges, w_data)
    hatched, labels, bounds = [], [], []
    for r, row in enumerate(m["winner"]):
        for c0, c1, w in _runs(row):
            if w is None:
                hatched.append((c0, c1, r, NOFIT))
                continue
            if c0 > 0:
                bounds.append((edges[c0], r))
            key, col = styles[w]
            if _fits(key, WINNER_FS, x_pt[c1] - x_pt[c0]):
                a, b = (c0 + (c1 - c0 - 1) // 2, c0 + (c1 - c0 + 1) // 2) if wide else (c0, c1)
                labels.append((math.sqrt(edges[a] * edges[b]), r, key, _text_color(col)))
    _hatched(ax, edges, hatched)
    # a white line where the winner changes, wider than the cells' edges (where they have them)
    if bounds:
        x, r = np.array(bounds).T
        lw = RUN_EDGE_PT[wide]
        ax.vlines(x, r - 0.5, r + 0.5, colors="white", linewidth=lw, zorder=1.5).set_rasterized(not wide)
    _labels(ax, labels, WINNER_FS)
    _axes(ax, m, edges)
    ax.set_title(_title(m, "the fastest plan that fits"), loc="left")
    handles = [Patch(facecolor=styles[p][1], edgecolor="none", label=f"{styles[p][0]}  {p}") for p in present]
    if hatched:
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
    sp = np.array(tl, dtype=float) / np.array(rl, dtype=float)  # None: NaN, where a side does not fit
    lg = np.log2(sp)
    span = np.nanmax(np.abs(lg)) if np.isfinite(lg).any() else 1.0
    span = max(span, math.log2(1.25))
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    cmap = plt.get_cmap("RdBu_r")
    w_in, h_in, w_data = _size(m, 4, 1)
    w_in += 0.6 if not np.isfinite(sp).all() else -1.4  # the hatch legend only where a cell needs it
    fig = plt.figure(figsize=(w_in, h_in))
    ax = _place(fig, w_in, h_in, w_data, _left_in(m))
    _mesh(ax, edges, lg, cmap, norm, w_data)
    # the numbers in the cells where every cell is wide enough for its own (else none: the colour bar
    # carries the values, rather than numbers in a few wide cells only); the runs of cells where only one
    # side (or neither) fits, hatched
    cell_pt = np.diff(_x_pt(edges, w_data))
    fin = np.isfinite(sp)
    nums = {(r, c): f"{v:.2f}" if v < 10 else f"{v:.0f}" for (r, c), v in np.ndenumerate(sp) if fin[r, c]}
    order = sorted(nums, key=lambda rc: cell_pt[rc[1]])  # the narrowest cells first: a misfit ends the check
    if all(_fits(nums[r, c], SPEEDUP_FS, cell_pt[c]) for r, c in order):
        rgba = cmap(norm(np.where(fin, lg, 0.0)))
        mid = np.sqrt(edges[:-1] * edges[1:])
        _labels(ax, [(mid[c], r, s, _text_color(rgba[r, c])) for (r, c), s in nums.items()], SPEEDUP_FS)
    used = set()
    hatched = []
    for r in range(len(P)):
        side = ["r" if a is not None else "t" if b is not None else "n" for a, b in zip(rl[r], tl[r])]
        for c0, c1, k in _runs([None if fin[r, c] else side[c] for c in range(len(L))]):
            if k is not None:
                used.add(k)
                hatched.append((c0, c1, r, {"r": ONLY_RING, "t": ONLY_TPPP, "n": NOFIT}[k]))
    _hatched(ax, edges, hatched)
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
    if span >= 1:
        ticks = [t for t in range(-8, 9) if abs(t) <= span + 1e-9]
    else:  # the ends and the round ratios between them that leave room for their labels
        inner = [math.log2(v) for v in (2 / 3, 0.8, 1.25, 1.5) if abs(math.log2(v)) <= span - 0.15]
        ticks = sorted([-span, 0.0, span, *inner])
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
