"""ringsim explore: every cell's winner is the plan search's best at that point, the crossover counts only
lengths where both sides fit, the maps come from the maps file, experiment files and the command line give
the same experiment, and bad input or an empty result is one line with exit 2 before anything is written."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from costmodel.config import build_config
from costmodel.predict import predict
from costmodel.results import read_npz
from costmodel.search import rank_plans
from costmodel.topology import parse_topology
from plots.explore import plan_styles
from plots.files import kind_of, plot_file
from ringsim.cli import main
from studies.explore import (
    build_maps,
    crossover,
    example_experiments,
    load_experiment_file,
    make_experiment,
    nominal_grid,
    sentence,
)

SMALL = {
    "model": "llama3-8b",
    "hardware": "h100-sxm",
    "topology": ["ib", "nvlink-domain:16"],
    "phase": ["prefill", "decode"],
    "batch": [1],
    "seq": "8Ki:512Ki",
    "points": 4,
    "gpus": [8, 16],
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from studies.explore import explore

    out = tmp_path_factory.mktemp("ex") / "out"
    exp = make_experiment(SMALL)
    r = explore(out, exp, version="test", log=lambda *a: None)
    return out, exp, r


def test_winners_are_the_plan_search_best(small):
    """Independent check: ``rank_plans`` (costmodel.search, one length at a time) ranks the same plans; its
    best feasible plan's latency is the cell's winner latency, for every cell of every map."""
    out, exp, r = small
    checked = 0
    for m in r["maps"]:
        for i, P in enumerate(m["P"]):
            topo = parse_topology(m["topology_specs"][i])
            for c, _ in enumerate(m["L"]):
                L = m["L_evaluated"][i][c]
                cfg = build_config(
                    {
                        "model": exp.model,
                        "hardware": exp.hardware,
                        "topology": topo.spec,
                        "plan": "tp=1" if P == 1 else f"tp={P}" if P <= 8 else f"ring={P}",
                        "phase": m["phase"],
                        "seq": L,
                        "context": L if m["phase"] == "decode" else None,
                        "batch": m["batch"],
                    }
                )
                ranked = rank_plans(cfg, P)["ranked"]
                if m["winner"][i][c] is None:
                    assert not ranked
                    continue
                assert ranked[0]["latency_s"] == pytest.approx(m["winner_latency_s"][i][c], rel=1e-9)
                checked += 1
    assert checked >= 20


def test_winner_latency_is_predict(small):
    """The winner's latency at a cell is ``predict`` of that plan at that length (the one-point API)."""
    out, exp, r = small
    _, cols = read_npz(out / "data" / "explore.npz")
    m = next(x for x in r["maps"] if x["phase"] == "decode" and x["topology"] == "ib")
    i, c = len(m["P"]) - 1, len(m["L"]) - 1
    lab = m["winner"][i][c]
    sel = (
        (cols["topology"] == "ib")
        & (cols["phase"] == "decode")
        & (cols["P"] == m["P"][i])
        & (cols["L_nominal"] == m["L"][c])
        & (cols["plan"] == lab)
    )
    assert sel.sum() == 1
    j = int(np.flatnonzero(sel)[0])
    plan = {k: int(cols[k][j]) for k in ("tp", "ulysses", "ring", "pp")}
    cfg = build_config(
        {
            "model": exp.model,
            "hardware": exp.hardware,
            "topology": str(cols["topology_spec"][j]),
            "plan": ",".join(f"{k}={v}" for k, v in plan.items()),
            "microbatches": int(cols["microbatches"][j]),
            "decode_attn": str(cols["decode_attn"][j]) or "allgather",
            "phase": "decode",
            "seq": int(cols["L"][j]),
            "context": int(cols["L"][j]),
        }
    )
    assert predict(cfg)["latency_s"] == pytest.approx(m["winner_latency_s"][i][c], rel=1e-9)
    assert cfg.plan.label("decode") == lab


