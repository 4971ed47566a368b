"""Closed forms of what a schedule costs, vectorised with numpy over L, B and the plan's degrees.

``evaluate`` takes scalars or arrays (broadcast together) for the numeric inputs and scalars for the
categorical ones (phase, layout, kernel, topology kind), and returns a dict of arrays.  It is a driver:
the geometry (``geometry.py``) says who holds what, and each strategy's ``closed_form``
(``strategies/``) adds its kernels to the rank's critical path and returns its exposed communication,
with the same per-kernel recipes (``layers.py``) and costs (``kernels.py``) as the schedule builder.
Where a schedule has no contention and no imbalance the two agree; ``tests/`` hold them to it.

Latency model (one rank on the critical path):
* a layer = its dense kernels + TP all-reduces + its attention block (wrappers such as ulysses' all-to-alls
  around one attention core: local, the pass-KV ring recurrence, or a decode merge);
* a pipeline of S stages and m micro-batches = (S + m - 1) t_stage + (S + m - 2) t_transfer;
* the last stage's LM head (``strategies/lm_head.py``) once per micro-batch, on the path.
"""

from __future__ import annotations

import numpy as np

from . import kernels, strategies
from .closedform import Acc, AttnCost, Ctx, Setting
from .geometry import Geometry
from .results import Categorical
from .specs import Hardware, Model, Phase

A = np.ndarray


CHUNK = 1 << 15  # points per block of a large evaluation (numpy's temporaries stay in cache)


def evaluate(
    model: Model,
    hw: Hardware,
    st: Setting,
    *,
    batch,
    seq,
    tp=1,
    pp=1,
    ring=1,
    ulysses=1,
    microbatches=1,
    context=None,
    gen_tokens=1,
    chunks=1,
    coded=False,
) -> dict[str, A]:
    """Closed-form cost of a plan; every numeric input may be an array (broadcast together).

    Every output of a point depends on that point's inputs only, so a large grid is evaluated in
    blocks of ``CHUNK`` points (the same values, faster: the temporaries of a block stay in cache;
    ``evaluate_blocks``).  ``coded``: the string outputs stay ``Categorical`` (labels and codes)."""
    kw = dict(batch=batch, seq=seq, tp=tp, pp=pp, ring=ring, ulysses=ulysses, microbatches=microbatches)
    parts = list(evaluate_blocks(model, hw, st, context=context, gen_tokens=gen_tokens, chunks=chunks, **kw))
    if len(parts) == 1:
        o = parts[0][1]
    else:
        ax = next(i for i, s in enumerate(parts[0][0]) if s != slice(None))
        o = {k: _concatenate([p[k] for _, p in parts], ax) for k in parts[0][1]}
    return o if coded else {k: v.decode() if isinstance(v, Categorical) else v for k, v in o.items()}


