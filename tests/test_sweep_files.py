"""Sweep outputs: columnar CSV and npz round-trip the in-memory columns; files are written as a unit;
bad input and empty sweeps are one-sentence errors before anything is written."""

from __future__ import annotations

import decimal
import json
import math
import subprocess

import numpy as np
import pytest

from costmodel import presets, results
from costmodel.results import (
    format_floats,
    read_csv_columns,
    read_npz,
    write_csv,
    write_npz,
    write_sweep_files,
)
from costmodel.sweep import parse_template, run_sweep, seq_grid
from plots.sweeps import load_sweep

SPECIAL = [
    0.0,
    -0.0,
    np.inf,
    -np.inf,
    np.nan,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    0.1,
    1.0,
    1e16,
    1e-5,
    1e-280,
    1e280,
    9.999999999999999e22,
    1e23,
    123456789012345678.0,
    2.0**53 + 2,
    1 / 3,
]


def _floats(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.lognormal(0, 40, n) * rng.choice([-1, 1], n),
            rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64),  # any bit pattern
            10.0 ** np.arange(-300, 300),
            np.nextafter(10.0 ** np.arange(-300, 300), 0),
            np.array(SPECIAL),
        ]
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN where NaN (any NaN), and the sign of zero."""
    if a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        return False
    return a.dtype.kind != "f" or np.array_equal(np.signbit(a[~np.isnan(a)]), np.signbit(b[~np.isnan(b)]))


def float_text(v: float) -> str:
    """The CSV's text of one float, value by value from Python's ``repr`` (its shortest round-trip
    digits): positional for decimal exponents -5..15, else d.ddde+X with the exponent unpadded; NaN ''."""
    if math.isnan(v):
        return ""
    if math.isinf(v) or v == 0:
        return repr(v)
    _, digits, exp = decimal.Decimal(repr(abs(v))).as_tuple()  # value = digits x 10**exp, no leading 0
    e = len(digits) - 1 + exp  # the decimal exponent of the first digit
    d = "".join(map(str, digits)).rstrip("0")
    s = "-" if v < 0 else ""
    if -5 <= e < 16:
        if e >= 0:
            whole = (d[: e + 1]).ljust(e + 1, "0")
            return f"{s}{whole}.{d[e + 1 :] or '0'}"
        return f"{s}0.{'0' * (-e - 1)}{d}"
    return f"{s}{d[0]}{'.' + d[1:] if len(d) > 1 else ''}e{'+' if e >= 0 else '-'}{abs(e)}"


def test_float_text_is_exact_and_shortest():
    x = _floats()
    texts = format_floats(x)
    back = np.array([float(t) if t else np.nan for t in texts])
    assert _same(back, x)
    assert texts[-len(SPECIAL) :][:5] == ["0.0", "-0.0", "inf", "-inf", ""]
    assert texts == [float_text(v) for v in x.tolist()]  # the shortest digits, as repr finds them
    assert format_floats(np.array([8.552081e10, 1e16, 1e-5, 1.5e-7, 0.1, -(2.0**70)])) == [
        "85520810000.0",
        "1e+16",
        "0.00001",
        "1.5e-7",
        "0.1",
        "-1.1805916207174113e+21",
    ]


def _columns(n=5000, seed=1):
    rng = np.random.default_rng(seed)
    f = np.resize(_floats(n // 4, seed), n)
    return {
        "plan_template": np.array(["ring=P", "tp=8,pp=P/8", 'odd "quoted", text', "", "ünï"])[
            rng.integers(0, 5, n)
        ],
        "P": rng.integers(1, 1 << 40, n),
        "L": rng.integers(-3, 3, n).astype(np.int64),
        "latency_s": f,
        "tps": rng.random(n) * 1e6,
        "feasible": rng.random(n) < 0.5,
        "tpot_s": np.full(n, np.nan),
    }


def test_csv_round_trip(tmp_path):
    cols = _columns()
    write_csv(tmp_path / "a.csv", cols, header_comment={"kind": "sweep", "x": [1, 2]})
    specs, back = read_csv_columns(tmp_path / "a.csv")
    assert specs == {"kind": "sweep", "x": [1, 2]} and list(back) == list(cols)
    assert _same(back["plan_template"], cols["plan_template"].astype(back["plan_template"].dtype))
    for k in ("P", "L"):
        assert _same(back[k].astype(np.int64), cols[k])
    assert _same(back["feasible"] == "True", cols["feasible"])
    for k in ("latency_s", "tps", "tpot_s"):
        assert _same(np.where(back[k] == "", "nan", back[k]).astype(float), cols[k])
    # the csv module reads the same rows (quoting included)
    import csv

    with open(tmp_path / "a.csv", newline="") as f:
        f.readline()
        rows = list(csv.reader(f))
    assert len(rows) == 1 + len(cols["P"]) and all(len(r) == len(cols) for r in rows)


def test_one_valued_and_repeated_columns_in_the_header_read_back(tmp_path):
    """write_csv(constants_in_header=True): the one-valued float columns and those equal to an earlier one
    leave the rows for the comment line; both readers give back every column, in order, with the text a
    plain write gives."""
    cols = _columns()
    n = len(cols["P"])
    cols = {
        **dict(list(cols.items())[:3]),
        "capacity_bytes": np.full(n, 85520810000.0),
        "t_overhead_s": np.full(n, 1.199e-05),
        **dict(list(cols.items())[3:]),
        "negzero": np.full(n, -0.0),
        "bytes": np.arange(n) * 1024.0,
        "ttft_s": cols["latency_s"].copy(),  # the same bits: named, not written
        "almost": np.where(np.arange(n) == n - 1, np.nextafter(cols["tps"], 0), cols["tps"]),
        "bytes_again": np.arange(n) * 1024.0,
    }
    specs = {"kind": "sweep", "x": [1, 2]}
    write_csv(tmp_path / "plain.csv", cols, header_comment=specs)
    write_csv(tmp_path / "short.csv", cols, header_comment=specs, constants_in_header=True)
    lines = (tmp_path / "short.csv").read_text().splitlines()
    comment = json.loads(lines[0][2:])
    assert comment[results.CSV_CONSTANTS] == {
        "capacity_bytes": "85520810000",
        "t_overhead_s": "0.00001199",
        "tpot_s": "",
        "negzero": "-0.0",
    }
    assert comment[results.CSV_SAME] == {"ttft_s": "latency_s", "bytes_again": "bytes"}
    assert comment[results.CSV_COLUMNS] == list(cols)
    left = {**comment[results.CSV_CONSTANTS], **comment[results.CSV_SAME]}
    assert lines[1].split(",") == [k for k in cols if k not in left]
    assert (tmp_path / "short.csv").stat().st_size < (tmp_path / "plain.csv").stat().st_size
    s_plain, plain = read_csv_columns(tmp_path / "plain.csv")
    s_short, short = read_csv_columns(tmp_path / "short.csv")
    assert s_plain == s_short == specs and list(plain) == list(short) == list(cols)
    assert all(np.array_equal(plain[k], short[k]) for k in cols)
    assert float(short["capacity_bytes"][0]) == 85520810000.0 and short["bytes"][3] == "3072"
    assert results.read_csv(tmp_path / "plain.csv") == results.read_csv(tmp_path / "short.csv")
    # every column one-valued, or a single row: nothing left for the rows, so the rows keep them all
    one = {k: v[:1] for k, v in cols.items()}
    write_csv(tmp_path / "one.csv", one, header_comment=specs, constants_in_header=True)
    assert results.CSV_CONSTANTS not in (tmp_path / "one.csv").read_text().splitlines()[0]
    same = {"a": np.full(4, 1.5), "b": np.full(4, np.nan)}
    write_csv(tmp_path / "same.csv", same, header_comment=specs, constants_in_header=True)
    assert read_csv_columns(tmp_path / "same.csv")[1]["a"].tolist() == ["1.5"] * 4


def test_npz_round_trip(tmp_path):
    cols = _columns()
    cols["obj"] = np.array(["a", "b"] * (len(cols["P"]) // 2), dtype=object)
    write_npz(tmp_path / "a.npz", cols, {"kind": "sweep"})
    specs, back = read_npz(tmp_path / "a.npz")
    assert specs == {"kind": "sweep"} and list(back) == list(cols)
    for k, v in cols.items():
        assert _same(back[k], v.astype(str) if v.dtype.kind == "O" else v), k
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:  # strings as codes + labels, no pickles
        assert z["plan_template@codes"].dtype == np.int32 and len(z["plan_template@labels"]) == 5


def _sweep(phase="prefill"):
    hw, model = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
    t = [parse_template(x) for x in ("ring=P", "tp=8,pp=P/8", "tp=P")]
    cols, skipped = run_sweep(
        model,
        hw,
        topo_kind="ib",
        phase=phase,
        causal=True,
        kernel="flash",
        ring_variant="zigzag",
        decode_attn="allgather",
        batch=1,
        seqs=seq_grid(8192, 1 << 20, 7, 256),
        gpus=[8, 16],
        templates=t,
    )
    return cols, skipped, {"kind": "sweep", "phase": phase, "topology": "ib"}


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_sweep_files_read_back_equal(tmp_path, phase):
    cols, skipped, specs = _sweep(phase)
    files = write_sweep_files(tmp_path, cols, specs, skipped)
    man = json.loads(files["json"].read_text())
    assert man["points"] == len(cols["L"]) and man["files"] == {"npz": "sweep.npz", "csv": "sweep.csv"}
    assert "rows" not in man and man["skipped"] == skipped
    _, back = read_npz(files["npz"])
    assert all(_same(back[k], cols[k]) for k in cols)
    ref = load_sweep(files["npz"])[1]
    for f in (files["csv"], files["json"]):
        s, c = load_sweep(f)
        assert s == specs and list(c) == list(ref)
        assert all(_same(c[k], ref[k]) for k in ref if ref[k].dtype.kind != "U")
        assert all(np.array_equal(c[k], ref[k]) for k in ref if ref[k].dtype.kind == "U")


def test_interrupted_rewrite_keeps_the_old_set(tmp_path, monkeypatch):
    cols, skipped, specs = _sweep()
    write_sweep_files(tmp_path, cols, specs, skipped)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    half = {k: v[: len(v) // 2] for k, v in cols.items()}

    def broken(path, *a, **kw):  # a CSV that fails half way through
        path.write_text("# partial\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "write_csv", broken)
    with pytest.raises(KeyboardInterrupt):
        write_sweep_files(tmp_path, half, {**specs, "phase": "other"}, [])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old set intact, no temp folder

    def rename_fails(src, dst, _real=results.os.replace):  # interrupted while the new files move in
        if dst == tmp_path / "sweep.csv":
            raise KeyboardInterrupt
        _real(src, dst)

    monkeypatch.undo()
    monkeypatch.setattr(results.os, "replace", rename_fails)
    with pytest.raises(KeyboardInterrupt):
        write_sweep_files(tmp_path, half, {**specs, "phase": "other"}, [])
    monkeypatch.undo()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "sweep.json" not in names and names == [
        "sweep.csv",
        "sweep.npz",
    ]  # no old manifest beside new data
    assert read_npz(tmp_path / "sweep.npz")[0]["phase"] == "other"  # each data file carries its own specs


def _run(*args):
    """``ringsim ARGS`` in this process (what ``python -m ringsim`` runs: ``cli.main``; test_cli.py runs
    the command itself), its exit code and output captured as a subprocess's would be."""
    import contextlib
    import io

    from ringsim import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(list(args))
        except SystemExit as e:  # argparse's usage errors
            rc = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--gpus", "0"], "--gpus '0' is not valid"),
        (["--gpus", "-8"], "--gpus '-8' is not valid"),
        (["--gpus", "8,x"], "--gpus '8,x' is not valid"),
        (["--points", "0"], "--points 0 must be >= 1"),
        (["--plans", "tp=3"], "no point was evaluated"),
    ],
)
def test_bad_sweep_is_one_sentence_exit_2_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "new" / "s"
    r = _run("sweep", "--points", "4", "--gpus", "8", *args, "--out", str(out), "--quiet")
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_plot_npz_and_csv_make_the_same_figures(tmp_path):
    out = tmp_path / "s"
    r = _run("sweep", "--points", "5", "--gpus", "8,16", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    names = {}
    for f in ("sweep.npz", "sweep.csv", "sweep.json"):
        r = _run("plot", str(out / f), "--out", str(tmp_path / f))
        assert r.returncode == 0, r.stderr
        names[f] = sorted(p.name for p in (tmp_path / f).iterdir())
    assert names["sweep.npz"] == names["sweep.csv"] == names["sweep.json"] and len(names["sweep.npz"]) == 6


def test_no_csv(tmp_path):
    out = tmp_path / "s"
    (out).mkdir()
    (out / "sweep.csv").write_text("stale")
    r = _run("sweep", "--points", "3", "--gpus", "8", "--out", str(out), "--quiet", "--no-csv")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json", "sweep.npz"]
    assert json.loads((out / "sweep.json").read_text())["files"] == {"npz": "sweep.npz"}


@pytest.mark.parametrize(
    "values",
    [
        ["ulysses=8,ring=P/8", "ring=P", "", "ring=P"],
        ["a"],
        ["", ""],
        ["ab", "abc", "ab"],
        [str(i) for i in range(300)] * 3,
        ["b"] * 9 + ["a"] * 20 + ["b", "c"] * 3,
        [True, False, True],
        [8, 128, 8, 16],
    ],
)
def test_categorical_is_unique(values):
    c = np.array(values)
    labels, codes = results.categorical(c)
    ref_labels, ref_codes = np.unique(c, return_inverse=True)
    assert np.array_equal(labels, ref_labels) and np.array_equal(codes, ref_codes.reshape(-1))


def test_manifest_with_rows_still_reads(tmp_path):
    f = tmp_path / "old.json"
    rows = [
        {
            "plan_template": "ring=P",
            "plan": "ring=8",
            "P": 8,
            "L": L,
            "latency_s": 1.0 * L,
            "tps": None,
            "feasible": True,
        }
        for L in (1024, 2048)
    ]
    f.write_text(json.dumps({"specs": {"kind": "sweep"}, "rows": rows}))
    _, cols = load_sweep(f)
    assert cols["L"].tolist() == [1024.0, 2048.0] and np.isnan(cols["tps"]).all() and cols["feasible"].all()


def test_a_numeric_csv_field_that_is_not_a_number_is_one_sentence(tmp_path):
    cols, skipped, specs = _sweep()
    files = write_sweep_files(tmp_path, cols, specs, skipped)
    text = files["csv"].read_text()
    at = text.index("\n", text.index("\n") + 1) + 1  # the first row (after the specs and the header)
    at = (
        text.index(",", text.rindex('"', at, text.index("\n", at)) + 1) + 1
    )  # past the quoted plan fields (P next)
    files["csv"].write_text(text[:at] + "\0" + text[at:])  # a byte of junk in the P field
    with pytest.raises(results.SpecError, match="the column 'P' is not numbers"):
        load_sweep(files["csv"])
