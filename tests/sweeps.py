"""A small coded sweep for the tests of the sweep's streamed files (test_csv_stream, test_npz_stream): the
seed model on h100-sxm's NVLink domain at 8, 16 and 32 GPUs, ``run_sweep(coded=True)`` as ``ringsim sweep``
calls it."""

from __future__ import annotations

from costmodel import presets
from costmodel.sweep import lcm_multiple, parse_template, run_sweep, seq_grid


def coded_sweep(phase: str, plans: list[str], on_block=None, points: int = 40, hi: int = 1 << 20) -> dict:
    hw, model = presets.load_hardware("h100-sxm"), presets.load_model("seed-dense")
    tpls = [parse_template(t) for t in plans]
    gpus = [8, 16, 32]
    seqs = seq_grid(8192, hi, points, lcm_multiple(tpls, gpus, "zigzag"))
    return run_sweep(
        model,
        hw,
        topo_kind="nvlink-domain",
        phase=phase,
        causal=True,
        kernel="auto",
        ring_variant="zigzag",
        decode_attn="allgather",
        batch=1,
        seqs=seqs,
        gpus=gpus,
        templates=tpls,
        coded=True,
        on_block=on_block,
    )[0]
