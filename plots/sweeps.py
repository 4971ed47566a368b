"""Figures from sweep results files (``ringsim sweep`` npz, CSV or JSON manifest): latency / TPS,
communication and memory against L at each P, and the crossover length where ring starts to win."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from costmodel.errors import SpecError
from costmodel.results import read_csv_columns, read_npz
from costmodel.units import fmt_length_short

from .style import layout, legend_below, plan_colors, plt, save, seq_axis, series_style

NUMERIC = (
    "P",
    "L",
    "latency_s",
    "tps",
    "tpot_s",
    "comm_nvlink_bytes",
    "comm_ib_bytes",
    "mem_total_bytes",
    "capacity_bytes",
    "mem_weights_bytes",
    "mem_kv_cache_bytes",
    "mem_activations_bytes",
    "roofline_latency_s",
)


def load_sweep(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(specs, columns) of a sweep: ``sweep.npz`` (binary columns), ``sweep.csv`` (first line '# {specs}')
    or the manifest ``sweep.json`` (reads the npz it names, else the CSV; older manifests with "rows")."""
    p = Path(path)
    text = False  # columns read from CSV text: every column is strings
    try:
        if p.suffix == ".npz":
            specs, cols = read_npz(p)
            if specs is None and p.with_suffix(".json").is_file():
                specs = json.loads(p.with_suffix(".json").read_text()).get("specs")
        elif p.suffix == ".csv":
            specs, cols = read_csv_columns(p)
            text = True
        else:
            with open(p) as f:
                d = json.load(f)
            specs, cols = d.get("specs"), None
            if isinstance(d.get("rows"), list):  # a manifest from before the columnar files
                rows = d["rows"]
                cols = {k: np.array([r[k] for r in rows], dtype=object) for k in (rows[0] if rows else [])}
            elif isinstance(d.get("files"), dict):
                for kind, read in (("npz", read_npz), ("csv", read_csv_columns)):
                    f = d["files"].get(kind)
                    if f and (p.parent / f).is_file():
                        cols, text = read(p.parent / f)[1], kind == "csv"
                        break
                else:
                    raise SpecError(f"sweep {str(p)!r} names data files {d['files']} but none is beside it")
    except (OSError, ValueError, KeyError) as e:
        raise SpecError(f"results file {str(p)!r} cannot be read: {e}") from None
    if not specs or specs.get("kind") != "sweep" or cols is None:
        raise SpecError(f"results file {str(p)!r} is not a sweep (needs specs.kind == 'sweep' and columns)")
    if not cols or not len(next(iter(cols.values()))):
        raise SpecError(f"sweep {str(p)!r} has no rows")
    for k, v in cols.items():
        if k in NUMERIC:
            if v.dtype.kind == "O":  # JSON rows: None for NaN
                v = np.array(["" if x is None else str(x) for x in v.tolist()])
            try:
                cols[k] = (np.where(v == "", "nan", v) if v.dtype.kind in "US" else v).astype(float)
            except (TypeError, ValueError) as e:
                raise SpecError(f"sweep {str(p)!r}: the column {k!r} is not numbers ({e})") from None
        elif k == "feasible":
            cols[k] = (
                v
                if v.dtype.kind == "b"
                else v == "True"
                if v.dtype.kind == "U"
                else np.array([x is True or x == "True" for x in v.tolist()])
            )
        elif v.dtype.kind == "O":
            cols[k] = v.astype(str)
        elif text and v.dtype.kind == "U":
            try:  # CSV text of the other numeric outputs (t_compute_s, ...): numbers, as in the npz
                cols[k] = np.where(v == "", "nan", v).astype(float)
            except ValueError:
                pass
    # the columns every reader of a sweep needs (a damaged header is a one-sentence error, not a KeyError)
    for need in ("plan_template", "plan", "P", "L", "latency_s", "tps", "feasible"):
        if need not in cols:
            raise SpecError(f"sweep {str(p)!r} lacks the column {need!r}")
    return specs, cols