def test_labels_are_unique_within_a_cell(small):
    out, _, _ = small
    _, cols = read_npz(out / "data" / "explore.npz")
    keys = np.char.add(
        np.char.add(cols["topology"].astype(str), "|"),
        np.char.add(
            np.char.add(cols["phase"].astype(str), "|" + np.char.mod("%d", cols["P"])),
            np.char.add(np.char.mod("|%d|", cols["L"]), cols["plan"].astype(str)),
        ),
    )
    assert len(np.unique(keys)) == len(keys)


def _map(ring, tppp, L=(1, 2, 3, 4, 5)):
    """A one-row map with given ring / TP-PP latencies (None: does not fit)."""
    n = len(L)
    win = [
        None if r is None and t is None else ("r" if t is None or (r is not None and r < t) else "t")
        for r, t in zip(ring, tppp)
    ]
    return {
        "topology": "ib",
        "phase": "prefill",
        "batch": 1,
        "L": list(L),
        "P": [16],
        "topology_specs": ["ib:2x8"],
        "winner": [win],
        "ring_latency_s": [list(ring)],
        "tppp_latency_s": [list(tppp)],
        "ring_plan": [["ring=16:zigzag" if r else None for r in ring]],
        "tppp_plan": [["tp=8,pp=2,mb=1" if t else None for t in tppp]],
        "winner_latency_s": [[None] * n],
    }


def test_crossover_counts_only_lengths_where_both_fit():
    # ring slower wherever both fit, faster where TP/PP no longer fits: "never", and "only ring fits" said
    (r,) = crossover([_map([2, 2, 2, 2, 2], [1, 1, 1, None, None])])
    assert r["verdict"] == "never" and r["both_fit"] == 3 and r["speedup_max"] == pytest.approx(0.5)
    assert r["longest_fit_ring"] == 5 and r["longest_fit_tppp"] == 3
    s = sentence(r)
    assert "never" in s and "beyond 3 only ring plans fit" in s
    # faster from 3 on (among both-fit lengths); the length where only ring fits is not counted
    (r,) = crossover([_map([2, 2, 1, 1, None], [1, 1, 2, 4, None])])
    assert (r["verdict"], r["ring_wins_from"], r["speedup_max"], r["speedup_max_at"]) == ("from", 3, 4.0, 4)
    assert r["longest_fit_any"] == 4 and "beyond 4 nothing fits" in sentence(r)
    (r,) = crossover([_map([1, 1, 1, 1, 1], [2, 2, 2, 2, 2])])
    assert r["verdict"] == "always" and r["ring_wins_from"] == 1
    (r,) = crossover([_map([1, 2, 1, 2, 2], [2, 1, 2, 1, 1])])
    assert r["verdict"] == "mixed" and r["ring_wins_at"] == 2 and r["ring_wins_from"] is None
    (r,) = crossover([_map([None] * 5, [None] * 5)])
    assert r["verdict"] == "no both-fit length" and "nothing fits" in sentence(r)


def test_output_folder(small):
    out, _, r = small
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for f in (
        "EXPLORE.md",
        "crossover.csv",
        "crossover.md",
        "experiment.toml",
        "data/explore.npz",
        "data/explore.csv",
        "data/explore.json",
        "data/maps.json",
    ):
        assert f in names
    text = (out / "EXPLORE.md").read_text()
    # links only inside the folder, and each exists
    import re

    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all(not link.startswith(("/", "..", "http")) and (out / link).exists() for link in links)
    for row in r["crossover"]:
        assert sentence(row) in text
    specs = json.loads((out / "data" / "explore.json").read_text())["specs"]
    assert specs["hardware"] == "h100-sxm" and specs["model"] == "llama3-8b" and specs["ringsim_version"]
    # 2 topologies x 2 phases: a winner and a speed-up map each, PNG + SVG
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(pngs) == 8 and all((out / "figures" / p).stat().st_size > 5000 for p in pngs)


def test_maps_are_remade_from_the_maps_file(small, tmp_path):
    out, _, _ = small
    assert kind_of(out / "data" / "maps.json") == "explore-maps"
    remade = sorted(p.name for p in plot_file(out / "data" / "maps.json", tmp_path))
    assert remade == sorted(p.name for p in (out / "figures").iterdir())


