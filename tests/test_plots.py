"""plots/: every kind of results file makes its figures; bad files are one clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from costmodel.errors import SpecError
from plots.files import kind_of, plot_file
from plots.sweeps import crossover_rows, load_sweep
from plots.validation import normalise, summary
from ringsim.cli import main
from studies.reproduce import write_sweep


def _names(paths):
    return sorted(p.name for p in paths)


def test_sweep_csv_and_json_make_the_same_figures(tmp_path):
    f = write_sweep(
        tmp_path,
        hardware="h100-sxm",
        model_name="seed-dense",
        topo_kind="ib",
        phase="decode",
        batch=2,
        points=3,
        gpus=(16,),
    )
    a = plot_file(f, tmp_path / "a")
    b = plot_file(f.with_suffix(".json"), tmp_path / "b")
    assert _names(a) == _names(b) and len(a) == 6
    specs, cols = load_sweep(f)
    assert specs["kind"] == "sweep" and set(cols["P"]) == {16.0}


def test_crossover_by_hand():
    L = np.array([1, 2, 4, 8] * 2, float)
    cols = {
        "plan_template": np.array(["ring=P"] * 4 + ["tp=P"] * 4),
        "P": np.full(8, 8.0),
        "L": L,
        "latency_s": np.array([5, 5, 1, 1, 1, 2, 3, 4], float),
        "feasible": np.ones(8, bool),
        "plan": np.array(["ring=8"] * 4 + ["tp=8"] * 4),
    }
    (row,) = crossover_rows({"topology": "ib", "phase": "prefill"}, cols)
    assert row["crossover_L"] == 4 and not row["ring_wins_from_start"]
    assert row["speedup_at_L_max"] == pytest.approx(4.0)
    cols["latency_s"] = np.array([9, 9, 9, 9, 1, 1, 1, 1], float)
    assert crossover_rows({}, cols)[0]["crossover_L"] is None


def test_timeline_file(tmp_path):
    recs = [
        {"rank": r, "stream": s, "kind": k, "tag": f"L0/{k}", "start_s": t, "end_s": t + 1e-3}
        for r in range(2)
        for s, k, t in (("compute", "gemm", 0.0), ("comm", "send", 5e-4), ("compute", "attention", 1e-3))
    ]
    f = tmp_path / "tl.json"
    f.write_text(json.dumps({"specs": {"plan": {"name": "ring=2"}}, "timeline": recs}))
    assert kind_of(f) == "timeline"
    assert _names(plot_file(f, tmp_path)) == ["tl.png", "tl.svg"]
    f.write_text(json.dumps({"timeline": [{"rank": 0}]}))
    with pytest.raises(SpecError, match="lacks"):
        plot_file(f, tmp_path)


def test_validation_records(tmp_path):
    recs = [
        {"label": "a", "measured_s": 1.0, "analytic_s": 1.1, "simulated_s": 0.95},
        {"label": "b", "measured_s": 2.0, "analytic_s": 1.8, "simulated_s": None},
        {"label": "no prediction", "measured_s": 1.0},
    ]
    assert len(normalise(recs)) == 2
    s = summary(normalise(recs))
    assert s["analytic"]["median_abs_err"] == pytest.approx(0.1) and s["simulated"]["n"] == 1
    f = tmp_path / "v.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs))
    assert _names(plot_file(f, tmp_path)) == ["v.png", "v.svg"]
    f.write_text(json.dumps({"records": [{"label": "x", "measured_s": 1.0}]}))
    with pytest.raises(SpecError, match="nothing to plot"):
        plot_file(f.rename(tmp_path / "v.json"), tmp_path)


def test_plot_cli_errors(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"hello": 1}))
    assert main(["plot", str(bad)]) == 2
    assert main(["plot", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert "not a results file" in err and "does not exist" in err and "Traceback" not in err


def test_plots_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, studies.reproduce, plots.files, plots.sweeps, plots.timeline, plots.validation; "
        "sys.exit(1 if any(m == 'torch' or m.startswith('real') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_crossover_counts_only_lengths_where_both_fit():
    """Ring loses only where the other plan does not fit: that is not a loss (issue 15)."""
    L = np.array([1, 2, 4, 8] * 2, float)
    cols = {
        "plan_template": np.array(["ring=P"] * 4 + ["tp=P"] * 4),
        "P": np.full(8, 8.0),
        "L": L,
        # ring faster at 1, 2 (both fit); slower at 4, 8 where tp does not fit and ring does not either at 8
        "latency_s": np.array([1, 1, 5, 5, 2, 2, 1, 1], float),
        "feasible": np.array([1, 1, 1, 0, 1, 1, 0, 0], bool),
        "plan": np.array(["ring=8"] * 4 + ["tp=8"] * 4),
    }
    (row,) = crossover_rows({"topology": "ib", "phase": "decode"}, cols)
    assert row["status"] == "always" and row["L_max"] == 2 and row["speedup_at_L_max"] == pytest.approx(2.0)
    assert row["ring_fits_to"] == 4 and row["other_fits_to"] == 2
    cols["latency_s"] = np.array([3, 4, 5, 5, 2, 2, 1, 1], float)
    (row,) = crossover_rows({}, cols)
    assert row["status"] == "never" and row["speedup_best"] == pytest.approx(2 / 3)
    assert row["L_speedup_best"] == 1
    cols["feasible"] = np.array([1, 1, 0, 0, 0, 0, 1, 1], bool)
    (row,) = crossover_rows({}, cols)
    assert row["status"] == "no common fit" and row["crossover_L"] is None and row["speedup_at_L_max"] is None


def test_crossover_table_explains_never_and_always():
    from plots.report import crossover_markdown

    base = {"topology": "ib", "phase": "decode", "P": 8, "ring_plan": "ring=8", "other_plan": "tp=8"}
    never = {
        **base,
        "status": "never",
        "crossover_L": None,
        "ring_wins_from_start": False,
        "L_min": 4096,
        "L_max": 2**18,
        "speedup_at_L_max": 0.9,
        "speedup_best": 0.95,
        "L_speedup_best": 8192,
    }
    text = crossover_markdown([never, {**never, "status": "always", "ring_wins_from_start": True}])
    assert "never from 4Ki to 256Ki (at best 0.95x, at 8Ki)" in text and "0.90x at 256Ki" in text
    assert "always: from 4Ki (the shortest swept) to 256Ki" in text


def test_timeline_draws_send_and_recv_in_their_own_lanes(tmp_path):
    from plots.timeline import fig_timeline, lane_of

    recs = [
        {"rank": 0, "stream": "compute", "kind": "gemm", "tag": "g", "start_s": 0.0, "end_s": 1e-3},
        {"rank": 0, "stream": "comm", "kind": "send", "tag": "s", "start_s": 0.0, "end_s": 2e-3},
        {"rank": 0, "stream": "comm", "kind": "recv", "tag": "r", "start_s": 0.0, "end_s": 2e-3},
        {"rank": 0, "stream": "comm", "kind": "all_reduce", "tag": "a", "start_s": 2e-3, "end_s": 3e-3},
    ]
    assert [lane_of(r) for r in recs] == ["compute", "send", "recv", "collective"]
    import matplotlib.pyplot as plt

    captured = {}
    orig = plt.close

    def keep(fig):
        captured["fig"] = fig

    plt.close = keep
    try:
        fig_timeline([{"label": "x", "specs": {}, "timeline": recs}], tmp_path, "t")
    finally:
        plt.close = orig
    ax = captured["fig"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "r0 compute",
        "r0 send",
        "r0 recv",
        "r0 collective",
    ]
    # the send and the receive bars sit in different rows
    ys = {round(p.get_y() + p.get_height() / 2) for p in ax.patches if p.get_width() == 2.0}
    assert len(ys) == 2