def evaluate_blocks(
    model: Model,
    hw: Hardware,
    st: Setting,
    *,
    batch,
    seq,
    tp=1,
    pp=1,
    ring=1,
    ulysses=1,
    microbatches=1,
    context=None,
    gen_tokens=1,
    chunks=1,
):
    """``evaluate`` a block of at most about ``CHUNK`` points at a time: yields (index, outputs), the
    block's place in the evaluation's shape (a tuple of slices) and its outputs, string outputs as
    ``Categorical`` (a sweep writes each block into its columns: nothing is joined)."""
    vals = _arrays(batch, seq, tp, pp, ring, ulysses, microbatches, context, chunks)
    shape = np.broadcast_shapes(*(v.shape for v in vals))
    n = int(np.prod(shape))
    if n <= 2 * CHUNK:
        yield (slice(None),) * len(shape), _evaluate(model, hw, st, *vals, gen_tokens)
        return
    # blocks along the longest axis; inputs without that axis stay as they are (not broadcast)
    ax = int(np.argmax(shape))
    vals = [v.reshape((1,) * (len(shape) - v.ndim) + v.shape) for v in vals]
    step = max(1, CHUNK * shape[ax] // n)
    for i in range(0, shape[ax], step):
        index = (slice(None),) * ax + (slice(i, i + step),)
        yield (
            index + (slice(None),) * (len(shape) - ax - 1),
            _evaluate(model, hw, st, *(v[index] if v.shape[ax] > 1 else v for v in vals), gen_tokens),
        )


def _concatenate(parts: list, ax: int):
    """Blocks of one output joined along ``ax`` (a string output's blocks share their labels)."""
    if isinstance(parts[0], Categorical):
        return Categorical(parts[0].labels, np.concatenate([p.codes for p in parts], axis=ax))
    return np.concatenate(parts, axis=ax)


def _evaluate(
    model: Model,
    hw: Hardware,
    st: Setting,
    batch,
    seq,
    tp,
    pp,
    ring,
    ulysses,
    microbatches,
    context,
    chunks,
    gen_tokens,
) -> dict[str, A]:
    raw = (batch, seq, tp, pp, ring, ulysses, microbatches, context, chunks)
    geo, shape = _geometry(model, st, *raw)
    B, L, C, S, m, N = geo.batch, geo.seq, geo.context, geo.pp, geo.microbatches, geo.chunks
    decode = st.phase == Phase.DECODE

    # ---- one layer of one unit (a micro-batch, or chunk c of it): dense part, wrappers, attention core ----
    # (on the distinct layers of the plans: rows that differ in pp only share them, ``_layer_rows``)
    lgeo, lshape, inv = _layer_rows(model, st, geo, shape, raw)
    is_u, no_ring, chunked = lgeo.ulysses > 1, lgeo.ring == 1, lgeo.chunks > 1
    units = []
    n_chunks = int(np.max(lgeo.chunks))
    before = None  # (accumulator, cost) after a layer's dense part, wrappers and local attention
    for c in range(n_chunks):
        if before is None:
            acc = Acc(hw, st.kernel, lshape)
            ctx = Ctx(hw=hw, st=st, geo=lgeo, acc=acc, shape=lshape)
            cost = strategies.dense.closed_form(ctx)
            for w in strategies.WRAPPERS:
                cost = cost + _where_on(w.closed_form, ctx, is_u)
            cost = cost + _where_on(strategies.local.closed_form, ctx, no_ring & ~chunked)
            if n_chunks > 1 and SHARE_CHUNK_PREFIX:
                before = (_acc_copy(acc), cost)
        else:  # that part reads no chunk index: every chunk's layer starts from the same sums
            acc = _acc_copy(before[0])
            ctx = Ctx(hw=hw, st=st, geo=lgeo, acc=acc, shape=lshape)
            cost = before[1]
        cost = cost + _where_on(strategies.chunked.closed_form, ctx, chunked, c)
        core = strategies.core_for_phase(st.phase, st.decode_attn, st.prefill_attn)
        cost = cost + _where_on(core.closed_form, ctx, (~no_ring & ~is_u) if decode else ~no_ring)
        units.append((acc, cost, acc.busy + cost.exposed_s, c < lgeo.chunks))
    if inv is not None:  # each plan's row of its layer's
        units = [
            (
                _acc_rows(a, inv),
                AttnCost(*(_rows(v, inv) for v in vars(k).values())),
                _rows(t, inv),
                _rows(e, inv),
            )
            for a, k, t, e in units
        ]
    acc, cost = units[0][0], units[0][1]
    if len(units) > 1:  # the sums over the chunks that exist at each point
        acc = Acc(hw, st.kernel, shape)
        for f in ("compute", "memory", "flops", "hbm", "host", "flops_fp8"):
            setattr(acc, f, sum(kernels.select(e, getattr(a, f), 0.0) for a, _, _, e in units))
        acc.kernel_mask = np.bitwise_or.reduce([kernels.select(e, a.kernel_mask, 0) for a, _, _, e in units])
        cost = AttnCost(
            *(
                sum(kernels.select(e, getattr(k, f), 0.0) for _, k, _, e in units)
                for f in ("exposed_s", "xfer_s", "sent_nvlink", "sent_ib")
            )
        )
    ctx = Ctx(hw=hw, st=st, geo=geo, acc=acc, shape=shape)
    # ---- the LM head of one micro-batch on the last stage (nothing without one) ----
    head = Acc(hw, st.kernel, shape)
    hcost = strategies.lm_head.closed_form(Ctx(hw=hw, st=st, geo=geo, acc=head, shape=shape))

    # ---- stages and micro-batches (and chunks) ----
    pipe = strategies.pipeline.closed_form(
        ctx, [(t, a.host, e) for a, _, t, e in units], (head.busy + hcost.exposed_s, head.host)
    )
    lps, t_stage, t_dev, x_pp, latency = (
        pipe["lps"],
        pipe["t_stage"],
        pipe["t_dev"],
        pipe["x_pp"],
        pipe["latency"],
    )
    sent_nv = cost.sent_nvlink * lps * m + pipe["sent_nvlink"] + hcost.sent_nvlink * m
    sent_ib = cost.sent_ib * lps * m + pipe["sent_ib"] + hcost.sent_ib * m
    flops = acc.flops * lps * m + head.flops * m
    hbm = acc.hbm * lps * m + head.hbm * m

    # ---- outputs ----
    tokens = B * (1 if decode else L)
    out = {
        "latency_s": latency,
        "tps": tokens / latency,
        "tpot_s": latency if decode else np.full(shape, np.nan),
        "ttft_s": np.full(shape, np.nan) if decode else latency,
        "flops_per_device": flops,
        "hbm_bytes_per_device": hbm,
        "comm_nvlink_bytes": sent_nv,
        "comm_ib_bytes": sent_ib,
        "stage_time_s": t_stage,
        "t_compute_s": (acc.compute * lps + head.compute) * m,
        "t_memory_s": (acc.memory * lps + head.memory) * m,
        "t_overhead_s": (t_stage - t_dev) * m + hw.pass_start_s(geo.tp * geo.ulysses * geo.ring * geo.pp),
        "t_bubble_s": latency - hw.pass_start_s(geo.tp * geo.ulysses * geo.ring * geo.pp) - m * t_stage,
    }
    out["t_comm_exposed_s"] = np.maximum(m * t_dev - (acc.busy * lps + head.busy) * m, 0.0)
    out["t_comm_s"] = (cost.xfer_s * lps + hcost.xfer_s) * m + (S + m * N - 2) * x_pp * (S > 1)
    out = {k: _full(v, shape) for k, v in out.items()}
    out["bottleneck"] = bottleneck(out, coded=True)
    out.update(memory(ctx))
    out.update(roofline(hw, out, acc.flops_fp8 * lps * m, coded=True))
    out["total_flops"] = _full(_total_flops(model, st, B, L, C, geo.cached), shape)
    names = kernels.kernels_label(hw, st.kernel, np.arange(1 << len(hw.attn_names(st.kernel))))
    out["attn_kernel_used"] = Categorical(names, _full(acc.kernel_mask, shape))  # = acc.kernels_used
    return out


LAYER_AXES = ("tp", "ring", "ulysses", "microbatches", "chunks")  # what a layer's closed forms read of a plan


def _layer_rows(model: Model, st: Setting, geo: Geometry, shape: tuple, raw: tuple):
    """The geometry one layer is evaluated on: (geometry, shape, rows), ``geo`` itself (rows None) unless
    the evaluation is plans (axis 0, degrees of shape (plans, 1)) x points and some plans differ only in
    ``pp`` (a sweep's ``tp=8,pp=P/8``: a layer reads no pipeline degree).  Then the distinct plans' rows:
    ``rows`` maps each plan to its row (None where one row serves all: it broadcasts).  Every output of a
    point depends on that point's inputs only, so the values are those of the whole evaluation."""
    if len(shape) != 2 or shape[0] < 2 or np.ndim(st.cached) == 2 and np.shape(st.cached)[0] > 1:
        return geo, shape, None
    vals = _arrays(*raw)
    names = ("batch", "seq", "tp", "pp", "ring", "ulysses", "microbatches", "context", "chunks")
    keys = []
    for name, v in zip(names, vals):
        if v.ndim < 2 or v.shape[0] == 1:
            continue  # the same for every plan
        if name == "pp":
            continue
        if name not in LAYER_AXES or v.shape != (shape[0], 1):
            return geo, shape, None
        keys.append(v[:, 0])
    rows: dict = {}  # a plan's layer degrees -> its row
    inv = np.array(
        [rows.setdefault(k, len(rows)) for k in zip(*(v.tolist() for v in keys))] if keys else [0] * shape[0],
        np.intp,
    )
    if len(rows) == shape[0]:
        return geo, shape, None
    first = np.array([list(inv).index(j) for j in range(max(len(rows), 1))], np.intp)
    lgeo, lshape = _geometry(model, st, *(v[first] if v.ndim == 2 and v.shape[0] > 1 else v for v in vals))
    return lgeo, lshape, (None if len(first) == 1 else inv)


def _rows(v, inv):
    """v with each plan's row (``_layer_rows``): rows taken where v has the layer's plans axis."""
    return np.take(v, inv, axis=0) if type(v) is np.ndarray and v.ndim == 2 and v.shape[0] > 1 else v


# a chunked layer's part before its chunk's attention (dense kernels, wrappers, local attention: the same
# for every chunk) computed once per evaluation and copied into each chunk's sums (the same values, bit
# for bit: tests/test_explore_speed.py evaluates with it off)
SHARE_CHUNK_PREFIX = True


def _acc_copy(a: Acc) -> Acc:
    """An accumulator with a's sums (arrays copied: ``Acc.add`` adds in place) and caches."""
    out = Acc.__new__(Acc)
    out.__dict__.update(a.__dict__)
    for f in ("compute", "memory", "flops", "hbm", "flops_fp8", "kernel_mask"):
        v = getattr(a, f)
        setattr(out, f, v.copy() if type(v) is np.ndarray else v)
    out._parts, out._bits = dict(a._parts), dict(a._bits)
    return out


def _acc_rows(a: Acc, inv) -> Acc:
    out = Acc.__new__(Acc)
    out.__dict__.update(a.__dict__)
    for f in ("compute", "memory", "flops", "hbm", "flops_fp8", "host", "kernel_mask"):
        setattr(out, f, _rows(getattr(a, f), inv))
    out._parts, out._bits = {}, {}
    return out


def _where_on(closed_form, ctx: Ctx, on, *rest) -> AttnCost:
    """A strategy's ``closed_form(ctx, on, ...)``, not run where it is off at every point of the block (a
    sweep's block is one plan template: a ring's core at ring=1, ulysses without it): there it would add
    its kernels with counts of zero and return costs masked to zero, so skipping it leaves every sum as it
    was (``predict_fast`` skips it the same way at one point; ``tests/test_sweep_fast_paths.py``)."""
    a = np.asarray(on)
    if a.dtype == np.bool_ and not a.any():
        return AttnCost()
    return closed_form(ctx, on, *rest)


def _full(v, shape) -> A:
    """v as an array of the evaluation's shape (a copy where it was broadcast)."""
    v = np.asarray(v)
    return v if v.shape == shape else np.array(np.broadcast_to(v, shape))


def _arrays(batch, seq, tp, pp, ring, ulysses, microbatches, context, chunks) -> list[np.ndarray]:
    """The numeric inputs as arrays, in ``_evaluate``'s order (the context defaults to the prompt length)."""
    return [
        np.asarray(v)
        for v in (
            batch,
            seq,
            tp,
            pp,
            ring,
            ulysses,
            microbatches,
            seq if context is None else context,
            chunks,
        )
    ]


def _geometry(model: Model, st: Setting, batch, seq, tp, pp, ring, ulysses, microbatches, context, chunks=1):
    """The inputs as float arrays, each at its own shape (they broadcast together where they meet:
    what depends on the plan's degrees only is computed once per degree, not once per point), the
    shape of the evaluation, and their geometry."""
    if st.phase == Phase.DECODE:
        chunks = 1  # a decode step has no prompt to split
    vals = _arrays(batch, seq, tp, pp, ring, ulysses, microbatches, context, chunks)
    shape = np.broadcast_shapes(*(v.shape for v in vals))
    B, L, T, S, R, U, m, C, N = (v.astype(float) for v in vals)
    geo = Geometry(
        model=model,
        phase=st.phase,
        batch=B,
        seq=L,
        context=C,
        tp=T,
        ulysses=U,
        ring=R,
        pp=S,
        microbatches=m,
        ring_variant=st.ring_variant,
        decode_attn=st.decode_attn,
        causal=st.causal,
        pp_send=st.pp_send,
        chunks=N,
        cached=0 if st.phase == Phase.DECODE else np.asarray(st.cached, dtype=float),
        prefill_attn=st.prefill_attn,
    )
    return geo, shape


def evaluate_memory(
    model: Model,
    hw: Hardware,
    st: Setting,
    *,
    batch,
    seq,
    tp=1,
    pp=1,
    ring=1,
    ulysses=1,
    microbatches=1,
    context=None,
    chunks=1,
) -> dict[str, A]:
    """Only the memory part of ``evaluate`` (same inputs, same values): what ``max_batch`` / ``max_length``
    search over, without the latency model."""
    geo, shape = _geometry(model, st, batch, seq, tp, pp, ring, ulysses, microbatches, context, chunks)
    return memory(Ctx(hw=hw, st=st, geo=geo, acc=None, shape=shape))


def memory(ctx: Ctx) -> dict[str, A]:
    """Peak memory per device by kind (bytes), against the profile's capacity."""
    geo, hw, st, model = ctx.geo, ctx.hw, ctx.st, ctx.model
    d, b, hd, ab = model.d_model, model.dtype_bytes, model.head_dim, model.accum_bytes
    B, L, C, T, S, R, U, m = (
        geo.batch,
        geo.seq,
        geo.context,
        geo.tp,
        geo.pp,
        geo.ring,
        geo.ulysses,
        geo.microbatches,
    )
    tok, hq, hkv, mb = geo.dense_tokens, geo.q_heads, geo.kv_heads, geo.mb
    decode = st.phase == Phase.DECODE
    lps = model.layers / S
    f8 = model.fp8_roles  # FP8 weights: 1 byte per element and one FP32 scale per output channel

    def wbytes(role, n, k):
        return n * k + 4 * n if role in f8 else n * k * b

    up_n = (model.mlp_mats - 1) * model.d_ff / T
    per_layer = (
        wbytes("qkv", geo.qkv_cols, d)
        + wbytes("o_proj", d, model.q_dim / T)
        + wbytes("mlp_up", up_n, d)
        + wbytes("mlp_down", d, model.d_ff / T)
        + 2 * d * b
    )
    per_layer = per_layer + (geo.qkv_cols * b if model.qkv_bias else 0)  # the Q, K, V biases
    weights = lps * per_layer + strategies.lm_head.weights_bytes(ctx)
    cached = (C if decode else L + geo.cached) / R  # partial prefill: the cache holds C + L tokens
    # decode owners (pass-KV, pass-Q, ulysses) pad each micro-batch to a multiple of the group
    B_cache = m * geo.cache_batch if decode else B
    kv_cache = B_cache * lps * cached * 2 * hkv * hd * model.kv_elem_bytes
    x = tok * d * b * kernels.select(S > 1, 2, 1)
    qd_t = model.q_dim / T
    if decode:
        attn_phase = (
            tok * d * b + tok * qd_t * (2 * b + ab) + kernels.select(R > 1, R * mb * hq * (hd * ab + 4), 0)
        )
    else:
        atok = mb * L / (R * geo.chunks)  # a chunk's queries (the whole ring-local sequence without chunks)
        attn_phase = tok * d * b + atok * hq * hd * (b + kernels.select(R > 1, ab + b, b)) + atok * hq * 4
    mlp_phase = tok * d * b + tok * model.d_ff / T * b * model.mlp_mats + tok * d * b
    if "mlp_down" in f8:  # the FP8 copy of the down projection's input (and its row scales)
        mlp_phase = mlp_phase + tok * (model.d_ff / T + 4)
    # the LM head (last stage, after the layers): the normed rows and their logits
    activations = x + np.maximum(np.maximum(attn_phase, mlp_phase), strategies.lm_head.activation_bytes(ctx))
    # the communication buffers of the strategies the points use
    core = strategies.core_for_phase(st.phase, st.decode_attn, st.prefill_attn)
    comm_buf = kernels.select(R > 1, core.buffers(ctx), 0.0)
    for w in strategies.WRAPPERS:
        comm_buf = comm_buf + kernels.select(U > 1, w.buffers(ctx), 0.0)
    workspace = np.full(ctx.shape, hw.workspace_bytes)
    total = weights + kv_cache + activations + comm_buf + workspace
    out = {
        "mem_weights_bytes": weights + 0 * B,
        "mem_kv_cache_bytes": kv_cache,
        "mem_activations_bytes": activations,
        "mem_comm_buffers_bytes": comm_buf,
        "mem_workspace_bytes": workspace,
        "mem_total_bytes": total,
        "capacity_bytes": np.full(ctx.shape, hw.hbm_capacity_bytes),
        "feasible": total <= hw.hbm_capacity_bytes,
    }
    return {k: _full(v, ctx.shape) for k, v in out.items()}


def roofline(hw: Hardware, out: dict, flops_fp8=0.0, coded: bool = False) -> dict[str, A]:
    """The physical floor of this plan on datasheet peaks: compute, HBM, NVLink and NIC bounds (FP8 GEMMs'
    ``flops_fp8`` at the FP8 peak, the other FLOPs at the BF16 peak; ``coded``: the bound as a
    ``Categorical``)."""
    bounds = {
        "compute": (out["flops_per_device"] - flops_fp8) / hw.peak_flops + flops_fp8 / hw.fp8_peak_flops,
        "hbm": out["hbm_bytes_per_device"] / hw.hbm_bw_Bps,
        "nvlink": out["comm_nvlink_bytes"] / hw.nvlink_bw_Bps,
        "ib": out["comm_ib_bytes"] / hw.nic_bw_Bps,
    }
    top, which = kernels.first_max(_same_shape(list(bounds.values())))
    names = np.array(list(bounds))
    return {
        "roofline_latency_s": top,
        "roofline_bound": Categorical(names, which) if coded else names[which],
        **{f"roofline_{k}_s": v for k, v in bounds.items()},
    }


def bottleneck(out: dict, coded: bool = False) -> A:
    """What bounds the latency: the largest of compute-bound and memory-bound kernel time, the time the
    links are busy on the critical path (hidden or not), the pipeline bubble and launch overhead
    (``coded``: as a ``Categorical``)."""
    parts = {
        "compute": out["t_compute_s"],
        "memory": out["t_memory_s"],
        "communication": out["t_comm_s"],
        "pipeline-bubble": out["t_bubble_s"],
        "launch-overhead": out["t_overhead_s"],
    }
    c = Categorical(np.array(list(parts)), kernels.first_max(_same_shape(list(parts.values())))[1])
    return c if coded else c.decode()


def _same_shape(rows: list) -> list:
    """The rows, checked to share one shape (as np.stack would)."""
    if len({np.shape(r) for r in rows}) > 1:
        raise ValueError("rows of different shapes")
    return rows


def _total_flops(model: Model, st: Setting, B, L, C, cached=0):
    """All FLOPs of the phase over all devices (independent of the plan)."""
    if st.phase == Phase.DECODE:
        return B * (model.dense_flops_per_token() + 4.0 * C * model.q_dim * model.layers)
    pairs = (L * (L + 1) / 2 if st.causal else L * L) + L * cached  # partial prefill: every cached key
    head = model.lm_head_flops_per_token()  # prefill: the last token's logits only
    return (
        B * L * (model.dense_flops_per_token() - head)
        + B * head
        + 4.0 * B * pairs * model.q_dim * model.layers
    )
