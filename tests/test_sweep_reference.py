"""The sweep's outputs equal those of the code before the speed work (issue 16) to 1e-12 relative: a random
grid over phases, kernels, topologies, ring layouts and decode merges, against the columns that code wrote
(``data_sweep_reference.npz``, made at commit 47a119f by ``python tests/test_sweep_reference.py --write``
run in a checkout of that commit).  The hardware profiles are that commit's too (``data_*_47a119f.toml``):
refits since (the kernel-boundary gate, the decode grid's gaps, FP8) change the physics, not the fast paths
this test holds.  The decode model's one change of form since (the query heads' FLOPs overlap the reads:
``floor + max(reads, FLOPs / rate)``, was their sum; 2026-11-28, sixth session) is applied to that checkout's
``DecodeAttnModel.time`` before writing (the unpatched checkout writes the previous file byte for byte)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from costmodel import presets
from costmodel.sweep import parse_template, run_sweep

REF = Path(__file__).resolve().parent / "data_sweep_reference.npz"
TEMPLATES = [
    "ring=P",
    "tp=8,pp=P/8",
    "tp=8,ring=P/8",
    "ulysses=8,ring=P/8",
    "tp=2,pp=2,ring=P/4",
    "tp=4,pp=P/4,mb=4",
    "pp=P/8,ring=8",
    "tp=2,ring=P/2,chunks=2",
]
# (phase, kernel, topology, ring layout, decode merge, batch, hardware)
SETTINGS = [
    ("prefill", "auto", "nvlink-domain", "zigzag", "allgather", 1, "h100-sxm"),
    ("prefill", "flash", "ib", "plain", "allgather", 8, "h100-sxm"),
    ("prefill", "auto", "nvl", "striped", "allgather", 4, "h200-sxm"),
    ("decode", "auto", "ib", "zigzag", "allgather", 8, "h100-sxm"),
    ("decode", "flash", "nvlink-domain", "zigzag", "pass-kv", 16, "h100-sxm"),
    ("decode", "auto", "nvl", "zigzag", "pass-q", 32, "h200-sxm"),
]


def _grid(i: int) -> np.ndarray:
    rng = np.random.default_rng(100 + i)
    return np.unique(1024 * rng.integers(8, 4096, 9))  # multiples every layout here can split


def outputs(i: int) -> dict[str, np.ndarray]:
    phase, kernel, topo, layout, merge, batch, hwname = SETTINGS[i]
    cols, _ = run_sweep(
        presets.load_model("seed-dense"),
        presets.load_hardware(str(Path(__file__).resolve().parent / f"data_{hwname}_47a119f.toml")),
        topo_kind=topo,
        phase=phase,
        causal=True,
        kernel=kernel,
        ring_variant=layout,
        decode_attn=merge,
        batch=batch,
        seqs=_grid(i),
        gpus=[8, 16, 64, 512],
        templates=[parse_template(t) for t in TEMPLATES],
    )
    return cols


@pytest.mark.parametrize("i", range(len(SETTINGS)))
def test_sweep_outputs_equal_the_reference(i):
    with np.load(REF, allow_pickle=False) as z:
        ref = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(f"{i}/")}
    got = outputs(i)
    assert list(got) == list(ref) and len(got["L"]) > 50
    for k, v in got.items():
        r = ref[k]
        if v.dtype.kind == "f":
            np.testing.assert_allclose(v, r, rtol=1e-12, atol=0, err_msg=k)
            assert np.array_equal(np.isnan(v), np.isnan(r)), k
        else:
            assert np.array_equal(v.astype(str), r.astype(str)), k


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    arrays = {}
    for i in range(len(SETTINGS)):
        for k, v in outputs(i).items():
            arrays[f"{i}/{k}"] = v
    np.savez_compressed(REF, **arrays)
    print(f"wrote {REF} ({REF.stat().st_size:,} bytes)")
