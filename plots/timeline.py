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


LANES = ("compute", "send", "recv", "collective")


def lane_of(rec: dict) -> str:
    """The lane a record is drawn in: compute ops on the compute stream, and each kind of transfer in a
    lane of its own (sends, receives, collectives), so a send and the receive it overlaps never overdraw."""
    if str(rec["stream"]) != "comm":
        return "compute"
    k = str(rec["kind"])
    return k if k in ("send", "recv") else "collective"


def fig_timeline(timelines: list[dict], out, name, max_ranks: int = 16) -> list[Path]:
    """One panel per timeline; a row per (rank, lane) with the lanes a timeline uses (compute, send, recv,
    collective), bars coloured by op kind; the legend above the panels, outside the data."""
    t_max = max(float(r["end_s"]) for tl in timelines for r in tl["timeline"])
    scale, unit = _unit(t_max)
    panels = []
    for tl in timelines:
        ranks = sorted({int(r["rank"]) for r in tl["timeline"]})
        shown = ranks[:max_ranks]
        used = {lane_of(r) for r in tl["timeline"]}
        lanes = [ln for ln in LANES if ln in used]
        rows = {key: i for i, key in enumerate((rk, ln) for rk in shown for ln in lanes)}
        panels.append((tl, ranks, rows))
    # margins in inches, whatever the number of rows: legend and titles above, the time axis below
    row_in = 0.14
    rows_in = [row_in * max(len(rows), 4) for _, _, rows in panels]
    gap_in, top_in, bottom_in = 0.6, 0.8, 0.55
    H = sum(rows_in) + gap_in * (len(panels) - 1) + top_in + bottom_in
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(11, H),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": rows_in},
    )
    seen: dict[str, object] = {}
    for ax, (tl, ranks, rows) in zip(axes[:, 0], panels):
        by_kind: dict[str, list] = {}
        for r in tl["timeline"]:
            key = (int(r["rank"]), lane_of(r))
            if key not in rows:
                continue
            by_kind.setdefault(str(r["kind"]), []).append(
                (rows[key], float(r["start_s"]) / scale, (float(r["end_s"]) - float(r["start_s"])) / scale)
            )
        for kind, bars in sorted(by_kind.items()):
            h = ax.barh(
                np.array([b[0] for b in bars]),
                [b[2] for b in bars],
                left=[b[1] for b in bars],
                height=0.8,
                color=KIND_COLORS.get(kind, "#7f7f7f"),
                linewidth=0,
            )
            seen.setdefault(kind, h)
        ax.set_yticks(list(rows.values()))
        ax.set_yticklabels([f"r{rk} {ln}" for rk, ln in rows], fontsize=5.5)
        ax.set_ylim(len(rows) - 0.4, -0.6)
        # a faint band per rank so its lanes read as one group
        lanes_per_rank = len(rows) // max(len({rk for rk, _ in rows}), 1)
        for g in range(0, len(rows), 2 * lanes_per_rank):
            ax.axhspan(g - 0.5, g + lanes_per_rank - 0.5, color="0.94", zorder=0, lw=0)
        end = max(float(r["end_s"]) for r in tl["timeline"])
        more = f" (first {max_ranks} of {len(ranks)} ranks)" if len(ranks) > max_ranks else ""
        ax.set_title(f"{tl['label']}: {end / scale:.4g} {unit}{more}", loc="left")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel(
        f"time ({unit}); a transfer's bar runs from when it is posted to when it completes"
    )
    order = [k for k in KIND_COLORS if k in seen] + [k for k in seen if k not in KIND_COLORS]
    fig.legend(
        [seen[k] for k in order],
        order,
        loc="upper right",
        ncol=min(len(order), 10),
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.98, 1 - 0.08 / H),
    )
    fig.subplots_adjust(
        left=0.09,
        right=0.98,
        top=1 - top_in / H,
        bottom=bottom_in / H,
        hspace=gap_in / (sum(rows_in) / len(rows_in)),
    )
    return save(fig, out, name)
