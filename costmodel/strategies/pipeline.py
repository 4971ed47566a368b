"""Pipeline stages and micro-batches (the ``pp`` axis).

Stage s holds layers [s*L/S, (s+1)*L/S).  A rank runs its micro-batches one after another; between
stages, the activations of micro-batch j go to the next stage while the stage receives j + 1.
Closed form: (S + m - 1) t_stage + (S + m - 2) t_transfer (the bubble is (S - 1) stages).

With TP inside a stage (``pp_send=scatter``, the default, as Megatron does) each TP rank sends only its
1/tp slice of the (replicated) activations to its peer of the next stage, and that stage all-gathers the
slices over its TP group before its first layer: t_transfer = p2p(act/tp) + all-gather(act, tp).
``pp_send=full`` sends all of it from every TP rank (t_transfer = p2p(act)), kept for comparison.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..closedform import split_links
from ..errors import SpecError
from ..schedule import OpKind, Role
from ..specs import Collective
from . import lm_head


def rules(plan, model, wl, topo) -> None:
    if model.layers % plan.pp:
        raise SpecError(
            f"plan pp={plan.pp} does not divide layers={model.layers}; try pp in "
            f"{[d for d in range(1, model.layers + 1) if model.layers % d == 0]}"
        )
    if wl.batch % plan.microbatches:
        raise SpecError(f"--microbatches {plan.microbatches} does not divide --batch {wl.batch}")
    if plan.pp > 1 and plan.tp > 1 and plan.pp_send == "scatter" and model.d_model % plan.tp:
        raise SpecError(
            f"--pp-send scatter splits the activations tp={plan.tp} ways, which does not divide "
            f"d_model={model.d_model}; use --pp-send full"
        )


def length_multiple(plan, phase) -> int:
    return 1


def emit(b, prog, rank: int, layer_fn) -> None:
    """A rank's whole program: its stage's layers for every micro-batch, with the stage transfers."""
    plan = b.plan
    s = plan.coords(rank)["pp"]
    prev, nxt = plan.neighbour("pp", rank, -1), plan.neighbour("pp", rank, +1)
    geo = b.geo
    scatter = bool(geo.pp_scatter)
    msg = float(geo.pp_msg_bytes)
    got = "x@{}/part" if scatter else "x@{}"  # what the recv writes: a slice (then gathered) or all of it
    N = plan.chunks
    m = plan.microbatches * N  # units: micro-batch j = u // N, chunk c = u % N (chunked prefill)
    lps = b.layers_per_stage
    if prev is not None:
        prog.sendrecv(Role.PP_ACT, "pp/mb0", None, None, prev, got.format(0), msg, mb=0)
    for j in range(m):
        mb = j // N
        if prev is not None and scatter:
            prog.collective(
                OpKind.ALL_GATHER,
                Role.PP_GATHER,
                plan.group("tp", rank),
                geo.act_bytes,
                f"pp/mb{j}/gather",
                (got.format(j),),
                (f"x@{j}",),
                mb=mb,
            )
        for i in range(lps):
            if N > 1:
                layer_fn(prog, rank, s * lps + i, mb, j % N)
            else:
                layer_fn(prog, rank, s * lps + i, j)
        if nxt is None and j % N == N - 1:  # the last stage: the micro-batch's LM head after its last chunk
            lm_head.emit(b, prog, rank, mb, f"x@{j}")
        if nxt is not None or (prev is not None and j + 1 < m):
            prog.sendrecv(
                Role.PP_ACT,
                f"pp/mb{j}",
                nxt,
                f"x@{j}",
                prev if j + 1 < m else None,
                got.format(j + 1),
                msg,
                recv_tag=f"pp/mb{j + 1}",
                mb=mb,
                recv_fields={"mb": (j + 1) // N},
            )


def closed_form(ctx, units, head=(0.0, 0.0)) -> dict:
    """Latency of the phase from each unit's layer device time and host issue time, per point: ``units``
    = [(t_layer, host_layer, exists)] for the chunks c = 0..N-1 of a micro-batch (one unit without
    chunks).  Units u = 0..U-1 (U = m N) flow through the stages in order, and a stage receives unit u + 1
    only after it computed unit u (the receive is issued with the send of u), so a critical path runs
    units 0..u through the first stage, unit u down the stages and units u..U-1 through the last one:
    latency = m sum_c t(c) + (S + U - 2) x + max_u [(S - 1) t(u) - u x]  (x: one transfer) with one
    micro-batch; with equal units the maximum is at u = 0 and this is the formula above.  The last
    stage's LM head (``head``: its device and host time per micro-batch) adds m times its time (that stage
    is then the slowest: every micro-batch's head is on the path).  With chunks and
    several micro-batches (unit times rise and fall) the path may descend several times: the longest
    path of the stage x unit grid is computed directly (``_grid_path``)."""
    geo, hw = ctx.geo, ctx.hw
    S, m = geo.pp, geo.microbatches
    N = geo.chunks
    lps = ctx.model.layers / S
    # the host issues a stage's ops ahead of its GPU: a stage takes its device path or its host path
    h_dev, h_host = head
    t_head = np.maximum(h_dev, h_host)
    t_dev = (
        sum(kernels.select(e, lps * t, 0.0) for t, _, e in units) + h_dev
    )  # one micro-batch, all its chunks
    t_unit = [kernels.select(e, np.maximum(lps * t, lps * h), 0.0) for t, h, e in units]
    t_stage = sum(t_unit) + t_head  # the last stage's (it runs the LM head)
    act, msg, sc = geo.act_bytes, geo.pp_msg_bytes, geo.pp_scatter
    pp_ib = ctx.crosses_ib(geo.span("pp")) & (S > 1)
    tp_ib = ctx.crosses_ib(geo.span("tp"))  # a TP group larger than a node gathers over IB
    # the send of a slice (or all) to the next stage, then (scatter) its all-gather over that stage's TP group
    gather = kernels.select(sc, ctx.comm(tp_ib, Collective.ALL_GATHER, act, geo.tp), 0.0)
    x_pp = kernels.select(S > 1, ctx.comm(pp_ib, Collective.P2P, msg, 2) + gather, 0.0)
    via = np.max(
        np.stack(
            [
                kernels.select(e, (S - 1) * t - c * x_pp, -np.inf)
                for c, (t, (_, _, e)) in enumerate(zip(t_unit, units))
            ]
        ),
        axis=0,
    )
    latency = kernels.select(S > 1, m * t_stage + (S + m * N - 2) * x_pp + via, m * t_stage)
    # several micro-batches of chunks: the grid's longest path, up to GRID_UNITS units (beyond, the formula
    # above, which takes one descent only: a lower bound, a few percent low in the tests' cases)
    several = (N > 1) & (m > 1) & (S > 1) & (m * N <= GRID_UNITS)
    if np.any(several):
        latency = kernels.select(
            several,
            _grid_path(
                t_unit,
                kernels.select(several, S, 1),
                kernels.select(several, m, 1),
                kernels.select(several, N, 1),
                x_pp,
                geo.tp > 1,
                PRE_ALL_REDUCE / lps,
                geo.pp_scatter,
                gather,
            )
            + m * t_head,
            latency,
        )
    latency = latency + hw.pass_start_s(geo.tp * geo.ulysses * geo.ring * geo.pp)
    # bytes of the busiest rank: a middle stage sends and gathers; with two stages, the sender or the
    # receiver, whichever keeps its links busier (send over the pp link, gather over NVLink)
    send = kernels.select(S > 1, m * N * msg, 0.0)
    g = kernels.select(sc, m * N * kernels.sent_bytes(Collective.ALL_GATHER, act, geo.tp), 0.0)
    s_nv, s_ib = kernels.select(pp_ib, 0.0, send), kernels.select(pp_ib, send, 0.0)
    g_nv, g_ib = split_links(tp_ib, g)
    sender_t = s_nv / hw.nvlink_bw_Bps + s_ib / hw.nic_bw_Bps
    recv_wins = (S == 2) & (g_nv / hw.nvlink_bw_Bps + g_ib / hw.nic_bw_Bps > sender_t)
    both = S > 2
    sent_nv = kernels.select(recv_wins, g_nv, s_nv + kernels.select(both, g_nv, 0.0))
    sent_ib = kernels.select(recv_wins, g_ib, s_ib + kernels.select(both, g_ib, 0.0))
    return {
        "latency": latency,
        "t_dev": t_dev,
        "t_stage": t_stage,
        "x_pp": x_pp,
        "lps": lps,
        "sent_nvlink": sent_nv,
        "sent_ib": sent_ib,
    }


GRID_UNITS = 512
PRE_ALL_REDUCE = 0.5  # the share of a layer a stage runs before its first TP all-reduce (an estimate)


def _grid_path(t_unit, S, m, N, x, coupled, pre=0.0, gathers=False, g=0.0):
    """Longest path through the (stage, unit) grid: node (s, u) costs t(u mod N); moving to the next
    unit on a stage s >= 1 or to the next stage costs a transfer x (stage 0 runs its units back to back).
    ``coupled`` (TP > 1: the TP all-reduces share the comm stream with the stage's sends, in program
    order): stage s starts unit u only once its send of unit u - 1 is done, i.e. once stage s + 1 has
    started it, less ``pre`` x t(u) (the part of its first layer before the first all-reduce); a stage
    that all-gathers its input (scatter sends, ``gathers``, g seconds) waits for it at the start of the
    unit; the send is done when the receiver's gather starts.
    Vectorised over points; loops over max (m N) x max S, each step a few numpy operations on the
    points whose unit u exists (the points ordered by their unit count, most first: those of unit u are
    a prefix; the others keep their stages' ends), what does not change along a loop computed before it,
    and a condition that holds at every point or at none taken as such (as ``kernels.select`` does): the
    values of the grid walked over every point."""
    shape = np.shape(x)
    U = np.broadcast_to(m * N, shape).reshape(-1)
    order = np.argsort(-U, kind="stable")  # most units first: unit u's points are a prefix
    n_live = len(U) - np.searchsorted(U[order][::-1], np.arange(int(U.max())), side="right")

    def flat(v, dtype=None):  # a per-point input, flat, in that order
        return np.broadcast_to(np.asarray(v, dtype=dtype), shape).reshape(-1)[order]

    T = np.stack([flat(v, float) for v in t_unit])
    S_f, N_f, x_f, pre_f = flat(S), flat(N).astype(int), flat(x), flat(pre)
    gathers_f, g_off = flat(gathers), flat(kernels.select(gathers, g, 0.0))
    S_max = int(np.max(S))
    # per stage: does its send of the previous unit hold it (TP > 1, a next stage)?  True / False / mask
    held = [_uniform(flat(coupled) & (s + 1 < S_f)) for s in range(S_max)]
    N0 = int(N_f[0]) if len(N_f) and (N_f == N_f[0]).all() else None
    n = len(U)
    zero = np.zeros(n)
    D = [np.zeros(n) for _ in range(S_max)]  # D[s]: the end of the last unit each point ran on stage s
    t_prev = np.zeros(n)  # the time of that unit
    for u, k in enumerate(n_live.tolist()):
        tu = T[u % N0, :k] if N0 is not None else T[u % N_f[:k], np.arange(k)]
        pre_tu = pre_f[:k] * tu
        slack = kernels.select(gathers_f[:k], 0.0, pre_tu)  # stages s >= 1 (stage 0: pre_tu)
        for s in range(S_max):
            start = zero[:k]
            if u:
                start = np.maximum(start, D[s][:k] + (x_f[:k] if s else 0.0))
                if s + 1 < S_max:  # the send of unit u - 1 (its receiver started it)
                    h = held[s]
                    if h is False:
                        start = np.maximum(start, 0.0)
                    else:
                        done = D[s + 1][:k] - t_prev[:k] - g_off[:k]
                        late = done - (pre_tu if s == 0 else slack)
                        start = np.maximum(start, late if h is True else np.where(h[:k], late, 0.0))
            if s:
                start = np.maximum(start, D[s - 1][:k] + x_f[:k])
            D[s][:k] = start + tu
        t_prev[:k] = tu
    out = np.zeros(n)
    for s in range(S_max):
        out = kernels.select(s == S_f - 1, D[s], out)
    res = np.empty(n)
    res[order] = out
    return res.reshape(shape)


def _uniform(cond):
    """A boolean array as True or False where it holds everywhere or nowhere, else the array itself."""
    c = np.asarray(cond)
    if c.dtype == np.bool_ and c.size:
        if c.all():
            return True
        if not c.any():
            return False
    return c


def buffers(ctx):
    """Pipeline stages hold the received activations beside the working ones (counted with them; the
    scatter's received slice is 1/tp of that and is not counted apart)."""
    return 0.0
