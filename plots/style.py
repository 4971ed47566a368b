"""Matplotlib set-up (Agg, no display) and the one way figures are saved: PNG + SVG, atomically."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from costmodel.results import atomic_write_bytes, ensure_dir  # noqa: E402
from costmodel.units import fmt_length_short  # noqa: E402

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

# one colour per plan family, the same in every figure
PLAN_COLORS = {
    "ring": "#d62728",
    "tp": "#1f77b4",
    "hybrid": "#2ca02c",
    "ulysses": "#9467bd",
    "other": "#7f7f7f",
}
TOPO_STYLES = {"ib": "-", "nvlink-domain": "--", "nvswitch": ":"}


def plan_family(plan: str) -> str:
    p = plan.replace(" ", "")
    if "ring" in p and "tp" in p:
        return "hybrid"
    for k in ("ring", "ulysses", "tp"):
        if k in p:
            return k
    return "other"


def plan_color(plan: str) -> str:
    return PLAN_COLORS[plan_family(plan)]


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


def layout(fig) -> None:
    """Fixed margins sized from the figure (tight_layout costs seconds per figure on a small CPU)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=min(0.75 / w, 0.2),
        right=1 - 0.15 / w,
        bottom=min(0.55 / h, 0.3),
        top=1 - min(0.55 / h, 0.3),
        wspace=0.28,
        hspace=0.42,
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


__all__ = ["plt", "save", "layout", "seq_axis", "plan_color", "plan_family", "PLAN_COLORS", "TOPO_STYLES"]
