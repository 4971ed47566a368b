"""The simulator's results equal those of the code before its speed work (issue 16), bit for bit: the seed
configurations of ``benchmarks/bench_sim.py`` (both plans on both topologies, 16 micro-batches) and a few
smaller ones through every coarsening path (units within a tolerance, a pipeline's micro-batches, ring
steps, none) and every emitter family (ring pass-KV and pass-Q, prefix cache, Ulysses, chunks, decode
merges, the kernel-boundary gate, expanded collectives).

``data_sim_reference.json`` was written at commit 57d895b (before the faster ``Op``, builder and engine)
by ``PYTHONPATH=<checkout of 57d895b> python tests/test_sim_reference.py --write``.  Per case it holds
SHA-256 digests of the simulated schedule (every field of every op but the times; ``est_s`` apart), of
its ops' ``est_s``, and of the engine's outputs (every op's start, end and transfer start, the links'
bytes and busy time), plus the latency and per-rank figures in hex.  The profiles are pinned
(``data_*_47a119f.toml``, as ``test_sweep_reference.py``): refits change the physics, not the code paths.

The schedule's structure must match exactly.  Where the ops' ``est_s`` match too (the profile's curves
interpolate through ``np.log2``, whose last bit may differ between CPUs' SIMD paths), the engine's inputs
are the same and its outputs must be identical bit for bit; otherwise the latency and per-rank figures
are held to 1e-9 relative."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REF = HERE / "data_sim_reference.json"
GATE = ['achievable.comm_gate_kinds=["attention"]', "achievable.comm_gate_lead_us=250"]
SEED = {"batch": "128", "seq": "100000"}
# name -> (build_config options, hardware overrides, run_config keywords, SimOptions keywords)
CASES = {
    "seed ring=16,mb=16 nvlink-domain:16": (
        {"plan": "ring=16,mb=16", "topology": "nvlink-domain:16", **SEED},
        [],
        {},
        {},
    ),
    "seed ring=16,mb=16 ib:2x8": ({"plan": "ring=16,mb=16", "topology": "ib:2x8", **SEED}, [], {}, {}),
    "seed tp=8,pp=2,mb=16 nvlink-domain:16": (
        {"plan": "tp=8,pp=2,mb=16", "topology": "nvlink-domain:16", **SEED},
        [],
        {},
        {},
    ),
    "seed tp=8,pp=2,mb=16 ib:2x8": ({"plan": "tp=8,pp=2,mb=16", "topology": "ib:2x8", **SEED}, [], {}, {}),
    "ring steps: ring=16, 1 layer": (
        {"plan": "ring=16", "topology": "nvlink-domain:16", "batch": "1", "seq": "64Ki", "layers": "1"},
        [],
        {},
        {},
    ),
    "ulysses=4,ring=2, striped": (
        {
            "plan": "ulysses=4,ring=2",
            "topology": "nvswitch:8",
            "batch": "2",
            "seq": "32Ki",
            "layers": "2",
            "ring_variant": "striped",
        },
        [],
        {"coarsen": False},
        {},
    ),
    "pass-q over a prefix cache": (
        {
            "plan": "ring=8",
            "topology": "nvswitch:8",
            "batch": "2",
            "seq": "32Ki",
            "cached": "64Ki",
            "layers": "2",
            "prefill_attn": "pass-q",
        },
        [],
        {},
        {},
    ),
    "chunked tp=4,pp=2,chunks=4": (
        {"plan": "tp=4,pp=2,chunks=4", "topology": "nvswitch:8", "batch": "2", "seq": "32Ki", "layers": "4"},
        [],
        {},
        {},
    ),
    "decode tp=2,ring=4 allgather": (
        {
            "plan": "tp=2,ring=4",
            "topology": "nvswitch:8",
            "batch": "8",
            "seq": "128Ki",
            "phase": "decode",
            "layers": "2",
        },
        [],
        {},
        {},
    ),
    "decode ring=8 pass-kv, fp8 KV": (
        {
            "plan": "ring=8",
            "topology": "nvswitch:8",
            "batch": "8",
            "seq": "128Ki",
            "phase": "decode",
            "layers": "2",
            "decode_attn": "pass-kv",
            "kv_dtype": "fp8",
        },
        [],
        {},
        {},
    ),
    "gated ring=8 (h200), fp8 linear": (
        {
            "plan": "ring=8",
            "topology": "nvswitch:8",
            "batch": "2",
            "seq": "64Ki",
            "layers": "2",
            "hardware": "h200",
            "fp8": "linear",
            "mlp": "swiglu",
        },
        GATE,
        {},
        {},
    ),
    "expanded collectives, 2 NICs: tp=4,ring=4,mb=2": (
        {"plan": "tp=4,ring=4,mb=2", "topology": "ib:2x8", "batch": "4", "seq": "64Ki", "layers": "2"},
        [],
        {"coarsen": False},
        {"expand_collectives": True, "nics_per_node": 2},
    ),
}
_STRUCT = (
    "id rank stream kind role tag layer mb step call chunk deps flops hbm_bytes link_bytes msg_bytes link "
    "peers match batch shape causal reads writes issue_s"
).split()


def _config(opts: dict, overrides: list[str]):
    from costmodel import presets
    from costmodel.config import build_config

    opts = dict(opts)
    hw = opts.pop("hardware", "h100")
    cfg = build_config(opts)
    from dataclasses import replace

    return replace(cfg, hardware=presets.load_hardware(str(HERE / f"data_{hw}-sxm_47a119f.toml"), overrides))


def _digest(parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
    return h.hexdigest()


def figures(name: str) -> dict:
    """What the reference holds for one case (module docstring)."""
    from sim import SimOptions, run_config

    opts, overrides, run_kw, sim_kw = CASES[name]
    cfg = _config(opts, overrides)
    run = run_config(cfg, SimOptions(**sim_kw) if sim_kw else None, **run_kw)
    res = run.result
    ops = res.schedule.ops
    f64 = lambda v: np.asarray(v, dtype=np.float64).tobytes()  # noqa: E731
    return {
        "structure": _digest(tuple(str(getattr(op, f)) for f in _STRUCT) for op in ops),
        "est_s": _digest([f64([op.est_s for op in ops])]),
        "times": _digest(
            [f64(res.start), f64(res.end), f64(res.xstart), f64(res.link_bytes), f64(res.link_busy_s)]
        ),
        "ops": len(ops),
        "units": [run.units_simulated, run.units_total, run.ring_steps_simulated, run.ring_steps_total],
        "latency_s": float(run.latency_s).hex(),
        "ranks": [
            [float(r[k]).hex() for k in ("busy_s", "waiting_s", "compute_s", "transfer_s")] for r in run.ranks
        ],
    }


def _floats(hexes) -> np.ndarray:
    return np.asarray([float.fromhex(h) for h in np.ravel(hexes)])


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REF.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_simulator_results_as_before_the_speed_work(ref, name):
    got, want = figures(name), ref[name]
    assert got["structure"] == want["structure"], "the simulated schedule's ops differ from the reference's"
    assert (got["ops"], got["units"]) == (want["ops"], want["units"])
    if got["est_s"] == want["est_s"]:  # the engine's inputs are the reference's: its outputs are, bit for bit
        assert got["times"] == want["times"], "ops' start/end/transfer times or link figures differ"
        assert got["latency_s"] == want["latency_s"]
        assert got["ranks"] == want["ranks"]
    else:  # this CPU's np.log2 differs in the last bit somewhere: the figures to 1e-9
        np.testing.assert_allclose(_floats([got["latency_s"]]), _floats([want["latency_s"]]), rtol=1e-9)
        np.testing.assert_allclose(_floats(got["ranks"]), _floats(want["ranks"]), rtol=1e-9, atol=1e-15)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    out = {name: figures(name) for name in CASES}
    REF.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {REF}")
