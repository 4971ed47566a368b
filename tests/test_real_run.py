"""``real.run`` end to end on CPU (gloo): records appended and kept, refusals, bad input -> exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from costmodel.predict import predict
from real.run import expand
from validation.compare import config_of

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--d-model", "32", "--heads", "4", "--kv-heads", "2", "--head-dim", "8", "--d-ff", "64"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _torchrun(n: int, args: list[str], timeout: int = 120, **env) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(n),
        "-m",
        "real.run",
        *args,
    ]
    return subprocess.run(
        cmd, cwd=ROOT, env={**_env(), **env}, capture_output=True, text=True, timeout=timeout, check=False
    )


def _python(python_m, args: list[str]) -> subprocess.CompletedProcess:
    """``python -m real.run ARGS``: a process of its own, forked with torch imported (conftest python_m)."""
    return python_m("real.run", args, env=_env(), cwd=str(ROOT), timeout=120)


def test_expand_lists_every_combination():
    got = expand(["--seq", "8;16", "--plan", "tp=2,pp=2;ring=4", "--out", "x"])
    assert len(got) == 4
    assert ["--seq", "16", "--plan", "ring=4", "--out", "x"] in got


def test_help(real_run_main):
    r = real_run_main(["--help"])
    assert r.returncode == 0 and "--reps" in r.stdout and "--plan" in r.stdout


def test_two_ranks_append_records_and_keep_them(tmp_path, python_m):
    out = tmp_path / "r.jsonl"
    args = ["--topology", "nvswitch:2", *TINY, "--layers", "2", "--plan", "ring=2", "--out", str(out)]
    r = _torchrun(2, args + ["--seq", "16;32"])
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["specs"]["workload"]["seq_len"] for x in recs] == [16, 32]
    for x in recs:
        assert x["status"] == "ok" and x["world_size"] == 2
        lat = x["latency_s"]
        assert len(lat["samples"]) == 5 and lat["min"] <= lat["median"] <= lat["max"]
        assert x["check"]["passed"] and x["check"]["rel_err"] <= 1e-5
        assert x["attn_kernel_real"]["chosen"] == "math"
        assert "real.run" in x["provenance"]["command"] and x["provenance"]["torch"]
        assert len(x["provenance"]["source_sha256"]) == 64  # names the code even where .git is stale
        # beside the named (ideal) profile's prediction, the one validate holds the run against: the
        # executor's own profile, and the line says that one first
        pe = x["predicted_executor"]
        assert pe["hardware"] == "h100-sxm-eager" and pe["latency_s"] > x["predicted"]["latency_s"]
        assert pe["latency_s"] == predict(config_of(x))["latency_s"]
    assert r.stdout.count("with h100-sxm-eager (the executor's profile, as validate compares;") == 2, r.stdout
    # a later run (here: one process, no torchrun) appends; the records already there are kept as they were
    r = _python(
        python_m,
        [
            *TINY,
            "--layers",
            "2",
            "--topology",
            "nvswitch:1",
            "--seq",
            "24",
            "--plan",
            "tp=1",
            "--out",
            str(out),
        ],
    )
    assert r.returncode == 0, r.stderr[-3000:]
    recs2 = [json.loads(x) for x in out.read_text().splitlines()]
    assert recs2[:2] == recs and len(recs2) == 3 and recs2[2]["world_size"] == 1


def test_plan_that_does_not_match_the_processes_is_refused_with_a_sentence(tmp_path, real_run_main):
    r = real_run_main(
        [
            "--topology",
            "nvswitch:4",
            *TINY,
            "--layers",
            "2",
            "--seq",
            "16",
            "--plan",
            "ring=4",
            "--out",
            str(tmp_path / "r.jsonl"),
        ],
    )
    assert r.returncode == 2
    assert "has 4 ranks but torchrun started 1 processes" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_input_exits_2(tmp_path, real_run_main):
    r = real_run_main(
        ["--topology", "nvswitch:1", "--plan", "tp=1", "--reps", "3", "--out", str(tmp_path / "r.jsonl")],
    )
    assert r.returncode == 2 and "--reps 3" in r.stderr and "Traceback" not in r.stderr
    r = real_run_main(
        ["--topology", "nvswitch:1", "--plan", "tp=1", "--seq", "12q", "--out", str(tmp_path / "r.jsonl")],
    )
    assert r.returncode == 2 and "--seq" in r.stderr
    if not __import__("torch").cuda.is_available():  # CUDA graphs need a GPU: one sentence, nothing written
        r = real_run_main(
            [
                "--topology",
                "nvswitch:1",
                "--plan",
                "tp=1",
                "--exec",
                "graph",
                "--out",
                str(tmp_path / "g.jsonl"),
            ],
        )
        assert r.returncode == 2 and "--exec graph" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "g.jsonl").exists()


def test_configuration_that_does_not_fit_is_refused_with_the_verdict(tmp_path, python_m):
    out = tmp_path / "r.jsonl"
    r = _python(
        python_m,
        ["--topology", "nvswitch:1", "--plan", "tp=1", "--batch", "512", "--seq", "128Ki", "--out", str(out)],
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert rec["status"] == "refused" and "does not fit" in rec["reason"]
    assert "REFUSED" in r.stdout


def test_a_rank_that_stops_answering_ends_every_rank_with_an_error(tmp_path):
    """Rank 1 stops at its first pass; the watchdog ends the job within the step's bound,
    max(--timeout-s, 20 x predicted pass time) plus its 1 s period, with a line naming rank 1 (no hang)."""
    import re
    import time

    t0 = time.monotonic()
    r = _torchrun(
        2,
        [
            "--topology",
            "nvswitch:2",
            *TINY,
            "--layers",
            "2",
            "--seq",
            "16",
            "--plan",
            "ring=2",
            "--timeout-s",
            "3",
            "--out",
            str(tmp_path / "r.jsonl"),
        ],
        timeout=100,
        RINGSIM_REAL_STALL="1:120",
    )
    took = time.monotonic() - t0
    assert r.returncode != 0
    assert "every rank stops" in r.stderr
    # either rank's watchdog may fire first (rank 1's own sees it is behind): the line names rank 1
    line = next(
        (
            x
            for x in r.stderr.splitlines()
            if re.match(r"real\.run: rank [01]: error: rank 1 stopped answering", x)
        ),
        None,
    )
    assert line is not None, r.stderr[-3000:]
    waited, bound = (
        float(x) for x in re.search(r"for ([0-9.]+) s; the bound there is ([0-9.]+) s", line).groups()
    )
    assert bound == 3.0 and bound < waited <= bound + 2.5, (
        f"waited {waited} s in the step (bound {bound} s): {line}"
    )
    assert took < 55, (
        f"the job took {took:.1f} s in all, torchrun's start included (waited {waited} s): {line}"
    )
    print(
        f"hung rank 1 ended the job {waited:.1f} s into its step (bound {bound:.0f} s); {took:.1f} s in all"
    )


def test_a_generation_record_keeps_the_prediction_validate_compares(monkeypatch):
    """--gen-tokens N: the record is the sum over N steps, and so is the executor's-profile prediction it
    keeps (and its line prints as the one validate compares), not the first step's alone.  The steps'
    measurements are stood in for (no process group): each as ``measure`` writes it."""
    from real import run as real_run

    argv = ["--topology", "nvswitch:2", *TINY, "--layers", "2", "--plan", "ring=2", "--phase", "decode"]
    argv += ["--context", "16", "--batch", "2", "--gen-tokens", "3", "--out", "unused.jsonl"]
    a = real_run.build_parser().parse_args(argv)
    cfg = real_run.config_from_args(a)

    def measure(step, a, *_):
        c = real_run.config_from_args(real_run.build_parser().parse_args(step))
        rec = {
            "status": "ok",
            "specs": c.specs(),
            "args": step,
            "exec": a.exec_mode,
            "exec_mode": a.fusion,
            "attn_kernel_real": {"chosen": "math"},
            "latency_s": {"samples": [1e-3] * 3, "median": 1e-3, "how": "timed"},
            "check": {"passed": True},
        }
        pe = real_run._executor_prediction(step, a, "math")
        assert pe is not None  # h100-sxm has its eager profile
        return {**rec, "predicted_executor": pe}

    monkeypatch.setattr(real_run, "measure", measure)
    rec = real_run.measure_generation(argv, cfg, a, None, None, None, {})
    assert rec["generation"]["tokens"] == 3
    compared = predict(config_of(rec))["latency_s"]
    assert rec["predicted_executor"]["latency_s"] == compared
    assert rec["predicted_executor"]["latency_s"] > rec["predicted"]["latency_s"]
    assert f"predicted {compared * 1e3:.2f} ms with h100-sxm-eager" in real_run._predicted_text(rec)
