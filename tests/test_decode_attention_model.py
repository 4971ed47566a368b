"""Decode attention across heads, KV heads, batch and context (issue 12): the grid's measurement entry
points (CPU, tiny sizes), the physical model's fit and its properties."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from real import microbench  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_grid_covers_the_asked_space_within_its_caps():
    cases = microbench.decode_grid_cases()
    fit = [c for c in cases if not c["held_out"]]
    held = [c for c in cases if c["held_out"]]
    assert {c["heads"] for c in fit} == set(microbench.DECODE_GRID["heads"])
    assert {c["kv_heads"] for c in fit} == set(microbench.DECODE_GRID["kv_heads"])
    assert {c["batch"] for c in fit} == set(microbench.DECODE_GRID["batch"])
    assert {c["kv_len"] for c in fit} == set(microbench.DECODE_GRID["context"])
    # held-out points lie between the grid's batches and contexts, never on them
    assert held and not {c["batch"] for c in held} & {c["batch"] for c in fit}
    assert not {c["kv_len"] for c in held} & {c["kv_len"] for c in fit}
    for c in cases:
        assert c["kv_heads"] <= c["heads"] and c["heads"] % c["kv_heads"] == 0
        assert 2 * c["batch"] * c["kv_len"] * c["kv_heads"] * 128 * 2 <= microbench.DECODE_GRID_CACHE_CAP
    # the point the issue names: 8 query heads per GPU (no GQA), B = 16, 128Ki keys per GPU, is on the grid
    assert {"heads": 8, "kv_heads": 8, "batch": 16, "kv_len": 131072, "held_out": False} in cases
    assert len({tuple(sorted(c.items())) for c in cases}) == len(cases)


def test_grid_fits_the_device_budget():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_decode_grid

    assert bench_decode_grid.estimate_s(microbench.decode_grid_cases()) < 150


def test_quick_grid_runs_on_cpu_and_writes_raw_records(tmp_path):
    out = tmp_path / "grid.json"
    r = subprocess.run(
        [sys.executable, "benchmarks/bench_decode_grid.py", "--quick", "--reps", "2", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    raw = json.loads(out.read_text())
    assert raw["suites"] == ["decode-grid"] and raw["provenance"]["command"]
    recs = raw["results"]
    assert len(recs) == len(microbench.decode_grid_cases(quick=True))
    for x in recs:
        assert x["op"] == "decode_attention_grid" and x["kernel"] == "math" and "error" not in x
        assert x["kv_bytes"] == 2 * x["batch"] * x["kv_len"] * x["kv_heads"] * x["head_dim"] * 4
        assert x["median_s"] > 0 and len(x["samples_s"]) == 2
    assert {x["held_out"] for x in recs} == {True, False}


def test_budget_stops_before_a_new_cache_and_says_how_many_points_were_left():
    cases = microbench.decode_grid_cases(quick=True)
    res = microbench.bench_decode_grid(
        torch.device("cpu"), torch.float32, ["math"], cases, head_dim=8, reps=1, graph=False, budget_s=1e-9
    )
    assert res == [{"op": "decode_attention_grid_skipped", "points": len(cases), "budget_s": 1e-9}]