def test_resolved_experiment_reruns_to_the_same_answer(small, tmp_path):
    out, exp, r = small
    again = make_experiment(load_experiment_file(out / "experiment.toml"))
    assert replace(again, source="") == replace(exp, source="")


def test_plan_styles_are_one_per_plan_and_stable():
    fams = {"ring=16:zigzag": "ring", "ring=16:striped": "ring", "tp=8,pp=2,mb=1": "tp-pp", "tp=16": "tp"}
    a = plan_styles(fams)
    b = plan_styles(dict(reversed(list(fams.items()))))
    assert a == b
    assert len({k for k, _ in a.values()}) == len(fams) and len({c for _, c in a.values()}) == len(fams)
    assert a["ring=16:striped"][0] == "R1" and a["tp=16"][0] == "T1"


def test_nominal_grid_starts_and_ends_where_asked():
    g = nominal_grid(4096, 2**20, 25)
    assert g[0] == 4096 and g[-1] == 2**20 and len(g) == 25 and (np.diff(g) > 0).all()
    assert 2**17 in g and 2**15 in g  # three points per octave land on the powers of two


def test_example_experiments_are_valid():
    files = example_experiments()
    assert len(files) >= 4
    for f in files:
        exp = make_experiment(load_experiment_file(f), source=str(f))
        assert exp.title and exp.topology


