"""Building blocks of the closed forms (``analytic.py`` and each strategy's ``closed_form``),
numpy-vectorised.

* ``Acc`` accumulates one rank's device time on the critical path (compute- and memory-bound kernel
  time, FLOPs, HBM bytes) and the host's time to issue those ops;
* ``comm`` is the uncontended time of one call on NVLink or InfiniBand, chosen per point;
* ``ring_recurrence`` is the max-plus recurrence of a double-buffered ring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels
from . import layers as Lr
from .geometry import Geometry
from .layers import Work
from .plan import DecodeAttn, RingVariant
from .schedule import OpKind
from .specs import Hardware, Phase


@dataclass(frozen=True)
class Setting:
    """The categorical inputs of one vectorised evaluation."""

    phase: str = Phase.PREFILL
    causal: bool = True
    kernel: str = "auto"
    ring_variant: str = RingVariant.ZIGZAG
    decode_attn: str = DecodeAttn.ALLGATHER
    topo_kind: str = "nvswitch"
    pp_send: str = "scatter"
    gpus_per_node: int = 8
    cached: object = (
        0  # prefill: tokens per sequence already in the KV cache (scalar or array; partial prefill)
    )
    prefill_attn: str = "pass-kv"  # prefill ring: pass-kv | pass-q


class Acc:
    """Accumulates a rank's device time (compute- and memory-bound) and the host time to issue it."""

    def __init__(self, hw: Hardware, kernel: str, shape):
        self.hw, self.kernel = hw, kernel
        z = np.zeros(shape)
        self.compute, self.memory = z.copy(), z.copy()
        self.flops, self.hbm = z.copy(), z.copy()
        self.flops_fp8 = z.copy()  # of which FP8 GEMMs (the roofline charges them at the FP8 peak)
        # host time to issue the ops added (compute and comm): counts of calls, the same at every length of
        # a plan, so kept at the shape of the counts (broadcast where read)
        self.host = np.zeros(())
        self._parts: dict[int, tuple] = {}  # id(w) -> (w, parts): a strategy often asks time(w), then add(w)
        self._bits: dict[int, tuple] = {}  # id(w) -> (w, kernel bit): note_kernel once per Work object
        self.kernel_mask = np.zeros(shape, dtype=int)  # kernels used: bits over hw.attn_names(kernel)

    def parts(self, w: Work):
        """(device time, compute-bound?) of one run of w (computed once per Work object)."""
        got = self._parts.get(id(w))
        if got is not None and got[0] is w:
            return got[1]
        hw = self.hw
        if w.kind == OpKind.ATTN and self.kernel == "auto":
            # Lr.work_time's time (the fastest kernel, at least its op class's floor), and which kernel
            # that is, from one attn_choice (note_kernel asks for the kernel next)
            t, k = kernels.attn_choice(hw, w.flops, w.hbm_bytes, w.kv_len, w.causal, w.q_len, w.dims)
            self._bits[id(w)] = (w, 1 << k)
            floor = hw.op(w.role.op_class).floor_s
            t = kernels.at_least(t, floor) if floor else t
        else:
            t = Lr.work_time(hw, w, self.kernel)
        # compute-bound by the roofline's ridge point: arithmetic intensity above peak FLOP/s per byte/s
        ridge = hw.peak_flops / hw.hbm_bw_Bps
        fl = np.asarray(w.flops, dtype=float)
        hb = w.hbm_bytes
        if fl.ndim == 0 and not fl > 0 and type(hb) is np.ndarray and hb.ndim:
            cb = np.zeros(hb.shape, bool)  # no FLOPs (an elementwise op): memory-bound at every point
        else:
            cb = fl >= ridge * np.asarray(hb, dtype=float)
            cb = cb & (fl > 0)
        out = np.asarray(t, dtype=float), cb
        self._parts[id(w)] = (w, out)
        return out

    def time(self, w: Work):
        """Device time of one run of w."""
        return self.parts(w)[0]

    def issue_comm(self, count):
        """Host time of ``count`` communication calls (the profile's ``comm`` issue time)."""
        self.host = self.host + np.asarray(count, dtype=float) * self.hw.op("comm").issue_s

    def add(self, w: Work, count=1.0, scale=1.0):
        """Add ``count`` runs of w to the path (its time multiplied by ``scale``); returns one run's time."""
        t, cb = self.parts(w)
        count = _least(count)
        if w.kind == OpKind.ATTN:
            self.note_kernel(w, np.asarray(count) > 0)
        # in place (the accumulators have the evaluation's shape); a factor of exactly 1 is left out, and
        # so is the side (compute- or memory-bound) no point of w is on (adding zeros)
        one = type(count) in (int, float) and count == 1 and type(scale) in (int, float) and scale == 1
        if not one and type(scale) in (int, float) and scale == 1 and _all_one(count):
            count, one = 1.0, True  # a column of ones (a strategy on at every point): x * 1.0 is x
        k = None if one else count * scale
        if cb.all():
            c, m = t, None
        elif not cb.any():
            c, m = None, t
        else:
            c, m = np.where(cb, t, 0.0), np.where(cb, 0.0, t)
        if c is not None:
            self.compute += c if one else k * c
        if m is not None:
            self.memory += m if one else k * m
        self.host = self.host + count * self.hw.op(w.role.op_class).issue_s
        fl, hb = np.asarray(w.flops, dtype=float), np.asarray(w.hbm_bytes, dtype=float)
        if not (one and fl.ndim == 0 and fl == 0.0):  # + 0.0 leaves a sum begun at +0.0 as it is
            self.flops += fl if one else count * fl
        self.hbm += hb if one else count * hb
        if w.fp8:
            self.flops_fp8 = self.flops_fp8 + (fl if one else count * fl)
        return t if type(scale) in (int, float) and scale == 1 else t * scale

    def note_kernel(self, w: Work, where=True) -> None:
        """Record the attention kernel w runs on (where ``where``): a call the rank makes whose time is
        not on the path (a ring step's faster calls) still names its kernel."""
        if w.kind != OpKind.ATTN:
            return
        got = self._bits.get(id(w))
        if got is not None and got[0] is w:
            bit = got[1]
        else:
            bit = (
                1
                << kernels.attn_choice(self.hw, w.flops, w.hbm_bytes, w.kv_len, w.causal, w.q_len, w.dims)[1]
                if self.kernel == "auto"
                else 1
            )
            self._bits[id(w)] = (w, bit)
        self.kernel_mask = self.kernel_mask | kernels.select(where, bit, 0)

    @property
    def kernels_used(self):
        """Per point: the attention kernels the added calls ran on ('flash', 'cudnn+flash', ...)."""
        return kernels.kernels_label(self.hw, self.kernel, self.kernel_mask)

    @property
    def busy(self):
        return self.compute + self.memory


