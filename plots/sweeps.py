"""Figures from sweep results files (``ringsim sweep`` npz, CSV or JSON manifest): latency / TPS,
communication and memory against L at each P, and the crossover length where ring starts to win."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from costmodel.errors import SpecError
from costmodel.results import read_csv_columns, read_npz

from .style import layout, plan_color, plt, save, seq_axis

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
            cols[k] = np.where(v == "", "nan", v).astype(float) if v.dtype.kind in "US" else v.astype(float)
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
    for need in ("plan_template", "P", "L", "latency_s", "tps", "feasible"):
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


def _line(ax, x, y, ok, color, label, ls="-"):
    """Solid where the plan fits in memory, dotted where it does not."""
    ax.plot(x, np.where(ok, y, np.nan), ls, color=color, label=label, lw=1.6)
    bad = ~ok
    if bad.any():
        edge = bad | np.r_[bad[1:], False] | np.r_[False, bad[:-1]]
        ax.plot(x, np.where(edge, y, np.nan), ":", color=color, lw=1.2, alpha=0.8)


def _title(specs) -> str:
    return (
        f"{specs.get('model')} on {specs.get('hardware')}, topology {specs.get('topology')}, "
        f"{specs.get('phase')}, "
        f"B={specs.get('batch')}"
    )


def _grid(cols, nrows, sharey="row"):
    Ps = sorted({int(p) for p in cols["P"]})
    fig, axes = plt.subplots(
        nrows, len(Ps), figsize=(3.2 * len(Ps), 2.9 * nrows), squeeze=False, sharey=sharey
    )
    return fig, axes, Ps


def _templates(cols):
    return list(dict.fromkeys(cols["plan_template"].tolist()))


def fig_latency(specs, cols, out, name) -> list[Path]:
    decode = specs.get("phase") == "decode"
    fig, axes, Ps = _grid(cols, 2)
    for j, P in enumerate(Ps):
        for tpl in _templates(cols):
            L, lat, ok, plans = _series(cols, tpl, P, "latency_s")
            if not len(L):
                continue
            _, tps, _, _ = _series(cols, tpl, P, "tps")
            lab = str(plans[0])
            _line(axes[0, j], L, lat, ok, plan_color(tpl), lab)
            _line(axes[1, j], L, tps, ok, plan_color(tpl), lab)
        axes[0, j].set_title(f"P = {P} GPUs")
        for i in range(2):
            seq_axis(axes[i, j], "context length (tokens)" if decode else "sequence length L (tokens)")
            axes[i, j].set_yscale("log")
            axes[i, j].legend(loc="best")
    axes[0, 0].set_ylabel("decode step = TPOT (s)" if decode else "prefill latency (s)")
    axes[1, 0].set_ylabel("TPS (tokens/s)")
    fig.suptitle(_title(specs) + "  —  dotted: does not fit in HBM", fontsize=10)
    layout(fig)
    return save(fig, out, name)


def fig_comm(specs, cols, out, name) -> list[Path]:
    fig, axes, Ps = _grid(cols, 1)
    for j, P in enumerate(Ps):
        ax = axes[0, j]
        for tpl in _templates(cols):
            L, nv, _ok, plans = _series(cols, tpl, P, "comm_nvlink_bytes")
            if not len(L):
                continue
            _, ib, _, _ = _series(cols, tpl, P, "comm_ib_bytes")
            ax.plot(L, nv / 1e9, "-", color=plan_color(tpl), label=f"{plans[0]} NVLink", lw=1.6)
            if np.nanmax(ib) > 0:
                ax.plot(L, ib / 1e9, "--", color=plan_color(tpl), label=f"{plans[0]} InfiniBand", lw=1.6)
        ax.set_title(f"P = {P} GPUs")
        seq_axis(ax)
        ax.set_yscale("log")
        ax.legend(loc="best")
    axes[0, 0].set_ylabel("bytes sent per device (GB)")
    fig.suptitle("communication per device by link type — " + _title(specs), fontsize=10)
    layout(fig)
    return save(fig, out, name)


def fig_memory(specs, cols, out, name) -> list[Path]:
    fig, axes, Ps = _grid(cols, 1)
    cap = float(np.nanmax(cols["capacity_bytes"])) if "capacity_bytes" in cols else None
    for j, P in enumerate(Ps):
        ax = axes[0, j]
        for tpl in _templates(cols):
            L, mem, ok, plans = _series(cols, tpl, P, "mem_total_bytes")
            if not len(L):
                continue
            c = plan_color(tpl)
            ax.plot(L, mem / 1e9, "-", color=c, label=str(plans[0]), lw=1.6)
            if ok.any() and not ok.all():
                i = int(np.nonzero(ok)[0].max())
                ax.plot([L[i]], [mem[i] / 1e9], "o", color=c, ms=6, mfc="white")
                ax.annotate(
                    f"fits up to\n{int(L[i]):,}",
                    (L[i], mem[i] / 1e9),
                    textcoords="offset points",
                    xytext=(-6, 8),
                    ha="right",
                    fontsize=7,
                    color=c,
                )
            elif not ok.any():
                ax.plot([L[0]], [mem[0] / 1e9], "x", color=c, ms=7)
        if cap:
            ax.axhline(cap / 1e9, color="k", lw=1.0, ls="--", label=f"HBM {cap / 1e9:.1f} GB")
        ax.set_title(f"P = {P} GPUs")
        seq_axis(ax)
        ax.set_yscale("log")
        ax.legend(loc="upper left")
    axes[0, 0].set_ylabel("memory per device (GB)")
    fig.suptitle(
        "peak memory per device vs HBM capacity (o: longest L that fits, x: never fits) — " + _title(specs),
        fontsize=10,
    )
    layout(fig)
    return save(fig, out, name)


def sweep_figures(path, out, prefix: str | None = None, step=None) -> list[Path]:
    """Latency/TPS, communication and memory figures of a sweep; ``step()`` after each one."""
    specs, cols = load_sweep(path)
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
    """For every other plan and P: the shortest L from which ring's latency stays below it (None if never)."""
    out = []
    for other in [t for t in _templates(cols) if t != ring_template]:
        for P in sorted({int(p) for p in cols["P"]}):
            Lr, lr, _okr, pr = _series(cols, ring_template, P, "latency_s")
            Lo, lo, _oko, po = _series(cols, other, P, "latency_s")
            if not len(Lr) or not len(Lo):
                continue
            common, ir, io = np.intersect1d(Lr, Lo, return_indices=True)
            wins = lr[ir] < lo[io]
            tail = np.flatnonzero(~wins)
            start = 0 if not tail.size else int(tail.max()) + 1
            L_x = int(common[start]) if start < len(common) else None
            out.append(
                {
                    "topology": specs.get("topology"),
                    "phase": specs.get("phase"),
                    "batch": specs.get("batch"),
                    "P": P,
                    "ring_template": ring_template,
                    "other_template": other,
                    "ring_plan": str(pr[0]),
                    "other_plan": str(po[0]),
                    "crossover_L": L_x,
                    "ring_wins_from_start": start == 0,
                    "L_min": int(common[0]),
                    "L_max": int(common[-1]),
                    "speedup_at_L_max": float(lo[io][-1] / lr[ir][-1]),
                }
            )
    return out