def _series(cols, tpl, P, key):
    sel = (cols["plan_template"] == tpl) & (cols["P"] == P)
    order = np.argsort(cols["L"][sel])
    return (
        cols["L"][sel][order],
        cols[key][sel][order],
        cols["feasible"][sel][order],
        cols["plan"][sel][order],
    )


def _line(ax, x, y, ok, color, label, style: dict | None = None):
    """Full where the plan fits in memory, faded where it does not; ``style`` from ``series_style`` keeps
    equal series apart (dash, marker, staggered marks)."""
    st = dict(style or {})
    ax.plot(x, np.where(ok, y, np.nan), color=color, label=label, lw=1.5, **st)
    bad = ~ok
    if bad.any():
        edge = bad | np.r_[bad[1:], False] | np.r_[False, bad[:-1]]
        st.pop("markevery", None)
        ax.plot(x, np.where(edge, y, np.nan), color=color, lw=1.0, alpha=0.35, **{**st, "marker": None})


def _kernel_note(cols) -> tuple[str, str]:
    """(suffix, note): the ``,kernel=X`` every plan label of the sweep ends with (said once in the title
    instead of in every legend entry), or ('', '')."""
    labels = {str(x) for x in np.unique(cols["plan"])}
    ks = {lab.rsplit(",kernel=", 1)[1] if ",kernel=" in lab else "" for lab in labels}
    if len(ks) == 1 and (k := ks.pop()):
        return f",kernel={k}", f", attention kernel {k}"
    return "", ""


def _shown(label, suffix: str) -> str:
    label = str(label)
    return label[: -len(suffix)] if suffix and label.endswith(suffix) else label


def _title(specs) -> str:
    return (
        f"{specs.get('model')} on {specs.get('hardware')}, topology {specs.get('topology')}, "
        f"{specs.get('phase')}, "
        f"B={specs.get('batch')}"
    )


def _grid(cols, nrows, sharey="row", legend_rows: int = 0):
    Ps = sorted({int(p) for p in cols["P"]})
    extra = 0.16 * legend_rows + (0.3 if legend_rows else 0)
    fig, axes = plt.subplots(
        nrows,
        len(Ps),
        figsize=(max(3.4 * len(Ps), 5.0), 2.7 * nrows + 0.9 + extra),
        squeeze=False,
        sharey=sharey,
    )
    return fig, axes, Ps


def _templates(cols):
    return list(dict.fromkeys(cols["plan_template"].tolist()))


def fig_latency(specs, cols, out, name) -> list[Path]:
    decode = specs.get("phase") == "decode"
    tpls = _templates(cols)
    colors = plan_colors(tpls)
    suffix, knote = _kernel_note(cols)
    fig, axes, Ps = _grid(cols, 2, legend_rows=len(tpls))
    for j, P in enumerate(Ps):
        for i, tpl in enumerate(tpls):
            L, lat, ok, plans = _series(cols, tpl, P, "latency_s")
            if not len(L):
                continue
            _, tps, _, _ = _series(cols, tpl, P, "tps")
            lab = _shown(plans[0], suffix)
            st = series_style(i, len(L), len(tpls))
            _line(axes[0, j], L, lat, ok, colors[tpl], lab, st)
            _line(axes[1, j], L, tps, ok, colors[tpl], lab, st)
        axes[0, j].set_title(f"P = {P} GPUs")
        for i in range(2):
            seq_axis(axes[i, j], "context length (tokens)" if decode else "sequence length L (tokens)")
            axes[i, j].set_yscale("log")
        legend_below(axes[1, j])
    axes[0, 0].set_ylabel("decode step = TPOT (s)" if decode else "prefill latency (s)")
    axes[1, 0].set_ylabel("TPS (tokens/s)")
    fig.suptitle(_title(specs) + knote + "\nfaded: does not fit in HBM", fontsize=10)
    layout(fig, legend_rows=len(tpls), top_in=0.75)
    return save(fig, out, name)