def _least(v):
    """v with each broadcast axis (stride 0: ``Ctx.full``'s counts) cut to one element: the same values
    wherever v is broadcast, computed with once per plan rather than once per point."""
    if type(v) is np.ndarray and v.ndim and 0 in v.strides:
        return v[tuple(slice(0, 1) if s == 0 else slice(None) for s in v.strides)]
    return v


def _all_one(count) -> bool:
    """True if ``count`` is a float array whose every element is exactly 1, checked on the array it is a
    view of where that one is smaller (a broadcast column of one plan's counts: a few values, not one per
    point)."""
    if type(count) is not np.ndarray or count.dtype.kind != "f":
        return False
    b = count.base
    a = b if type(b) is np.ndarray and b.dtype == count.dtype and b.size < count.size else count
    return a.size > 0 and a.flat[0] == 1.0 and bool((a == 1.0).all())


@dataclass
class Ctx:
    """What a strategy's closed form reads: the model, profile, setting, geometry (arrays) and the
    rank's accumulator; ``shape`` is the broadcast shape of the evaluation."""

    hw: Hardware
    st: Setting
    geo: Geometry
    acc: Acc
    shape: tuple

    @property
    def model(self):
        return self.geo.model

    def crosses_ib(self, span):
        """True where a group spanning ``span`` consecutive GPUs leaves a node (ib) or an NVLink domain
        (nvl)."""
        if self.st.topo_kind not in ("ib", "nvl"):
            return np.zeros(np.shape(span), dtype=bool)
        return np.asarray(span) > self.st.gpus_per_node

    def comm(self, is_ib, coll: str, msg, group):
        """Uncontended time of one call, on IB where ``is_ib`` and NVLink elsewhere."""
        on = np.asarray(is_ib)
        t_nv = None if on.all() else kernels.comm_time(self.hw, "nvlink", coll, msg, group)
        t_ib = None if not on.any() else kernels.comm_time(self.hw, "ib", coll, msg, group)
        if t_nv is None or t_ib is None:  # one link for every point: the other is not computed
            t = t_ib if t_nv is None else t_nv
            return kernels.select(on, t, t)  # np.where's shape and dtype
        return kernels.select(on, t_ib, t_nv)

    def full(self, v):
        return np.broadcast_to(np.asarray(v, dtype=float), self.shape)


