"""``plot_file``: re-make the figures of any results file from the file alone (``ringsim plot FILE``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from costmodel.errors import SpecError

from .style import layout, plt, save


def kind_of(path: str | Path) -> str:
    """sweep | crossover | timeline | validation | seed-report | explore-maps | partial-prefill, from the
    file's content."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"results file {str(p)!r} does not exist or is not a file")
    if p.suffix == ".csv":
        try:
            with open(p, encoding="utf-8") as f:
                first = f.readline()
        except UnicodeDecodeError as e:
            raise SpecError(f"results file {str(p)!r} is not UTF-8 text (byte {e.start})") from None
        if first.startswith("# ") and '"kind": "sweep"' in first:
            return "sweep"
        raise SpecError(f"{p}: a CSV results file must start with '# {{specs}}' of kind 'sweep'")
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                specs = json.loads(str(z["__specs__"])) if "__specs__" in z.files else {}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise SpecError(f"results file {str(p)!r} is not a readable npz: {e}") from None
        if (specs or {}).get("kind") == "sweep":
            return "sweep"
        raise SpecError(f"{p}: an npz results file must carry specs of kind 'sweep'")
    if p.suffix == ".jsonl":
        return "validation"
    try:
        with open(p) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise SpecError(f"results file {str(p)!r} is not valid JSON: {e}") from None
    if isinstance(d, list) or (isinstance(d, dict) and "records" in d):
        return "validation"
    if isinstance(d, dict):
        if "timeline" in d or "timelines" in d:
            return "timeline"
        if d.get("kind") == "explore-maps":
            return "explore-maps"
        kind = (d.get("specs") or {}).get("kind") or d.get("kind")
        if kind in ("sweep", "crossover", "seed-report", "partial-prefill"):
            return kind
    raise SpecError(
        f"{p}: not a results file ringsim can plot: expected a sweep (npz/CSV/JSON), crossover.json, "
        f"a timeline ({{'timeline': [...]}}), validation records (JSON/JSONL), seed_report.json, "
        f"an explore maps.json or a partial_prefill.json"
    )


def plot_file(path: str | Path, out: str | Path, name: str | None = None, step=None) -> list[Path]:
    """The figures of one results file; ``step()`` (if given) is called after each figure is saved."""
    from . import sweeps, timeline, validation

    kind = kind_of(path)
    stem = name or Path(path).stem
    if kind == "sweep":
        return sweeps.sweep_figures(path, out, stem, step=step)
    if kind == "crossover":
        with open(path) as f:
            return sweeps.fig_crossover(json.load(f), out, stem)
    if kind == "explore-maps":
        from .explore import explore_figures

        return explore_figures(path, out, stem)
    if kind == "partial-prefill":  # studies/partial_prefill.py
        from .partial_prefill import fig_partial_prefill

        with open(path) as f:
            return fig_partial_prefill(json.load(f), out, stem + "_crossover")
    if kind == "timeline":
        return timeline.fig_timeline(timeline.load_timelines(path), out, stem)
    if kind == "validation":
        return validation.fig_validation(validation.load_validation([path]), out, stem)
    with open(path) as f:
        return fig_claims(json.load(f), out, stem)


def fig_claims(doc: dict, out, name) -> list[Path]:
    """The seed's claims beside the model's predictions and the physical ceiling (log scale)."""
    rows = [r for r in doc["claims"] if r["metric"] in ("tps", "tpot_s")]
    if not rows:
        raise SpecError("seed report has no TPS/TPOT claims to plot")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, unit, scale in ((axes[0], "tps", "tokens/s", 1.0), (axes[1], "tpot_s", "ms", 1e3)):
        sel = [r for r in rows if r["metric"] == metric]
        x = np.arange(len(sel))
        topos = list(dict.fromkeys(t for r in sel for t in r["predicted"]))
        ax.scatter(
            x, [r["claim"] * scale for r in sel], marker="*", s=160, color="k", zorder=3, label="seed claim"
        )
        for k, t in enumerate(topos):
            ax.scatter(
                x + 0.12 * (k + 1),
                [r["predicted"].get(t, np.nan) * scale for r in sel],
                marker="os"[k % 2],
                s=45,
                color=["#1f77b4", "#d62728"][k % 2],
                zorder=3,
                label=f"model, {t}",
            )
        ceil = [r["ceiling"] * scale for r in sel]
        lab = "physical ceiling (TPS) / floor (TPOT), any plan"
        for i, c in enumerate(ceil):
            ax.hlines(c, i - 0.25, i + 0.45, color="#2ca02c", lw=2.2, label=lab if i == 0 else None)
        ax.set_xticks(x + 0.1)
        ax.set_xticklabels([r["plan"] for r in sel])
        ax.set_xlim(-0.5, len(sel) - 0.2)
        ax.set_yscale("log")
        ax.margins(y=0.12)
        ax.set_ylabel(("prefill TPS (" if metric == "tps" else "decode TPOT (") + unit + ")")
        ax.set_title(
            (
                "TPS: higher is better; nothing can sit above the green line"
                if metric == "tps"
                else "TPOT: lower is better; nothing can sit below the green line"
            ),
            fontsize=9,
        )
    s = doc.get("specs", {})
    fig.suptitle(
        f"seed claims vs model and physics: {s.get('gpus')}x {s.get('hardware')}, {s.get('model')}, "
        f"B={s.get('batch')}, L={s.get('seq'):,}",
        fontsize=10,
    )
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    layout(fig)
    fig.subplots_adjust(bottom=0.95 / fig.get_size_inches()[1])
    return save(fig, out, name)