def fig_comm(specs, cols, out, name) -> list[Path]:
    tpls = _templates(cols)
    colors = plan_colors(tpls)
    suffix, knote = _kernel_note(cols)
    has_ib = "comm_ib_bytes" in cols and bool(np.nanmax(cols["comm_ib_bytes"]) > 0)
    links = [("comm_nvlink_bytes", "NVLink")] + ([("comm_ib_bytes", "InfiniBand")] if has_ib else [])
    fig, axes, Ps = _grid(cols, len(links), legend_rows=len(tpls))
    for j, P in enumerate(Ps):
        for r, (key, link) in enumerate(links):
            ax = axes[r, j]
            drawn = 0
            for i, tpl in enumerate(tpls):
                L, b, _ok, plans = _series(cols, tpl, P, key)
                if not len(L):
                    continue
                st = series_style(i, len(L), len(tpls))
                y = np.where(b > 0, b / 1e9, np.nan)
                ax.plot(L, y, color=colors[tpl], label=_shown(plans[0], suffix), lw=1.5, **st)
                drawn += int(np.isfinite(y).any())
            if not drawn:
                ax.text(0.5, 0.5, f"no {link} traffic", transform=ax.transAxes, ha="center", color="0.4")
                ax.set_xlim(float(np.min(cols["L"])), float(np.max(cols["L"])))
            ax.set_title(f"P = {P} GPUs, {link}" if r == 0 else f"{link}", fontsize=9)
            seq_axis(ax)
            ax.set_yscale("log")
            if j == 0:
                ax.set_ylabel(f"sent over {link}\nper device (GB)")
        # the legend from the first row's handles, which every row shares
        h, lab = axes[0, j].get_legend_handles_labels()
        legend_below(axes[-1, j], h, lab)
    fig.suptitle(
        "bytes sent per device by link type (the busiest device; none: no line on the log axis) — "
        + _title(specs)
        + knote,
        fontsize=10,
    )
    layout(fig, legend_rows=len(tpls), top_in=0.6)
    return save(fig, out, name)


def fig_memory(specs, cols, out, name) -> list[Path]:
    tpls = _templates(cols)
    colors = plan_colors(tpls)
    suffix, knote = _kernel_note(cols)
    fig, axes, Ps = _grid(cols, 1, legend_rows=len(tpls) + 1)
    cap = float(np.nanmax(cols["capacity_bytes"])) if "capacity_bytes" in cols else None
    for j, P in enumerate(Ps):
        ax = axes[0, j]
        for i, tpl in enumerate(tpls):
            L, mem, ok, plans = _series(cols, tpl, P, "mem_total_bytes")
            if not len(L):
                continue
            c = colors[tpl]
            # where it stops fitting goes in the legend entry: no annotation can overprint another
            if ok.all():
                fit = "fits throughout"
            elif not ok.any():
                fit = "never fits"
                ax.plot([L[0]], [mem[0] / 1e9], "x", color=c, ms=7, mew=1.6)
            else:
                k = int(np.nonzero(ok)[0].max())
                fit = f"fits up to {fmt_length_short(L[k])}"
                ax.plot([L[k]], [mem[k] / 1e9], "o", color=c, ms=6, mfc="white", mew=1.6, zorder=4)
            st = series_style(i, len(L), len(tpls))
            ax.plot(L, mem / 1e9, color=c, label=f"{_shown(plans[0], suffix)} — {fit}", lw=1.5, **st)
        if cap:
            ax.axhline(cap / 1e9, color="k", lw=1.0, ls="--", label=f"HBM capacity {cap / 1e9:.1f} GB")
        ax.set_title(f"P = {P} GPUs")
        seq_axis(ax)
        ax.set_yscale("log")
        legend_below(ax)
    axes[0, 0].set_ylabel("memory per device (GB)")
    fig.suptitle(
        "peak memory per device vs HBM capacity (o: longest L that fits, x: never fits)\n"
        + _title(specs)
        + knote,
        fontsize=10,
    )
    layout(fig, legend_rows=len(tpls) + 1, top_in=0.75)
    return save(fig, out, name)