@dataclass
class AttnCost:
    """A strategy's closed form for one layer on the critical path: time beyond the kernels it added
    to the accumulator (exposed communication), time its transfers keep links busy, bytes sent."""

    exposed_s: object = 0.0
    xfer_s: object = 0.0
    sent_nvlink: object = 0.0
    sent_ib: object = 0.0

    def masked(self, on) -> AttnCost:
        return AttnCost(
            *(
                kernels.select(on, v, 0.0)
                for v in (self.exposed_s, self.xfer_s, self.sent_nvlink, self.sent_ib)
            )
        )

    def __add__(self, o: AttnCost) -> AttnCost:
        return AttnCost(
            self.exposed_s + o.exposed_s,
            self.xfer_s + o.xfer_s,
            self.sent_nvlink + o.sent_nvlink,
            self.sent_ib + o.sent_ib,
        )


def split_links(is_ib, sent) -> tuple:
    """(NVLink bytes, IB bytes) of ``sent``: each transfer's bytes counted once, on the link it crosses.
    Per-device totals are those of the busiest rank: where a group crosses InfiniBand, the rank at the node
    boundary, whose sends of that group all go over IB (the others' go over NVLink and are no more)."""
    return kernels.select(is_ib, 0.0, sent), kernels.select(is_ib, sent, 0.0)


def stretched_end(start, work, lo, hi, slowdown):
    """End of ``work`` seconds of compute begun at ``start`` on a GPU where a transfer runs during
    [lo, hi): inside that window compute runs ``slowdown`` times slower (NCCL's kernels share the SMs),
    outside it at full speed.  Vectorised.  The simulator applies the same rule op by op.

    A branch every point takes is computed alone (what ``np.where`` would pick), and a slowdown of exactly
    1 (a Python float) is not multiplied by: the same values, bit for bit, in fewer passes."""
    t2 = np.maximum(start, lo)  # compute reaches the window (or starts inside it)
    before = np.minimum(work, kernels.at_least(lo - start, 0.0))
    rem = work - before
    win = kernels.at_least(hi - t2, 0.0)  # window left once compute reaches it
    one = type(slowdown) is float and slowdown == 1.0  # x * 1.0 and x / 1.0 are x
    rs = rem if one else rem * slowdown
    inside = rs <= win
    if inside.all():
        end = t2 + rs
        if np.shape(end) != inside.shape:  # (the window's end alone broadcast further)
            end = np.array(np.broadcast_to(end, inside.shape))
    else:
        out = t2 + win + (rem - (win if one else win / slowdown))
        if not inside.any():
            end = out
        else:
            end = t2 + rs
            if type(out) is np.ndarray and out.shape == inside.shape and out.dtype == np.asarray(end).dtype:
                np.copyto(out, end, where=inside)  # np.where's values: ``out`` is this call's own array
                end = out
            else:
                end = np.where(inside, end, out)
    pos = rem > 0
    if pos.all():
        return end
    return np.where(pos, end, start + before)