def fig_crossover(doc: dict, out, name) -> list[Path]:
    rows = doc["rows"]
    others = list(dict.fromkeys(r["other_template"] for r in rows))
    fig, axes = plt.subplots(1, len(others), figsize=(4.6 * len(others), 3.4), squeeze=False, sharey=True)
    styles = {"ib": ("-", "o"), "nvlink-domain": ("--", "s"), "nvswitch": (":", "^")}
    for j, other in enumerate(others):
        ax = axes[0, j]
        keys = list(dict.fromkeys((r["topology"], r["phase"]) for r in rows if r["other_template"] == other))
        notes: dict[tuple, list[str]] = {}  # one label per point, however many series share it
        p_last = max(r["P"] for r in rows if r["other_template"] == other)
        for topo, phase in keys:
            sel = sorted(
                (
                    r
                    for r in rows
                    if r["other_template"] == other and r["topology"] == topo and r["phase"] == phase
                ),
                key=lambda r: r["P"],
            )
            ls, mk = styles.get(topo, ("-", "o"))
            col = "#d62728" if phase == "prefill" else "#ff7f0e"
            P = [r["P"] for r in sel]
            y = [r["crossover_L"] if r["crossover_L"] is not None else np.nan for r in sel]
            ax.plot(P, y, ls, marker=mk, color=col, label=f"{topo}, {phase}")
            for r in sel:
                if r["crossover_L"] is None:
                    ax.plot([r["P"]], [r["L_max"]], marker="v", color=col, ms=8, mfc="white")
                    notes.setdefault((r["P"], r["L_max"], "never"), []).append(col)
                elif r["ring_wins_from_start"]:
                    notes.setdefault((r["P"], r["crossover_L"], f"<= {r['L_min']:,}"), []).append(col)
        for (p, yv, text), cols in notes.items():
            up = not text.startswith("never")
            right_edge = p == p_last
            ax.annotate(
                text,
                (p, yv),
                textcoords="offset points",
                xytext=(-6 if right_edge else 6, 5 if up else -12),
                ha="right" if right_edge else "left",
                fontsize=7,
                color=cols[0] if len(set(cols)) == 1 else "0.25",
            )
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sorted({r["P"] for r in rows})))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("GPUs P")
        seq_axis_y(ax)
        ax.set_title(f"ring=P beats {other}")
        ax.legend(loc="best")
    axes[0, 0].set_ylabel("crossover length L (tokens)")
    fig.suptitle(
        "shortest length from which ring's latency stays lower (v never: not up to the sweep's end; "
        "annotated <=: from the shortest L swept)",
        fontsize=9,
    )
    layout(fig)
    return save(fig, out, name)


def seq_axis_y(ax) -> None:
    seq_axis(ax, "crossover length L (tokens)", axis="y")
