"""benchmarks/bench_ring_gate.py: the trace parser and the figures derived per repetition (a hand-made
CUPTI-style trace: what the device run's profiler exports), so that the raw the model is fitted from
means what it says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_ring_gate", ROOT / "benchmarks" / "bench_ring_gate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _trace(split_ends, ready_at, c_start, c_end):
    ev = [{"ph": "X", "cat": "user_annotation", "name": "gate_rep0", "ts": 1000.0, "dur": 9000.0}]
    ev.append({"ph": "X", "cat": "gpu_user_annotation", "name": "gate_rep0", "ts": 1005.0, "dur": 8000.0})
    t = 1010.0
    for i, e in enumerate(split_ends):
        ev.append(
            {
                "ph": "X",
                "cat": "cuda_runtime",
                "name": "cudaLaunchKernel",
                "ts": 1001.0 + i,
                "dur": 1.0,
                "args": {"correlation": 10 + i},
            }
        )
        ev.append(
            {
                "ph": "X",
                "cat": "kernel",
                "name": "cudnn_sdpa_fprop",
                "ts": t,
                "dur": e - t,
                "args": {"correlation": 10 + i},
            }
        )
        t = e
    ev.append(
        {
            "ph": "X",
            "cat": "cuda_driver",
            "name": "cuLaunchKernelEx",
            "ts": ready_at - 4.0,
            "dur": 4.0,
            "args": {"correlation": 99},
        }
    )
    ev.append(
        {
            "ph": "X",
            "cat": "kernel",
            "name": "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)",
            "ts": c_start,
            "dur": c_end - c_start,
            "args": {"correlation": 99},
        }
    )
    # a kernel launched outside the repetition (the t0 all-reduce) is not counted
    ev.append(
        {
            "ph": "X",
            "cat": "cuda_runtime",
            "name": "cudaLaunchKernel",
            "ts": 900.0,
            "dur": 1.0,
            "args": {"correlation": 5},
        }
    )
    ev.append(
        {
            "ph": "X",
            "cat": "kernel",
            "name": "ncclDevKernel_AllReduce",
            "ts": 950.0,
            "dur": 10.0,
            "args": {"correlation": 5},
        }
    )
    return {"traceEvents": ev}


def test_gated_transfer_starts_at_the_kernel_end():
    b = _bench()
    (rec,) = b.parse_trace(_trace([6010.0], ready_at=3000.0, c_start=6015.0, c_end=6715.0))
    d = b.derive(rec)
    assert d["k_s"] == pytest.approx(5000e-6)
    assert d["ready_inside_kernel"] is True
    assert d["ready_minus_kend_s"] == pytest.approx(-3010e-6)
    assert d["start_minus_kend_s"] == pytest.approx(5e-6)
    assert d["start_minus_boundary_s"] == pytest.approx(5e-6)
    assert d["c_dur_s"] == pytest.approx(700e-6)
    assert d["start_after_ready_s"] == pytest.approx(3015e-6)
    assert d["rel_s"]["ready"] == pytest.approx(2000e-6)


def test_split_kernel_gives_the_first_boundary_after_ready():
    b = _bench()
    (rec,) = b.parse_trace(_trace([3510.0, 6010.0], ready_at=3000.0, c_start=3520.0, c_end=4300.0))
    d = b.derive(rec)
    assert d["boundaries_after_k_start_s"] == pytest.approx([2500e-6, 5000e-6])
    assert d["start_minus_boundary_s"] == pytest.approx(10e-6)
    assert d["ready_to_boundary_s"] == pytest.approx(510e-6)
    assert d["start_minus_kend_s"] == pytest.approx(-2490e-6)


def test_transfer_alone_has_no_kernel_figures():
    b = _bench()
    tr = _trace([], ready_at=3000.0, c_start=3010.0, c_end=3600.0)
    (rec,) = b.parse_trace(tr)
    d = b.derive(rec)
    assert d["c_dur_s"] == pytest.approx(590e-6) and d["start_after_ready_s"] == pytest.approx(10e-6)
    assert "start_minus_kend_s" not in d and "k_s" not in d


def test_kernel_without_launch_record_is_placed_by_when_it_ran():
    """NCCL launches through the driver API; a trace without those calls still places its kernel (by
    start time) and takes ``ready`` from the bench's own ``gate_post`` range around the post."""
    b = _bench()
    tr = _trace([6010.0], ready_at=3000.0, c_start=6020.0, c_end=6700.0)
    tr["traceEvents"] = [e for e in tr["traceEvents"] if e.get("cat") != "cuda_driver"]
    tr["traceEvents"].append(
        {"ph": "X", "cat": "user_annotation", "name": "gate_post", "ts": 2990.0, "dur": 20.0}
    )
    (rec,) = b.parse_trace(tr)
    d = b.derive(rec)
    assert d["ready_minus_kend_s"] == pytest.approx(-3000e-6)
    assert d["start_minus_boundary_s"] == pytest.approx(10e-6)


def test_tie_mode_measures_from_the_release():
    """tie_comm: a first NCCL kernel releases the measured one and the attention together; the figures
    count from its end, and a kernel that started first holds the op to its end."""
    b = _bench()
    tr = _trace([6010.0], ready_at=1008.0, c_start=5700.0, c_end=6800.0)
    ev = tr["traceEvents"]
    ev.append(
        {
            "ph": "X",
            "cat": "cuda_driver",
            "name": "cuLaunchKernelEx",
            "ts": 1001.5,
            "dur": 1.0,
            "args": {"correlation": 77},
        }
    )
    ev.append(
        {
            "ph": "X",
            "cat": "kernel",
            "name": "ncclDevKernel_SendRecv(first)",
            "ts": 995.0,
            "dur": 10.0,
            "args": {"correlation": 77},
        }
    )
    (rec,) = b.parse_trace(tr)
    d = b.derive(rec)
    assert d["tie_kernel_first"] is True
    assert d["k_start_after_release_s"] == pytest.approx(5e-6)
    assert d["c_start_after_release_s"] == pytest.approx(4695e-6)
    assert d["start_minus_boundary_s"] == pytest.approx(-310e-6)