def _stretched_end1(start: float, work: float, lo: float, hi: float, slowdown: float) -> float:
    """``stretched_end`` of one point in Python floats."""
    t2 = max(start, lo)
    before = min(work, max(lo - start, 0.0))
    rem = work - before
    if rem <= 0:
        return start + before
    win = max(hi - t2, 0.0)
    return t2 + rem * slowdown if rem * slowdown <= win else t2 + win + (rem - win / slowdown)


PERIODIC_TOL = 2e-13  # ring_recurrence: increments equal to this (relative) count as periodic
SCALAR_STEPS = 64  # ring_recurrence: one ring of at most this many steps runs step by step in floats
POWER_AFTER = 8  # ring_recurrence: steps after which rings not yet periodic finish by a max-plus power
SCALAR_TAIL = 16  # ring_recurrence: rings left after POWER_AFTER steps, at most this many, finish in floats


def ring_recurrence(c0, g0, c1, g1, x, R, slowdown, x_first=None, slowdown_g=None, gate_lead=None):
    """End time of a pass-KV ring of R steps (from the moment the local block is ready).

    Step 0 computes c0 then g0, steps >= 1 compute c1 then g1; each of the first R-1 steps moves a
    block of x seconds.  Step t's transfer starts when the previous one is done and the buffer it
    overwrites has been read; step t's attention starts when its block has arrived and the previous
    step's merge is done; attention (c) runs ``slowdown`` times slower and the merge (g) ``slowdown_g``
    times slower (default: the same), only while a transfer is in flight (``stretched_end``).

    The middle steps (2..R-2) apply one map to the state (E, R_t, A_t).  The map is monotone, never
    expands distances (sup norm) and commutes with adding a constant, so once one step's increments
    are equal across the state (to ``PERIODIC_TOL`` relative) every later increment is within that of
    them: such a point jumps to step R-2 at once.  Only rings still running are stepped.  Without a
    slowdown the map is max-plus linear, and rings not periodic after ``POWER_AFTER`` steps finish with
    its max-plus power (by squaring); with one they keep stepping.

    ``gate_lead`` (not None: the profile's kernel-boundary gate, ``ring_recurrence_gated``): a transfer
    that becomes ready as or while a step's attention runs starts when that call has ``gate_lead``
    seconds of work left.
    """
    if gate_lead is not None:
        return ring_recurrence_gated(c0, g0, c1, g1, x, R, slowdown, gate_lead, x_first, slowdown_g)
    shape = np.broadcast(c0, g0, c1, g1, x, R).shape
    n = int(np.prod(shape))
    sg = slowdown if slowdown_g is None else slowdown_g
    # a slowdown the same at every point stays one Python float (no column of it is made, nor indexed
    # step by step), but for one point (the plain loop below)
    flat = [
        float(v)
        if n > 1 and j >= 6 and np.ndim(v) == 0
        else np.broadcast_to(np.asarray(v, dtype=float), shape).reshape(n)
        for j, v in enumerate((c0, g0, c1, g1, x, x if x_first is None else x_first, slowdown, sg))
    ]
    c0, g0, c1, g1, x, xf, slow, slow_g = flat
    Rn = np.broadcast_to(np.asarray(R), shape).reshape(n)
    if n == 1 and Rn[0] <= SCALAR_STEPS:  # one short ring (predict): the plain loop in Python floats
        return np.full(shape, _ring_scalar(*(float(v[0]) for v in flat), int(Rn[0])))
    slow, slow_g = _one_float(slowdown, slow), _one_float(sg, slow_g)
    done = np.zeros(n)
    # step 0 (every ring with R >= 1): its transfer runs during [0, xf)
    has_x = Rn > 1
    every = bool(has_x.all())  # every ring has R >= 2 (a sweep's block of ring plans)
    hi0 = xf if every else np.where(has_x, xf, 0.0)
    A = stretched_end(0.0, c0, 0.0, hi0, slow)
    E = stretched_end(A, g0, 0.0, hi0, slow_g)
    Rp = 0.0 + xf if every else np.where(has_x, 0.0 + xf, 0.0)
    done = E if every else np.where(Rn >= 1, E, done)
    idx = np.flatnonzero(Rn > 1)
    if not every:
        E, Rp, A = E[idx], Rp[idx], A[idx]
    Ri, c1, g1, x = (v if every else v[idx] for v in (Rn, c1, g1, x))
    if type(slow) is not float:
        slow = slow if every else slow[idx]
    if type(slow_g) is not float:
        slow_g = slow_g if every else slow_g[idx]
    done = np.array(done)  # its own (written by index below)
    prev = None
    t = 1
    while idx.size:
        has_x = t < Ri - 1
        start = np.maximum(E, Rp)
        G = np.maximum(Rp, A) if t >= 2 else Rp
        Rt = G + x
        if has_x.all():  # no ring ends at this step (np.where would pick G, Rt and Rt)
            lo, hi, Rp_new = G, Rt, Rt
            last = None
        else:  # no transfer: an empty window
            lo, hi = np.where(has_x, G, 0.0), np.where(has_x, Rt, 0.0)
            last = ~has_x  # t == R - 1: this ring is done
        A_new = stretched_end(start, c1, lo, hi, slow)
        E_new = stretched_end(A_new, g1, lo, hi, slow_g)
        if last is None:
            last = np.zeros(idx.size, bool)
        else:
            Rp_new = np.where(has_x, Rt, Rp)
            done[idx[last]] = E_new[last]
        if t >= 3:
            dE, dR, dA = E_new - prev[0], Rp_new - prev[1], A_new - prev[2]
            eps = np.maximum(np.abs(dR - dE), np.abs(dA - dE))
            jump = has_x & (Ri - 2 > t) & (eps <= PERIODIC_TOL * np.abs(dE))
            if jump.any():  # state at step R-2, then the last step (no transfer beside it)
                k = (Ri - 2 - t)[jump]
                Ej, Rj = E_new[jump] + k * dE[jump], Rp_new[jump] + k * dR[jump]
                done[idx[jump]] = (np.maximum(Ej, Rj) + c1[jump]) + g1[jump]
                last = last | jump
        if t >= POWER_AFTER:  # the rest (slow to settle), where the map is max-plus: its power
            rest = ~last & (slow == 1.0) & (slow_g == 1.0)
            if np.any(rest):
                done[idx[rest]] = _ring_power(
                    E_new[rest],
                    A_new[rest],
                    Rp_new[rest],
                    c1[rest],
                    g1[rest],
                    x[rest],
                    c1[rest],
                    g1[rest],
                    Ri[rest] - 2 - t,
                )
                last = last | rest
        if last.any():
            keep = ~last
            idx, Ri, c1, g1, x = idx[keep], Ri[keep], c1[keep], g1[keep], x[keep]
            slow = slow if type(slow) is float else slow[keep]
            slow_g = slow_g if type(slow_g) is float else slow_g[keep]
            E_new, Rp_new, A_new = E_new[keep], Rp_new[keep], A_new[keep]
        prev = (E_new, Rp_new, A_new) if t >= 2 else None
        E, Rp, A = E_new, Rp_new, A_new
        t += 1
        if t > POWER_AFTER and 0 < idx.size <= SCALAR_TAIL:  # a few slow rings: on in Python floats
            sl = np.broadcast_to(slow, idx.shape)
            sl_g = np.broadcast_to(slow_g, idx.shape)
            state = (E, Rp, A, *prev, c1, g1, x, sl, sl_g, Ri)
            for j, i in enumerate(idx.tolist()):
                done[i] = _ring_tail(*(float(v[j]) for v in state), t)
            break
    return done.reshape(shape)


