"""``ring_recurrence`` steps only rings still running and jumps over the periodic middle steps; it must
give what the plain step-by-step loop gives (``ring_recurrence_loop``) to 1e-12 relative."""

import numpy as np
import pytest

from costmodel.closedform import ring_recurrence, ring_recurrence_loop


def _inputs(rng, n, Rmax):
    # times spanning compute-bound, comm-bound and balanced rings (x close to c + g: long transients)
    c1 = 10 ** rng.uniform(-6, -2, n)
    g1 = c1 * 10 ** rng.uniform(-3, 0, n)
    x = (c1 + g1) * np.where(rng.random(n) < 0.3, 1 + rng.normal(0, 1e-3, n), 10 ** rng.uniform(-1.5, 1.5, n))
    c0 = c1 * rng.uniform(0.5, 3, n)
    g0 = g1 * rng.uniform(0.5, 2, n)
    xf = x * rng.uniform(0.5, 2, n)
    R = rng.integers(1, Rmax + 1, n)
    R[:8] = [1, 2, 3, 4, 5, Rmax, Rmax, Rmax - 1]
    return c0, g0, c1, g1, x, xf, R


@pytest.mark.parametrize("slow", [1.0, 1.25])
@pytest.mark.parametrize("seed,Rmax", [(0, 1024), (1, 64), (2, 8)])
def test_periodic_jump_equals_the_loop(seed, Rmax, slow):
    rng = np.random.default_rng(seed)
    c0, g0, c1, g1, x, xf, R = _inputs(rng, 4000, Rmax)
    got = ring_recurrence(c0, g0, c1, g1, x, R, slow, x_first=xf)
    ref = ring_recurrence_loop(c0, g0, c1, g1, x, R, slow, x_first=xf)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert np.all(got > 0)


def test_broadcast_shapes_and_scalars():
    c1 = np.array([[1e-3], [2e-3]])
    R = np.array([1, 2, 16, 1024])
    got = ring_recurrence(2e-3, 1e-4, c1, 1e-4, 5e-4, R, 1.1)
    ref = ring_recurrence_loop(2e-3, 1e-4, c1, 1e-4, 5e-4, R, 1.1)
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert float(ring_recurrence(1.0, 0.0, 1.0, 0.0, 0.1, 1024, 1.0)) == pytest.approx(1024.0, rel=1e-12)
    assert float(ring_recurrence(0.1, 0.0, 0.1, 0.0, 1.0, 1024, 1.0)) == pytest.approx(1023 + 0.1, rel=1e-12)


def test_one_short_ring_in_floats_is_the_loop_bit_for_bit():
    rng = np.random.default_rng(5)
    c0, g0, c1, g1, x, xf, R = _inputs(rng, 300, 64)
    for i in range(300):
        args = (c0[i], g0[i], c1[i], g1[i], x[i], int(R[i]), 1.2)
        got = ring_recurrence(*args, x_first=xf[i])
        assert got.shape == () and float(got) == float(ring_recurrence_loop(*args, x_first=xf[i]))


@pytest.mark.parametrize("slow,slow_g", [(1.0, 1.05), (1.25, 1.25), (1.1, 1.0)])
def test_rings_finished_in_floats_equal_the_vector_loop_bit_for_bit(monkeypatch, slow, slow_g):
    """The few slow-to-settle rings left after POWER_AFTER steps finish in Python floats (SCALAR_TAIL);
    they must end exactly where the vector loop would have taken them."""
    import costmodel.closedform as cf

    rng = np.random.default_rng(7)
    c0, g0, c1, g1, x, xf, R = _inputs(rng, 3000, 1024)
    x[:40] = (c1[:40] + g1[:40]) * (1 + 1e-4)  # balanced: transients that last hundreds of steps
    R[:40] = 1024
    runs = {}
    for tail in (0, 10**9):
        monkeypatch.setattr(cf, "SCALAR_TAIL", tail)
        calls = []
        real = cf._ring_tail
        monkeypatch.setattr(cf, "_ring_tail", lambda *a, _r=real, _c=calls: _c.append(1) or _r(*a))
        for k in range(0, 3000, 40):  # blocks of 40: the tail starts with at most 40 rings left
            sl = slice(k, k + 40)
            runs.setdefault(tail, []).append(
                ring_recurrence(c0[sl], g0[sl], c1[sl], g1[sl], x[sl], R[sl], slow, xf[sl], slow_g)
            )
        runs[tail, "calls"] = len(calls)
    assert runs[0, "calls"] == 0 and runs[10**9, "calls"] >= 5  # both paths were taken
    a, b = np.concatenate(runs[0]), np.concatenate(runs[10**9])
    assert np.array_equal(a, b)
    ref = ring_recurrence_loop(c0, g0, c1, g1, x, R, slow, x_first=xf, slowdown_g=slow_g)
    np.testing.assert_allclose(a, ref, rtol=1e-12, atol=0)
