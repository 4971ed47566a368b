"""Building blocks of the closed forms (``analytic.py`` and each strategy's ``closed_form``), numpy-vectorised.

* ``Acc`` accumulates one rank's device time on the critical path (compute- and memory-bound kernel
  time, FLOPs, HBM bytes) and the host's time to issue those ops;
* ``comm`` is the uncontended time of one call on NVLink or InfiniBand, chosen per point;
* ``ring_recurrence`` is the max-plus recurrence of a double-buffered ring.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels, layers as Lr
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


class Acc:
    """Accumulates a rank's device time (compute- and memory-bound) and the host time to issue it."""

    def __init__(self, hw: Hardware, kernel: str, shape):
        self.hw, self.kernel = hw, kernel
        z = np.zeros(shape)
        self.compute, self.memory = z.copy(), z.copy()
        self.flops, self.hbm = z.copy(), z.copy()
        self.host = z.copy()  # host time to issue the ops added (compute and comm)
        self.kernel_mask = np.zeros(shape, dtype=int)  # kernels used: bits over hw.attn_names(kernel)

    def parts(self, w: Work):
        """(device time, compute-bound?) of one run of w."""
        hw = self.hw
        t = Lr.work_time(hw, w, self.kernel)
        # compute-bound by the roofline's ridge point: arithmetic intensity above peak FLOP/s per byte/s
        ridge = hw.peak_flops / hw.hbm_bw_Bps
        fl = np.asarray(w.flops, dtype=float)
        cb = fl >= ridge * np.asarray(w.hbm_bytes, dtype=float)
        return np.asarray(t, dtype=float), cb & (fl > 0)

    def time(self, w: Work):
        """Device time of one run of w."""
        return self.parts(w)[0]

    def issue_comm(self, count):
        """Host time of ``count`` communication calls (the profile's ``comm`` issue time)."""
        self.host = self.host + np.asarray(count, dtype=float) * self.hw.op("comm").issue_s

    def add(self, w: Work, count=1.0, scale=1.0):
        """Add ``count`` runs of w to the path (its time multiplied by ``scale``); returns one run's time."""
        t, cb = self.parts(w)
        self.note_kernel(w, np.asarray(count) > 0)
        self.compute = self.compute + count * scale * np.where(cb, t, 0.0)
        self.memory = self.memory + count * scale * np.where(cb, 0.0, t)
        self.host = self.host + count * self.hw.op(w.role.op_class).issue_s
        self.flops = self.flops + count * np.asarray(w.flops, dtype=float)
        self.hbm = self.hbm + count * np.asarray(w.hbm_bytes, dtype=float)
        return t * scale

    def note_kernel(self, w: Work, where=True) -> None:
        """Record the attention kernel w runs on (where ``where``): a call the rank makes whose time is
        not on the path (a ring step's faster calls) still names its kernel."""
        if w.kind != OpKind.ATTN:
            return
        bit = 1 << kernels.attn_choice(self.hw, w.flops, w.hbm_bytes, w.kv_len, w.causal, w.q_len)[1] \
            if self.kernel == "auto" else 1
        self.kernel_mask = self.kernel_mask | np.where(where, bit, 0)

    @property
    def kernels_used(self):
        """Per point: the attention kernels the added calls ran on ('flash', 'cudnn+flash', ...)."""
        return kernels.kernels_label(self.hw, self.kernel, self.kernel_mask)

    @property
    def busy(self):
        return self.compute + self.memory


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
        """True where a group spanning ``span`` consecutive GPUs leaves a node of an ib topology."""
        if self.st.topo_kind != "ib":
            return np.zeros(np.shape(span), dtype=bool)
        return np.asarray(span) > self.st.gpus_per_node

    def comm(self, is_ib, coll: str, msg, group):
        """Uncontended time of one call, on IB where ``is_ib`` and NVLink elsewhere."""
        t_nv = kernels.comm_time(self.hw, "nvlink", coll, msg, group)
        t_ib = kernels.comm_time(self.hw, "ib", coll, msg, group)
        return np.where(is_ib, t_ib, t_nv)

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

    def masked(self, on) -> "AttnCost":
        return AttnCost(*(np.where(on, v, 0.0) for v in (self.exposed_s, self.xfer_s, self.sent_nvlink,
                                                          self.sent_ib)))

    def __add__(self, o: "AttnCost") -> "AttnCost":
        return AttnCost(self.exposed_s + o.exposed_s, self.xfer_s + o.xfer_s, self.sent_nvlink + o.sent_nvlink,
                        self.sent_ib + o.sent_ib)


def split_links(is_ib, sent) -> tuple:
    """(NVLink bytes, IB bytes) of ``sent``: each transfer's bytes counted once, on the link it crosses.
    Per-device totals are those of the busiest rank: where a group crosses InfiniBand, the rank at the node
    boundary, whose sends of that group all go over IB (the others' go over NVLink and are no more)."""
    return np.where(is_ib, 0.0, sent), np.where(is_ib, sent, 0.0)


def ring_recurrence(c0, g0, c1, g1, x, R, slowdown, x_first=None):
    """End time of a pass-KV ring of R steps (from the moment the local block is ready).

    Step 0 computes c0 then g0, steps >= 1 compute c1 then g1; each of the first R-1 steps moves a
    block of x seconds.  Step t's transfer starts when the previous one is done and the buffer it
    overwrites has been read; step t's attention starts when its block has arrived and the previous
    step's merge is done; compute beside a transfer is ``slowdown`` times slower.  Vectorised; loops
    over steps up to max(R).
    """
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
        s = np.where(has_x, slowdown, 1.0)
        c = (c0 if t == 0 else c1) * s
        g = (g0 if t == 0 else g1) * s
        start = np.maximum(E, Rprev) if t else E
        A = start + c
        E_new = A + g
        if t == 0:
            G = np.zeros(shape)
        else:
            G = np.maximum(Rprev, Aprev) if t >= 2 else Rprev
        Rt = G + (xf if t == 0 else x)
        Aprev = np.where(live, A, Aprev)
        Rprev = np.where(has_x, Rt, Rprev)
        E = np.where(live, E_new, E)
        done = np.where(live, E_new, done)
    return done