def _one_float(value, column):
    """``value`` as a Python float where it is one number for every point (a profile's slowdown), else the
    column itself."""
    v = np.asarray(value)
    return float(v) if v.ndim == 0 else column


def ring_recurrence_gated(c0, g0, c1, g1, x, R, slowdown, lead, x_first=None, slowdown_g=None):
    """``ring_recurrence`` with the kernel-boundary gate (``Hardware.comm_gate_kinds``, issue 12): the
    attention kernels hold every SM until their last wave, so a transfer that becomes ready as a step's
    attention starts (ties go to the kernel) or while it runs starts only when that call has ``lead``
    seconds of its work left; the simulator applies the same rule op by op (``sim/engine.py``).

    Step 0's transfer and attention become ready together (the local block is written by the op before
    the ring): the transfer starts at c0 - lead.  Step t >= 1's transfer is ready at G = R_{t-1} (t = 1)
    or max(R_{t-1}, A_{t-1}); step t's attention starts at s = max(E_{t-1}, R_{t-1}) >= G: where G == s
    (the block arrived last and released both), the transfer waits for the call's last wave.  Stepped
    over every step, with ``ring_recurrence``'s periodic jump (the map still commutes with adding a
    constant); no max-plus power (the gate's comparison is not max-plus)."""
    shape = np.broadcast(c0, g0, c1, g1, x, R).shape
    n = int(np.prod(shape))
    sg = slowdown if slowdown_g is None else slowdown_g
    flat = [
        np.broadcast_to(np.asarray(v, dtype=float), shape).reshape(n)
        for v in (c0, g0, c1, g1, x, x if x_first is None else x_first, slowdown, sg, lead)
    ]
    c0, g0, c1, g1, x, xf, slow, slow_g, lead = flat
    Rn = np.broadcast_to(np.asarray(R), shape).reshape(n)
    done = np.zeros(n)
    has_x = Rn > 1
    X0 = np.where(has_x, np.maximum(c0 - lead, 0.0), 0.0)
    lo0, hi0 = X0, np.where(has_x, X0 + xf, 0.0)
    A = stretched_end(0.0, c0, lo0, hi0, slow)
    E = stretched_end(A, g0, lo0, hi0, slow_g)
    Rp = np.where(has_x, X0 + xf, 0.0)
    done = np.where(Rn >= 1, E, done)
    idx = np.flatnonzero(Rn > 1)
    E, Rp, A = E[idx], Rp[idx], A[idx]
    Ri, c1, g1, x, slow, slow_g, lead = (v[idx] for v in (Rn, c1, g1, x, slow, slow_g, lead))
    prev = None
    t = 1
    while idx.size:
        has_x = t < Ri - 1
        start = np.maximum(E, Rp)
        G = np.maximum(Rp, A) if t >= 2 else Rp
        X = np.where(has_x & (G >= start), start + np.maximum(c1 - lead, 0.0), G)
        lo, hi = np.where(has_x, X, 0.0), np.where(has_x, X + x, 0.0)
        A_new = stretched_end(start, c1, lo, hi, slow)
        E_new = stretched_end(A_new, g1, lo, hi, slow_g)
        Rp_new = np.where(has_x, X + x, Rp)
        last = ~has_x
        done[idx[last]] = E_new[last]
        if t >= 3:
            dE, dR, dA = E_new - prev[0], Rp_new - prev[1], A_new - prev[2]
            eps = np.maximum(np.abs(dR - dE), np.abs(dA - dE))
            jump = has_x & (Ri - 2 > t) & (eps <= PERIODIC_TOL * np.abs(dE))
            if jump.any():  # state at step R-2, then the last step (no transfer beside it)
                k = (Ri - 2 - t)[jump]
                Ej, Rj = E_new[jump] + k * dE[jump], Rp_new[jump] + k * dR[jump]
                done[idx[jump]] = (np.maximum(Ej, Rj) + c1[jump]) + g1[jump]
                last = last | jump
        if last.any():
            keep = ~last
            idx, Ri, c1, g1, x, slow, slow_g, lead = (
                v[keep] for v in (idx, Ri, c1, g1, x, slow, slow_g, lead)
            )
            E_new, Rp_new, A_new = E_new[keep], Rp_new[keep], A_new[keep]
        prev = (E_new, Rp_new, A_new) if t >= 2 else None
        E, Rp, A = E_new, Rp_new, A_new
        t += 1
    return done.reshape(shape)


