"""Command lines drawn from each command's grammar, valid and corrupted: every one ends in exit 0 with
output, or exit 2 with one line on stderr; never a traceback, never another exit code (issue 17).

Commands run in this process (``main(argv)``), not in subprocesses, so that the whole file runs in well
under a minute on CI's two cores: predict / best / sweep / presets / plot / validate on bare paths (one
test), simulate, reproduce (its cheap options: every line holds one bad value, so nothing long runs),
calibrate --from-raw on corrupted raw JSON, validate on corrupted JSONL, plot on corrupted results
files, presets, and real.run's argument checking on CPU (a job of one process, no torchrun).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringsim.cli import main

ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "--hardware": ["h100-sxm", "h200-sxm", "b200"],
    "--topology": ["nvswitch:8", "nvswitch:2", "ib:2x8", "nvlink-domain:16", "nvl:4x2"],
    "--model": ["seed-dense", "llama3-8b"],
    "--plan": ["tp=8", "ring=8", "tp=2,ring=4", "ulysses=4,tp=2", "tp=4,pp=2", "ring=16", "tp=2"],
    "--batch": ["1", "4", "8"],
    "--seq": ["8Ki", "16k", "128Ki", "4096"],
    "--layers": ["1", "2", "4"],
    "--phase": ["prefill", "decode"],
    "--microbatches": ["1", "2"],
    "--ring-variant": ["zigzag", "plain"],
    "--decode-attn": ["pass-q", "allgather"],
    "--context": ["8Ki", "64k"],
    "--set": ["hardware.peak.hbm_TBps=4.0", "model.vocab=128256"],
}
BAD = [
    "",
    "0",
    "-1",
    "abc",
    "1e400",
    "nan",
    "inf",
    "true",
    "١٢٨Ki",
    "８",
    "tp=0",
    "ring=P/0",
    "x" * 300,
    ";",
    "hardware.peak.bf16_TFLOPs=inf",
    "model.layers=true",
    "hardware.achievable.gemm.efficiency=0.7",
    "nvswitch:99",
    "ib:0x8",
    "/nonexistent/file.toml",
    "/tmp",
    "1M:1k",
    "8k:" + "9" * 40,
    "1" + "0" * 30,
    "/proc/x/y",
    "DIR",
    "FILE",
]


@st.composite
def command_line(draw):
    cmd = draw(st.sampled_from(["predict", "best", "sweep", "presets", "plot", "validate"]))
    flags = {
        "predict": list(GOOD),
        "best": [k for k in GOOD if k != "--plan"] + ["--gpus", "--top", "--objective"],
        "sweep": [
            "--hardware",
            "--model",
            "--layers",
            "--batch",
            "--phase",
            "--gpus",
            "--points",
            "--seq",
            "--plans",
            "--topology",
        ],
        "presets": ["--json"],
        "plot": [],
        "validate": [],
    }[cmd]
    argv = [cmd]
    for f in draw(st.lists(st.sampled_from(flags), max_size=5, unique=True)) if flags else []:
        if f == "--json":
            argv.append(f)
            continue
        pool = GOOD.get(
            f,
            {
                "--gpus": ["8", "16", "8,16"],
                "--top": ["3"],
                "--objective": ["latency"],
                "--points": ["4"],
                "--plans": ["ring=P", "tp=8,pp=P/8"],
            }.get(f, ["1"]),
        )
        v = draw(st.one_of(st.sampled_from(pool), st.sampled_from(BAD)))
        argv += [f, v]
    if cmd == "sweep":
        argv += ["--out", draw(st.sampled_from(["SWEEP_DIR", "/proc/x", "/tmp"])), "--quiet", "--points", "4"]
    if cmd == "best" and "--gpus" not in argv:
        argv += ["--gpus", "8"]
    if cmd in ("plot", "validate"):
        argv.append(draw(st.sampled_from(["/nonexistent.json", "/tmp", "NOTJSON"])))
    return argv


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(argv=command_line())
def test_every_command_line_ends_cleanly(argv, tmp_path_factory, capsys):
    _ends_cleanly(argv, tmp_path_factory.mktemp("fuzz"), capsys)


def _placeholders(argv: list[str], d: Path) -> list[str]:
    """SWEEP_DIR/OUT: a new path in the test's folder; DIR: an existing folder; FILE: an existing file;
    NOTJSON: a file that is not JSON."""
    (d / "a-folder").mkdir(exist_ok=True)
    (d / "a-file").write_text("x\n")
    (d / "not.json").write_text("{not json")
    names = {"SWEEP_DIR": d / "out", "OUT": d / "out", "DIR": d / "a-folder", "FILE": d / "a-file"}
    names["NOTJSON"] = d / "not.json"
    pat = re.compile(r"^(SWEEP_DIR|OUT|DIR|FILE|NOTJSON)(?=/|$)")  # the token, or the token/a/path under it
    return [pat.sub(lambda m: str(names[m.group(1)]), a) for a in argv]


def _ends_cleanly(
    argv: list[str], d: Path, capsys, run=main, out_made: bool | None = None
) -> tuple[int, str]:
    """Run ``run(argv)`` in folder ``d``: exit 0 with output, or exit 2 with one line on stderr (warning
    lines aside) and no output folder left behind; a traceback fails the test by itself."""
    argv = _placeholders(argv, d)
    cwd = os.getcwd()
    try:
        os.chdir(d)
        try:
            rc = run(argv)
        except SystemExit as e:  # argparse: --help, or a usage error
            rc = e.code
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, (argv, err)
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        lines = [ln for ln in err.splitlines() if ln.strip() and "warning" not in ln]
        assert len(lines) == 1, (argv, err)
        assert not (d / "out").exists() or out_made is False, f"a rejected run left its output: {argv}"
    else:
        assert out.strip(), argv
    return rc, out


_HYP = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _value(draw, pool: list[str]) -> str:
    return draw(st.one_of(st.sampled_from(pool), st.sampled_from(BAD)))


# -- simulate --------------------------------------------------------------------------------------

SIM_GOOD = {
    **{k: GOOD[k] for k in ("--hardware", "--batch", "--phase", "--microbatches", "--ring-variant", "--set")},
    "--topology": ["nvswitch:8", "nvswitch:2", "ib:2x4"],
    "--plan": ["tp=8", "ring=8", "tp=2,ring=4", "ulysses=4,tp=2", "tp=4,pp=2", "tp=2"],
    "--seq": ["4096", "8Ki", "16k"],
    "--layers": ["1", "2"],
    "--decode-attn": ["pass-q", "allgather", "pass-kv"],
    "--context": ["8Ki", "16k"],
    "--trace": ["OUT/t.json", "t.json", "DIR", "/proc/x/t.json", "FILE/t.json"],
    "--timeline": ["OUT/tl.json", "tl.json", "DIR", "/proc/x/tl.json"],
    "--nics-per-node": ["1", "8"],
    "--chunks": ["1", "2"],
    "--pp-send": ["scatter", "full"],
}


@st.composite
def simulate_line(draw):
    argv = ["simulate"]
    for f in draw(
        st.lists(st.sampled_from(sorted(SIM_GOOD) + ["--no-coarsen", "--json"]), max_size=5, unique=True)
    ):
        argv += [f] if f in ("--no-coarsen", "--json") else [f, _value(draw, SIM_GOOD[f])]
    if "--layers" not in argv:
        argv += ["--layers", "1"]  # a short simulation: the grammar is what is tested
    return argv


@settings(max_examples=40, **_HYP)
@given(argv=simulate_line())
def test_simulate_command_lines_end_cleanly(argv, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("sim")
    rc, _ = _ends_cleanly(argv, d, capsys, out_made=False)
    if rc == 0 and "--trace" in argv:  # a trace asked for is written, and whole
        path = Path(_placeholders([argv[argv.index("--trace") + 1]], d)[0])
        path = path if path.is_absolute() else d / path
        assert json.loads(path.read_text())


# -- reproduce (every line holds one bad value: nothing long runs) ---------------------------------


@st.composite
def reproduce_line(draw):
    """Valid --points/--sweep-batch/--out (and the default claims or a bad claims file); then one option
    is given a bad value."""
    opts = {"--points": "2", "--sweep-batch": "1", "--out": "OUT"}
    bad = draw(st.sampled_from(["--points", "--sweep-batch", "--out", "--claims"]))
    if bad == "--claims":
        opts["--claims"] = draw(st.sampled_from(["NOTJSON", "/nonexistent.toml", "DIR", "FILE"]))
    elif bad == "--out":
        opts["--out"] = draw(st.sampled_from(["FILE", "/proc/x", "FILE/sub", "/proc/version"]))
    else:
        opts[bad] = draw(
            st.sampled_from([v for v in BAD if v not in ("", "/tmp", "DIR", "FILE", "/proc/x/y")])
        )
    return ["reproduce", "--quiet", *[x for kv in opts.items() for x in kv]]


@settings(max_examples=30, **_HYP)
@given(argv=reproduce_line())
def test_reproduce_bad_options_end_in_one_sentence(argv, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("rep")
    rc, _ = _ends_cleanly(argv, d, capsys)
    assert rc == 2, argv
    assert not [n for n in os.listdir(d) if n.startswith(".")], "a temporary folder was left"


# -- calibrate --from-raw on corrupted raw JSON ----------------------------------------------------

RAW = ROOT / "validation" / "data" / "calibration" / "history" / "h100x1_raw_run1.json"
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def corrupted_raw(draw) -> bytes:
    raw = json.loads(RAW.read_text())
    how = draw(st.sampled_from(["top", "result", "result", "drop", "cut", "type"]))
    if how == "top":
        raw[draw(st.sampled_from(sorted(raw)))] = draw(_JUNK)
    elif how == "result":
        r = raw["results"][draw(st.integers(0, len(raw["results"]) - 1))]
        r[draw(st.sampled_from(sorted(r)))] = draw(_JUNK)
    elif how == "drop":
        r = raw["results"][draw(st.integers(0, len(raw["results"]) - 1))]
        r.pop(draw(st.sampled_from(sorted(r))))
    elif how == "type":
        raw = draw(_JUNK)
    data = json.dumps(raw).encode()
    if how == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=40, **_HYP)
@given(data=corrupted_raw())
def test_calibrate_from_corrupted_raw_ends_cleanly(data, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("cal")
    (d / "raw.json").write_bytes(data)
    argv = ["calibrate", "--from-raw", "raw.json", "--base", "h100-sxm-published", "--out", "out/p.toml"]
    rc, _ = _ends_cleanly(argv, d, capsys)
    if rc == 0:
        assert (d / "out" / "p.toml").read_text().strip()


# -- validate on corrupted JSONL (arrays, strings, NaN, negative, cut lines, failed checks) --------


def _record(**kw) -> dict:
    r = {
        "record": "real.run",
        "schema": 1,
        "status": "ok",
        "exec": "eager",
        "args": ["--hardware", "h100-sxm", "--topology", "nvswitch:1", "--plan", "tp=1", "--seq", "16Ki"],
        "latency_s": {"median": 0.01, "min": 0.009, "max": 0.011},
        "attn_kernel_real": {"chosen": "flash"},
        "check": {
            "passed": True,
            "rel_err": 1e-3,
            "tol": 1e-2,
            "attn_rel_err": [2e-3],
            "attn_rel_err_max": 2e-3,
        },
    }
    r.update(kw)
    return r


_LINE_FAULTS = {
    "array": lambda d: "[1, 2]",
    "string": lambda d: json.dumps("a record"),
    "number": lambda d: "3",
    "nan": lambda d: json.dumps(_record(latency_s={"median": float("nan"), "min": 1, "max": 1})),
    "negative": lambda d: json.dumps(_record(latency_s={"median": -0.01, "min": 0.009, "max": 0.011})),
    "string median": lambda d: json.dumps(_record(latency_s={"median": "0.01", "min": 0.009, "max": 0.011})),
    "failed check": lambda d: json.dumps(
        _record(
            check={
                "passed": False,
                "rel_err": 1e-3,
                "tol": 1e-2,
                "attn_rel_err": [0.3],
                "attn_rel_err_max": 0.3,
            }
        )
    ),
    "failed status": lambda d: json.dumps(_record(status="failed", reason="check failed")),
    "refused": lambda d: json.dumps(_record(status="refused", reason="does not fit")),
    "junk field": lambda d: json.dumps(
        _record(**{d(st.sampled_from(["check", "args", "status", "latency_s"])): d(_JUNK)})
    ),
    "cut": lambda d: json.dumps(_record())[: d(st.integers(1, 60))],
    "blank": lambda d: "",
    "bytes": lambda d: d(st.binary(min_size=1, max_size=6)).decode("latin-1"),
}


@st.composite
def jsonl(draw) -> bytes:
    lines = [json.dumps(_record())]
    for _ in range(draw(st.integers(1, 4))):
        lines.append(_LINE_FAULTS[draw(st.sampled_from(sorted(_LINE_FAULTS)))](draw))
    text = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    return (
        text.encode("utf-8", "surrogateescape") if draw(st.booleans()) else text.encode("latin-1", "replace")
    )


@settings(max_examples=60, **_HYP)
@given(data=jsonl())
def test_validate_on_corrupted_jsonl_ends_cleanly(data, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("val")
    (d / "v.jsonl").write_bytes(data)
    rc, out = _ends_cleanly(["validate", "--no-sim", "--json", "v.jsonl"], d, capsys)
    if rc == 0:  # what is used is a real measurement that passed its check; the rest is counted as left out
        res = json.loads(out)
        assert len(res["records"]) >= 1
        for r in res["records"]:
            assert r["measured_s"] == 0.01, r


# -- plot on corrupted results files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", "--quiet", "--points", "4", "--gpus", "8", "--out", str(d)]) == 0
    return {p.name: p.read_bytes() for p in d.iterdir()}


@settings(max_examples=25, **_HYP)
@given(
    which=st.sampled_from(["sweep.json", "sweep.csv", "sweep.npz"]),
    how=st.sampled_from(["cut", "junk", "json"]),
    data=st.data(),
)
def test_plot_on_corrupted_results_files_ends_cleanly(
    sweep_files, which, how, data, tmp_path_factory, capsys
):
    d = tmp_path_factory.mktemp("plot")
    for name, content in sweep_files.items():
        (d / name).write_bytes(content)
    body = sweep_files[which]
    if how == "cut":
        body = body[: data.draw(st.integers(0, max(0, len(body) - 1)))]
    elif how == "junk":
        i = data.draw(st.integers(0, len(body)))
        body = body[:i] + data.draw(st.binary(min_size=1, max_size=8)) + body[i:]
    else:
        body = json.dumps(data.draw(_JUNK)).encode()
    (d / which).write_bytes(body)
    _ends_cleanly(["plot", "--out", "figs", which], d, capsys)


# -- presets ---------------------------------------------------------------------------------------


@settings(max_examples=15, **_HYP)
@given(extra=st.lists(st.sampled_from(["--json", "-h", "x", "--model", "--yaml", "", "١"]), max_size=2))
def test_presets_command_lines_end_cleanly(extra, tmp_path_factory, capsys):
    _ends_cleanly(["presets", *extra], tmp_path_factory.mktemp("pre"), capsys)


# -- real.run's argument checking on CPU (a job of one process, in this process) -------------------

TINY = ["--d-model", "32", "--heads", "4", "--kv-heads", "2", "--head-dim", "8", "--d-ff", "64"]
RR = {
    "--reps": ["5", "6"],
    "--warmup": ["0", "1"],
    "--timeout-s": ["30", "5.5"],
    "--kernel": ["auto", "math", "flash"],
    "--dtype": ["fp32", "bf16"],
    "--exec": ["eager", "graph"],
    "--check-seq": ["0", "8", "16"],
    "--seed": ["0", "7"],
    "--seq": ["16", "16;24", "8"],
    "--batch": ["1", "2"],
    "--layers": ["1", "2"],
    "--plan": ["tp=1", "tp=2", "ring=1"],
    "--topology": ["nvswitch:1", "nvswitch:2"],
    "--out": ["OUT/r.jsonl", "r.jsonl", "DIR", "FILE/r.jsonl", "/proc/version", "a.jsonl;b.jsonl"],
    "--profile-dir": ["OUT/prof", "FILE", "/proc/x"],
}


@st.composite
def real_run_line(draw):
    argv = [
        "--topology",
        "nvswitch:1",
        "--plan",
        "tp=1",
        *TINY,
        "--layers",
        "1",
        "--seq",
        "16",
        "--warmup",
        "0",
    ]
    for f in draw(st.lists(st.sampled_from(sorted(RR) + ["--no-check"]), max_size=4, unique=True)):
        argv += [f] if f == "--no-check" else [f, _value(draw, RR[f])]
    if "--out" not in argv:
        argv += ["--out", "r.jsonl"]
    return argv


@pytest.fixture()
def one_process(monkeypatch):
    for k, v in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(k, v)


@settings(max_examples=30, **_HYP)
@given(argv=real_run_line())
def test_real_run_arguments_end_cleanly(argv, tmp_path_factory, capsys, one_process, monkeypatch):
    """real.run's entry point in this process.  Its last resort for an unexpected error is ``os._exit(1)``
    (every rank stops at once), which here would end the pytest-xdist worker with no word (the traceback
    captured, then lost): it raises SystemExit instead, so that such an error fails this test with its
    traceback.  A run that reaches its process group may find the port it was given taken meanwhile by
    another process of the machine (EADDRINUSE: ``free_port`` only says the port was free): that attempt
    is run again on a new port, at most twice; any other error stands."""
    import torch.distributed as dist

    from real import run as real_run
    from real.selftest import free_port

    def _exit(code):
        raise SystemExit(code)

    monkeypatch.setattr(real_run.os, "_exit", _exit)

    def run(a: list[str]) -> int:
        for attempt in range(3):
            monkeypatch.setenv("MASTER_PORT", str(free_port()))
            try:
                return real_run.main(a)
            except SystemExit as e:
                out, err = capsys.readouterr()
                if e.code == 1 and "EADDRINUSE" in err and attempt < 2:
                    if dist.is_initialized():
                        dist.destroy_process_group()
                    continue  # the port was taken between free_port and the store's bind
                sys.stdout.write(out)  # as it was, for _ends_cleanly to judge
                sys.stderr.write(err)
                raise
        raise AssertionError("not reached")

    d = tmp_path_factory.mktemp("rr")
    try:
        rc, _ = _ends_cleanly(argv, d, capsys, run=run, out_made=False)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rc == 2:
        assert not list(d.glob("**/*.jsonl")), "a rejected run wrote a record"
