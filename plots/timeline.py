"""Timeline figure from a timeline results file: ``{"specs": ..., "timeline": [{"rank", "stream", "kind",
"tag", "start_s", "end_s"}, ...]}`` (the simulator's records; a measured profile can use the same format).

Several timelines may sit in one file as ``{"kind": "timelines", "timelines": [{"label", "specs",
"timeline"}, ...]}``: one panel each, on a shared time axis, so two plans can be compared."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from costmodel.errors import SpecError

from .style import plt, save

KIND_COLORS = {
    "gemm": "#1f77b4",
    "attention": "#d62728",
    "elementwise": "#bcbd22",
    "lse_merge": "#ff7f0e",
    "send": "#2ca02c",
    "recv": "#98df8a",
    "all_reduce": "#9467bd",
    "all_gather": "#8c564b",
    "reduce_scatter": "#e377c2",
    "all_to_all": "#17becf",
}
REQUIRED = ("rank", "stream", "kind", "start_s", "end_s")


def check_records(records, where: str) -> None:
    if not isinstance(records, list) or not records:
        raise SpecError(f"{where}: 'timeline' must be a non-empty list of records")
    for i, r in enumerate(records[:1000]):
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise SpecError(f"{where}: timeline record {i} lacks {missing}; each needs {list(REQUIRED)}")


def load_timelines(path: str | Path) -> list[dict]:
    p = Path(path)
    try:
        with open(p) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise SpecError(f"timeline file {str(p)!r} cannot be read: {e}") from None
    items = d.get("timelines") if isinstance(d, dict) and "timelines" in d else [d]
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "timeline" not in item:
            raise SpecError(f"{p}: not a timeline file (needs 'timeline' or 'timelines')")
        check_records(item["timeline"], f"{p} [{k}]")
        specs = item.get("specs") or {}
        label = (
            item.get("label")
            or (specs.get("plan", {}) or {}).get("label")
            or (specs.get("plan", {}) or {}).get("name")
            or f"timeline {k}"
        )
        out.append({"label": str(label), "specs": specs, "timeline": item["timeline"]})
    return out


def _unit(t_max: float) -> tuple[float, str]:
    for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if t_max >= 2 * scale:
            return scale, name
    return 1e-6, "us"


def fig_timeline(timelines: list[dict], out, name, max_ranks: int = 16) -> list[Path]:
    """One panel per timeline; a row per (rank, stream), bars coloured by op kind."""
    t_max = max(float(r["end_s"]) for tl in timelines for r in tl["timeline"])
    scale, unit = _unit(t_max)
    heights = []
    for tl in timelines:
        ranks = sorted({int(r["rank"]) for r in tl["timeline"]})[:max_ranks]
        heights.append(len(ranks) * 2)
    # margins in inches, whatever the number of rows: legend and titles above, the time axis below
    rows_in = [0.22 * max(h, 2) for h in heights]
    gap_in, top_in, bottom_in = 0.55, 0.75, 0.55
    H = sum(rows_in) + gap_in * (len(heights) - 1) + top_in + bottom_in
    fig, axes = plt.subplots(
        len(timelines),
        1,
        figsize=(11, H),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": [max(h, 2) for h in heights]},
    )
    seen = set()
    for ax, tl in zip(axes[:, 0], timelines):
        ranks = sorted({int(r["rank"]) for r in tl["timeline"]})
        shown = ranks[:max_ranks]
        rows = {(rk, s): i for i, (rk, s) in enumerate((rk, s) for rk in shown for s in ("compute", "comm"))}
        by_kind: dict[str, list] = {}
        for r in tl["timeline"]:
            key = (int(r["rank"]), str(r["stream"]))
            if key not in rows:
                continue
            by_kind.setdefault(str(r["kind"]), []).append(
                (rows[key], float(r["start_s"]) / scale, (float(r["end_s"]) - float(r["start_s"])) / scale)
            )
        for kind, bars in by_kind.items():
            y = np.array([b[0] for b in bars])
            ax.barh(
                y,
                [b[2] for b in bars],
                left=[b[1] for b in bars],
                height=0.8,
                color=KIND_COLORS.get(kind, "#7f7f7f"),
                label=None if kind in seen else kind,
                linewidth=0,
            )
            seen.add(kind)
        ax.set_yticks(list(rows.values()))
        ax.set_yticklabels([f"r{rk} {s}" for rk, s in rows], fontsize=6)
        ax.invert_yaxis()
        end = max(float(r["end_s"]) for r in tl["timeline"])
        more = f" (first {max_ranks} of {len(ranks)} ranks)" if len(ranks) > max_ranks else ""
        ax.set_title(f"{tl['label']}: {end / scale:.4g} {unit}{more}", loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel(f"time ({unit})")
    fig.legend(loc="upper right", ncol=min(len(seen), 8), fontsize=7, bbox_to_anchor=(0.98, 1 - 0.05 / H))
    fig.subplots_adjust(
        left=0.09,
        right=0.98,
        top=1 - top_in / H,
        bottom=bottom_in / H,
        hspace=gap_in / (sum(rows_in) / len(rows_in)),
    )
    return save(fig, out, name)
