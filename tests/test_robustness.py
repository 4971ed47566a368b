"""Issue 17: nothing crashes, nothing is lost, no failed measurement counts (real/, validation/, results).

Bad input to ``real.run`` and bad records to ``ringsim validate``: one sentence, exit 2, no traceback,
before anything is measured; a failed check is recorded as failed and left out of validation; a rank
that stops answering ends the job within a bound set from the model's prediction, naming the rank;
appends after a crash start on a fresh line and a cut last line is left out with a warning.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costmodel.errors import SpecError
from costmodel.results import append_jsonl, read_jsonl, read_jsonl_lines
from costmodel.units import parse_count
from real import run as real_run
from real.watchdog import Watchdog
from ringsim.cli import main as ringsim_main
from validation.compare import Rows, compare

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--d-model",
    "32",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--head-dim",
    "8",
    "--d-ff",
    "64",
    "--layers",
    "2",
]
ONE = ["--topology", "nvswitch:1", "--plan", "tp=1", *TINY, "--seq", "16"]


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _python(python_m, args: list[str], **env) -> subprocess.CompletedProcess:
    """``python -m real.run ARGS``: a process of its own, forked with torch imported (conftest python_m)."""
    return python_m("real.run", args, env=_env(**env), cwd=str(ROOT), timeout=120)


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# -- 1. real.run: bad input, one sentence, exit 2, before any work ---------------------------------------


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--timeout-s", "0"], "--timeout-s 0 is not valid: a positive, finite number of seconds"),
        (["--timeout-s", "-5"], "--timeout-s -5 is not valid"),
        (["--timeout-s", "nan"], "--timeout-s nan is not valid"),
        (
            ["--kernel", "flash"],
            "--kernel flash does not run on CPU (needs a CUDA device); valid here: auto, math",
        ),
        (["--reps", "3"], "--reps 3 is not valid: 5 to 10000"),
        (["--reps", "100000"], "--reps 100000 is not valid: 5 to 10000"),
        (["--warmup", "-1"], "--warmup -1 is not valid: 0 to 1000"),
        (["--warmup", "\u0663"], "argument --warmup: invalid integer '\u0663': use ASCII digits 0-9"),
        (
            ["--seq", "\u0661\u0662\u0668Ki"],
            "--seq '\u0661\u0662\u0668Ki' is not valid: numbers take ASCII digits 0-9",
        ),
        (["--layers", "\u0662"], "--layers '\u0662' is not valid: numbers take ASCII digits 0-9 only"),
        (["--check-seq", "8q"], "--check-seq '8q' is not a count"),
        (["--reps", "5;6"], "--reps '5;6' holds ';', but only configuration options"),
        (["--reps=x"], "argument --reps: invalid integer 'x'"),
    ],
)
def test_real_run_bad_option_one_sentence_exit_2(tmp_path, capsys, extra, needle):
    if "--kernel" in extra and __import__("torch").cuda.is_available():
        pytest.skip("a CPU-only case")
    out = tmp_path / "r.jsonl"
    assert real_run.main([*ONE, "--out", str(out), *extra]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("real.run: error: ") and needle in line, line
    assert not out.exists()


def test_parse_count_takes_ascii_digits_only():
    assert parse_count("128Ki") == 131072
    for text in ("\u0661\u0662\u0668Ki", "\uff11\uff12", "1\u0662"):  # Arabic-Indic, full-width, mixed
        with pytest.raises(SpecError, match="ASCII digits"):
            parse_count(text)


def test_semicolon_in_out_is_refused_not_split(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert real_run.main([*ONE, "--seq", "16;24", "--out", f"{a};{b}"]) == 2
    cap = capsys.readouterr()
    assert "--out" in _one_line(cap.err) and "holds ';', but only configuration options" in cap.err
    assert not a.exists() and not b.exists() and "real.run: single" not in cap.out


def _readonly_file(tmp_path: Path) -> str:
    if os.geteuid() == 0:  # root writes through file modes: a file that cannot be appended to for anyone
        return "/proc/version"
    f = tmp_path / "ro.jsonl"
    f.write_text("")
    f.chmod(0o444)
    return str(f)


@pytest.fixture(autouse=True)
def _exit_raises(monkeypatch):
    """real.run's last resort for an unexpected error, ``os._exit(1)``, raises SystemExit in this module's
    tests, which call its entry point in the test process: the error fails the test with its traceback
    instead of ending the pytest-xdist worker with no word (test_cli_fuzz says more)."""

    def _exit(code):
        raise SystemExit(code)

    monkeypatch.setattr(real_run.os, "_exit", _exit)


@pytest.fixture()
def one_process(monkeypatch):
    """The environment of a job of one process (restored afterwards): real.run starts its process group
    in this process, checks its files, and ends it."""
    from real.selftest import free_port

    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(k, v)


def test_an_output_name_the_file_system_refuses_is_one_sentence(tmp_path, capsys, one_process):
    """A name longer than the file system takes (ENAMETOOLONG from the check's own stat): exit 2 with one
    sentence before anything is measured (was: a traceback, and in a test's process the worker's end)."""
    long = str(tmp_path / ("x" * 300))
    assert real_run.main([*ONE, "--out", long]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("real.run: error: --out ") and "cannot be used (File name too long)" in line, line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", ["folder", "under a file", "profile-dir read-only", "profile-dir is a file"])
def test_unwritable_outputs_refused_before_anything_is_measured(tmp_path, capsys, one_process, kind):
    f = tmp_path / "file"
    f.write_text("x")
    out, prof = str(tmp_path / "r.jsonl"), None
    if kind == "folder":
        out, needle = str(tmp_path), "is a folder: name a JSONL file"
    elif kind == "under a file":
        out, needle = str(f / "r.jsonl"), "cannot be written: its folder"
    elif kind == "profile-dir read-only":
        prof = "/proc/ringsim-profile" if os.geteuid() == 0 else str(tmp_path / "ro" / "sub")
        if os.geteuid() != 0:
            (tmp_path / "ro").mkdir()
            (tmp_path / "ro").chmod(0o555)
        needle = "not writable"
    else:
        prof, needle = str(f), "is not a folder"
    assert (
        real_run.main([*ONE, "--seq", "16;24", "--out", out] + (["--profile-dir", prof] if prof else [])) == 2
    )
    cap = capsys.readouterr()
    line = _one_line(cap.err)
    assert needle in line and ("--profile-dir" in line if prof else "--out" in line), line
    assert "real.run: single" not in cap.out  # nothing measured
    assert not __import__("torch").distributed.is_initialized()


def test_read_only_out_is_refused_at_once_not_after_measuring(tmp_path, python_m):
    """It used to be found after the first configuration was measured (86 s on a GPU), its record lost."""
    out = _readonly_file(tmp_path)
    t0 = time.monotonic()
    r = _python(python_m, [*ONE, "--seq", "16;24", "--out", out])
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    assert "cannot be appended to" in _one_line(r.stderr) and out in r.stderr
    assert "real.run: single" not in r.stdout, f"measured before refusing ({took:.1f} s): {r.stdout}"


# -- 2. a failed check: recorded as failed, the run goes on, exits non-zero; validate leaves it out ----------


def test_failed_check_is_recorded_as_failed_and_left_out_of_validation(tmp_path, capsys, python_m):
    out = tmp_path / "r.jsonl"
    r = _python(python_m, [*ONE, "--seq", "16;24", "--out", str(out)], RINGSIM_REAL_BAD_CHECK="0")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "1 of 2 configurations failed their check" in r.stderr.strip().splitlines()[-1]
    recs = read_jsonl(out)
    assert [x["status"] for x in recs] == ["failed", "ok"]  # the run went on after the failure
    bad = recs[0]
    assert bad["check"]["passed"] is False and bad["check"]["rel_err"] > bad["check"]["tol"] == 1e-5
    assert "the tolerance 1e-05 (output) or 1e-05 (layer 1) is exceeded" in bad["reason"]
    assert len(bad["check"]["attn_rel_err"]) == bad["check"]["layers"] == 2
    ok = recs[1]["check"]  # the per-layer check ran and passed
    assert len(ok["attn_rel_err"]) == 2 and ok["attn_rel_err_max"] == max(ok["attn_rel_err"]) <= ok["tol"]
    rows = compare([str(out)], simulate=False)
    assert len(rows) == 1 and rows[0].label.startswith("single prefill B=1 L=24")
    assert rows.left_out == {"failed its check against the reference": 1}
    assert ringsim_main(["validate", "--no-sim", str(out)]) == 0
    assert "left out 1 record: 1 failed its check against the reference" in capsys.readouterr().out


def test_old_record_with_failed_check_and_status_ok_is_left_out(tmp_path):
    p = tmp_path / "v.jsonl"
    p.write_text(
        "\n".join(json.dumps(r) for r in [_rec(), _rec(check={"passed": False, "rel_err": 0.5, "tol": 1e-2})])
        + "\n"
    )
    rows = compare([str(p)], simulate=False)
    assert len(rows) == 1 and rows.left_out == {"failed its check against the reference": 1}
    assert rows.left_out_line() == "left out 1 record: 1 failed its check against the reference"


# -- 3. a rank that stops answering: ends within the bound, naming the rank ---------------------------------


def _args(**kw) -> argparse.Namespace:
    a = real_run.build_parser().parse_args(["--out", "x"])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_default_bound_is_short_and_scales_with_the_prediction():
    import torch

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    tiny = {"latency_s": 1e-4, "flops_per_device": 1e6}
    a = _args()
    assert a.timeout_s == 30.0
    b = real_run.bounds(tiny, a, 2, cpu)
    assert (
        b["pass"][0] == b["first"][0] == 30.0
    )  # the default floor: a dead job ends in seconds, not 10 minutes
    assert b["setup"][0] == 60.0 and b["check"][0] == 30.0
    big = {"latency_s": 2.0, "flops_per_device": 1e15}
    g = real_run.bounds(big, a, 2, gpu)
    assert g["pass"][0] == 40.0 and g["first"][0] == 60.0  # 20 x the predicted pass; the first pass >= 60 s
    assert g["check"][0] == 20 * 35 * 2.0
    assert real_run.bounds(big, a, 2, cpu)["pass"][0] == 20 * 1e15 / real_run.CPU_FLOPS  # CPU: by its FLOP
    assert real_run.bounds(tiny, _args(timeout_s=3.0), 2, cpu)["pass"][0] == 3.0


def _wd(rank=0, world=2, **kw) -> Watchdog:
    w = Watchdog.__new__(Watchdog)  # judge() alone: no thread, no store
    w.rank, w.world, w.stale_s, w._seen, w._store_ok_at = rank, world, kw.get("stale_s", 20.0), {}, 0.0
    return w


def _st(step, elapsed, bound=5.0, beat=1, label="pass 1 of 2"):
    return {"beat": beat, "step": step, "label": label, "bound": bound, "why": "rule", "elapsed": elapsed}


def test_watchdog_names_the_rank_behind_the_stale_one_and_the_stuck_collective():
    w = _wd()
    mine = _st(5, 9.0)
    assert w.judge(mine, {0: mine, 1: _st(4, 4.0)}, now=1.0) is None  # behind, but within its bound
    v = w.judge(mine, {0: mine, 1: _st(4, 6.0)}, now=2.0)
    assert v.startswith("rank 1 stopped answering: in 'pass 1 of 2' for 6.0 s; the bound there is 5.0 s"), v
    v = w.judge(_st(5, 6.0), {1: _st(5, 7.0)}, now=3.0)
    assert v.startswith("no rank finished 'pass 1 of 2' within its bound"), v
    w = _wd(stale_s=10.0)
    assert w.judge(_st(5, 1.0, beat=1), {1: _st(5, 1.0, beat=7)}, now=0.0) is None
    v = w.judge(_st(5, 1.0, beat=2), {1: _st(5, 1.0, beat=7)}, now=11.0)
    assert v == "rank 1 stopped answering: no heartbeat for 11 s (last seen in 'pass 1 of 2')", v
    w = _wd(stale_s=10.0)  # the store cannot be read: the rank's own clock, with grace
    assert w.judge(_st(5, 12.0), None, now=5.0) is None
    assert "cannot be read" in w.judge(_st(5, 16.0), None, now=11.0)


# -- 4. JSONL: appends start on a fresh line; a cut last line is left out with a warning -----------------


def test_append_after_a_cut_line_starts_on_a_fresh_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"a": 1}) + "\n" + '{"record": "real.run", "lat')  # a crash mid-write
    skipped: list[str] = []
    assert read_jsonl(p, skipped) == [{"a": 1}]
    assert len(skipped) == 1 and "r.jsonl:2: the last line is cut short" in skipped[0]
    with pytest.warns(UserWarning, match="r.jsonl:2: the last line is cut short"):
        read_jsonl(p)
    append_jsonl(p, {"b": 2})
    lines = p.read_text().splitlines()
    assert lines[0] == '{"a": 1}' and lines[2] == '{"b": 2}' and lines[1].startswith('{"record"')
    with pytest.raises(
        SpecError, match=r"r\.jsonl:2: the line is not valid JSON .*; fix or delete that line"
    ):
        read_jsonl(p)  # no longer the last line: named, with its true line number
    q = tmp_path / "q.jsonl"
    q.write_text('{"a": 1}')  # complete, but no final newline: read, and the next append starts a new line
    append_jsonl(q, {"b": 2})
    assert read_jsonl(q) == [{"a": 1}, {"b": 2}]


def test_bad_line_reported_with_its_true_line_number(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"a": 1}\n\n\n[1, 2]\n{"b": 2}\n')
    with pytest.raises(SpecError, match=r"r\.jsonl:4: the line is a JSON array, not a record"):
        read_jsonl(p)
    p.write_text('{"a": 1}\n\n{"b": \n{"c": 3}\n')
    with pytest.raises(SpecError, match=r"r\.jsonl:3: the line is not valid JSON"):
        read_jsonl(p)
    p.write_text('\n{"a": 1}\n')
    assert read_jsonl_lines(p) == [(2, {"a": 1})]


# -- 5. ringsim validate on bad records -------------------------------------------------------------------


def _rec(**kw) -> dict:
    r = {
        "record": "real.run",
        "schema": 1,
        "status": "ok",
        "exec": "eager",
        "args": [
            "--hardware",
            "h100-sxm",
            "--topology",
            "nvswitch:1",
            "--plan",
            "tp=1",
            "--batch",
            "1",
            "--seq",
            "16Ki",
            "--layers",
            "1",
        ],
        "latency_s": {"median": 0.01, "min": 0.009, "max": 0.011},
        "attn_kernel_real": {"chosen": "flash"},
        "check": {"passed": True, "rel_err": 1e-3, "tol": 1e-2},
    }
    r.update(kw)
    return r


def _lat(v):
    return {"latency_s": {"median": v, "min": 0.009, "max": 0.011}}


@pytest.mark.parametrize(
    "line,needle",
    [
        ("[1, 2, 3]", "v.jsonl:2: the line is a JSON array, not a record"),
        (
            json.dumps(_rec(**_lat("0.01"))),
            (
                "v.jsonl:2: record not used: its latency_s.median is '0.01': a measured time "
                "must be a finite number of seconds > 0"
            ),
        ),
        (json.dumps(_rec(**_lat(0))), "its latency_s.median is 0:"),
        (json.dumps(_rec(**_lat(-0.01))), "its latency_s.median is -0.01:"),
        (json.dumps(_rec(**_lat(float("nan")))), "its latency_s.median is nan:"),
        (json.dumps(_rec(**_lat(1e999))), "its latency_s.median is inf:"),
        (json.dumps(_rec(**_lat(True))), "its latency_s.median is True:"),
        (json.dumps(_rec(args=["--layers", "abc"])), "--layers 'abc' is not valid"),
        (json.dumps(_rec(status="weird")), "its status is 'weird'"),
    ],
)
def test_validate_refuses_a_bad_record_naming_file_and_line(tmp_path, capsys, line, needle):
    p = tmp_path / "v.jsonl"
    p.write_text(json.dumps(_rec()) + "\n" + line + "\n")
    assert ringsim_main(["validate", "--no-sim", str(p)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"ringsim validate: error: {p}") and needle in err, err


def test_validate_leaves_out_failed_and_warns_of_a_cut_last_line(tmp_path, capsys):
    p = tmp_path / "v.jsonl"
    p.write_text(
        json.dumps(_rec())
        + "\n"
        + json.dumps(_rec(status="failed", reason="check failed"))
        + "\n"
        + json.dumps(_rec(status="refused", reason="x"))
        + "\n"
        + json.dumps(_rec())[:40]
    )
    assert ringsim_main(["validate", "--no-sim", "--json", str(p)]) == 0
    cap = capsys.readouterr()
    res = json.loads(cap.out)
    assert len(res["records"]) == 1
    assert res["left_out"] == {"failed its check against the reference": 1, "refused (not measured)": 1}
    assert (
        _one_line(cap.err).startswith("ringsim validate: warning: ")
        and "v.jsonl:4: the last line is cut short" in cap.err
    )


# -- 6. corrupted validation JSONL never crashes the loader -----------------------------------------------

_BAD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_FIELDS = ["latency_s", "status", "check", "exec", "attn_kernel_real", "args", "measured", "median_s"]


@st.composite
def _records(draw) -> bytes:
    """Three records, each kept, given a wrong value (a field, or the latency's median/min/max), stripped
    of a field, or replaced by a line that is JSON but not a record."""
    recs = [_rec(), _rec(args=_rec()["args"][:-1] + ["2"]), _rec(status="refused")]
    lines: list[str] = []
    for r in recs:
        kind = draw(st.sampled_from(["keep", "field", "median", "median", "line", "drop"]))
        if kind == "field":
            r[draw(st.sampled_from(_FIELDS))] = draw(_BAD_VALUES)
        elif kind == "median":
            r["latency_s"] = {"median": draw(_BAD_VALUES), "min": draw(_BAD_VALUES), "max": draw(_BAD_VALUES)}
        elif kind == "drop":
            r.pop(draw(st.sampled_from(_FIELDS)), None)
        lines.append(json.dumps(draw(_BAD_VALUES)) if kind == "line" else json.dumps(r))
    return ("\n".join(lines) + "\n").encode()


@st.composite
def _cut(draw) -> bytes:
    """The same, cut anywhere (a crash mid-write) and with bytes that are not JSON put anywhere."""
    data = draw(_records())
    data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    if draw(st.booleans()):
        i = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:i] + draw(st.binary(max_size=6)) + data[i:]
    return data


def _result_or_one_sentence(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        rows = compare([str(path)], simulate=False)
    except SpecError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        return
    assert isinstance(rows, Rows)
    for r in rows:  # what is used is a real measurement
        assert math.isfinite(r.measured_s) and r.measured_s > 0, r


_HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_HYP
@given(data=_records())
def test_wrong_types_in_validation_jsonl_give_a_result_or_one_sentence(tmp_path, data):
    _result_or_one_sentence(tmp_path / "v.jsonl", data)


@_HYP
@given(data=_cut())
def test_cut_or_garbled_validation_jsonl_gives_a_result_or_one_sentence(tmp_path, data):
    _result_or_one_sentence(tmp_path / "v.jsonl", data)


# -- 7. interrupted at random points: the previous results stay as they were, no temporary file is left


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


_SWEEP = ["sweep", "--quiet", "--points", "6", "--gpus", "8,16"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(min_value=1, max_value=3), where=st.sampled_from(["before", "after"]))
def test_sweep_interrupted_in_a_writer_leaves_the_previous_set(tmp_path_factory, capsys, k, where):
    """A re-run into an existing folder is interrupted (KeyboardInterrupt) in its k-th file writer, before
    or after that writer wrote its temporary file: the folder holds the previous sweep, byte for byte."""
    import costmodel.results as R

    out = tmp_path_factory.mktemp("sweep") / "s"
    assert ringsim_main([*_SWEEP, "--out", str(out)]) == 0
    before = _snapshot(out)
    calls = {"n": 0}
    originals = {name: getattr(R, name) for name in ("write_npz", "write_csv", "write_json")}

    def wrap(fn):
        def writer(*a, **kw):
            calls["n"] += 1
            i = calls["n"]  # this call's number (the npz is written in a thread beside the CSV)
            if i == k and where == "before":
                raise KeyboardInterrupt
            r = fn(*a, **kw)
            if i == k:
                raise KeyboardInterrupt
            return r

        return writer

    try:
        for name, fn in originals.items():
            setattr(R, name, wrap(fn))
        assert ringsim_main([*_SWEEP, "--seq", "16k:64k", "--out", str(out)]) == 130
    finally:
        for name, fn in originals.items():
            setattr(R, name, fn)
    assert capsys.readouterr().err.strip() == "ringsim sweep: interrupted"
    assert _snapshot(out) == before, "the previous sweep changed"
    assert sorted(os.listdir(out.parent)) == ["s"]


def _spawn(args: list[str], **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _interrupt_after(p: subprocess.Popen, delay: float, sig=signal.SIGINT) -> int:
    try:
        return p.wait(timeout=delay)  # finished before the interruption came
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
        p.communicate(timeout=60)
        return p.returncode


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sweep_interrupted_by_a_signal_at_a_random_moment(tmp_path, seed):
    """SIGINT or SIGTERM at a random moment of a re-run into an existing folder: the folder holds the previous
    set byte for byte or a whole new one (manifest, npz and CSV of the one new run: the signal came after
    the swap, whatever the exit code); never a temporary file.
    The sweep is large enough (about a second of writing) to be hit mid-way."""
    import random

    rnd = random.Random(seed)
    out = tmp_path / "s"
    assert ringsim_main([*_SWEEP, "--out", str(out)]) == 0
    before = _snapshot(out)
    sig = rnd.choice([signal.SIGINT, signal.SIGTERM])
    args = ["-m", "ringsim", *_SWEEP[:2], "--points", "20000", "--seq", "4k:1M", "--out", str(out)]
    rc = _interrupt_after(_spawn(args), rnd.uniform(0.5, 4.0), sig)
    assert sorted(os.listdir(tmp_path)) == ["s"]
    assert not [n for n in os.listdir(out) if n.startswith(".")], os.listdir(out)
    if _snapshot(out) == before:
        return  # the previous set, byte for byte
    assert _whole_new_set(out), f"{sig!r} (rc {rc}): neither the previous sweep nor a whole new one"


def _whole_new_set(out: Path) -> bool:
    """The manifest, the npz and the CSV all from one run of the big sweep (the signal came after the
    swap)."""
    from costmodel.results import read_csv_columns, read_npz

    man = json.loads((out / "sweep.json").read_text())
    specs_npz, cols = read_npz(out / "sweep.npz")
    specs_csv, _ = read_csv_columns(out / "sweep.csv")
    return man["specs"] == specs_npz == specs_csv and len(cols["L"]) == man["points"] > 1000


def test_reproduce_terminated_leaves_no_temporary_folder(tmp_path):
    """SIGTERM (``timeout``, a scheduler) ends reproduce through its cleanup: the previous report stays,
    no temporary sibling folder is left (Python's default SIGTERM would skip every ``finally``)."""
    out = tmp_path / "rep"
    out.mkdir()
    (out / "REPORT.md").write_text("previous report\n")
    p = _spawn(["-m", "ringsim", "reproduce", "--points", "3", "--quiet", "--out", str(out)])
    rc = _interrupt_after(p, 3.0, signal.SIGTERM)
    assert rc == 143, (rc, p.stderr)
    assert sorted(os.listdir(tmp_path)) == ["rep"] and os.listdir(out) == ["REPORT.md"]
    assert (out / "REPORT.md").read_text() == "previous report\n"


@pytest.mark.parametrize("seed", [1, 2])
def test_real_run_interrupted_at_a_random_moment_keeps_earlier_records(tmp_path, seed):
    """SIGINT at a random moment of a real.run appending to a JSONL that already holds records: those
    records stay byte for byte, the file reads (a cut last line is named and left out), and the next
    append starts on a line of its own; no temporary file beside it."""
    import random

    out = tmp_path / "r.jsonl"
    old = [_rec(), _rec(status="refused", reason="x")]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    before = out.read_bytes()
    p = _spawn(["-m", "real.run", *ONE, "--seq", "16;24;32;40", "--out", str(out)])
    _interrupt_after(p, random.Random(seed).uniform(1.0, 8.0))
    data = out.read_bytes()
    assert data.startswith(before) and os.listdir(tmp_path) == ["r.jsonl"]
    skipped: list[str] = []
    recs = read_jsonl(out, skipped)
    assert recs[:2] == old and len(skipped) <= 1
    append_jsonl(out, {"next": 1})
    assert read_jsonl(out)[-1] == {"next": 1}


def test_real_run_interrupted_inside_an_append_keeps_earlier_records(
    tmp_path, capsys, one_process, monkeypatch
):
    """The interruption lands inside the write of a record (half a line written): the earlier records stay,
    the cut line is named and left out, the next run's record starts on a fresh line (and the cut line,
    no longer the last, is then named with its true line number: ``test_append_after_a_cut_line...``)."""
    import costmodel.results as R

    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps(_rec()) + "\n")
    real_dumps = R.dumps

    def half(obj, **kw):
        text = real_dumps(obj, **kw)
        with open(out, "a") as f:
            f.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "dumps", half)
    assert real_run.main([*ONE, "--out", str(out)]) == 130
    assert "interrupted; records already written are kept" in capsys.readouterr().err
    monkeypatch.setattr(R, "dumps", real_dumps)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    skipped: list[str] = []
    assert read_jsonl(out, skipped) == [_rec()] and "r.jsonl:2: the last line is cut short" in skipped[0]
    from real.selftest import free_port

    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    assert real_run.main([*ONE, "--out", str(out)]) == 0
    capsys.readouterr()
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0]) == _rec() and json.loads(lines[2])["status"] == "ok"
    with pytest.raises(
        SpecError, match=r"r\.jsonl:2: the line is not valid JSON .*; fix or delete that line"
    ):
        read_jsonl(out)  # the cut line, no longer the last, is named by its true line number