def _ring_tail(E, Rp, A, pE, pR, pA, c1, g1, x, slow, slow_g, R, t):
    """``ring_recurrence``'s loop for one ring from step t (state E, Rp, A; the previous step's pE, pR,
    pA), in Python floats: the same operations in the same order, so the same end to the last bit.  Only
    for rings the max-plus power does not take (a slowdown other than 1).  A ring here often runs hundreds
    of middle steps: ``_stretched_end1`` is written out inline for them, and ``max(a, b)`` / ``min(a, b)``
    as ``b if b > a else a`` / ``b if b < a else a`` (what the builtins return, NaN included)."""
    tol = PERIODIC_TOL
    while t < R - 1:  # a middle step: its transfer runs during [G, G + x)
        start = Rp if Rp > E else E
        G = A if A > Rp else Rp
        Rt = G + x
        # A_new = _stretched_end1(start, c1, G, Rt, slow)
        t2 = G if G > start else start
        before = G - start
        before = 0.0 if 0.0 > before else before
        before = before if before < c1 else c1
        rem = c1 - before
        if rem <= 0:
            A_new = start + before
        else:
            win = Rt - t2
            win = 0.0 if 0.0 > win else win
            A_new = t2 + rem * slow if rem * slow <= win else t2 + win + (rem - win / slow)
        # E_new = _stretched_end1(A_new, g1, G, Rt, slow_g)
        t2 = G if G > A_new else A_new
        before = G - A_new
        before = 0.0 if 0.0 > before else before
        before = before if before < g1 else g1
        rem = g1 - before
        if rem <= 0:
            E_new = A_new + before
        else:
            win = Rt - t2
            win = 0.0 if 0.0 > win else win
            E_new = t2 + rem * slow_g if rem * slow_g <= win else t2 + win + (rem - win / slow_g)
        dE, dR, dA = E_new - pE, Rt - pR, A_new - pA
        e1, e2 = abs(dR - dE), abs(dA - dE)
        if R - 2 > t and (e2 if e2 > e1 else e1) <= tol * abs(dE):
            k = R - 2 - t
            Ej, Rj = E_new + k * dE, Rt + k * dR
            return ((Rj if Rj > Ej else Ej) + c1) + g1
        pE, pR, pA = E, Rp, A = E_new, Rt, A_new
        t += 1
    # the last step: no transfer beside it (an empty window)
    A_new = _stretched_end1(max(E, Rp), c1, 0.0, 0.0, slow)
    return _stretched_end1(A_new, g1, 0.0, 0.0, slow_g)


