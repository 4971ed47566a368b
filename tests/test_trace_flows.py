"""Perfetto/Chrome traces: sends and receives on lanes of their own (never nested), and a flow arrow from
each send to its matching receive."""

from __future__ import annotations

import json
from collections import defaultdict

from ringsim.cli import main

SMALL = ["--topology", "nvswitch:4", "--layers", "2", "--seq", "8Ki", "--batch", "1"]


def _trace(tmp_path, *args):
    tr = tmp_path / "t.json"
    assert main(["simulate", *SMALL, *args, "--trace", str(tr)]) == 0
    return json.loads(tr.read_text())["traceEvents"]


def _check(ev):
    xs = [e for e in ev if e["ph"] == "X"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e.get("name") == "thread_name"}
    lanes = defaultdict(list)
    for e in xs:
        lanes[(e["pid"], e["tid"])].append(e)
        lane = names[(e["pid"], e["tid"])]
        assert lane == (e["cat"] if e["cat"] in ("send", "recv") else lane)
        if e["cat"] in ("send", "recv"):
            assert lane == e["cat"]
    # no slice of a comm lane starts inside another and ends after it (no nesting, no overlap)
    for (pid, tid), evs in lanes.items():
        if names[(pid, tid)] == "compute":
            continue
        evs.sort(key=lambda e: (e["ts"], e["dur"]))
        for a, b in zip(evs, evs[1:]):
            assert b["ts"] >= a["ts"] + a["dur"] - 1e-6, (a["name"], b["name"])
    starts = {e["id"]: e for e in ev if e["ph"] == "s"}
    ends = {e["id"]: e for e in ev if e["ph"] == "f"}
    n_send = sum(e["cat"] == "send" for e in xs)
    assert n_send > 0 and len(starts) == len(ends) == n_send and set(starts) == set(ends)
    for i, s in starts.items():
        f = ends[i]
        assert names[(s["pid"], s["tid"])] == "send" and names[(f["pid"], f["tid"])] == "recv"
        assert s["pid"] != f["pid"] and f["ts"] >= s["ts"] and f["bp"] == "e"
        # each end of the arrow sits inside a slice of its lane
        for end in (s, f):
            assert any(x["ts"] <= end["ts"] <= x["ts"] + x["dur"] for x in lanes[(end["pid"], end["tid"])])


def test_ring_trace_has_flows_and_separate_lanes(tmp_path):
    _check(_trace(tmp_path, "--plan", "ring=4"))


def test_pipeline_trace_has_flows(tmp_path):
    _check(_trace(tmp_path, "--plan", "tp=2,pp=2", "--microbatches", "1"))