def test_toml_and_flags(tmp_path, capsys):
    f = tmp_path / "e.toml"
    f.write_text('model = "llama3-8b"\ntopology = ["ib"]\ngpus = [8]\nseq = "8Ki:16Ki"\npoints = 2\n')
    out = tmp_path / "o"
    rc = main(["explore", str(f), "--phase", "decode", "--out", str(out), "--quiet"])
    assert rc == 0
    specs = json.loads((out / "data" / "explore.json").read_text())["specs"]
    e = specs["experiment"]
    assert e["model"] == "llama3-8b" and e["phase"] == ["decode"] and e["gpus"] == [8]
    assert capsys.readouterr().out.strip().endswith("EXPLORE.md")


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--phase", "prefil"], "phase"),
        (["--families", "rings"], "families"),
        (["--seq", "8Ki:4Ki"], "--seq"),
        (["--gpus", "0"], "gpus"),
        (["--topology", "infiniband"], "topology"),
        (["--model", "no-such-model"], "model"),
        (["--batch", "x"], "batch"),
    ],
)
def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, argv, field):
    out = tmp_path / "o"
    rc = main(["explore", *argv, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert field.lstrip("-") in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_key_in_file(tmp_path, capsys):
    f = tmp_path / "e.toml"
    f.write_text('modell = "llama3-8b"\n')
    assert main(["explore", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "'modell'" in capsys.readouterr().err


def test_empty_results_are_errors_and_leave_the_old_folder(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    # 405B on one H100 node at 1Mi: nothing fits anywhere
    rc = main(
        ["explore", "--model", "llama3-405b", "--topology", "ib", "--gpus", "8", "--seq", "512Ki:1Mi"]
        + ["--points", "2", "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "nothing fits" in err and len(err.strip().splitlines()) == 1
    # 12 GPUs do not fill 8-GPU nodes: an empty grid
    rc = main(["explore", "--topology", "ib", "--gpus", "12", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "nothing was evaluated" in err and "12 GPUs" in err
    assert [p.name for p in tmp_path.iterdir()] == ["o"] and (out / "keep.txt").read_text() == "old"


def test_families_filter(tmp_path):
    exp = make_experiment({**SMALL, "topology": ["ib"], "gpus": [16], "families": ["ring", "tp-pp"]})
    from studies.explore import run_experiment

    cols, _ = run_experiment(exp)
    assert set(cols["family"]) == {"ring", "tp-pp"}
    maps = build_maps(cols, exp)
    assert all(
        w is None or w.startswith("ring=") or ",pp=" in w for m in maps for row in m["winner"] for w in row
    )


def test_lengths_are_near_their_nominal_points(small):
    out, _, _ = small
    _, cols = read_npz(out / "data" / "explore.npz")
    # every evaluated length is within half a multiple of its nominal length
    rel = np.abs(cols["L"] - cols["L_nominal"]) / cols["L_nominal"]
    assert rel.max() < 0.01


def test_experiment_files_are_package_data():
    """A non-editable install ships the example experiments (pyproject's package-data covers them)."""
    import fnmatch
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    root = Path(__file__).resolve().parent.parent
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = sorted((root / "studies" / "experiments").glob("*.toml"))
    assert files
    for f in files:
        inside = f.relative_to(root / "studies").as_posix()
        assert any(fnmatch.fnmatch(inside, pat) for pat in data["studies"]), inside


# ----------------------------------------------------------------------------------------------
# the fast path (validity masks, a few large model calls, coded columns, maps in one pass) against the
# reference path (each plan validated at each length, one model call per plan group, cell by cell)
# ----------------------------------------------------------------------------------------------
FAST_CASES = [
    # ib rows of every size share calls; nvlink-domain rows of two sizes share calls; B = 2 gives chunked
    # pipelines of several micro-batches (the stage x unit grid)
    {**SMALL, "topology": ["ib", "nvlink-domain"], "batch": [2], "seq": "6000:300000", "points": 2},
    # partial prefill with pass-Q rings; nvl domains joined by IB
    {
        "model": "llama3-8b",
        "topology": ["nvl", "ib:2x8"],
        "gpus": [16],
        "seq": "4Ki:16Ki",
        "points": 2,
        "families": ["ring", "hybrid", "tp-pp", "ulysses"],
        "cached": "64Ki",
        "prefill_attn": ["pass-kv", "pass-q"],
    },
]


def _same_column(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":  # the same bits (NaN, -0.0 included)
        return bool(np.array_equal(a.view(np.int64), b.view(np.int64)))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("case", range(len(FAST_CASES)))
def test_fast_path_equals_the_per_length_path(case):
    from studies.explore import run_experiment

    exp = make_experiment(FAST_CASES[case])
    ref, ref_skipped = run_experiment(exp, per_length=True)
    coded, skipped = run_experiment(exp, coded=True)
    assert len(ref["plan"]) > 200
    assert list(coded) == list(ref)
    for k in ref:
        assert _same_column(np.asarray(coded[k]), ref[k]), k
    assert skipped == ref_skipped
    assert build_maps(coded, exp) == build_maps(ref, exp)


def _maps_cell_by_cell(cols, exp):
    """The maps' cells looked up one cell at a time (the reference ``build_maps`` is checked against)."""
    out = {}
    for i in range(len(cols["plan"])):
        key = (str(cols["topology"][i]), str(cols["phase"][i]), int(cols["batch"][i]), int(cols["P"][i]))
        out.setdefault((*key, int(cols["L_nominal"][i])), []).append(i)
    cells = {}
    for key, idx in out.items():
        got = {}
        for side in ("winner", "ring", "tppp"):
            c = [
                (float(cols["latency_s"][i]), str(cols["plan"][i]))
                for i in idx
                if cols["feasible"][i] and (side == "winner" or cols["side"][i] == side)
            ]
            got[side] = min(c) if c else (None, None)
        got["evaluated"], got["fit"] = len(idx), sum(bool(cols["feasible"][i]) for i in idx)
        got["L"] = int(cols["L"][idx[0]])
        cells[key] = got
    return cells


def test_maps_hold_each_cells_best(small):
    out, exp, r = small
    _, cols = read_npz(out / "data" / "explore.npz")
    ref = _maps_cell_by_cell(cols, exp)
    n = 0
    for m in r["maps"]:
        for i, P in enumerate(m["P"]):
            for c, L in enumerate(m["L"]):
                got = ref.get((m["topology"], m["phase"], m["batch"], P, L))
                if got is None:
                    assert m["plans_evaluated"][i][c] == 0 and m["winner"][i][c] is None
                    continue
                assert (m["winner_latency_s"][i][c], m["winner"][i][c]) == got["winner"]
                assert (m["ring_latency_s"][i][c], m["ring_plan"][i][c]) == got["ring"]
                assert (m["tppp_latency_s"][i][c], m["tppp_plan"][i][c]) == got["tppp"]
                assert m["plans_evaluated"][i][c] == got["evaluated"] and m["plans_fit"][i][c] == got["fit"]
                assert m["L_evaluated"][i][c] == got["L"]
                n += 1
    assert n == len(ref) and n >= 20


def _drawn(monkeypatch, m, styles, where):
    """The winner map ("w") and speed-up map ("s") of ``m`` as figures (``plots.explore.save`` kept from
    writing them)."""
    from plots import explore as pe

    seen = {}
    monkeypatch.setattr(pe, "save", lambda fig, _where, name: seen.setdefault(name, fig) and [])
    pe.fig_winner(m, styles, where, "w")
    pe.fig_speedup(m, where, "s")
    return seen


def _mesh_rgba(ax, shape):
    """The fill of every cell, read back from the one QuadMesh of the axes (NaN where it is masked)."""
    from matplotlib.collections import QuadMesh

    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    arr = np.ma.masked_invalid(np.ma.asarray(meshes[0].get_array()).reshape(shape))
    rgba = meshes[0].to_rgba(arr.filled(np.nan))[..., :3]
    rgba[arr.mask] = np.nan
    return meshes[0], rgba


def _label_texts(ax):
    """The cell labels of the axes as ``Text`` objects (one per label of its ``_Labels`` artists, with the
    artist's font and centring), to read their texts and measure them."""
    from matplotlib.text import Text

    from plots import explore as pe

    out = []
    for art in ax.artists:
        if isinstance(art, pe._Labels):
            for x, y, txt, colour in art._items:
                t = Text(x, y, txt, color=colour, fontsize=art._text.get_fontsize(), ha="center", va="center")
                t.set_figure(ax.figure)
                t.set_transform(ax.transData)
                out.append(t)
    return out + list(ax.texts)


def _svg_cell_labels(fig) -> list[str]:
    """The ``<text>`` elements of the figure's SVG inside its cell-label groups."""
    import re

    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    groups = re.findall(r'\n( *)<g id="cell_labels[^"]*">(.*?)\n\1</g>', svg.getvalue(), flags=re.S)
    return [t for _, g in groups for t in re.findall(r"<text[^>]*>([^<]*)</text>", g)]


def _runs_of(row):
    """(first column, one past the last, value) of each run of one value: itertools.groupby's runs, an
    account of its own beside plots.explore._runs."""
    import itertools

    out, c0 = [], 0
    for value, group in itertools.groupby(row):
        n = sum(1 for _ in group)
        out.append((c0, c0 + n, value))
        c0 += n
    return out


def test_map_fills_are_one_mesh_and_keys_one_per_run(small, monkeypatch):
    """At few lengths: every cell's fill is its winner's colour in one QuadMesh with white cell edges (no
    patch per cell), the no-fit cells one hatched rectangle per run, one key per run of one winner (every
    run is wide enough here), and the speed-up map a number in every cell where both sides fit."""
    from matplotlib.collections import PolyCollection

    out, _, r = small
    doc = json.loads((out / "data" / "maps.json").read_text())
    styles = plan_styles(doc["plan_families"])
    checked = 0
    for m in r["maps"]:
        figs = _drawn(monkeypatch, m, styles, out)
        shape = (len(m["P"]), len(m["L"]))
        ax = figs["w"].axes[0]
        mesh, rgba = _mesh_rgba(ax, shape)
        assert not mesh.get_rasterized() and len(ax.patches) == 0
        assert np.allclose(mesh.get_edgecolor()[0][:3], 1.0) and mesh.get_linewidth()[0] == pytest.approx(0.4)
        runs = [(i, *x) for i, row in enumerate(m["winner"]) for x in _runs_of(row)]
        for i, c, w in [(i, c, w) for i, row in enumerate(m["winner"]) for c, w in enumerate(row)]:
            if w is None:
                assert np.isnan(rgba[i, c]).all()
            else:
                assert np.allclose(rgba[i, c], styles[w][1]), (i, c, w)
                checked += 1
        hatched = sum(len(c.get_paths()) for c in ax.collections if isinstance(c, PolyCollection))
        assert hatched == sum(w is None for *_, w in runs)
        keys = sorted(t.get_text() for t in _label_texts(ax))
        assert keys == sorted(styles[w][0] for *_, w in runs if w is not None)
        assert sorted(_svg_cell_labels(figs["w"])) == keys
        # the speed-up map: tp/pp latency over ring latency, a number in each cell where both fit
        ax = figs["s"].axes[0]
        rl, tl = np.array(m["ring_latency_s"], float), np.array(m["tppp_latency_s"], float)
        mesh, rgba = _mesh_rgba(ax, shape)
        sp = tl / rl
        assert np.array_equal(np.isnan(rgba).any(axis=-1), np.isnan(sp))
        want = mesh.cmap(mesh.norm(np.log2(sp)))[..., :3]
        assert np.allclose(rgba[np.isfinite(sp)], want[np.isfinite(sp)])
        nums = sorted(float(t.get_text()) for t in _label_texts(ax))
        assert len(_svg_cell_labels(figs["s"])) == len(nums)
        assert nums == pytest.approx(sorted(sp[np.isfinite(sp)]), abs=0.006)
    assert checked >= 10


def _many_lengths_map(n_len=200):
    """A synthetic map of ``n_len`` lengths (1Ki steps from 4Ki): row 0 one winner, row 1 a winner per cell
    alternating, row 2 two long runs then nothing fits, row 3 runs of 30 cells."""
    L = [4096 + 1024 * k for k in range(n_len)]
    plans = ["ring=8:zigzag", "tp=8", "ulysses=8", "tp=8,pp=2,mb=1"]
    rows = [
        [plans[0]] * n_len,
        [plans[c % 2] for c in range(n_len)],
        [plans[2]] * (n_len // 3) + [plans[3]] * (n_len // 3) + [None] * (n_len - 2 * (n_len // 3)),
        [plans[(c // 30) % 4] for c in range(n_len)],
    ]
    lat = [[None if w is None else 1.0 + 0.001 * c for c, w in enumerate(row)] for row in rows]
    tl = [
        [None if w is None else (1.0 + 0.001 * c) * (0.8 + 0.004 * c) for c, w in enumerate(row)]
        for row in rows
    ]
    tl[1] = [None] * n_len  # only the ring side fits in row 1
    m = {
        "topology": "ib",
        "phase": "prefill",
        "batch": 1,
        "L": L,
        "P": [8, 16, 32, 64],
        "topology_specs": ["ib:1x8", "ib:2x8", "ib:4x8", "ib:8x8"],
        "winner": rows,
        "ring_latency_s": lat,
        "tppp_latency_s": tl,
    }
    fams = {"ring=8:zigzag": "ring", "tp=8": "tp", "ulysses=8": "ulysses", "tp=8,pp=2,mb=1": "tp-pp"}
    return m, plan_styles(fams)


def test_maps_at_many_lengths_stay_readable(monkeypatch, tmp_path):
    """At 200 lengths: the data width is capped (not 0.36 in a length), the mesh has no cell edges and is
    rasterised in SVG (one image, not a path per cell: a small file), a key only in runs wide enough for it
    (its text inside its run), none in one-cell runs, and no numbers in the speed-up map's cells."""
    m, styles = _many_lengths_map()
    figs = _drawn(monkeypatch, m, styles, tmp_path)
    for fig in figs.values():
        ax = fig.axes[0]
        w_data = ax.get_position().width * fig.get_size_inches()[0]
        assert w_data == pytest.approx(12.0) and fig.get_size_inches()[0] < 20
        mesh, rgba = _mesh_rgba(ax, (4, len(m["L"])))
        assert mesh.get_rasterized() and mesh.get_linewidth()[0] == 0
        svg = io.StringIO()
        fig.savefig(svg, format="svg")
        svg = svg.getvalue()
        assert svg.count("<image") >= 1 and svg.count("<path") < len(m["L"]) and len(svg) < 200_000
    ax = figs["w"].axes[0]
    _, rgba = _mesh_rgba(ax, (4, len(m["L"])))
    for i, c in [(0, 0), (1, 7), (2, 70), (3, 95), (3, 199)]:
        assert np.allclose(rgba[i, c], styles[m["winner"][i][c]][1]), (i, c)
    renderer = figs["w"].canvas.get_renderer()
    px = ax.transData.transform
    L = m["L"]
    # the cells' edges: halfway (geometric) between lengths, mirrored at the ends
    edges = (
        [L[0] ** 1.5 / L[1] ** 0.5]
        + [math.sqrt(a * b) for a, b in zip(L, L[1:])]
        + [L[-1] ** 1.5 / L[-2] ** 0.5]
    )
    labelled = {}
    for t in _label_texts(ax):
        i, x = round(t.get_position()[1]), t.get_position()[0]
        c0, c1, w = next(r for r in _runs_of(m["winner"][i]) if edges[r[0]] <= x <= edges[r[1]])
        assert t.get_text() == styles[w][0] and (i, c0) not in labelled
        box = t.get_window_extent(renderer)
        assert px((edges[c0], 0))[0] <= box.x0 and box.x1 <= px((edges[c1], 0))[0]
        labelled[(i, c0)] = box.width
    # every run without a key is too narrow for one (its key's width and 2 pt each side, 1 px of slack)
    key_px = max(labelled.values())
    pad = 4 / 72 * figs["w"].dpi
    for i, row in enumerate(m["winner"]):
        for c0, c1, w in _runs_of(row):
            if w is not None and (i, c0) not in labelled:
                assert px((edges[c1], 0))[0] - px((edges[c0], 0))[0] < key_px + pad + 1, (i, c0, c1)
    rows = [i for i, _ in labelled]
    assert rows.count(0) == 1 and rows.count(2) == 2 and 5 <= rows.count(3) <= len(_runs_of(m["winner"][3]))
    # one-cell runs: keys only in the widest cells, those of the shortest lengths
    assert sorted(c for i, c in labelled if i == 1) == list(range(rows.count(1))) and 0 < rows.count(1) < 20
    assert not _label_texts(figs["s"].axes[0]) and not _svg_cell_labels(figs["s"])
    assert sorted(_svg_cell_labels(figs["w"])) == sorted(t.get_text() for t in _label_texts(ax))


def test_maps_width_is_capped_and_grows_at_few_lengths(monkeypatch, tmp_path):
    """0.36 in a length between 6 and 12 in: 10 lengths 6 in, 25 lengths 9 in (cells with edges), 60 and 600
    lengths 12 in."""
    for n, want in ((10, 6.0), (25, 9.0), (60, 12.0), (600, 12.0)):
        m, styles = _many_lengths_map(n)
        figs = _drawn(monkeypatch, m, styles, tmp_path)
        ax = figs["w"].axes[0]
        assert ax.get_position().width * figs["w"].get_size_inches()[0] == pytest.approx(want)


def test_no_csv_writes_the_same_npz_and_maps_without_the_csv(small, tmp_path):
    """``ringsim explore --no-csv``: data/explore.csv is not written, the npz, maps and crossover are the
    same as with it, and EXPLORE.md links only files that exist (it says there is no CSV)."""
    import numpy as np

    from ringsim.cli import main

    out, _, _ = small
    mine = tmp_path / "nocsv"
    argv = ["explore", str(out / "experiment.toml"), "--out", str(mine), "--quiet", "--no-csv"]
    assert main(argv) == 0
    assert not (mine / "data" / "explore.csv").exists()
    assert json.loads((mine / "data" / "explore.json").read_text())["files"] == {"npz": "explore.npz"}
    with np.load(out / "data" / "explore.npz") as a, np.load(mine / "data" / "explore.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if k != "__specs__":  # the version string may differ (the CLI's own)
                assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k
    assert (mine / "crossover.csv").read_text() == (out / "crossover.csv").read_text()
    text = (mine / "EXPLORE.md").read_text()
    assert "explore.csv" not in text and "--no-csv" in text
    import re

    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all((mine / link).exists() for link in links)
