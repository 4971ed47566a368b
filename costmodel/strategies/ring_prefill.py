"""Ring Attention, prefill, pass-KV (the ``ring`` axis): R steps; at step t each rank attends its
queries to the K/V block that left rank p - t, t steps ago, while the next block moves (double
buffer); partial outputs merge into an FP32 accumulator by their log-sum-exps.  The layout (plain,
zigzag, striped) decides which calls each step makes (``geometry.ring_blocks``).  With cached tokens
(partial prefill, ``prefix_cache``) a block is the rank's cached shard and its new K/V, and each step
first attends to the cached part (``geometry.ring_blocks_cached``)."""

from __future__ import annotations

import numpy as np

from .. import kernels
from .. import layers as Lr
from ..closedform import AttnCost, ring_recurrence, split_links
from ..errors import SpecError
from ..geometry import ring_blocks_cached, ring_calls, ring_step_shapes, seq_multiple
from ..plan import RingVariant
from ..schedule import Role
from ..specs import Collective, Phase
from . import prefix_cache


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


def step_calls(variant, causal, R, lr, lc, i, t, pass_q=False) -> list[tuple[int, int, bool]]:
    """(q_len, kv_len, causal) of rank i's calls at step t: ``ring_calls``, or with ``lc`` cached tokens
    per rank (or pass-Q) ``ring_blocks_cached``'s."""
    if not lc and not pass_q:
        return ring_calls(variant, causal, R, lr, i, t)
    blocks = ring_blocks_cached(variant, causal, R, lr, lc, i, t, pass_q)
    return [(q.stop - q.start, k.stop - k.start, c) for q, k, c in blocks]


def _rank_calls(b, i: int, lc: int, t: int) -> list:
    """Rank i's calls (q_len, kv_len, causal) at ring step t (``step_calls``): every layer and micro-batch
    of the rank makes the same ones, memoised for the rank being built (the builder builds one rank
    after another)."""
    got = b.memo.get("ring_calls")
    if got is None or got[0] != i:
        got = b.memo["ring_calls"] = (i, {})
    calls = got[1].get(t)
    if calls is None:
        plan = b.plan
        calls = got[1][t] = step_calls(plan.ring_variant, b.wl.causal, plan.ring, b.geo.ring_len, lc, i, t)
    return calls


def _unit_works(b, tok: int):
    """The LSE merge (every step's) and the accumulator's init, the same Work objects for every layer."""
    got = b.memo.get("ring_merge_init")
    if got is None:
        geo = b.geo
        got = b.memo["ring_merge_init"] = (
            Lr.lse_merge(Role.MERGE, geo.model, tok, geo.q_heads, ("part", "acc"), ("acc",)),
            Lr.elementwise(Role.INIT, geo.accum_bytes(tok), ("part",), ("acc",)),
        )
    return got


def emit(b, site, q, kv, o) -> None:
    plan, geo, prog = b.plan, b.geo, site.prog
    group, i = b.group_pos("ring", site.rank)
    R, lr = plan.ring, geo.ring_len
    lc = geo.ring_cached if prefix_cache.used_by(b) else 0
    if lc:  # the block that travels: the cached shard with the new K/V behind it
        kv = prefix_cache.emit_append(b, site, kv)
    nxt, prv = group[(i + 1) % R], group[(i - 1) % R]
    tok = geo.mb * lr
    have = False
    ts = _steps(b, R)
    if len(ts) < R and not _middle_uniform(b, i):
        b.ring_uniform = False
    merge, init = _unit_works(b, tok)
    layer, mb, chunk = site.layer, site.mb, site.chunk
    last = len(ts) - 1
    for j, t in enumerate(ts):  # j == t unless coarsened (buffers alternate by position)
        cur = kv if j == 0 else f"kvbuf{j % 2}"
        stag = f"{site.tag}/ring/step{t}"
        if j < last:
            prog.sendrecv(
                Role.RING_KV,
                stag,
                nxt,
                cur,
                prv,
                f"kvbuf{(j + 1) % 2}",
                geo.kv_block_bytes,
                exchange=R,
                layer=layer,
                mb=mb,
                step=t,
                chunk=chunk,
            )
        for c, (ql, kl, causal) in enumerate(_rank_calls(b, i, lc, t)):
            prog.work(
                _call(b, ql, kl, causal, q, cur),
                stag,
                label=f"attn{c}" if c else "attn",
                call=c,
                layer=layer,
                mb=mb,
                step=t,
                chunk=chunk,
            )
            if have:
                prog.work(merge, stag, layer=layer, mb=mb, step=t, chunk=chunk)
            else:
                prog.work(init, stag, layer=layer, mb=mb, step=t, chunk=chunk)
                have = True
    prog.work(
        Lr.elementwise(Role.FINALIZE, geo.accum_bytes(tok), ("acc",), (o,)),
        f"{site.tag}/ring",
        **site.fields(),
    )


