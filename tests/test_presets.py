"""Presets of real models and machines, `ringsim presets`, nvl topologies, and strict loading errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from costmodel import presets
from costmodel.closedform import Ctx, Setting
from costmodel.errors import SpecError
from costmodel.topology import TopoKind, parse_topology, topology_for
from ringsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "docs" / "templates"


@pytest.mark.parametrize("name", presets.available("model"))
def test_every_model_preset_loads(name):
    m = presets.load_model(name)
    assert m.name == name and m.params() > 0


@pytest.mark.parametrize("name", presets.available("hardware"))
def test_every_hardware_preset_loads(name):
    hw = presets.load_hardware(name)
    assert hw.name == name and hw.peak_flops > 0


def test_the_new_presets_ship():
    assert {"llama3-8b", "llama3-70b", "llama3-405b", "qwen2.5-72b"} <= set(presets.available("model"))
    assert {"b200", "gb200"} <= set(presets.available("hardware"))


# published head counts and widths (config.json of each model; sources in the preset files)
_FIELDS = (
    "layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "d_ff",
    "vocab",
    "rope_theta",
    "tie_embeddings",
    "qkv_bias",
)
PUBLISHED = {
    "llama3-8b": (32, 4096, 32, 8, 128, 14336, 128256, 500000.0, False, False),
    "llama3-70b": (80, 8192, 64, 8, 128, 28672, 128256, 500000.0, False, False),
    "llama3-405b": (126, 16384, 128, 8, 128, 53248, 128256, 500000.0, False, False),
    "qwen2.5-72b": (80, 8192, 64, 8, 128, 29568, 152064, 1000000.0, False, True),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_gqa_presets_have_the_published_figures(name):
    m = presets.load_model(name)
    for k, v in zip(_FIELDS, PUBLISHED[name], strict=True):
        assert getattr(m, k) == v, k
    assert m.mlp == "swiglu" and m.head_dim * m.n_heads == m.d_model
    assert m.n_kv_heads < m.n_heads and m.source  # GQA, and it says where it comes from


@pytest.mark.parametrize(
    "name,billions",
    [("llama3-8b", 8.03), ("llama3-70b", 70.55), ("llama3-405b", 405.85), ("qwen2.5-72b", 72.71)],
)
def test_parameter_counts_match_the_model_names(name, billions):
    assert presets.load_model(name).params() / 1e9 == pytest.approx(billions, abs=0.01)


@pytest.mark.parametrize("name,bf16,fp8", [("b200", 2250, 4500), ("gb200", 2500, 5000)])
def test_blackwell_peaks_are_dense_and_achievable_figures_are_estimates(name, bf16, fp8):
    hw = presets.load_hardware(name)
    assert hw.peak_flops == bf16 * 1e12 and hw.peak_fp8_flops == fp8 * 1e12  # dense = half the sparse figures
    assert hw.hbm_bw_Bps == 8e12 and hw.nvlink_bw_Bps == 900e9  # 1.8 TB/s bidirectional
    assert any("ESTIMATE" in n and "achievable" in n for n in hw.provenance["notes"])
    text = (ROOT / "costmodel" / "presets" / "hardware" / f"{name}.toml").read_text()
    ach = text[text.index("[achievable]") :]
    for line in ach.splitlines():  # every achievable figure says ESTIMATE (or sits under a comment that does)
        if (
            "=" in line
            and not line.startswith("#")
            and line.split("=")[0].strip()
            in (
                "elementwise_TBps",
                "launch_us",
                "compute_slowdown_under_comm",
                "workspace_GiB",
                "latency_us",
                "bw_GBps",
            )
        ):
            assert "ESTIMATE" in line, line


def test_template_and_example_files_load():
    hw = presets.load_hardware(str(TEMPLATES / "hardware-template.toml"))
    assert hw.peak_flops == pytest.approx(989.4e12)
    m = presets.load_model(str(TEMPLATES / "model-template.toml"))
    assert m.n_kv_heads == 8
    my = presets.load_hardware(str(TEMPLATES / "my-h100.toml"))
    pub = presets.load_hardware("h100-sxm-published")
    assert my.peak_flops < pub.peak_flops and my.hbm_capacity_bytes > pub.hbm_capacity_bytes


# ---------------------------------------------------------------------------------------------- CLI
def test_presets_command_lists_everything(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in presets.available("model") + presets.available("hardware") + ["nvl:NxK", "nvlink-domain:N"]:
        assert name in out, name
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("llama3-70b"))
    assert "64/8" in line and "meta-llama" in line


def test_presets_command_json(capsys):
    assert main(["presets", "--json"]) == 0
    o = json.loads(capsys.readouterr().out)
    assert not o["errors"]
    models = {m["name"]: m for m in o["models"]}
    assert models["qwen2.5-72b"]["qkv_bias"] is True and models["llama3-405b"]["n_kv_heads"] == 8
    hw = {h["name"]: h for h in o["hardware"]}
    assert hw["gb200"]["bf16_TFLOPs"] == 2500 and hw["b200"]["provenance"]["kind"] == "published+estimate"
    assert {t["form"] for t in o["topologies"]} >= {"nvl:NxK", "ib:KxG"}


def test_predict_llama3_8b_tp8(capsys):
    assert (
        main(
            [
                "predict",
                "--model",
                "llama3-8b",
                "--plan",
                "tp=8",
                "--topology",
                "nvswitch:8",
                "--seq",
                "32Ki",
                "--json",
            ]
        )
        == 0
    )
    o = json.loads(capsys.readouterr().out)
    assert o["latency_s"] > 0 and o["feasible"] is True
    assert o["specs"]["model"]["n_kv_heads"] == 8 and o["specs"]["model"]["vocab"] == 128256


@pytest.mark.parametrize(
    "cmd",
    [
        ["predict", "--plan", "tp=4", "--topology", "nvswitch:4", "--seq", "8Ki", "--json"],
        ["simulate", "--plan", "tp=4", "--topology", "nvswitch:4", "--seq", "8Ki", "--layers", "2", "--json"],
        ["best", "--gpus", "4", "--topology", "nvswitch:4", "--seq", "8Ki", "--layers", "2", "--json"],
    ],
)
def test_commands_take_preset_paths(cmd, capsys):
    paths = ["--hardware", str(TEMPLATES / "my-h100.toml"), "--model", str(TEMPLATES / "model-template.toml")]
    assert main(cmd + paths) == 0
    o = json.loads(capsys.readouterr().out)
    assert "my-h100" in json.dumps(o)


def test_sweep_takes_preset_paths_and_nvl(tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "--hardware",
                str(TEMPLATES / "my-h100.toml"),
                "--model",
                str(TEMPLATES / "model-template.toml"),
                "--topology",
                "nvl",
                "--gpus",
                "72,144",
                "--plans",
                "ring=P",
                "--seq",
                "64512:129024",  # multiples of 288: zigzag ring=144 splits them (the grid holds its ends)
                "--points",
                "2",
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    from plots.sweeps import load_sweep

    specs, cols = load_sweep(tmp_path / "sweep.json")
    assert specs["hardware"] == "my-h100" and specs["topology"] == "nvl"
    ib = dict(zip(cols["P"].tolist(), cols["comm_ib_bytes"].tolist()))
    assert ib[72] == 0 and ib[144] > 0  # one NVL72 domain stays on NVLink; two cross InfiniBand


# ---------------------------------------------------------------------------------------------- topology
def test_nvl_parses_and_spanning_groups_are_ib():
    t = parse_topology("nvl:72x4")
    assert t.kind == TopoKind.NVL and t.n_gpus == 288 and t.gpus_per_node == 72 and t.nodes == 4
    assert t.spec == "nvl:72x4" and parse_topology(t.spec) == t
    assert t.group_link(range(72)) == "nvlink" and t.group_link(range(72, 144)) == "nvlink"
    assert t.group_link([70, 71, 72, 73]) == "ib" and t.link(71, 72) == "ib" and t.link(0, 71) == "nvlink"
    st = Setting(topo_kind=t.kind.value, gpus_per_node=t.gpus_per_node)
    assert _crosses(st, np.array([8, 72, 144, 288])).tolist() == [False, False, True, True]
    one = parse_topology("nvlink-domain:72")
    assert one.n_gpus == 72 and one.group_link(range(72)) == "nvlink"
    assert not _crosses(Setting(topo_kind="nvlink-domain", gpus_per_node=72), 72)


def _crosses(st, span):
    """The closed forms' placement rule: a group spanning ``span`` GPUs crosses InfiniBand."""
    return Ctx(hw=None, st=st, geo=None, acc=None, shape=()).crosses_ib(span)


