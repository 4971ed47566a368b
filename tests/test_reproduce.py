"""ringsim reproduce: the report's numbers come from the model, every figure from a results file, and an
unwritable output folder is one clear error with a non-zero exit."""

from __future__ import annotations

import json

import pytest

from costmodel import presets
from costmodel.predict import predict
from costmodel.units import fmt_count, fmt_seconds
from plots.files import kind_of, plot_file
from ringsim.cli import main
from studies.seed import load_claims, make_config


@pytest.fixture(scope="module")
def rep(reproduced):
    """The small reproduce run the session shares (conftest.py: ``reproduced``); the tests only read it."""
    return reproduced


def test_report_numbers_are_the_models(rep):
    out, r = rep
    text = (out / "REPORT.md").read_text()
    setup = load_claims()["setup"]
    for topo in setup["topologies"]:
        for plan, phase, key in (("ring=16", "prefill", "tps"), ("ring=16", "decode", "tpot_s")):
            cfg = make_config(
                hardware=setup["hardware"],
                topology=topo,
                model=setup["model"],
                batch=setup["batch"],
                seq=setup["seq"],
                phase=phase,
                plan=plan,
            )
            want = predict(cfg)[key]
            got = next(
                p["result"][key]
                for p in r["doc"]["predictions"]
                if p["topology"] == topo and p["plan"] == plan and p["phase"] == phase
            )
            assert got == pytest.approx(want, rel=1e-12)
            assert (fmt_count(want) if key == "tps" else fmt_seconds(want)) in text


def test_ceilings_by_hand(rep):
    _, r = rep
    s = load_claims()["setup"]
    m, hw = presets.load_model(s["model"]), presets.load_hardware(s["hardware"])
    B, L, P = s["batch"], s["seq"], s["gpus"]
    flops = B * L * m.dense_flops_per_token() + 4.0 * B * (L * (L + 1) / 2) * m.q_dim * m.layers
    ce = r["doc"]["ceilings"]
    assert ce["prefill_tps_ceiling"] == pytest.approx(B * L / (flops / (P * hw.peak_flops)), rel=1e-9)
    floor = (m.params() * m.dtype_bytes + B * L * m.kv_bytes_per_token()) / (P * hw.hbm_bw_Bps)
    assert ce["decode_tpot_floor_s"] == pytest.approx(floor, rel=1e-9)


def test_claim_verdicts_follow_the_ceilings(rep):
    _, r = rep
    for c in r["doc"]["claims"]:
        if c["metric"] == "tps":
            assert ("NOT ATTAINABLE" in c["verdict"]) == (c["claim"] > c["ceiling"])
        elif c["metric"] == "tpot_s":
            assert ("NOT ATTAINABLE" in c["verdict"]) == (c["claim"] < c["ceiling"])
        assert c["change"], c["id"]
    # the claims are data with a citation (the seed document by name, not a path outside the repository)
    source = load_claims()["source"]
    assert source.startswith("seed document 000 (") and "../" not in source


def test_every_figure_comes_from_a_results_file(rep, tmp_path):
    out, r = rep
    text = (out / "REPORT.md").read_text()
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert figs and all(f.endswith((".png", ".svg")) for f in figs)
    for rel in r["figures"].values():
        assert f"]({rel})" in text and (out / rel).stat().st_size > 1000
    remade = []
    for f in sorted((out / "data").iterdir()):
        if f.suffix in (".json", ".npz") and f.stem.startswith("sweep_"):
            continue  # the CSV twin re-makes the same figures
        assert kind_of(f)
        remade += [p.name for p in plot_file(f, tmp_path)]
    assert sorted(remade) == figs


def test_skips_are_stated(rep):
    out, r = rep
    text = (out / "REPORT.md").read_text()
    assert "## Predicted vs measured" in text
    if "validation" not in r["figures"]:
        assert "Not produced: " in text


def test_measurements_are_predicted_and_summarised(rep):
    """validation/data/ is committed: the report holds the same summary ringsim validate gives, and the
    scatter is drawn from a results file of the records with both engines' predictions."""
    out, r = rep
    text = (out / "REPORT.md").read_text()
    assert "validation" in r["figures"]
    doc = json.loads((out / "data" / "validation_records.json").read_text())
    recs = doc["records"]
    assert len(recs) >= 100 and all(x["analytic_s"] > 0 and x["measured_s"] > 0 for x in recs)
    s = doc["summary"]["prefill/analytic"]
    assert f"| prefill/analytic | {s['n']} | {s['median_abs_err']:.1%} |" in text
    assert kind_of(out / "data" / "validation_records.json") == "validation"


@pytest.mark.parametrize("cmd", ["reproduce", "plot"])
def test_unwritable_out_is_a_clear_error(tmp_path, capsys, cmd):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    argv = ["reproduce", "--out", str(blocker / "sub"), "--quiet"] if cmd == "reproduce" else None
    if cmd == "plot":
        sweep = tmp_path / "s.json"
        sweep.write_text(
            json.dumps(
                {
                    "timeline": [
                        {
                            "rank": 0,
                            "stream": "compute",
                            "kind": "gemm",
                            "tag": "t",
                            "start_s": 0.0,
                            "end_s": 1e-3,
                        }
                    ]
                }
            )
        )
        argv = ["plot", str(sweep), "--out", str(blocker / "sub")]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert "cannot be created" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_maps_come_from_explore_and_the_question_is_asked(rep, tmp_path):
    """The maps are explore's, each re-made from its maps file; the Llama question section is generated
    from its experiment file; every link of REPORT.md stays inside the folder and exists."""
    import re

    out, r = rep
    text = (out / "REPORT.md").read_text()
    for sub in ("explore", "questions/small-question"):
        remade = sorted(p.name for p in plot_file(out / sub / "data" / "maps.json", tmp_path / sub))
        assert remade and remade == sorted(p.name for p in (out / sub / "figures").iterdir())
    for f in r["explore"]["figures"] + r["questions"][0]["figures"]:
        assert f"]({f})" in text
    assert "## The seed's question for Llama 3.1" in text and "### a small question" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all(not x.startswith(("/", "..", "http")) and (out / x).exists() for x in links)


def test_claims_are_judged_against_the_fairest_baseline(rep):
    """The baseline the claims are judged on is the fairest (best micro-batches and chunks, Megatron sends,
    fastest kernels); the one-micro-batch straw man is only a labelled comparison; kernels are named."""
    out, r = rep
    text = (out / "REPORT.md").read_text()
    preds = r["doc"]["predictions"]
    fair = [p for p in preds if p["plan_label"].endswith("(fairest)")]
    straw = [p for p in preds if p["comparison"]]
    assert fair and straw and all(p["microbatches"] == 1 for p in straw)
    assert all(p["pp_send"] == "scatter" and p["attn_kernel"] == "auto" for p in fair)
    for c in r["doc"]["claims"]:
        if c["id"] == "tps_baseline":
            for topo, v in c["predicted"].items():
                f = next(p for p in fair if p["topology"] == topo and p["phase"] == "prefill")
                assert v == pytest.approx(f["result"]["tps"], rel=1e-12)
                s = next(p for p in straw if p["topology"] == topo and p["phase"] == "prefill")
                assert f["result"]["latency_s"] <= s["result"]["latency_s"]
    for p in preds:
        assert p["kernels_used"] and p["kernels_used"] in text
    assert "(comparison: m=1, the old straw man)" in text
