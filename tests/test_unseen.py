"""``ringsim validate`` reports the unseen subset apart: records whose shapes no calibration run of their
profile measured, taken in a device call of their own (and whose check passed: failed ones never reach
the table)."""

from __future__ import annotations

from ringsim import load_config
from validation.compare import _calibration, seen_by_calibration


def _cfg(**kw):
    base = dict(hardware="h200-sxm-eager", topology="nvswitch:2", layers=2, batch=1)
    return load_config(**{**base, **kw})


def test_a_calibrated_attention_length_is_seen():
    # run 6 measured square attention at 32Ki: a ring=2 prefill of 64Ki attends 32Ki blocks per rank
    why = seen_by_calibration({}, _cfg(plan="ring=2", seq="64Ki"))
    assert why is not None and "attention length" in why and ("32768" in why or "16384" in why)


def test_calibrated_gemm_rows_are_seen():
    # decode pass-q with 8 sequences over a ring of 2: each owner computes 4 rows, a calibrated GEMM size
    why = seen_by_calibration(
        {},
        _cfg(
            plan="ring=2",
            phase="decode",
            batch=8,
            context="40Ki",
            seq="40Ki",
            decode_attn="pass-q",
            hardware="h200-sxm-graph",
        ),
    )
    assert why is not None and "GEMM rows (4)" in why


def test_unseen_needs_another_device_call():
    cfg = _cfg(plan="ring=2", seq="72Ki")
    cal = _calibration(cfg.hardware)
    assert cal["files"] and cal["dates"]
    assert seen_by_calibration({}, cfg) is None  # no provenance: nothing ties it to a calibration call
    near = {"provenance": {"date_utc": max(cal["dates"]).isoformat()}}
    assert "30 minutes" in seen_by_calibration(near, cfg)
    far = {"provenance": {"date_utc": "2030-01-01T00:00:00+00:00"}}
    assert seen_by_calibration(far, cfg) is None
