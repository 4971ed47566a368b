"""Specs: hardware profile, model and workload, as frozen keyword-only dataclasses.

Each is validated on construction (``SpecError`` naming the field, the value and the valid range)
and can be built from a TOML preset (``costmodel.presets``), whose units are converted once, at load.
Topology and plan live in ``topology.py`` and ``plan.py``.
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import SpecError, check

# Largest models people serve have under 200 layers (Llama 3.1 405B: 126); 1,024 leaves room and bounds the
# simulator's and executor's work.  Multi-token decode keeps each step's figures: a million steps at most.
MAX_LAYERS = 1024
MAX_DIM = 1 << 24  # a model's widths (d_model, heads, head_dim, d_ff, vocab): 16.7M, ~1000x today's
MAX_GEN_TOKENS = 1 << 20


class Phase(enum.StrEnum):
    PREFILL = "prefill"
    DECODE = "decode"


class MlpKind(enum.StrEnum):
    GELU = "gelu"
    SWIGLU = "swiglu"


class Fp8(enum.StrEnum):
    """Which GEMMs run in FP8 (e4m3 inputs, per-row activation and per-output-channel weight scales)."""

    NONE = "none"
    FFN = "ffn"  # the MLP's GEMMs (up/gate and down)
    LINEAR = "linear"  # every linear layer of a block: QKV, O, MLP (an LM head stays BF16)


class KvDtype(enum.StrEnum):
    """How the KV cache is stored and sent (attention runs in BF16: FP8 K/V are dequantised on load)."""

    BF16 = "bf16"
    FP8 = "fp8"


# the GEMM roles (costmodel.schedule.Role values) each FP8 choice runs in FP8
FP8_ROLES = {
    Fp8.NONE: frozenset(),
    Fp8.FFN: frozenset({"mlp_up", "mlp_down"}),
    Fp8.LINEAR: frozenset({"qkv", "o_proj", "mlp_up", "mlp_down"}),
}


class AttnKernel(enum.StrEnum):
    AUTO = "auto"  # call by call, the fastest kernel the profile has for that shape
    FLASH = "flash"
    CUDNN = "cudnn"


class Link(enum.StrEnum):
    NVLINK = "nvlink"
    IB = "ib"


class Collective(enum.StrEnum):
    P2P = "p2p"
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"  # calibrated and kept in profiles; no strategy emits it yet
    ALL_TO_ALL = "all_to_all"


# what the strategies emit: every profile must have figures for these on every link type
USED_COLLECTIVES = (Collective.P2P, Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.ALL_TO_ALL)


def _int(v) -> bool:
    """An integer that is not a boolean (TOML ``true`` is not a layer count)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _number(v) -> bool:
    """An int or float that is not a boolean."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _finite(v) -> bool:
    """A number that is neither infinite nor NaN (non-numbers are left to the caller's other checks)."""
    try:
        return math.isfinite(v)
    except TypeError:
        return False


# ----------------------------------------------------------------------------------------------
# Hardware profile
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Curve:
    """A measured curve y(x), piecewise linear in log2(x), flat beyond its ends."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    name: str = "curve"

    def __post_init__(self) -> None:
        check(
            len(self.x) == len(self.y) and len(self.x) >= 1,
            f"{self.name}",
            (len(self.x), len(self.y)),
            "x and y must be non-empty lists of the same length",
        )
        check(
            all(_finite(v) and v > 0 for v in self.x),
            f"{self.name}.x",
            self.x,
            "all points must be finite and > 0",
        )
        check(
            all(b > a for a, b in zip(self.x, self.x[1:])), f"{self.name}.x", self.x, "must increase strictly"
        )
        check(
            all(_finite(v) and v > 0 for v in self.y),
            f"{self.name}.y",
            self.y,
            "all values must be finite and > 0",
        )

    def __call__(self, x):  # numpy-vectorised
        lx, y = self._points
        return np.interp(np.log2(np.maximum(x, 1e-30)), lx, y)

    @functools.cached_property
    def _points(self) -> tuple[np.ndarray, np.ndarray]:
        """(log2 x, y) as arrays, made once (the curve is asked at every kernel of every evaluation)."""
        return np.log2(np.asarray(self.x, dtype=float)), np.asarray(self.y, dtype=float)


@dataclass(frozen=True, kw_only=True)
class CommFigures:
    """Achievable alpha-beta figures of one link type for one primitive.

    A transfer of n bytes over a group of g ranks costs
    ``latency_s + steps(g) * hop_latency_s + volume(n, g) / bw(n)`` where steps and volume are those
    of NCCL's ring algorithm (see ``kernels.py``).  ``bw`` is the bus bandwidth that nccl-tests
    reports (for p2p: the one-way bandwidth of one pair): ``bw_Bps``, or the measured curve by message
    size when the profile has one.
    """

    latency_s: float
    hop_latency_s: float = 0.0
    bw_Bps: float
    bw_curve: Curve | None = None  # measured bus bandwidth by message bytes (NCCL's protocols and chunking
    #                               reach full bandwidth only for large messages); flat beyond its ends
    by_group: Mapping[int, CommFigures] = field(default_factory=dict)  # figures measured in larger groups:
    #   a group of g ranks uses those of the largest measured size <= g (these figures below the smallest)

    def at(self, group: int) -> CommFigures:
        """The figures for a group of ``group`` ranks (scalar)."""
        best = self
        for g in sorted(self.by_group):
            if group >= g:
                best = self.by_group[g]
        return best

    def bw(self, msg_bytes):
        """Bus bandwidth for a message of ``msg_bytes`` (numpy-vectorised)."""
        return self.bw_Bps if self.bw_curve is None else self.bw_curve(msg_bytes)

    def __post_init__(self) -> None:
        check(
            0 <= self.latency_s < 1e-2,
            "latency_us",
            self.latency_s * 1e6,
            "must be in [0, 10000) microseconds",
        )
        check(
            0 <= self.hop_latency_s < 1e-3,
            "hop_latency_us",
            self.hop_latency_s * 1e6,
            "must be in [0, 1000) microseconds",
        )
        check(
            _finite(self.bw_Bps) and self.bw_Bps > 0,
            "bw_GBps",
            self.bw_Bps / 1e9,
            "must be a finite number > 0",
        )


@dataclass(frozen=True, kw_only=True)
class DecodeAttnModel:
    """Decode attention (one query per sequence against a cache) as physics (issue 12).  The kernel reads
    ``bytes`` of K/V after a fixed floor per call, in waves of thread blocks:

        t = floor_s + max(sum over waves (bytes of the wave x spb(occupancy of the wave)) x items factor,
                          query-head FLOPs / flops) [+ expansion]

    A work item is one thread block: one sequence and head the kernel reads, the keys split into pieces of
    ``split_keys`` only as far as that fills one wave (the split-KV rule of FlashAttention-2's
    ``num_splits_heuristic``: split while the SMs' slots would stay idle).  A wave is ``sms`` x
    ``ctas_per_sm`` items; a call of more items runs full waves and a partial last one (wave
    quantization).  A wave's occupancy is its items per SM: few leave SMs idle, several share one.
    The query heads' work (4 B H S D FLOPs: grouped query heads add work per byte read) at ``flops``
    FLOP/s overlaps the reads: a call takes the longer of the two (measured: 8, 32 and 64 query heads over
    8 KV heads read in the same time; an additive term had made 64 of them 5% slow).  ``spb`` (seconds
    per byte) is a curve over occupancy, piecewise linear in
    log2 of occupancy, flat
    beyond its ends, written as bandwidths (``bw_Bps``).  ``kv_expanded``: the implementation expands
    grouped K/V to the query heads before the kernel (this repository's executor, ``repeat_interleave``):
    a gather of Hk heads into H plus ``expand_floor_s``, then the kernel reads H heads.  The gather writes
    H heads and reads its source once per copy from the strided cache view (2 g x the cache bytes at
    ``expand_bw_Bps``, g = H / Hk), or once when that view is contiguous (Hk = 1: (1 + g) x the cache
    bytes at ``expand_contig_bw_Bps``); otherwise (a fused GQA kernel) each KV head is read once for its
    query heads.  Fitted from a grid over heads, KV heads, batch and context
    (``validation.calibrate.fit_decode_model``)."""

    floor_s: float
    occupancy: tuple[float, ...]
    bw_Bps: tuple[float, ...]
    split_keys: float
    sms: int = 132
    ctas_per_sm: int = 1
    flops: float = 0.0  # FLOP/s of the query heads' work (4 B H S D), overlapping the reads; 0: none
    kv_expanded: bool = False
    expand_bw_Bps: float = 1e12
    expand_contig_bw_Bps: float = 1e12
    expand_floor_s: float = 0.0
    # measured correction of the read time by work items (sequences x heads read): the kernel's own split
    # and wave rule (cuDNN's is not published) makes counts off the powers of two 5-16% slower than the
    # wave model gives; the median ratio at each count measured, piecewise linear in log2, flat beyond
    items: tuple[float, ...] = ()
    items_factor: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.items or self.items_factor:
            Curve(x=tuple(self.items), y=tuple(self.items_factor), name="decode_items/decode_items_factor")
            check(
                all(0.5 <= f <= 2.0 for f in self.items_factor),
                "decode_items_factor",
                list(self.items_factor),
                "must be ratios in [0.5, 2]",
            )
        check(
            0 <= self.floor_s < 1e-3,
            "decode_floor_us",
            self.floor_s * 1e6,
            "must be in [0, 1000) microseconds",
        )
        Curve(x=tuple(self.occupancy), y=tuple(self.bw_Bps), name="decode_occupancy/decode_occupancy_TBps")
        check(
            _finite(self.split_keys) and self.split_keys >= 1,
            "decode_split_keys",
            self.split_keys,
            "must be a finite number >= 1 (keys per split piece; a large number: no split)",
        )
        check(
            isinstance(self.sms, int) and 1 <= self.sms <= 1024,
            "decode_sms",
            self.sms,
            "must be an integer in [1, 1024]",
        )
        check(
            _finite(self.flops) and self.flops >= 0,
            "decode_TFLOPs",
            self.flops / 1e12,
            "must be >= 0 (0: none)",
        )
        check(
            isinstance(self.ctas_per_sm, int) and 1 <= self.ctas_per_sm <= 32,
            "decode_ctas_per_sm",
            self.ctas_per_sm,
            "must be an integer in [1, 32]",
        )
        check(
            isinstance(self.kv_expanded, bool),
            "decode_kv_expanded",
            self.kv_expanded,
            "must be true or false",
        )
        check(
            _finite(self.expand_bw_Bps) and self.expand_bw_Bps > 0,
            "decode_expand_TBps",
            self.expand_bw_Bps / 1e12,
            "must be a finite number > 0",
        )
        check(
            _finite(self.expand_contig_bw_Bps) and self.expand_contig_bw_Bps > 0,
            "decode_expand_contig_TBps",
            self.expand_contig_bw_Bps / 1e12,
            "must be a finite number > 0",
        )
        check(
            0 <= self.expand_floor_s < 1e-3,
            "decode_expand_floor_us",
            self.expand_floor_s * 1e6,
            "must be in [0, 1000) microseconds",
        )

    def items_of(self, items, keys):
        """Thread blocks of calls with ``items`` (sequence, head) pairs over ``keys`` keys each."""
        items = np.asarray(items, dtype=float)
        split = items * np.maximum(1.0, np.asarray(keys, dtype=float) / self.split_keys)
        return np.maximum(items, np.minimum(split, self.sms * self.ctas_per_sm))

    def occupancy_of(self, items, keys):
        """Thread blocks per SM of calls with ``items`` (sequence, head) pairs over ``keys`` keys each."""
        return self.items_of(items, keys) / self.sms

    def sec_per_byte(self, occ):
        x = np.log2(np.maximum(np.asarray(occ, dtype=float), 1e-30))
        return np.interp(x, np.log2(self.occupancy), 1.0 / np.asarray(self.bw_Bps))

    def kernel_seconds(self, read, blocks):
        """Seconds (beyond the floor) to read ``read`` bytes in ``blocks`` thread blocks: full waves,
        then the partial last one."""
        slots = float(self.sms * self.ctas_per_sm)
        blocks = np.maximum(np.asarray(blocks, dtype=float), 1.0)
        full = np.floor(blocks / slots)
        tail = blocks - full * slots
        per_block = np.asarray(read, dtype=float) / blocks
        return per_block * (
            full * slots * self.sec_per_byte(slots / self.sms) + tail * self.sec_per_byte(tail / self.sms)
        )

    def time(self, batch, heads, kv_heads, kv_len, head_dim, dtype_bytes=2):
        """Device seconds of one decode call (numpy-vectorised)."""
        b, h, hk = (np.asarray(v, dtype=float) for v in (batch, heads, kv_heads))
        keys = np.maximum(np.asarray(kv_len, dtype=float), 1.0)
        cache = 2.0 * b * keys * hk * head_dim * dtype_bytes  # K and V, read once
        if self.kv_expanded:
            g = h / np.maximum(hk, 1.0)
            read, seen = cache * np.maximum(g, 1.0), h
            copy = np.where(
                hk > 1, 2 * g * cache / self.expand_bw_Bps, (1 + g) * cache / self.expand_contig_bw_Bps
            )
            extra = np.where(g > 1, self.expand_floor_s + copy, 0.0)
        else:
            read, seen, extra = cache, hk, 0.0
        compute = 4.0 * b * h * keys * head_dim / self.flops if self.flops else 0.0
        kern = self.kernel_seconds(read, self.items_of(b * seen, keys))
        if self.items:
            kern = kern * self.factor_of(b * seen)
        # the query heads' math runs under the reads (the kernel pipelines its loads): the longer of the two
        return self.floor_s + np.maximum(kern, compute) + extra

    def factor_of(self, items):
        """The measured read-time factor at ``items`` work items (1 where none was fitted)."""
        if not self.items:
            return np.ones_like(np.asarray(items, dtype=float))
        x = np.log2(np.maximum(np.asarray(items, dtype=float), 1.0))
        return np.interp(x, *self._items_points)

    @functools.cached_property
    def _items_points(self) -> tuple[np.ndarray, np.ndarray]:
        return np.log2(np.asarray(self.items, dtype=float)), np.asarray(self.items_factor, dtype=float)


@dataclass(frozen=True, kw_only=True)
class AttnFigures:
    """Attention kernel throughput (FLOP/s actually performed) by key length, masked and unmasked."""

    causal: Curve
    full: Curve
    decode_bw: Curve | None = None  # bytes/s by bytes read, for one query against a cache (optional)
    decode: DecodeAttnModel | None = None  # decode by heads, KV heads, batch, context (preferred when given)


@dataclass(frozen=True, kw_only=True)
class OpFigures:
    """How one implementation runs one class of op (norm, rope, merge, gemm, ...), as measured.

    ``bytes_factor``: device time over the time of the ideal (fused) HBM traffic the recipe counts
    (1.0 = one fused kernel; an eager chain of FP32 kernels is several times that).
    ``issue_s``: host time to issue the op (Python, dispatch, every kernel launch it makes): the op
    cannot finish sooner, so it is the floor of short ops (decode) when the host issues op by op.
    ``floor_s``: device time of the op at its smallest shape (the fixed cost of each kernel it runs,
    as seen when a CUDA graph replays it with no host in the way): its device time is at least this.
    ``floor_rows`` / ``floor_rows_factor``: how that fixed cost grows with the rows (tokens) of a call, as
    measured (the floor at so many rows over the floor at one; piecewise linear in log2 of the rows, flat
    beyond the knots): a row-wise reduction of 32 rows is not the cost of one.  None given: the same
    floor at every row count.
    """

    bytes_factor: float = 1.0
    issue_s: float
    floor_s: float = 0.0
    floor_rows: tuple[float, ...] = ()
    floor_rows_factor: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check(0.1 <= self.bytes_factor <= 100, "ops.bytes_factor", self.bytes_factor, "must be in [0.1, 100]")
        check(0 <= self.issue_s < 1.0, "ops.issue_us", self.issue_s * 1e6, "must be in [0, 1e6) microseconds")
        check(
            0 <= self.floor_s < 1e-2, "ops.floor_us", self.floor_s * 1e6, "must be in [0, 10000) microseconds"
        )
        if self.floor_rows or self.floor_rows_factor:
            Curve(x=tuple(self.floor_rows), y=tuple(self.floor_rows_factor), name="ops.floor_rows")
            check(
                self.floor_rows[0] == 1 and self.floor_rows_factor[0] == 1,
                "ops.floor_rows",
                (self.floor_rows[0], self.floor_rows_factor[0]),
                "must start at 1 row with factor 1 (the floor itself is the floor at one row)",
            )
            check(
                all(0.5 <= f <= 10.0 for f in self.floor_rows_factor),
                "ops.floor_rows_factor",
                list(self.floor_rows_factor),
                "must be numbers in [0.5, 10] (the floor at so many rows over the floor at one)",
            )

    def floor_at(self, rows=None):
        """The op's floor (seconds) at ``rows`` rows a call (numpy-vectorised; None or 0: one row)."""
        if not self.floor_rows or rows is None or not self.floor_s:
            return self.floor_s
        return self.floor_s * self._rows_curve(np.asarray(rows, dtype=float))

    @functools.cached_property
    def _rows_curve(self) -> Curve:
        return Curve(x=tuple(self.floor_rows), y=tuple(self.floor_rows_factor), name="ops.floor_rows")


OP_CLASSES = ("norm", "rope", "residual", "act", "merge", "init", "finalize", "gemm", "attention", "comm")


GATE_KINDS = ("attention", "gemm", "elementwise", "lse_merge")  # compute op kinds (schedule.OpKind values)


@dataclass(frozen=True, kw_only=True)
class Hardware:
    name: str
    # datasheet peaks
    peak_flops: float  # dense BF16 FLOP/s
    peak_fp8_flops: float = 0.0  # dense FP8 FLOP/s (0: not given: FP8 GEMMs then assume 2 x peak_flops)
    hbm_bw_Bps: float
    hbm_capacity_bytes: float
    nvlink_bw_Bps: float  # per GPU, per direction, all links
    nic_bw_Bps: float  # per GPU, per direction (one NIC per GPU)
    # achievable
    gemm_efficiency: Curve  # fraction of peak_flops by GEMM rows (tokens) or by FLOPs per call
    gemm_efficiency_by: str = "tokens"  # "tokens" | "flops": the x axis of gemm_efficiency
    # FP8 GEMMs (torch._scaled_mm, e4m3, row-wise scales): efficiency over the FP8 peak by FLOPs per call
    # (None: not calibrated; FP8 GEMMs then use gemm_efficiency at the FP8 peak, an estimate)
    gemm_fp8_efficiency: Curve | None = None
    # a GEMM of few rows streams its weights: bytes/s by weight bytes per call, measured at <= 64 rows
    # (the shape's tiles over N and K decide how much of HBM it reaches; None: the elementwise bandwidth)
    gemm_stream_bw: Curve | None = None
    gemm_fp8_stream_bw: Curve | None = None
    # quantising an activation to FP8 (amax per row, scale, cast): device time over the ideal traffic
    # (read BF16, write FP8 and one FP32 scale per row) at elementwise_bw, and the op's floor
    fp8_quant_bytes_factor: float = 1.0
    fp8_quant_floor_s: float = 0.0
    attention: Mapping[str, AttnFigures]  # by kernel name
    elementwise_bw_Bps: float
    launch_s: float
    comm: Mapping[str, Mapping[str, CommFigures]]  # link -> collective -> figures
    compute_slowdown_under_comm: float  # compute time multiplier while NCCL kernels run beside it
    attention_slowdown_under_comm: float = 1.0  # the same for attention kernels (measured beside the ring's
    #                                             K/V exchange: benchmarks/bench_ring_causes.py)
    # The kernel-boundary gate (issue 12): kernels of these op kinds hold every SM until their last wave,
    # so a communication op (its NCCL kernel) that becomes ready while one runs on its GPU, or as one
    # starts, begins only when that kernel has ``comm_gate_lead_s`` of its work left (its last wave frees
    # SMs); a send/recv or collective then moves its data once every member has begun.  Attention gates
    # only as a prefill call (more than one query row); () = no gate (communication starts when ready).
    comm_gate_kinds: tuple[str, ...] = ()
    comm_gate_lead_s: float = 0.0
    # ulysses: elementwise passes (read and write) over an all-to-all's buffer that the implementation
    # makes to lay it out, for the Q/K/V all-to-all and the output's (ideal: 0, the all-to-all reads and
    # writes the tensors in place; the executor: counted from real/executor.py)
    a2a_copy_passes_qkv: float = 0.0
    a2a_copy_passes_o: float = 0.0
    # the gated activation (SwiGLU, silu(gate) x up): its time over the time the act class's figures give
    # its ideal fused traffic (read gate and up, write the product: 3 units of tokens x d_ff); the
    # executor's silu then multiply over strided halves (two non-vectorised kernels) measured
    # (benchmarks/bench_act_glu.py), else counted (5 units moved: 5/3)
    glu_act_traffic: float = 1.0
    # ... and its fixed cost per call (the class floor) over the ungated activation's: two kernels for one
    glu_act_floor_ratio: float = 1.0
    workspace_bytes: float  # CUDA context, cuBLAS/NCCL workspaces, allocator slack
    ops: Mapping[str, OpFigures] = field(default_factory=dict)  # per op class; absent: ideal fused kernels
    pass_launch_s: float = 0.0  # before a forward pass's first kernel runs (a captured CUDA graph's launch)
    # on several ranks, the spread of the hosts' starts of a pass by the ranks in it (measured at 2 and 4):
    # the first rank to start waits at the first collective for the last
    start_skew: Curve | None = None
    provenance: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check(
            self.gemm_efficiency_by in ("tokens", "flops"),
            "achievable.gemm x axis",
            self.gemm_efficiency_by,
            "give either 'tokens' or 'flops' with 'efficiency'",
        )
        for f in (
            "peak_flops",
            "hbm_bw_Bps",
            "hbm_capacity_bytes",
            "nvlink_bw_Bps",
            "nic_bw_Bps",
            "elementwise_bw_Bps",
        ):
            v = getattr(self, f)
            check(_finite(v) and v > 0, f"hardware.{f}", v, "must be a finite number > 0")
        check(
            _finite(self.peak_fp8_flops) and self.peak_fp8_flops >= 0,
            "hardware.peak_fp8_flops",
            self.peak_fp8_flops,
            "must be a finite number >= 0 (0: not given)",
        )
        check(
            _finite(self.fp8_quant_bytes_factor) and 0.1 <= self.fp8_quant_bytes_factor <= 100,
            "achievable.fp8_quant.bytes_factor",
            self.fp8_quant_bytes_factor,
            "must be in [0.1, 100]",
        )
        check(
            0 <= self.fp8_quant_floor_s < 1e-2,
            "achievable.fp8_quant.floor_us",
            self.fp8_quant_floor_s * 1e6,
            "must be in [0, 10000) microseconds",
        )
        check(0 <= self.launch_s < 1e-3, "hardware.launch_s", self.launch_s, "must be in [0, 1 ms)")
        check(
            0 <= self.pass_launch_s < 1e-2,
            "achievable.pass_launch_us",
            self.pass_launch_s * 1e6,
            "must be in [0, 10000) microseconds",
        )
        if self.start_skew is not None:
            check(
                all(r >= 2 for r in self.start_skew.x) and all(0 <= v < 1e-2 for v in self.start_skew.y),
                "achievable.start_skew_ranks/start_skew_us",
                (list(self.start_skew.x), [v * 1e6 for v in self.start_skew.y]),
                "ranks must be 2 or more and skews in [0, 10000) microseconds",
            )
        check(
            1.0 <= self.compute_slowdown_under_comm < 3.0,
            "hardware.compute_slowdown_under_comm",
            self.compute_slowdown_under_comm,
            "must be in [1, 3)",
        )
        check(
            1.0 <= self.attention_slowdown_under_comm < 3.0,
            "hardware.attention_slowdown_under_comm",
            self.attention_slowdown_under_comm,
            "must be in [1, 3)",
        )
        check(
            isinstance(self.comm_gate_kinds, tuple)
            and all(k in GATE_KINDS for k in self.comm_gate_kinds)
            and len(set(self.comm_gate_kinds)) == len(self.comm_gate_kinds),
            "achievable.comm_gate_kinds",
            self.comm_gate_kinds,
            f"must be a list of distinct compute op kinds among {list(GATE_KINDS)}",
        )
        check(
            _finite(self.a2a_copy_passes_qkv) and 0 <= self.a2a_copy_passes_qkv <= 16,
            "achievable.a2a_copy_passes_qkv",
            self.a2a_copy_passes_qkv,
            "must be a number of passes in [0, 16]",
        )
        check(
            _finite(self.a2a_copy_passes_o) and 0 <= self.a2a_copy_passes_o <= 16,
            "achievable.a2a_copy_passes_o",
            self.a2a_copy_passes_o,
            "must be a number of passes in [0, 16]",
        )
        check(
            _finite(self.glu_act_traffic) and 0.5 <= self.glu_act_traffic <= 10,
            "achievable.glu_act_traffic",
            self.glu_act_traffic,
            "must be a ratio in [0.5, 10] (the gated activation's traffic over the ideal kernel's; 1: ideal)",
        )
        check(
            _finite(self.glu_act_floor_ratio) and 0.5 <= self.glu_act_floor_ratio <= 10,
            "achievable.glu_act_floor_ratio",
            self.glu_act_floor_ratio,
            "must be a ratio in [0.5, 10] (the gated activation's floor over the act class's; 1: ideal)",
        )
        check(
            _finite(self.comm_gate_lead_s) and 0 <= self.comm_gate_lead_s < 1e-2,
            "achievable.comm_gate_lead_us",
            self.comm_gate_lead_s * 1e6,
            "must be in [0, 10000) microseconds",
        )
        check(
            0 <= self.workspace_bytes < self.hbm_capacity_bytes,
            "hardware.workspace_bytes",
            self.workspace_bytes,
            "must be >= 0 and below the HBM capacity",
        )
        check(
            self.elementwise_bw_Bps <= self.hbm_bw_Bps * 1.05,
            "hardware.elementwise_bw",
            self.elementwise_bw_Bps,
            "cannot exceed the HBM bandwidth",
        )
        for k in self.ops:
            check(k in OP_CLASSES, "hardware.achievable.ops", k, f"op classes are {list(OP_CLASSES)}")

    def gates_comm(self, kind: str, q_rows: int = 2) -> bool:
        """Whether a compute kernel of op kind ``kind`` holds a communication op that becomes ready
        beside it (``comm_gate_kinds``); an attention call only with more than one query row (decode
        calls were not measured: a few CTAs per head, they do not fill the SMs at small batch)."""
        return kind in self.comm_gate_kinds and (kind != "attention" or q_rows > 1)
        check(
            len(self.attention) > 0, "hardware.attention", list(self.attention), "needs at least one kernel"
        )
        for link in Link:
            check(
                link.value in self.comm,
                "hardware.comm",
                sorted(self.comm),
                f"needs the link type {link.value!r}",
            )
            for c in USED_COLLECTIVES:
                check(
                    c.value in self.comm[link.value],
                    f"hardware.comm.{link.value}",
                    sorted(self.comm[link.value]),
                    f"needs figures for {c.value!r}",
                )

    @property
    def fp8_peak_flops(self) -> float:
        """Dense FP8 FLOP/s: the datasheet's, or (not given) twice the BF16 peak (Hopper and Blackwell)."""
        return self.peak_fp8_flops or 2.0 * self.peak_flops

    @property
    def fp8_calibrated(self) -> bool:
        return self.gemm_fp8_efficiency is not None

    def start_skew_s(self, n_ranks):
        """The spread of the hosts' starts of a pass over ``n_ranks`` ranks (numpy-vectorised; 0 at one
        rank or without a measured curve): piecewise linear in log2(ranks) through (1, 0) and the measured
        points, extrapolated beyond the largest group measured by its last step per doubling (the expected
        range of P independent start times grows less than that: the normal's is 1.13, 2.06, 2.85 and 3.53
        sigma at 2, 4, 8 and 16, so the rule errs long at large groups).  ``n_ranks`` counts every rank of
        the plan, pipeline stages included (an early stage waits for its input as a rank waits at a
        collective); measured for tp and ring groups on one node only."""
        n = np.maximum(np.asarray(n_ranks, dtype=float), 1.0)
        if self.start_skew is None:
            return np.zeros_like(n) if n.ndim else 0.0
        x = np.concatenate(([0.0], np.log2(np.asarray(self.start_skew.x, dtype=float))))
        y = np.concatenate(([0.0], np.asarray(self.start_skew.y, dtype=float)))
        lx = np.log2(n)
        slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
        return np.where(lx > x[-1], y[-1] + (lx - x[-1]) * slope, np.interp(lx, x, y))

    def pass_start_s(self, n_ranks):
        """Before a pass's first kernel runs on its last rank: the graph's launch, the hosts' start skew."""
        return self.pass_launch_s + self.start_skew_s(n_ranks)

    def op(self, cls: str) -> OpFigures:
        """Figures of an op class, or the ideal kernel (factor 1, launch cost) when not calibrated."""
        f = self.ops.get(cls)
        return f if f is not None else OpFigures(bytes_factor=1.0, issue_s=self.launch_s)

    def attn_names(self, kernel: str) -> list[str]:
        """The profile's kernels a choice stands for: all of them (sorted) for ``auto``, else that one."""
        if kernel == AttnKernel.AUTO:
            return sorted(self.attention)
        self.attn(kernel)
        return [kernel]

    def attn(self, kernel: str) -> AttnFigures:
        if kernel not in self.attention:
            raise SpecError(
                f"--attn-kernel {kernel!r} is not in profile {self.name}: valid are {sorted(self.attention)}"
            )
        return self.attention[kernel]


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Model:
    name: str = "custom"
    layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    mlp: MlpKind = MlpKind.GELU
    dtype_bytes: int = 2  # BF16 weights and activations
    accum_bytes: int = 4  # FP32 attention accumulation
    vocab: int = 0  # 0: no embedding / LM head counted (the seed's model gives none)
    # Fields of published models; they default so that older presets and Model(...) calls keep working.
    rope_theta: float = 0.0  # RoPE base frequency (0: not given); no cost
    tie_embeddings: bool = False  # the LM head shares the embedding matrix (HF tie_word_embeddings)
    qkv_bias: bool = False  # the Q, K and V projections have biases (Qwen2 family): params + one add
    lm_head: bool = True  # the last stage runs the LM head (final norm, logits) when vocab > 0; false:
    #                       a pass without it (executor records measured before it ran one)
    source: str = ""  # where the figures come from (URL, repository and path)
    # numerics of the deployment (flags --fp8 / --kv-dtype, or a preset of an FP8 checkpoint)
    fp8: Fp8 = Fp8.NONE  # GEMMs in FP8: none | ffn (MLP) | linear (QKV, O, MLP)
    kv_dtype: KvDtype = KvDtype.BF16  # KV cache stored and sent in BF16 or FP8

    def __post_init__(self) -> None:
        for f in ("layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff"):
            v = getattr(self, f)
            check(_int(v) and v >= 1, f"model.{f}", v, "must be a positive integer")
            # bounded sizes: products of them stay machine numbers (a 1e23 d_model overflowed an int64)
            check(v <= MAX_DIM, f"model.{f}", v, f"must be 1 to {MAX_DIM:,}")
        check(
            self.n_heads * self.head_dim <= MAX_DIM,
            "model.n_heads",
            self.n_heads,
            f"times head_dim={self.head_dim} must be at most {MAX_DIM:,} (the query width)",
        )
        # bounded work: the simulator walks every layer it cannot prove identical; the executor builds all
        check(self.layers <= MAX_LAYERS, "model.layers", self.layers, f"must be 1 to {MAX_LAYERS:,}")
        check(
            self.n_heads % self.n_kv_heads == 0,
            "model.n_kv_heads",
            self.n_kv_heads,
            f"must divide n_heads={self.n_heads}",
        )
        check(
            _int(self.dtype_bytes) and self.dtype_bytes in (1, 2, 4),
            "model.dtype_bytes",
            self.dtype_bytes,
            "must be 1, 2 or 4",
        )
        check(
            _int(self.accum_bytes) and self.accum_bytes in (2, 4),
            "model.accum_bytes",
            self.accum_bytes,
            "must be 2 or 4",
        )
        check(
            _int(self.vocab) and 0 <= self.vocab <= MAX_DIM,
            "model.vocab",
            self.vocab,
            f"must be an integer from 0 to {MAX_DIM:,}",
        )
        check(
            _number(self.rope_theta) and _finite(self.rope_theta) and self.rope_theta >= 0,
            "model.rope_theta",
            self.rope_theta,
            "must be a finite number >= 0 (0: not given)",
        )
        for f in ("tie_embeddings", "qkv_bias", "lm_head"):
            check(isinstance(getattr(self, f), bool), f"model.{f}", getattr(self, f), "must be true or false")
        check(isinstance(self.name, str), "model.name", self.name, "must be a string")
        check(isinstance(self.source, str), "model.source", self.source, "must be a string")
        for f, enum_ in (("fp8", Fp8), ("kv_dtype", KvDtype)):
            try:
                object.__setattr__(self, f, enum_(getattr(self, f)))
            except (ValueError, TypeError):
                raise SpecError(
                    f"model.{f}={getattr(self, f)!r} is not valid: choose one of {[m.value for m in enum_]}"
                ) from None
        try:
            object.__setattr__(self, "mlp", MlpKind(self.mlp))
        except (ValueError, TypeError):
            raise SpecError(
                f"model.mlp={self.mlp!r} is not valid: choose one of {[m.value for m in MlpKind]}"
            ) from None

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def kv_elem_bytes(self) -> int:
        """Bytes of one KV-cache element as stored and sent (FP8: 1, at a static scale: nothing per token)."""
        return 1 if self.kv_dtype == KvDtype.FP8 else self.dtype_bytes

    @property
    def fp8_roles(self) -> frozenset:
        """The GEMM roles that run in FP8 (``Role`` values: qkv, o_proj, mlp_up, mlp_down)."""
        return FP8_ROLES[self.fp8]

    @property
    def mlp_mats(self) -> int:
        return 3 if self.mlp == MlpKind.SWIGLU else 2

    @property
    def has_lm_head(self) -> bool:
        """Whether a pass ends with the LM head (final norm and logits): a vocabulary and ``lm_head``."""
        return self.lm_head and self.vocab > 0

    @property
    def qkv_bias_params(self) -> int:
        return (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0

    def params_per_layer(self) -> int:
        attn = self.d_model * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.d_model
        mlp = self.mlp_mats * self.d_model * self.d_ff
        norms = 2 * self.d_model
        return attn + mlp + norms + self.qkv_bias_params

    def params(self) -> int:
        """All parameters: layers, embedding and LM head (one matrix when tied), final norm."""
        head = (
            (1 if self.tie_embeddings else 2) * self.vocab * self.d_model + self.d_model if self.vocab else 0
        )
        return self.layers * self.params_per_layer() + head

    def lm_head_flops_per_token(self) -> int:
        """FLOPs of the LM head GEMM for one token's logits (0 without an LM head)."""
        return 2 * self.vocab * self.d_model if self.has_lm_head else 0

    def dense_flops_per_token(self) -> int:
        """Forward FLOPs per token of the GEMMs (2 per multiply-add), all layers and the LM head, no
        attention scores (prefill runs the LM head for its last token only: ``lm_head_flops_per_token``)."""
        gemm_params = self.params_per_layer() - 2 * self.d_model - self.qkv_bias_params
        return 2 * self.layers * gemm_params + self.lm_head_flops_per_token()

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes of one token over all layers."""
        return 2 * self.layers * self.kv_dim * self.kv_elem_bytes


def attention_flops(model: Model, batch, q_len, kv_len, causal: bool, layers=None):
    """FLOPs of attention scores and values (QK^T and PV) for a prefill of q_len over kv_len keys.

    Causal counts the exact lower triangle (q_len * (q_len + 1) / 2 pairs when q_len == kv_len).
    Vectorised over numpy inputs.
    """
    layers = model.layers if layers is None else layers
    q = np.asarray(q_len, dtype=float)
    kv = np.asarray(kv_len, dtype=float)
    pairs = (kv - q) * q + q * (q + 1) / 2 if causal else q * kv
    return 4.0 * batch * pairs * model.q_dim * layers


# ----------------------------------------------------------------------------------------------
# Workload
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Workload:
    batch: int
    seq_len: int  # prompt length (prefill)
    phase: Phase = Phase.PREFILL
    context_len: int = 0  # decode: tokens already in the KV cache (0: same as seq_len)
    gen_tokens: int = 1  # decode: tokens generated per sequence (TPOT averages over them)
    causal: bool = True
    cached_len: int = 0  # prefill: tokens per sequence already in the KV cache (partial prefill)

    def __post_init__(self) -> None:
        check(
            isinstance(self.batch, int) and self.batch >= 1,
            "--batch",
            self.batch,
            "must be a positive integer",
        )
        check(
            isinstance(self.seq_len, int) and self.seq_len >= 1,
            "--seq",
            self.seq_len,
            "must be a positive integer",
        )
        try:
            object.__setattr__(self, "phase", Phase(self.phase))
        except ValueError:
            raise SpecError(f"--phase {self.phase!r} is not valid: choose prefill or decode") from None
        check(self.context_len >= 0, "--context", self.context_len, "must be >= 0")
        check(
            1 <= self.gen_tokens <= MAX_GEN_TOKENS,
            "--gen-tokens",
            self.gen_tokens,
            f"must be 1 to {MAX_GEN_TOKENS:,} (every step's figures are kept)",
        )
        check(
            type(self.cached_len) is int and self.cached_len >= 0,
            "--cached",
            self.cached_len,
            "must be a count >= 0 (tokens per sequence already in the KV cache)",
        )
        if self.cached_len and self.phase == Phase.DECODE:
            raise SpecError(
                f"--cached {self.cached_len} applies to prefill only: a decode step's cache is --context"
            )

    @property
    def context(self) -> int:
        """Decode: KV-cache length the new token attends to (context_len, or seq_len if 0)."""
        return self.context_len or self.seq_len

    @property
    def tokens(self) -> int:
        """Tokens processed by the phase: B*L for prefill, B per decode step."""
        return self.batch * (self.seq_len if self.phase == Phase.PREFILL else 1)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
