"""The partial-prefill crossover (``studies/partial_prefill.py``), drawn from its ``partial_prefill.json``
alone: per hardware, the latency of pass-KV over that of pass-Q against the cache-miss rate L / (C + L)
(log x), one line per (GPU count P, total length T): above 1 pass-Q is faster; dots mark the crossovers."""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from costmodel.errors import SpecError
from costmodel.units import fmt_length

from .style import layout, plt, save

P_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
T_STYLES = ("-", "--", ":", "-.")


def fig_partial_prefill(doc: dict, out, name: str) -> list[Path]:
    curves = doc.get("curves") or []
    if not curves:
        raise SpecError("partial-prefill results have no curves to plot")
    hws = list(dict.fromkeys(c["hardware"] for c in curves))
    Ps = sorted({c["P"] for c in curves})
    Ts = sorted({c["total"] for c in curves})
    fig, axes = plt.subplots(1, len(hws), figsize=(5.2 * len(hws), 4.2), sharey=True, squeeze=False)
    lo = min(min(c["ratio_kv_over_q"]) for c in curves)
    hi = max(max(c["ratio_kv_over_q"]) for c in curves)
    for ax, hw in zip(axes[0], hws, strict=True):
        ax.axhspan(1.0, max(hi * 1.15, 1.1), color="#fbe3d6", alpha=0.55, lw=0, zorder=0)
        ax.axhline(1.0, color="k", lw=0.9, zorder=1)
        ax.text(0.02, 0.97, "pass-Q faster", transform=ax.transAxes, va="top", fontsize=8, color="#8c2d04")
        ax.text(0.98, 0.03, "pass-KV faster", transform=ax.transAxes, ha="right", fontsize=8, color="#08519c")
        for c in (c for c in curves if c["hardware"] == hw):
            col = P_COLORS[Ps.index(c["P"]) % len(P_COLORS)]
            ls = T_STYLES[Ts.index(c["total"]) % len(T_STYLES)]
            ax.plot(c["miss_rate"], c["ratio_kv_over_q"], color=col, ls=ls, lw=1.6, zorder=3)
            x = c.get("crossover_miss_rate")
            if x is not None:
                ax.plot([x], [1.0], "o", color=col, ms=5, zorder=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(min(min(c["miss_rate"]) for c in curves), 1.0)
        ax.set_ylim(min(lo / 1.15, 0.9), max(hi * 1.15, 1.1))
        ticks = [t for t in (1 / 512, 1 / 128, 1 / 32, 1 / 8, 1 / 2, 1) if t >= ax.get_xlim()[0] * 0.999]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: "1" if v >= 1 else f"1/{round(1 / v)}"))
        yt = [v for v in (0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 3, 4) if lo / 1.2 <= v <= hi * 1.2]
        ax.yaxis.set_major_locator(FixedLocator(yt))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.set_xlabel("cache-miss rate  L_new / (C + L_new)")
        ax.set_title(hw)
    axes[0][0].set_ylabel("latency pass-KV / latency pass-Q")
    handles = [Line2D([], [], color=P_COLORS[i % len(P_COLORS)], lw=1.6) for i in range(len(Ps))]
    labels = [f"P = {P} (tp=8, ring={P // 8})" for P in Ps]
    handles += [Line2D([], [], color="0.3", ls=T_STYLES[i % len(T_STYLES)], lw=1.6) for i in range(len(Ts))]
    labels += [f"C + L = {fmt_length(T)}" for T in Ts]
    handles.append(Line2D([], [], color="0.3", marker="o", ls="", ms=5))
    labels.append("crossover")
    s = doc.get("specs", {})
    fig.suptitle(
        f"Partial prefill, {s.get('model')} B={s.get('batch')}: pass-KV vs pass-Q by cache-miss rate "
        f"({s.get('engine')} model; IB between 8-GPU nodes)",
        fontsize=10,
    )
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    layout(fig)
    fig.subplots_adjust(bottom=1.05 / fig.get_size_inches()[1], top=0.88)
    return save(fig, out, name)


__all__ = ["fig_partial_prefill"]