def sweep_figures(path, out, prefix: str | None = None, step=None) -> list[Path]:
    """Latency/TPS, communication and memory figures of a sweep; ``step()`` after each one."""
    specs, cols = load_sweep(path)
    for need in ("comm_nvlink_bytes", "mem_total_bytes"):  # what the communication and memory figures read
        if need not in cols:
            raise SpecError(f"sweep {str(path)!r} lacks the column {need!r}")
    stem = prefix or Path(path).stem
    paths: list[Path] = []
    for fig, suffix in ((fig_latency, "latency_tps"), (fig_comm, "comm"), (fig_memory, "memory")):
        paths += fig(specs, cols, out, f"{stem}_{suffix}")
        if step is not None:
            step()
    return paths


# ----------------------------------------------------------------------------------------------
# crossover: where ring starts to win
# ----------------------------------------------------------------------------------------------
def crossover_rows(specs, cols, ring_template: str = "ring=P") -> list[dict]:
    """For every other plan and P, over the lengths where BOTH plans fit in memory: the shortest L from
    which ring's latency stays below the other's (``crossover_L``; None if never), and by how much.

    ``status``: ``from`` (ring wins from ``crossover_L`` on), ``always`` (from the shortest length where
    both fit), ``never`` (ring is slower at every such length; ``speedup_best`` < 1 says how close it
    came) or ``no common fit`` (no length where both fit: ``ring_fits_to`` / ``other_fits_to`` say how far
    each fits alone).  Speed-up = other's latency / ring's."""
    out = []
    feas = cols.get("feasible")
    for other in [t for t in _templates(cols) if t != ring_template]:
        for P in sorted({int(p) for p in cols["P"]}):
            Lr, lr, okr, pr = _series(cols, ring_template, P, "latency_s")
            Lo, lo, oko, po = _series(cols, other, P, "latency_s")
            if not len(Lr) or not len(Lo):
                continue
            if feas is None:
                okr, oko = np.ones(len(Lr), bool), np.ones(len(Lo), bool)
            common, ir, io = np.intersect1d(Lr, Lo, return_indices=True)
            both = okr[ir] & oko[io]
            row = {
                "topology": specs.get("topology"),
                "phase": specs.get("phase"),
                "batch": specs.get("batch"),
                "P": P,
                "ring_template": ring_template,
                "other_template": other,
                "ring_plan": str(pr[0]),
                "other_plan": str(po[0]),
                "ring_fits_to": int(Lr[okr].max()) if okr.any() else None,
                "other_fits_to": int(Lo[oko].max()) if oko.any() else None,
                "L_swept_max": int(common[-1]) if len(common) else None,
            }
            if not both.any():
                out.append(
                    {
                        **row,
                        "status": "no common fit",
                        "crossover_L": None,
                        "ring_wins_from_start": False,
                        "L_min": None,
                        "L_max": None,
                        "speedup_at_L_max": None,
                        "speedup_best": None,
                        "L_speedup_best": None,
                    }
                )
                continue
            Lc, r_lat, o_lat = common[both], lr[ir][both], lo[io][both]
            ratio = o_lat / r_lat
            wins = r_lat < o_lat
            tail = np.flatnonzero(~wins)
            start = 0 if not tail.size else int(tail.max()) + 1
            L_x = int(Lc[start]) if start < len(Lc) else None
            best = int(np.argmax(ratio))
            out.append(
                {
                    **row,
                    "status": "always" if start == 0 else "never" if L_x is None else "from",
                    "crossover_L": L_x,
                    "ring_wins_from_start": start == 0,
                    "L_min": int(Lc[0]),
                    "L_max": int(Lc[-1]),
                    "speedup_at_L_max": float(ratio[-1]),
                    "speedup_best": float(ratio[best]),
                    "L_speedup_best": int(Lc[best]),
                }
            )
    return out