def step_works(ctx):
    """The closed forms' kernels of a ring step on a rank (pass-KV's and pass-Q's rings meet the same block
    shapes): (the first step's attention, the other steps' distinct attention calls, the LSE merge, the
    accumulator's init, the rank's rows)."""
    geo, m = ctx.geo, ctx.model
    lr, mb, hq, hkv = geo.ring_len, geo.mb, geo.q_heads, geo.kv_heads
    first_s, rest_s = ring_step_shapes(ctx.st.ring_variant, ctx.st.causal, lr)
    att = [
        Lr.attention(Role.RING_ATTN, m, mb, hq, ql, kl, c, (), (), kv_heads=hkv)
        for ql, kl, c in [first_s] + rest_s
    ]
    tok = mb * lr
    merge = Lr.lse_merge(Role.MERGE, m, tok, hq, (), ())
    init = Lr.elementwise(Role.INIT, geo.accum_bytes(tok), (), ())
    return att[0], att[1:], merge, init, tok


def closed_form(ctx, on) -> AttnCost:
    """The max-plus recurrence of the double-buffered ring; each step's compute is the slowest rank's
    (the causal imbalance of the plain layout); attention beside a transfer is slowed by the profile's
    ``attention_slowdown_under_comm`` and the merges by ``compute_slowdown_under_comm``, while the
    transfer is in flight; where the profile's attention holds the SMs (``comm_gate_kinds``), a transfer
    ready as or while a step's attention runs waits for its last wave (``ring_recurrence_gated``)."""
    geo, hw, acc, m = ctx.geo, ctx.hw, ctx.acc, ctx.model
    R, lr, mb, hq, hkv = geo.ring, geo.ring_len, geo.mb, geo.q_heads, geo.kv_heads
    first, rest, merge, init, tok = step_works(ctx)
    fin = Lr.elementwise(Role.FINALIZE, geo.accum_bytes(tok), (), ())
    ring_ib = ctx.crosses_ib(geo.span("ring")) & (R > 1)
    x = ctx.comm(ring_ib, Collective.P2P, geo.kv_block_bytes, R)
    c0 = acc.time(first)
    # per point: the slowest of the step's kernels (the slowest rank's), and which it is
    c1, slowest = kernels.first_max([np.broadcast_to(acc.time(w), ctx.shape) for w in rest])
    g_init, g_merge, t_fin = acc.time(init), acc.time(merge), acc.time(fin)
    # partial prefill: every step also attends to the block's cached shard (and merges once more); the
    # new K/V is first written behind the rank's own shard
    has = np.asarray(geo.ring_cached) > 0
    if has.any():
        cached_w = Lr.attention(
            Role.RING_ATTN, m, mb, hq, lr, np.maximum(geo.ring_cached, 1), False, (), (), kv_heads=hkv
        )
        app = prefix_cache.append_work(geo)
        t_c = np.where(has, acc.time(cached_w), 0.0)
        t_app = np.where(has, acc.time(app), 0.0)
        g_extra = np.where(has, g_merge, 0.0)
    else:  # no prefix cache anywhere: nothing more to cost
        t_c = t_app = g_extra = 0.0
    t_ring = (
        t_app
        + ring_recurrence(
            c0 + t_c,
            g_init + g_extra,
            c1 + t_c,
            g_merge + g_extra,
            x,
            R,
            hw.attention_slowdown_under_comm,
            slowdown_g=hw.compute_slowdown_under_comm,
            gate_lead=hw.comm_gate_lead_s if hw.gates_comm("attention") else None,
        )
        + t_fin
    )
    one = kernels.select(on, 1.0, 0.0)
    n_rest = kernels.select(on, R - 1, 0)
    for w, cnt in ((first, one), (init, one), (merge, n_rest), (fin, one)):
        acc.add(w, count=ctx.full(cnt))
    if has.any():
        hon = np.where(has, one, 0.0)
        acc.add(cached_w, count=ctx.full(hon * R))
        acc.add(merge, count=ctx.full(hon * R))
        acc.add(app, count=ctx.full(hon))
        acc.note_kernel(cached_w, hon > 0)
    for i, w in enumerate(rest):
        acc.add(w, count=kernels.select(slowest == i, n_rest, 0.0))
        acc.note_kernel(w, n_rest > 0)
    acc.issue_comm(2 * (R - 1) * one)
    busy = (c0 + g_init + t_fin) + n_rest * (c1 + g_merge) + np.where(on, t_app + R * (t_c + g_extra), 0.0)
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
