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


def test_close_in_time_on_another_boot_is_another_call():
    """A record taken minutes after a calibration run, but on a machine whose boot differs from that
    run's (both name theirs), is another device call; without its boot, or on the same boot, it is not."""
    cfg = _cfg(plan="ring=2", seq="72Ki")
    cal = _calibration(cfg.hardware)
    named = [(d, b) for d, b in cal["runs"] if d is not None and b]
    assert named, "a calibration raw file of h200-sxm names its machine's boot"
    d, boots = max(named, key=lambda r: r[0])
    when = d.isoformat()
    other = {"provenance": {"date_utc": when, "boot_ids": ["another-boot"]}}
    same = {"provenance": {"date_utc": when, "boot_ids": sorted(boots)}}
    unnamed = {"provenance": {"date_utc": when}}
    near_unnamed_run = [
        r for r in cal["runs"] if r[0] is not None and not r[1] and abs((r[0] - d).total_seconds()) <= 1800
    ]
    assert seen_by_calibration(other, cfg) is None or near_unnamed_run
    assert seen_by_calibration(same, cfg) is not None
    assert "30 minutes" in seen_by_calibration(unnamed, cfg)