def fig_crossover(doc: dict, out, name) -> list[Path]:
    """Top: the crossover length against P (only lengths where both plans fit); markers at the top edge
    for 'never', at the bottom for 'from the shortest length'.  Bottom: ring's speed-up at the longest
    length where both fit (below 1: ring slower), so a 'never' shows how far off it is."""
    rows = doc["rows"]
    others = list(dict.fromkeys(r["other_template"] for r in rows))
    fig, axes = plt.subplots(
        2, len(others), figsize=(4.4 * len(others) + 2.6, 6.4), squeeze=False, sharex=True, sharey="row"
    )
    styles = {"ib": ("-", "o"), "nvlink-domain": ("--", "s"), "nvswitch": (":", "^"), "nvl": ("-.", "D")}
    keys = list(dict.fromkeys((r["topology"], r["phase"]) for r in rows))
    phase_col = {"prefill": "#d62728", "decode": "#1f77b4"}
    Ls = [v for r in rows for v in (r.get("L_min"), r.get("L_max"), r.get("crossover_L")) if v]
    lo_y, hi_y = (min(Ls), max(Ls)) if Ls else (1024, 2**20)
    handles = {}
    for j, other in enumerate(others):
        top, bot = axes[0, j], axes[1, j]
        for k, (topo, phase) in enumerate(keys):
            sel = sorted(
                (
                    r
                    for r in rows
                    if r["other_template"] == other and (r["topology"], r["phase"]) == (topo, phase)
                ),
                key=lambda r: r["P"],
            )
            if not sel:
                continue
            ls, mk = styles.get(topo, ("-", "o"))
            col = phase_col.get(phase, "0.3")
            P = np.array([r["P"] for r in sel], float) * (1 + 0.025 * (k - (len(keys) - 1) / 2))  # apart
            y = [r["crossover_L"] if r["crossover_L"] is not None else np.nan for r in sel]
            (h,) = top.plot(P, y, ls=ls, marker=mk, color=col, ms=5, label=f"{topo}, {phase}")
            handles[f"{topo}, {phase}"] = h
            sp = [r["speedup_at_L_max"] if r["speedup_at_L_max"] is not None else np.nan for r in sel]
            bot.plot(P, sp, ls=ls, marker=mk, color=col, ms=5)
            for p, r in zip(P, sel):
                if r["status"] == "never":
                    top.plot([p], [hi_y], marker="v", color=col, ms=8, mfc="white", mew=1.4, clip_on=False)
                elif r["status"] == "always":
                    top.plot([p], [lo_y], marker="^", color=col, ms=8, mfc="white", mew=1.4, clip_on=False)
                elif r["status"] == "no common fit":
                    top.plot([p], [hi_y], marker="x", color=col, ms=7, mew=1.4, clip_on=False)
        top.set_title(f"ring=P vs {other}")
        seq_axis(top, "crossover length L (tokens)" if j == 0 else "", axis="y")
        top.set_ylim(lo_y / 1.6, hi_y * 1.6)
        bot.axhline(1.0, color="k", lw=0.8)
        bot.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}x"))
        bot.set_xscale("log", base=2)
        bot.xaxis.set_major_locator(FixedLocator(sorted({r["P"] for r in rows})))
        bot.xaxis.set_minor_locator(NullLocator())
        bot.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        bot.set_xlabel("GPUs P")
        if j == 0:
            bot.set_ylabel("ring speed-up at the longest\nL where both fit (other / ring)")
    mk_h = [
        plt.Line2D([], [], ls="", marker="v", color="0.3", mfc="white", ms=8),
        plt.Line2D([], [], ls="", marker="^", color="0.3", mfc="white", ms=8),
        plt.Line2D([], [], ls="", marker="x", color="0.3", ms=7),
    ]
    mk_l = [
        "never: ring slower at every L\nwhere both fit (speed-up below 1)",
        "ring faster from the shortest\nL where both fit",
        "no L where both fit",
    ]
    fig.legend(
        list(handles.values()) + mk_h,
        list(handles) + mk_l,
        loc="center right",
        fontsize=7,
        frameon=False,
        borderaxespad=0.4,
    )
    fig.suptitle(
        "where ring=P starts to win: the shortest length from which its latency stays lower, counting only "
        "lengths where both plans fit in memory",
        fontsize=9,
    )
    w, _ = fig.get_size_inches()
    layout(fig)
    fig.subplots_adjust(right=1 - 2.4 / w)
    return save(fig, out, name)
