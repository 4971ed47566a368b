"""Ring Attention, prefill, pass-KV (the ``ring`` axis): R steps; at step t each rank attends its
queries to the K/V block that left rank p - t, t steps ago, while the next block moves (double
buffer); partial outputs merge into an FP32 accumulator by their log-sum-exps.  The layout (plain,
zigzag, striped) decides which calls each step makes (``geometry.ring_blocks``)."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, ring_recurrence, split_links
from ..errors import SpecError
from ..geometry import ring_calls, ring_step_shapes, seq_multiple
from ..plan import RingVariant
from ..schedule import Role
from ..specs import Collective, Phase


def rules(plan, model, wl, topo) -> None:
    if plan.ring == 1 or wl.phase != Phase.PREFILL:
        return
    need = seq_multiple(plan.ring, plan.ulysses, plan.ring_variant)
    if wl.seq_len % need:
        up = -(-wl.seq_len // need) * need
        why = {
            RingVariant.ZIGZAG: f"2 x ring={plan.ring} x ulysses={plan.ulysses} "
            f"required by the zigzag layout",
            RingVariant.PLAIN: f"ring={plan.ring} x ulysses={plan.ulysses} required by the sequence split",
            RingVariant.STRIPED: f"ring={plan.ring} x ulysses={plan.ulysses} required by the striped layout",
        }
        raise SpecError(f"--seq {wl.seq_len} is not divisible by {need} = {why[plan.ring_variant]}; try {up}")


def length_multiple(plan, phase) -> int:
    return seq_multiple(plan.ring, plan.ulysses, plan.ring_variant) if phase == Phase.PREFILL else 1


def _steps(b, R: int):
    """Ring steps to build: all of them, or (``ring_steps=k`` < R - 2) steps 0..k and the last one:
    built steps 1..k stand for the middle steps 1..R-2 (the simulator extrapolates them)."""
    k = b.ring_steps
    if k is None or R - 2 <= k:
        return range(R)
    b.ring_steps_built = k
    return list(range(k + 1)) + [R - 1]


def _middle_uniform(b, i: int) -> bool:
    """True if rank ``i``'s middle steps 1..R-2 all make calls of the same costs (est_s).  Calls depend
    on the step only through whether the source rank is below, at or above ``i``, so the lowest and
    highest sources of each side stand for all."""
    memo = b.memo.setdefault("ring_uniform", {})
    got = memo.get(i)
    if got is None:
        plan, geo = b.plan, b.geo
        R, lr = plan.ring, geo.ring_len
        srcs = {
            s for s in (0, 1, i - 1, i + 1, i + 2, R - 2, R - 1) if 0 <= s < R and s != i and s != (i + 1) % R
        }  # middle steps: all sources but these two
        calls = {tuple(ring_calls(plan.ring_variant, b.wl.causal, R, lr, i, (i - s) % R)) for s in srcs}
        ests = {tuple(b.work_cost(_call(b, ql, kl, c, "q", "kv"))[3] for ql, kl, c in cs) for cs in calls}
        got = memo[i] = len(ests) <= 1
    return got


def _call(b, ql, kl, causal, q, cur):
    geo = b.geo
    return b.attention(
        Role.RING_ATTN,
        geo.model,
        geo.mb,
        geo.q_heads,
        ql,
        kl,
        causal,
        (q, cur),
        ("part",),
        kv_heads=geo.kv_heads,
    )


def emit(b, site, q, kv, o) -> None:
    plan, geo, prog = b.plan, b.geo, site.prog
    group, i = b.group_pos("ring", site.rank)
    R, lr, m = plan.ring, geo.ring_len, geo.model
    nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
    tok = geo.mb * lr
    have = False
    ts = _steps(b, R)
    if len(ts) < R and not _middle_uniform(b, i):
        b.ring_uniform = False
    for j, t in enumerate(ts):  # j == t unless coarsened (buffers alternate by position)
        cur = kv if j == 0 else f"kvbuf{j % 2}"
        stag = f"{site.tag}/ring/step{t}"
        f = site.fields(step=t)
        if j < len(ts) - 1:
            prog.sendrecv(
                Role.RING_KV, stag, nxt, cur, prv, f"kvbuf{(j + 1) % 2}", geo.kv_block_bytes, exchange=R, **f
            )
        for c, (ql, kl, causal) in enumerate(ring_calls(plan.ring_variant, b.wl.causal, R, lr, i, t)):
            prog.work(_call(b, ql, kl, causal, q, cur), stag, label=f"attn{c}" if c else "attn", call=c, **f)
            if have:
                prog.work(Lr.lse_merge(Role.MERGE, m, tok, geo.q_heads, ("part", "acc"), ("acc",)), stag, **f)
            else:
                prog.work(Lr.elementwise(Role.INIT, geo.accum_bytes(tok), ("part",), ("acc",)), stag, **f)
                have = True
    prog.work(
        Lr.elementwise(Role.FINALIZE, geo.accum_bytes(tok), ("acc",), (o,)),
        f"{site.tag}/ring",
        **site.fields(),
    )


def closed_form(ctx, on) -> AttnCost:
    """The max-plus recurrence of the double-buffered ring; each step's compute is the slowest rank's
    (the causal imbalance of the plain layout); attention beside a transfer is slowed by the profile's
    ``attention_slowdown_under_comm`` and the merges by ``compute_slowdown_under_comm``, while the
    transfer is in flight."""
    geo, hw, acc, m = ctx.geo, ctx.hw, ctx.acc, ctx.model
    R, lr, mb, hq, hkv = geo.ring, geo.ring_len, geo.mb, geo.q_heads, geo.kv_heads
    first_s, rest_s = ring_step_shapes(ctx.st.ring_variant, ctx.st.causal, lr)
    att = [
        Lr.attention(Role.RING_ATTN, m, mb, hq, ql, kl, c, (), (), kv_heads=hkv)
        for ql, kl, c in [first_s] + rest_s
    ]
    first, rest = att[0], att[1:]
    tok = mb * lr
    merge = Lr.lse_merge(Role.MERGE, m, tok, hq, (), ())
    init = Lr.elementwise(Role.INIT, geo.accum_bytes(tok), (), ())
    fin = Lr.elementwise(Role.FINALIZE, geo.accum_bytes(tok), (), ())
    ring_ib = ctx.crosses_ib(geo.span("ring")) & (R > 1)
    x = ctx.comm(ring_ib, Collective.P2P, geo.kv_block_bytes, R)
    c0 = acc.time(first)
    # per point: the slowest of the step's kernels (the slowest rank's), and which it is
    c1, slowest = kernels.first_max([np.broadcast_to(acc.time(w), ctx.shape) for w in rest])
    g_init, g_merge, t_fin = acc.time(init), acc.time(merge), acc.time(fin)
    t_ring = (
        ring_recurrence(
            c0,
            g_init,
            c1,
            g_merge,
            x,
            R,
            hw.attention_slowdown_under_comm,
            slowdown_g=hw.compute_slowdown_under_comm,
        )
        + t_fin
    )
    one = kernels.select(on, 1.0, 0.0)
    n_rest = kernels.select(on, R - 1, 0)
    for w, cnt in ((first, one), (init, one), (merge, n_rest), (fin, one)):
        acc.add(w, count=ctx.full(cnt))
    for i, w in enumerate(rest):
        acc.add(w, count=kernels.select(slowest == i, n_rest, 0.0))
        acc.note_kernel(w, n_rest > 0)
    acc.issue_comm(2 * (R - 1) * one)
    busy = (c0 + g_init + t_fin) + n_rest * (c1 + g_merge)
    sent = (R - 1) * geo.kv_block_bytes
    # the ring's time beyond its kernels is exposed communication; inner hops are NVLink, the busiest
    # rank (at a node boundary) sends every block over IB: each byte counted once, on its link
    nv, ib = split_links(ring_ib, sent)
    return AttnCost(
        exposed_s=np.maximum(t_ring - busy, 0.0), xfer_s=(R - 1) * x, sent_nvlink=nv, sent_ib=ib
    ).masked(on)


def buffers(ctx):
    """Two K/V blocks in flight (double buffer)."""
    return 2 * ctx.geo.kv_block_bytes
