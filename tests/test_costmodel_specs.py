"""Specs, presets and hand-computed closed forms."""

import sys
from pathlib import Path

import numpy as np
import pytest

from costmodel import presets
from costmodel.errors import SpecError
from costmodel.specs import Curve, Model, Workload, attention_flops
from costmodel.topology import parse_topology
from costmodel.units import parse_count

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REF = tomllib.loads((Path(__file__).parent / "data_seed_reference.toml").read_text())


def test_seed_model_counts(seed):
    assert seed.params_per_layer() == REF["params_per_layer"]
    assert seed.params() == REF["params"]
    assert seed.dense_flops_per_token() == REF["dense_flops_per_token"]
    assert seed.kv_bytes_per_token() == REF["kv_bytes_per_token"]
    assert 128 * 100_000 * seed.kv_bytes_per_token() == REF["kv_cache_bytes_total"]


def test_attention_flops_exact_triangle(seed):
    got = attention_flops(seed, 128, 100_000, 100_000, causal=True)
    assert float(got) == pytest.approx(REF["attention_flops_total"], rel=1e-12)
    # bidirectional is the full square
    assert float(attention_flops(seed, 1, 10, 10, causal=False)) == 4 * 100 * 4096 * 16


def test_presets_datasheet_figures(h100, h200):
    assert h100.peak_flops == pytest.approx(989.4e12)
    assert h100.hbm_bw_Bps == pytest.approx(3.35e12)
    assert h200.hbm_bw_Bps == pytest.approx(4.8e12)
    assert h100.nvlink_bw_Bps == pytest.approx(18 * 25e9)
    assert h100.nic_bw_Bps == pytest.approx(50e9)
    assert h200.peak_flops == h100.peak_flops
    assert h200.hbm_capacity_bytes > 1.7 * h100.hbm_capacity_bytes
    for hw in (h100, h200):
        assert hw.provenance["sources"], "every profile names its sources"
        assert set(hw.attention) == {"flash", "cudnn"}


def test_curve_interpolates_in_log_space():
    c = Curve(x=(1, 4), y=(1.0, 3.0))
    assert c(2) == pytest.approx(2.0)
    assert c(0.5) == pytest.approx(1.0) and c(100) == pytest.approx(3.0)
    np.testing.assert_allclose(c(np.array([1, 2, 4])), [1, 2, 3])


@pytest.mark.parametrize(
    "text,value", [("100000", 100000), ("100k", 100000), ("128Ki", 131072), ("1M", 10**6), ("1Mi", 2**20)]
)
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["100K", "1.5k", "-3", "abc", "0"])
def test_parse_count_rejects(text):
    with pytest.raises(SpecError, match="--seq"):
        parse_count(text)


def test_unknown_preset_lists_valid():
    with pytest.raises(SpecError, match=r"h100-sxm.*h200-sxm"):
        presets.load_hardware("a100")


def test_strict_keys_unknown_and_missing(tmp_path):
    raw = presets.load_toml("hardware", "h100-sxm")
    raw["peak"]["bogus_key"] = 1
    with pytest.raises(SpecError, match="bogus_key"):
        presets.hardware_from_dict(raw)
    raw = presets.load_toml("hardware", "h100-sxm")
    del raw["peak"]["hbm_TBps"]
    with pytest.raises(SpecError, match="hbm_TBps"):
        presets.hardware_from_dict(raw)


def test_overrides_convert_units():
    hw = presets.load_hardware("h100-sxm", ["peak.hbm_TBps=4.0", "achievable.launch_us=7"])
    assert hw.hbm_bw_Bps == pytest.approx(4e12) and hw.launch_s == pytest.approx(7e-6)
    with pytest.raises(SpecError, match="no key"):
        presets.load_hardware("h100-sxm", ["peak.nope=1"])


def test_model_validation_names_field():
    with pytest.raises(SpecError, match="n_kv_heads"):
        Model(layers=2, d_model=64, n_heads=8, n_kv_heads=3, head_dim=8, d_ff=128)
    with pytest.raises(SpecError, match="mlp"):
        Model(layers=2, d_model=64, n_heads=8, n_kv_heads=8, head_dim=8, d_ff=128, mlp="relu2")


def test_workload_validation():
    with pytest.raises(SpecError, match="--batch"):
        Workload(batch=0, seq_len=10)
    with pytest.raises(SpecError, match="--phase"):
        Workload(batch=1, seq_len=10, phase="train")
    assert Workload(batch=2, seq_len=10, phase="decode").context == 10


@pytest.mark.parametrize(
    "text,n,nodes", [("nvswitch:4", 4, 1), ("ib:2x8", 16, 2), ("nvlink-domain:72", 72, 1)]
)
def test_topology_parse(text, n, nodes):
    t = parse_topology(text)
    assert t.n_gpus == n and t.nodes == nodes and t.spec == text


@pytest.mark.parametrize("text", ["nvswitch:9", "ib:2x16", "mesh:4", "ib:2"])
def test_topology_rejects(text):
    with pytest.raises(SpecError, match="--topology"):
        parse_topology(text)


def test_topology_links():
    t = parse_topology("ib:2x8")
    assert t.link(0, 7) == "nvlink" and t.link(7, 8) == "ib"
    assert parse_topology("nvlink-domain:16").link(0, 15) == "nvlink"


def test_graph_figures_are_validated_with_the_field_named():
    hw = presets.load_hardware(
        "h200-sxm-graph", ["achievable.ops.norm.floor_us=20", "achievable.pass_launch_us=12"]
    )
    assert hw.op("norm").floor_s == pytest.approx(20e-6) and hw.pass_launch_s == pytest.approx(12e-6)
    with pytest.raises(SpecError, match="floor_us"):
        presets.load_hardware("h200-sxm-graph", ["achievable.ops.norm.floor_us=-1"])
    with pytest.raises(SpecError, match="pass_launch_us"):
        presets.load_hardware("h200-sxm-graph", ["achievable.pass_launch_us=1e6"])
    with pytest.raises(SpecError, match="bus_GBps"):
        presets.load_hardware("h200-sxm-graph", ["achievable.comm.nvlink.p2p.bus_GBps=[1.0]"])
