"""Predicted vs measured: a scatter over records ``{label, measured_s, analytic_s, simulated_s}``.

``load_validation`` accepts a JSON list of such records, ``{"records": [...]}``, or a JSONL file with
one record per line; records of ``validation/data/*.jsonl`` are mapped when they carry the same keys
(``measured_s`` and at least one of ``analytic_s`` / ``simulated_s``).  A record may also carry
``phase`` (prefill/decode) and ``exec`` (eager/graph): points are coloured by phase and execution mode,
marked by engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from costmodel.errors import SpecError

from .style import layout, plt, save


def _num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) and x > 0 else None


def normalise(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        m = _num(r.get("measured_s"))
        a, s = _num(r.get("analytic_s")), _num(r.get("simulated_s"))
        if m is None or (a is None and s is None):
            continue
        phase, mode = str(r.get("phase", "")), str(r.get("exec", "eager") or "eager")
        group = phase if mode == "eager" else f"{phase} ({mode})"
        out.append(
            {
                "label": str(r.get("label", "")),
                "phase": phase,
                "group": group,
                "measured_s": m,
                "analytic_s": a,
                "simulated_s": s,
            }
        )
    return out


def load_validation(paths) -> list[dict]:
    recs: list[dict] = []
    for path in paths:
        p = Path(path)
        try:
            text = p.read_text()
            if p.suffix == ".jsonl":
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                d = json.loads(text)
                items = d.get("records", []) if isinstance(d, dict) else d
        except (OSError, ValueError) as e:
            raise SpecError(f"validation file {str(p)!r} cannot be read: {e}") from None
        recs += [r for r in items if isinstance(r, dict)]
    return normalise(recs)


def summary(records: list[dict]) -> dict:
    out = {}
    for eng in ("analytic_s", "simulated_s"):
        err = [abs(r[eng] / r["measured_s"] - 1) for r in records if r[eng] is not None]
        if err:
            out[eng.removesuffix("_s")] = {
                "n": len(err),
                "median_abs_err": float(np.median(err)),
                "max_abs_err": float(np.max(err)),
            }
    return out


def fig_validation(records: list[dict], out, name) -> list[Path]:
    """Left: predicted against measured (log-log, the ±15% band); right: the signed error of each record
    against its measured time, where the points of the left panel's diagonal are told apart.  Analytic as
    open circles, simulator as small crosses (they often coincide: both stay visible); legend outside."""
    if not records:
        raise SpecError("no validation records with measured_s and a prediction: nothing to plot")
    fig, (ax, ex) = plt.subplots(1, 2, figsize=(11.5, 4.6), gridspec_kw={"width_ratios": [1, 1.15]})
    lo = min(min(r["measured_s"], *(v for v in (r["analytic_s"], r["simulated_s"]) if v)) for r in records)
    hi = max(max(r["measured_s"], *(v for v in (r["analytic_s"], r["simulated_s"]) if v)) for r in records)
    xs = np.geomspace(lo / 1.5, hi * 1.5, 10)
    ax.plot(xs, xs, "k-", lw=0.8, label="exact")
    ax.fill_between(xs, xs * 0.85, xs * 1.15, color="0.85", label="±15%")
    ex.axhline(0.0, color="k", lw=0.8)
    ex.axhspan(-15, 15, color="0.92", lw=0)
    groups = sorted({r["group"] for r in records}, key=lambda g: (not g.startswith("prefill"), g))
    colours = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    for gi, g in enumerate(groups):
        sub = [r for r in records if r["group"] == g]
        s = summary(sub)
        gname = g + (" (eager, host-bound)" if g == "decode" else "")
        for eng, mk, ms in (("analytic_s", "o", 5.5), ("simulated_s", "x", 3.5)):
            pts = [(r["measured_s"], r[eng]) for r in sub if r[eng] is not None]
            if pts:
                st = s[eng.removesuffix("_s")]
                kw = {"color": colours[gi % len(colours)], "mfc": "none", "ms": ms, "ls": "", "marker": mk}
                ax.plot(
                    *zip(*pts),
                    **kw,
                    label=f"{gname}, {'analytic' if eng == 'analytic_s' else 'simulator'} "
                    f"(n={st['n']}, median |err| {st['median_abs_err']:.1%})",
                )
                m, p = np.array(pts).T
                ex.plot(m, (p / m - 1) * 100, **kw)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured (s)")
    ax.set_ylabel("predicted (s)")
    ax.set_title("predicted vs measured")
    ex.set_xscale("log")
    ex.set_xlabel("measured (s)")
    ex.set_ylabel("predicted / measured - 1 (%)")
    ex.set_title("error by record (grey: ±15%)")
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=7, frameon=False)
    w, h = fig.get_size_inches()
    n_rows = (len(ax.get_legend_handles_labels()[0]) + 1) // 2
    layout(fig)
    fig.subplots_adjust(bottom=(0.55 + 0.17 * n_rows + 0.1) / h, wspace=0.25)
    return save(fig, out, name)