def _ring_scalar(c0, g0, c1, g1, x, xf, slow, slow_g, R):
    """``ring_recurrence_loop`` of one ring, step by step in Python floats (the same operations)."""
    E = Rp = Ap = 0.0
    for t in range(R):
        c, g = (c0, g0) if t == 0 else (c1, g1)
        G = 0.0 if t == 0 else (max(Rp, Ap) if t >= 2 else Rp)
        Rt = G + (xf if t == 0 else x)
        lo, hi = (G, Rt) if t < R - 1 else (0.0, 0.0)
        A = _stretched_end1(max(E, Rp) if t else E, c, lo, hi, slow)
        E = _stretched_end1(A, g, lo, hi, slow_g)
        if t < R - 1:
            Rp = Rt
        Ap = A
    return E


def _ring_scalar_gated(c0, g0, c1, g1, x, xf, slow, slow_g, lead, R):
    """``ring_recurrence_gated`` of one ring in Python floats: the same operations in the same order,
    its periodic jump included (the one-point predict's copy, ``costmodel/predict_fast.py``)."""
    has_x = R > 1
    X0 = max(c0 - lead, 0.0) if has_x else 0.0
    lo0, hi0 = (X0, X0 + xf) if has_x else (0.0, 0.0)
    A = _stretched_end1(0.0, c0, lo0, hi0, slow)
    E = _stretched_end1(A, g0, lo0, hi0, slow_g)
    Rp = X0 + xf if has_x else 0.0
    if not has_x:
        return E
    prev = None
    t = 1
    while True:
        has_x = t < R - 1
        start = max(E, Rp)
        G = max(Rp, A) if t >= 2 else Rp
        X = start + max(c1 - lead, 0.0) if (has_x and G >= start) else G
        lo, hi = (X, X + x) if has_x else (0.0, 0.0)
        A_new = _stretched_end1(start, c1, lo, hi, slow)
        E_new = _stretched_end1(A_new, g1, lo, hi, slow_g)
        if not has_x:
            return E_new
        Rp_new = X + x
        if t >= 3:
            dE, dR, dA = E_new - prev[0], Rp_new - prev[1], A_new - prev[2]
            if R - 2 > t and max(abs(dR - dE), abs(dA - dE)) <= PERIODIC_TOL * abs(dE):
                k = R - 2 - t
                return (max(E_new + k * dE, Rp_new + k * dR) + c1) + g1
        prev = (E_new, Rp_new, A_new) if t >= 2 else None
        E, Rp, A = E_new, Rp_new, A_new
        t += 1


