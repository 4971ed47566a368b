"""``ringsim simulate``: predict's JSON keys with the simulated latency, the sim section, the Chrome
trace and the timeline file, and one-sentence errors with exit code 2."""

import json

import pytest

from ringsim.cli import main

SMALL = ["--topology", "nvswitch:4", "--layers", "2", "--batch", "2", "--seq", "8192"]


def _json(capsys, *args):
    assert main(["simulate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_json_has_predict_keys_plus_sim(capsys):
    args = [*SMALL, "--plan", "tp=2,pp=2", "--microbatches", "2"]
    assert main(["predict", *args, "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    sim = _json(capsys, *args)
    assert set(sim) == set(pred) | {"sim"}
    assert pred["engine"] == "analytic" and sim["engine"] == "simulator"
    s = sim["sim"]
    assert sim["latency_s"] == s["latency_s"] and s["analytic_latency_s"] == pred["latency_s"]
    assert sim["tps"] == pytest.approx(2 * 8192 / sim["latency_s"]) and sim["ttft_s"] == sim["latency_s"]
    for k in ("memory_bytes_per_device", "flops_per_device", "feasible", "specs"):
        assert sim[k] == pred[k]
    assert len(s["per_rank"]) == 4 and all(
        r["busy_s"] + r["waiting_s"] + r["idle_s"] == pytest.approx(sim["latency_s"]) for r in s["per_rank"]
    )
    assert s["links"] and all(0 < lk["utilisation"] <= 1 for lk in s["links"])
    cp = s["critical_path"]
    assert cp["steps"] and cp["steps"][-1]["end_s"] == pytest.approx(sim["latency_s"])
    assert cp["compute_s"] + cp["comm_s"] + cp["gaps_s"] == pytest.approx(sim["latency_s"], rel=1e-9)


def test_simulate_decode_and_coarsening(capsys):
    args = [
        *SMALL,
        "--layers",
        "8",
        "--plan",
        "ring=4",
        "--phase",
        "decode",
        "--context",
        "65536",
        "--microbatches",
        "2",
    ]
    o = _json(capsys, *args)
    assert o["tpot_s"] == o["latency_s"] and o["ttft_s"] is None
    assert o["sim"]["coarsened"] and o["sim"]["units_simulated"] < o["sim"]["units_total"] == 16
    full = _json(capsys, *args, "--no-coarsen")
    assert not full["sim"]["coarsened"]
    assert o["latency_s"] == pytest.approx(full["latency_s"], rel=1e-9)


def test_trace_and_timeline_files(tmp_path, capsys):
    tr, tl = tmp_path / "t.json", tmp_path / "sub" / "tl.json"
    assert main(["simulate", *SMALL, "--plan", "ring=4", "--trace", str(tr), "--timeline", str(tl)]) == 0
    out = capsys.readouterr().out
    assert "latency" in out and "sim: vs analytic" in out and str(tr) in out
    trace = json.loads(tr.read_text())
    names = {(e["pid"], e["args"]["name"]) for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert {p for p, _ in names} == {0, 1, 2, 3}
    threads = {
        (e["pid"], e["tid"], e["args"]["name"])
        for e in trace["traceEvents"]
        if e.get("name") == "thread_name"
    }
    assert threads == {
        (p, t, n) for p in range(4) for t, n in ((0, "compute"), (1, "send"), (2, "recv"), (3, "collective"))
    }
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert any(e["name"].startswith("L1/mb0/ring/step3/") for e in xs)
    data = json.loads(tl.read_text())
    assert data["specs"]["plan"]["ring"] == 4 and data["specs"]["engine"] == "simulator"
    assert len(data["timeline"]) == len(xs)
    assert all(set(r) == {"rank", "stream", "kind", "tag", "start_s", "end_s"} for r in data["timeline"])
    assert max(r["end_s"] for r in data["timeline"]) == pytest.approx(data["specs"]["latency_s"])


@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["--topology", "ib:2x8", "--plan", "ring=16", "--seq", "8192", "--nics-per-node", "3"],
            "--nics-per-node 3",
        ),
        (["--topology", "nvswitch:4", "--plan", "ring=4", "--nics-per-node", "0"], "--nics-per-node 0"),
        (["--topology", "nvswitch:4", "--plan", "ring=8"], "the product must equal"),
    ],
)
def test_bad_input_exit_2(args, needle, capsys):
    assert main(["simulate", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