def test_topology_for_nvl_uses_72_gpu_domains():
    assert topology_for("nvl", 288).spec == "nvl:72x4"
    assert topology_for("nvl", 64).spec == "nvl:64x1"
    with pytest.raises(SpecError, match="72-GPU NVLink domains"):
        topology_for("nvl", 100)


def test_predict_on_nvl_crosses_ib_only_between_domains(capsys):
    # 36Ki tokens over a ring of 36: the pass-KV transfers are not hidden behind attention, so their link
    # shows
    base = ["predict", "--model", "llama3-70b", "--hardware", "gb200", "--seq", "36Ki", "--json"]
    assert main(base + ["--topology", "nvl:72x4", "--plan", "tp=8,ring=36"]) == 0
    spanning = json.loads(capsys.readouterr().out)
    assert main(base + ["--topology", "nvlink-domain:288", "--plan", "tp=8,ring=36"]) == 0
    one_domain = json.loads(capsys.readouterr().out)
    assert spanning["comm_bytes_per_device"]["ib"] > 0 and one_domain["comm_bytes_per_device"]["ib"] == 0
    assert spanning["latency_s"] > one_domain["latency_s"]


@pytest.mark.parametrize("text", ["nvl:72", "nvl:0x4", "nvl:72x0", "nvl:600x2", "nvl:72x4x2"])
def test_bad_nvl_is_one_sentence(text, capsys):
    assert main(["predict", "--topology", text]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--topology" in err[0] and "nvl" in err[0]


# ---------------------------------------------------------------------------------------------- bad input
def _file(tmp_path, name, template, old, new):
    text = (TEMPLATES / template).read_text()
    lines = [new if ln.startswith(old) else ln for ln in text.splitlines()]
    assert lines != text.splitlines(), old
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def _bad_cases(tmp_path):
    d = tmp_path / "folder.toml"
    d.mkdir()
    nonutf8 = tmp_path / "latin1.toml"
    nonutf8.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    return {
        "string-for-number": (
            ["--model", _file(tmp_path, "m1.toml", "model-template.toml", "layers =", 'layers = "32"')],
            "model.layers",
        ),
        "string-for-hw-number": (
            [
                "--hardware",
                _file(tmp_path, "h1.toml", "hardware-template.toml", "bf16_TFLOPs", 'bf16_TFLOPs = "989.4"'),
            ],
            "hardware.peak.bf16_TFLOPs",
        ),
        "bool-for-hw-number": (
            [
                "--hardware",
                _file(tmp_path, "h2.toml", "hardware-template.toml", "hbm_TBps", "hbm_TBps = true"),
            ],
            "hardware.peak.hbm_TBps",
        ),
        "nan-in-file": (
            [
                "--hardware",
                _file(tmp_path, "h3.toml", "hardware-template.toml", "nic_Gbps", "nic_Gbps = nan"),
            ],
            "hardware.peak.nic_Gbps",
        ),
        "directory": (["--model", str(d)], "directory"),
        "directory-no-suffix": (["--hardware", str(tmp_path)], "directory"),
        "missing-file": (["--model", str(tmp_path / "nope.toml")], "no such file"),
        "non-utf8": (["--model", str(nonutf8)], "UTF-8"),
        "unknown-key": (
            ["--model", _file(tmp_path, "m2.toml", "model-template.toml", "vocab =", "vocabulary = 5")],
            "vocabulary",
        ),
        "missing-key": (["--model", _file(tmp_path, "m3.toml", "model-template.toml", "d_ff =", "")], "d_ff"),
        "unknown-hw-key": (
            [
                "--hardware",
                _file(
                    tmp_path,
                    "h4.toml",
                    "hardware-template.toml",
                    "nic_Gbps",
                    "nic_Gbps = 400\nnic_Gbit = 400",
                ),
            ],
            "nic_Gbit",
        ),
        "set-inf": (["--set", "hardware.peak.bf16_TFLOPs=inf"], "bf16_TFLOPs"),
        "set-nan-comm": (["--set", "hardware.achievable.comm.ib.p2p.bw_GBps=nan"], "bw_GBps"),
        "set-bool-layers": (["--set", "model.layers=true"], "model.layers"),
        "set-string-vocab": (["--set", "model.vocab=abc"], "model.vocab"),
        "set-inf-rope": (["--set", "model.rope_theta=inf"], "model.rope_theta"),
        "set-bool-number-dtype": (["--set", "model.dtype_bytes=true"], "model.dtype_bytes"),
        "set-number-for-bool": (["--set", "model.qkv_bias=1"], "model.qkv_bias"),
        "set-number-for-list": (["--set", "hardware.achievable.gemm.efficiency=3"], "efficiency"),
    }


CASES = [
    "string-for-number",
    "string-for-hw-number",
    "bool-for-hw-number",
    "nan-in-file",
    "directory",
    "directory-no-suffix",
    "missing-file",
    "non-utf8",
    "unknown-key",
    "missing-key",
    "unknown-hw-key",
    "set-inf",
    "set-nan-comm",
    "set-bool-layers",
    "set-string-vocab",
    "set-inf-rope",
    "set-bool-number-dtype",
    "set-number-for-bool",
    "set-number-for-list",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_preset_input_exits_2_with_one_line(case, tmp_path, capsys):
    args, named = _bad_cases(tmp_path)[case]
    base = ["predict", "--model", "llama3-8b", "--plan", "tp=8", "--topology", "nvswitch:8"]
    assert main(base + args) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1, cap.err
    assert err[0].startswith("ringsim predict: error: ") and named in err[0] and "Traceback" not in cap.err
    assert cap.out == ""


def test_bad_path_in_sweep_exits_2(tmp_path, capsys):
    assert main(["sweep", "--model", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "directory" in err[0]