def _mp(a, b):
    """Max-plus product of 3x3 matrices of arrays (lists of rows)."""
    return [
        [np.maximum(np.maximum(a[i][0] + b[0][j], a[i][1] + b[1][j]), a[i][2] + b[2][j]) for j in range(3)]
        for i in range(3)
    ]


def _ring_power(E, A, Rr, cs, gs, x, c1, g1, n):
    """End of the ring from the state (E, A, R) after a middle step: n more middle steps (the max-plus
    map F of ``ring_recurrence``, raised to the n-th power by squaring), then the last step."""
    ninf = np.full(E.shape, -np.inf)
    cg = cs + gs
    P = [[cg, ninf, cg], [cs, ninf, cs], [ninf, x, x]]  # rows and columns: E, A, R
    v = [E, A, Rr]
    n = np.asarray(n, dtype=np.int64)
    while n.any():
        bit = (n & 1).astype(bool)
        if bit.any():
            w = [np.maximum(np.maximum(P[i][0] + v[0], P[i][1] + v[1]), P[i][2] + v[2]) for i in range(3)]
            v = [np.where(bit, w[i], v[i]) for i in range(3)]
        n = n >> 1
        if n.any():
            P = _mp(P, P)
    return (np.maximum(v[0], v[2]) + c1) + g1


def ring_recurrence_loop(c0, g0, c1, g1, x, R, slowdown, x_first=None, slowdown_g=None, gate_lead=None):
    """``ring_recurrence`` step by step over every point up to max(R): the reference it is tested against
    (``gate_lead``: ``ring_recurrence_gated``'s rule)."""
    shape = np.broadcast(c0, g0, c1, g1, x, R).shape
    R = np.broadcast_to(R, shape)
    xf = x if x_first is None else x_first
    E = np.zeros(shape)  # compute stream free
    Rprev = np.zeros(shape)  # previous transfer done (R_{t-1})
    Aprev = np.zeros(shape)  # previous attention end (A_{t-1})
    done = np.zeros(shape)
    for t in range(int(np.max(R))):
        live = t < R
        has_x = t < R - 1
        c = c0 if t == 0 else c1
        g = g0 if t == 0 else g1
        if t == 0:
            G = np.zeros(shape)
        else:
            G = np.maximum(Rprev, Aprev) if t >= 2 else Rprev
        start = np.maximum(E, Rprev) if t else E
        if gate_lead is not None:  # ready as or while the step's attention runs: its last wave
            G = np.where(has_x & (G >= start), start + np.maximum(c - gate_lead, 0.0), G)
        Rt = G + (xf if t == 0 else x)
        lo, hi = np.where(has_x, G, 0.0), np.where(has_x, Rt, 0.0)  # no transfer: an empty window
        A = stretched_end(start, c, lo, hi, slowdown)
        E_new = stretched_end(A, g, lo, hi, slowdown if slowdown_g is None else slowdown_g)
        Aprev = np.where(live, A, Aprev)
        Rprev = np.where(has_x, Rt, Rprev)
        E = np.where(live, E_new, E)
        done = np.where(live, E_new, done)
    return done
