"""Matplotlib set-up (Agg, no display) and the one way figures are saved: PNG + SVG, atomically."""

from __future__ import annotations

import io
import re
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from costmodel.results import atomic_write_bytes, ensure_dir  # noqa: E402
from costmodel.units import fmt_length, fmt_length_short  # noqa: E402

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 130,
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "legend.fontsize": 8,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "svg.hashsalt": "ringsim",
        "svg.fonttype": "none",
    }
)

# one colour per plan, the same in every figure: a hue per family (which axes the plan uses), one of five
# distinct colours of that hue per plan, picked from the plan's text, so hybrids of different shapes differ
FAMILY_PALETTES = {
    "ring": ("#d62728", "#8c1515", "#f08080", "#e377c2", "#c45a00"),
    "tp": ("#1f77b4", "#0b3d6b", "#6baed6", "#17becf", "#3f51b5"),
    "tp+pp": ("#9467bd", "#4a1f7a", "#c39bd3", "#e7298a", "#6a51a3"),
    "pp": ("#7b4173", "#a55194", "#ce6dbd", "#de9ed6", "#5b2c6f"),
    "hybrid": ("#2ca02c", "#0b5d1e", "#8fd18f", "#bcbd22", "#1a9e77"),  # tp x ring
    "ring+pp": ("#8c564b", "#c49c94", "#5a3229", "#b5651d", "#7f6a00"),
    "tp+ring+pp": ("#637939", "#8ca252", "#b5cf6b", "#393b79", "#31a354"),
    "ulysses": ("#ff7f0e", "#a64d00", "#ffbb78", "#f5a700", "#d95f02"),
    "ulysses+ring": ("#bd9e39", "#8c6d31", "#e7ba52", "#e7cb94", "#843c39"),
    "other": ("#7f7f7f", "#3d3d3d", "#b0b0b0", "#5f5f5f", "#9a9a9a"),
}
SHADES = range(5)
PLAN_COLORS = {f: c[0] for f, c in FAMILY_PALETTES.items()}  # the first colour of each family
TOPO_STYLES = {"ib": "-", "nvlink-domain": "--", "nvswitch": ":"}
_DEG = re.compile(r"\b(tp|ulysses|ring|sp|pp)=([^,:\s]+)")


def plan_family(plan: str) -> str:
    """The family of a plan label or sweep template: the axes it uses with a degree other than 1."""
    used = {("ring" if k == "sp" else k) for k, v in _DEG.findall(plan.replace(" ", "")) if v != "1"}
    if "ulysses" in used:
        return "ulysses+ring" if "ring" in used else "ulysses"
    key = "+".join(a for a in ("tp", "ring", "pp") if a in used)
    return {"tp+ring": "hybrid", "": "other"}.get(key, key)


def _shade(plan: str) -> int:
    return zlib.crc32(plan.replace(" ", "").encode()) % len(SHADES)


def plan_color(plan: str, shade: int | None = None):
    """The colour of a plan (label or template): its family's hue, a shade chosen by its text."""
    pal = FAMILY_PALETTES[plan_family(plan)]
    return pal[(_shade(plan) if shade is None else shade) % len(pal)]


def plan_colors(plans) -> dict:
    """Colours for the plans of one figure: ``plan_color`` of each, moved to the family's next shade when
    two plans of one family would share one (the same plans get the same colours in every figure)."""
    out, taken = {}, {}
    for p in sorted(dict.fromkeys(str(x) for x in plans)):
        fam, k = plan_family(p), _shade(p)
        used = taken.setdefault(fam, set())
        for step in range(len(SHADES)):
            if (k + step) % len(SHADES) not in used:
                k = (k + step) % len(SHADES)
                break
        used.add(k)
        out[p] = plan_color(p, k)
    return out


# coinciding series stay visible: each series of a panel gets its own dash pattern and marker, placed at
# offset points, so a line drawn over another equal one leaves the one below showing between its marks
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
DASHES = ("-", (0, (5, 2)), (0, (1.5, 1.5)), (0, (6, 2, 1.5, 2)), (0, (3, 1, 1, 1, 1, 1)))


def series_style(i: int, n_points: int, n_series: int) -> dict:
    """Line style of the i-th series of a panel: marker and dash by index, markers staggered."""
    every = max(n_points // 6, 1)
    return {
        "marker": MARKERS[i % len(MARKERS)],
        "markevery": ((i * max(every // max(n_series, 1), 1)) % every, every),
        "ms": 4,
        "ls": DASHES[i % len(DASHES)],
    }


def legend_below(ax, handles=None, labels=None, ncol: int = 1, title: str | None = None):
    """A legend under the panel, outside the data (room is made by ``layout(..., legend_rows=...)``)."""
    kw = {} if handles is None else {"handles": handles, "labels": labels}
    return ax.legend(
        **kw,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.22),
        ncol=ncol,
        fontsize=7,
        frameon=False,
        title=title,
        title_fontsize=7,
        handlelength=3.2,
    )


def _si(v: float, _pos=None) -> str:
    """A length tick in the command line's grammar (costmodel.units): Ki/Mi for multiples of powers of
    two (the log2 axes' ticks), k/M for decimal ones."""
    return fmt_length_short(v) if v >= 1 and float(v).is_integer() else f"{v:g}"


seq_formatter = FuncFormatter(_si)


POW4 = [2.0**k for k in range(0, 31, 2)]


def seq_axis(ax, label: str = "sequence length L (tokens)", axis: str = "x") -> None:
    """Log2 length axis with ticks at powers of 4 (1Ki, 4Ki, ... 1M), no minor ticks (cheap to draw)."""
    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2)
    a.set_major_locator(FixedLocator(POW4))
    a.set_minor_locator(NullLocator())
    a.set_major_formatter(seq_formatter)
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)


def layout(fig, legend_rows: int = 0, top_in: float = 0.55) -> None:
    """Fixed margins sized from the figure (tight_layout costs seconds per figure on a small CPU);
    ``legend_rows``: lines of legend each bottom panel carries below its x label."""
    w, h = fig.get_size_inches()
    below = 0.55 + 0.16 * legend_rows + (0.15 if legend_rows else 0)
    fig.subplots_adjust(
        left=min(0.75 / w, 0.2),
        right=1 - 0.15 / w,
        bottom=min(below / h, 0.6),
        top=1 - min(top_in / h, 0.3),
        wspace=0.28,
        hspace=0.42 if not legend_rows else 0.42,
    )


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.svg under out_dir atomically; returns the paths."""
    out = ensure_dir(out_dir, "figure folder")
    paths = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata={"Date": None} if ext == "svg" else None)
        paths.append(atomic_write_bytes(out / f"{name}.{ext}", buf.getvalue()))
    plt.close(fig)
    return paths


__all__ = [
    "plt",
    "save",
    "layout",
    "seq_axis",
    "plan_color",
    "plan_colors",
    "plan_family",
    "series_style",
    "legend_below",
    "fmt_length",
    "PLAN_COLORS",
    "TOPO_STYLES",
]
