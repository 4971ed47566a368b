"""Microbenchmarks that calibrate a hardware profile (issue 5): run on the GPU machine with

    torchrun --standalone --nproc-per-node N -m ringsim calibrate --base h200-sxm --out profile.toml

Every figure the cost model uses is measured here at the shapes the model asks about: GEMM time at
the model's layer shapes by token count, fused attention throughput by kernel (flash, cuDNN), length
and mask, decode-shaped attention (one query against a long cache; across query heads, KV heads,
batch and context per GPU in ``bench_decode_grid``, run apart by ``benchmarks/bench_decode_grid.py``),
elementwise bandwidth, per-op
launch overhead, neighbour exchange / all-reduce / all-gather / all-to-all by message size at the
world's group size, and the slowdown of compute while a transfer runs beside it.  Raw samples are
kept; ``validation.calibrate`` fits them into a profile.  Timing: CUDA events, warm-up first,
median of repetitions, maximum over ranks for collectives.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_fn(fn: Callable[[], object], dev, reps: int = 5, warmup: int = 2, min_s: float = 0.0) -> list[float]:
    """Per-call seconds of ``fn`` (CUDA events on GPU, perf_counter on CPU), ``reps`` samples."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    out = []
    for _ in range(reps):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b) * 1e-3)
        else:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return out


def _rec(samples: list[float], **kw) -> dict:
    return {
        **kw,
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "samples_s": samples,
    }


# ---------------------------------------------------------------------------------------------
# compute
# ---------------------------------------------------------------------------------------------
def gemm_shapes(
    d_model: int, d_ff: int, q_dim: int, kv_dim: int, tp: int, up_factor: int = 1
) -> dict[str, tuple[int, int]]:
    """(n, k) of the layer's four GEMMs on one TP rank.  ``up_factor`` 2: a gated MLP (SwiGLU), whose
    gate and up projections the executor runs as one GEMM of 2 d_ff outputs (``real.model``'s wup)."""
    return {
        "qkv": ((q_dim + 2 * kv_dim) // tp, d_model),
        "o_proj": (d_model, q_dim // tp),
        "mlp_up": (up_factor * d_ff // tp, d_model),
        "mlp_down": (d_model, d_ff // tp),
    }


def bench_gemm(
    dev, dtype, tokens: list[int], shapes: dict[str, tuple[int, int]], tp: int, reps: int
) -> list[dict]:
    out = []
    for m in tokens:
        for name, (n, k) in shapes.items():
            x = torch.randn(m, k, device=dev, dtype=dtype)
            w = torch.randn(n, k, device=dev, dtype=dtype) / math.sqrt(k)
            s = time_fn(lambda: F.linear(x, w), dev, reps=reps)
            out.append(_rec(s, op="gemm", name=name, tp=tp, m=m, n=n, k=k, flops=2.0 * m * n * k))
            x = w = None  # freed before the next size
    return out


def sdpa_lse(kernel: str, q, k, v, causal: bool):
    """Fused attention returning (out, logsumexp) through the SDPA kernel named (flash | cudnn | math)."""
    if kernel == "flash":
        r = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal, False)
        return r[0], r[1]
    if kernel == "cudnn":
        r = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, causal, False)
        return r[0], r[1]
    scale = q.shape[-1] ** -0.5
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if causal:
        ql, kl = q.shape[-2], k.shape[-2]
        mask = torch.ones(ql, kl, dtype=torch.bool, device=q.device).tril(kl - ql)
        s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    return torch.matmul(torch.softmax(s, -1), v.float()).to(q.dtype), lse


def bench_attention(
    dev, dtype, kernels: list[str], lengths: list[int], heads: int, head_dim: int, reps: int, batch: int = 1
) -> list[dict]:
    out = []
    for kern in kernels:
        for causal in (True, False):
            for L in lengths:
                q, k, v = (torch.randn(batch, heads, L, head_dim, device=dev, dtype=dtype) for _ in range(3))
                try:
                    s = time_fn(lambda: sdpa_lse(kern, q, k, v, causal), dev, reps=reps)
                except RuntimeError as e:  # kernel not available for this shape / build
                    out.append({"op": "attention", "kernel": kern, "error": str(e).splitlines()[0][:200]})
                    break
                pairs = L * (L + 1) / 2 if causal else L * L
                out.append(
                    _rec(
                        s,
                        op="attention",
                        kernel=kern,
                        causal=causal,
                        batch=batch,
                        heads=heads,
                        q_len=L,
                        kv_len=L,
                        head_dim=head_dim,
                        flops=4.0 * batch * heads * head_dim * pairs,
                    )
                )
                q = k = v = None  # freed before the next size
    return out


def bench_decode_attention(
    dev, dtype, kernels: list[str], cases: list[tuple[int, int]], heads: int, head_dim: int, reps: int
) -> list[dict]:
    """One query per sequence against a cache of kv_len keys: memory-bound; bytes = K + V read."""
    out = []
    for kern in kernels:
        for b, L in cases:
            for layout in ("contiguous", "executor"):
                q = torch.randn(b, heads, 1, head_dim, device=dev, dtype=dtype)
                if layout == "contiguous":
                    k, v = (torch.randn(b, heads, L, head_dim, device=dev, dtype=dtype) for _ in range(2))
                else:  # the executor's cache: (2, B, S, H, D), attended through (B, H, S, D) views
                    cache = torch.randn(2, b, L, heads, head_dim, device=dev, dtype=dtype)
                    k, v = cache[0].transpose(1, 2), cache[1].transpose(1, 2)
                try:
                    s = time_fn(lambda: sdpa_lse(kern, q, k, v, False), dev, reps=reps)
                except RuntimeError as e:
                    out.append(
                        {"op": "decode_attention", "kernel": kern, "error": str(e).splitlines()[0][:200]}
                    )
                    break
                kv_bytes = 2.0 * b * heads * L * head_dim * q.element_size()
                out.append(
                    _rec(
                        s,
                        op="decode_attention",
                        kernel=kern,
                        batch=b,
                        heads=heads,
                        kv_len=L,
                        head_dim=head_dim,
                        kv_bytes=kv_bytes,
                        layout=layout,
                    )
                )
                q = k = v = None  # freed before the next size
    return out


def bench_elementwise(dev, dtype, sizes: list[int], reps: int) -> list[dict]:
    out = []
    for n in sizes:
        a, b = torch.randn(n, device=dev, dtype=dtype), torch.randn(n, device=dev, dtype=dtype)
        c = torch.empty_like(a)
        s = time_fn(lambda: torch.add(a, b, out=c), dev, reps=reps)
        out.append(_rec(s, op="elementwise", name="add", elements=n, bytes=3.0 * n * a.element_size()))
        a = b = c = None  # freed before the next size
    return out


def bench_launch(dev, calls: int = 2000) -> dict:
    """Per-op cost of a chain of tiny eager kernels (CPU-side dispatch + launch), wall clock."""
    x = torch.zeros(8, device=dev)
    for _ in range(50):
        x.add_(1.0)
    _sync(dev)
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            x.add_(1.0)
        _sync(dev)
        samples.append((time.perf_counter() - t0) / calls)
    return _rec(samples, op="launch", calls=calls)


# ---------------------------------------------------------------------------------------------
# communication (all ranks of the default group take part)
# ---------------------------------------------------------------------------------------------
def _max_over_ranks(samples: list[float], dev) -> list[float]:
    t = torch.tensor(samples, device=dev, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def bench_comm(dev, sizes: list[int], reps: int, graph: bool = False, calls: int = 10) -> list[dict]:
    """Neighbour exchange and the collectives over the whole world, by message size; ``graph``: each call
    captured in a CUDA graph (``calls`` per replay, 2 above 16 MiB) and timed as its replay."""
    world, rank = dist.get_world_size(), dist.get_rank()
    nxt, prv = (rank + 1) % world, (rank - 1) % world
    out = []
    for nbytes in sizes:
        n = max(nbytes // 2, world)
        n -= n % world
        x = torch.randn(n, device=dev, dtype=torch.bfloat16)
        y = torch.empty_like(x)
        g = torch.empty(n * world, device=dev, dtype=torch.bfloat16)

        def exchange():
            ops = [dist.P2POp(dist.isend, x, nxt), dist.P2POp(dist.irecv, y, prv)]
            for r in dist.batch_isend_irecv(ops):
                r.wait()

        cases = {
            "p2p": (exchange, x.numel() * 2),
            "all_reduce": (lambda: dist.all_reduce(x), x.numel() * 2),
            "all_gather": (lambda: dist.all_gather_into_tensor(g, x), g.numel() * 2),
            "reduce_scatter": (lambda: dist.reduce_scatter_tensor(y[: n // world], x), x.numel() * 2),
            "all_to_all": (lambda: dist.all_to_all_single(y, x), x.numel() * 2),
        }
        for coll, (fn, msg) in cases.items():
            dist.barrier()
            if graph:
                s = time_graph(fn, dev, calls=calls if nbytes <= 2**24 else 2, reps=reps, collective=True)
                out.append(_rec(s, op="comm", mode="graph", coll=coll, group=world, msg_bytes=float(msg)))
            else:
                s = _max_over_ranks(time_fn(fn, dev, reps=reps), dev)
                out.append(_rec(s, op="comm", coll=coll, group=world, msg_bytes=float(msg)))
        x = y = g = None  # freed before the next size
    return out


def bench_slowdown(dev, dtype, reps: int = 3) -> dict:
    """Time of a GEMM burst alone and while a large neighbour exchange runs on another stream."""
    world, rank = dist.get_world_size(), dist.get_rank()
    a = torch.randn(8192, 8192, device=dev, dtype=dtype)
    b = torch.randn(8192, 8192, device=dev, dtype=dtype)

    def burst():
        for _ in range(10):
            torch.matmul(a, b)

    alone = time_fn(burst, dev, reps=reps)
    big = torch.randn(256 * 2**20, device=dev, dtype=torch.bfloat16)  # 512 MiB
    rbuf = torch.empty_like(big)
    comm = torch.cuda.Stream(dev) if dev.type == "cuda" else None
    beside = []
    for _ in range(reps):
        dist.barrier()
        if comm is not None:
            comm.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(comm):
                for _ in range(4):
                    ops = [
                        dist.P2POp(dist.isend, big, (rank + 1) % world),
                        dist.P2POp(dist.irecv, rbuf, (rank - 1) % world),
                    ]
                    for r in dist.batch_isend_irecv(ops):
                        r.wait()
        beside.append(time_fn(burst, dev, reps=1, warmup=0)[0])
        _sync(dev)
    return {
        "op": "slowdown",
        "alone": _rec(alone),
        "beside_comm": _rec(beside),
        "ratio": statistics.median(beside) / statistics.median(alone),
    }


def provenance(dev) -> dict:
    import datetime
    import socket
    import sys

    p = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "command": " ".join(
            (["torchrun"] if "TORCHELASTIC_RUN_ID" in os.environ else ["python3 -m"]) + sys.argv
        ),
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
    }
    from real.provenance import boot_id, git_revision, source_sha256

    p.update(
        git_revision=git_revision(), source_sha256=source_sha256(), boot_ids=[b for b in [boot_id()] if b]
    )
    if dev.type == "cuda":
        p["gpu"] = torch.cuda.get_device_name(dev)
        p["cuda"] = torch.version.cuda
        try:
            p["nccl"] = ".".join(str(v) for v in torch.cuda.nccl.version())
        except Exception:  # noqa: BLE001 - version probing only
            p["nccl"] = "unknown"
        try:
            import subprocess

            p["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.split()[0]
        except Exception:  # noqa: BLE001
            p["driver"] = "unknown"
        p["env"] = {k: os.environ.get(k) for k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST")}
    return p


# ---------------------------------------------------------------------------------------------
# FP8 (the 'fp8' suite): torch._scaled_mm GEMMs at the model's layer shapes, and the activation quantise
# ---------------------------------------------------------------------------------------------
# issue 12: GEMMs at the row counts long-context prefill runs (between and beyond the eager suite's 16Ki
# and 64Ki), where the in-layer GEMMs of the P = 4 traces ran 10-15% faster than the curve
GEMM_ROWS_TOKENS = [8192, 12288, 24576, 40960, 98304, 131072]
FP8_TOKENS = [1, 2, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 131072]


def bench_fp8(
    dev,
    model_dims: dict,
    tokens: list[int],
    tps: tuple[int, ...] = (1, 2),
    reps: int = 7,
    emulate: bool = False,
) -> list[dict]:
    """Per GEMM shape of the model's layer (``gemm_shapes``) and token count: the FP8 GEMM alone
    (``op="gemm_fp8"``: e4m3 operands already quantised, ``torch._scaled_mm`` with scale_a (M, 1) and
    scale_b (1, N) FP32, BF16 out), the same GEMM in BF16 beside it (``op="gemm_bf16_ref"``, kept apart
    from the BF16 curve's records) and the quantise of its input rows (``op="fp8_quant"``: amax per row,
    scale, cast; ideal bytes = read BF16 + write FP8 + one FP32 scale per row).  On a GPU each is timed
    as a CUDA-graph replay; ``emulate`` (CPU tests of the record format): the emulated FP8 path, eager."""
    from real import model as M

    if not emulate:
        why = M.scaled_mm_available(dev)
        if why is not None:
            raise RuntimeError(f"the fp8 suite cannot run: {why}")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    mode = "eager" if emulate else "graph"

    def timed(fn, m):
        if emulate:
            return time_fn(fn, dev, reps=reps)
        return time_graph(fn, dev, calls=10 if m <= 4096 else 2, reps=reps)

    d, ff, qd, kvd = (model_dims[k] for k in ("d_model", "d_ff", "q_dim", "kv_dim"))
    out: list[dict] = []
    seen: set[tuple[int, int]] = set()  # (m, k) of the quantise calls measured
    for tp in tps:
        for m in tokens:
            for name, (n, k) in gemm_shapes(d, ff, qd, kvd, tp, model_dims.get("up_factor", 1)).items():
                x = torch.randn(m, k, device=dev, dtype=dtype)
                w = torch.randn(n, k, device=dev, dtype=dtype) / math.sqrt(k)
                wq = M.quantize_weight(w)
                x8, sa = M.quantize_rows(x)
                common = dict(mode=mode, name=name, tp=tp, m=m, n=n, k=k, flops=2.0 * m * n * k)
                if emulate:
                    fn = lambda: (x8.float() * sa) @ (wq.w8.float() * wq.scale.t()).t()  # noqa: E731
                else:
                    fn = lambda: torch._scaled_mm(  # noqa: E731
                        x8, wq.w8.t(), scale_a=sa, scale_b=wq.scale, out_dtype=dtype
                    )
                out.append(_rec(timed(fn, m), op="gemm_fp8", emulated=emulate, **common))
                out.append(_rec(timed(lambda: F.linear(x, w), m), op="gemm_bf16_ref", **common))
                if (m, k) not in seen:  # distinct inputs only
                    seen.add((m, k))
                    out.append(
                        _rec(
                            timed(lambda: M.quantize_rows(x), m),
                            op="fp8_quant",
                            mode=mode,
                            m=m,
                            k=k,
                            ideal_bytes=float(m * k * (x.element_size() + 1) + 4 * m),
                        )
                    )
                x = w = wq = x8 = sa = None  # freed before the next size
    return out


def run_all(
    model_dims: dict, quick: bool = False, suites: tuple[str, ...] = ("eager", "graph"), progress=None
) -> dict:
    """Every microbenchmark of the suites asked for (eager: as the host issues op by op; graph: replayed
    from CUDA graphs, GPU only; fp8: FP8 GEMMs and the quantise, GPU only); returns the raw results
    (rank 0's view; comm figures are max over ranks).  ``progress(stage)`` (if given) is called as each
    stage ends (``RUN_ALL_STAGES`` of them at most)."""
    tick = progress or (lambda stage: None)
    dev = (
        torch.device("cuda", torch.cuda.current_device())
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    cuda = dev.type == "cuda"
    if "fp8" in suites:
        from costmodel.errors import SpecError
        from real.model import scaled_mm_available

        why = scaled_mm_available(dev)
        if why is not None:
            raise SpecError(f"suite fp8 cannot run here: {why}")
    reps = 2 if quick else 7
    res: dict = {
        "provenance": provenance(dev),
        "device": dev.type,
        "model_dims": model_dims,
        "results": [],
        "suites": [s for s in suites if s in ("eager", "gemm-rows") or cuda],
    }
    R = res["results"]
    if "fp8" in suites:  # GPU only: bench_fp8 says why not elsewhere
        R += bench_fp8(dev, model_dims, [1, 16] if quick else FP8_TOKENS, (1,) if quick else (1, 2), reps)
    if cuda and "graph" in suites:
        R += run_graph(model_dims, quick)
        tick("graph")
    if "gemm-rows" in suites:  # the layer's GEMMs between and beyond the eager suite's row counts
        d, ff, qd, kvd = (model_dims[k] for k in ("d_model", "d_ff", "q_dim", "kv_dim"))
        for tp in (1,) if quick else (1, 2):
            R += bench_gemm(
                dev,
                dtype,
                [32, 96] if quick else GEMM_ROWS_TOKENS,
                gemm_shapes(d, ff, qd, kvd, tp, model_dims.get("up_factor", 1)),
                tp,
                reps,
            )
    if "eager" not in suites:
        return res
    d, ff, qd, kvd, hd = (model_dims[k] for k in ("d_model", "d_ff", "q_dim", "kv_dim", "head_dim"))
    heads = qd // hd
    tokens = [16, 64] if quick else [16, 64, 256, 1024, 4096, 16384, 65536]
    for tp in (1,) if quick else (1, 2):
        R += bench_gemm(
            dev, dtype, tokens, gemm_shapes(d, ff, qd, kvd, tp, model_dims.get("up_factor", 1)), tp, reps
        )
    tick("gemm")
    kernels = ["flash", "cudnn"] if cuda else ["math"]
    lengths = [128, 256] if quick else [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]
    R += bench_attention(dev, dtype, kernels, lengths, heads, hd, 3 if not quick else 2)
    tick("attention")
    cases = (
        [(1, 256)]
        if quick
        else [
            (1, 4096),
            (1, 16384),
            (1, 65536),
            (1, 262144),
            (16, 16384),
            (16, 65536),
            (64, 4096),
            (64, 16384),
        ]
    )
    R += bench_decode_attention(dev, dtype, kernels, cases, heads, hd, reps)
    tick("decode attention")
    R += bench_elementwise(dev, dtype, [2**16] if quick else [2**20, 2**24, 2**28], reps)
    R.append(bench_launch(dev, 200 if quick else 2000))
    tick("elementwise and launch")
    from costmodel.specs import Model

    m = Model(name="dims", layers=1, d_model=d, n_heads=heads, n_kv_heads=kvd // hd, head_dim=hd, d_ff=ff)
    R += bench_ops(dev, dtype, m, reps, tok_big=256 if quick else 16384, calls=50 if quick else 300)
    if dist.is_initialized() and dist.get_world_size() > 1:
        R.append(bench_comm_issue(dev, 50 if quick else 200))
    R.append(bench_executor_walk(dev, dtype, reps=3 if quick else 20))
    tick("ops and executor walk")
    if dist.is_initialized() and dist.get_world_size() > 1:
        sizes = [2**10, 2**16] if quick else [2**10, 2**14, 2**17, 2**20, 2**23, 2**26, 2**28, 2**30]
        R += bench_comm(dev, sizes, reps)
        if cuda:
            R.append(bench_slowdown(dev, dtype))
        tick("communication")
    return res


RUN_ALL_STAGES = 7  # the ticks run_all may make: graph, gemm, attention, decode, elementwise, ops, comm


# ---------------------------------------------------------------------------------------------
# the executor's own op implementations (issue 5: the physics of this implementation)
# ---------------------------------------------------------------------------------------------
def _op_cases(model, tok: int, dev, dtype) -> dict:
    """For each op class: (callable running the executor's implementation, ideal bytes of the recipe)."""
    from costmodel import layers as Lr
    from real import model as M
    from real.buffers import Acc, Part

    d, hd = model.d_model, model.head_dim
    hq = hk = model.n_heads
    qkv_n = model.q_dim + 2 * model.kv_dim
    x = torch.randn(tok, d, device=dev, dtype=dtype)
    y = torch.randn(tok, d, device=dev, dtype=dtype)
    g = torch.randn(d, device=dev, dtype=dtype)
    raw = torch.randn(tok, qkv_n, device=dev, dtype=dtype)
    cos, sin = M.rope_tables(torch.arange(tok, device=dev), hd, dtype)
    u = torch.randn(tok, model.d_ff, device=dev, dtype=dtype)
    out = torch.randn(1, hq, tok, hd, device=dev, dtype=dtype)
    lse = torch.randn(1, hq, tok, device=dev, dtype=torch.float32)
    acc = Acc.empty(1, hq, tok, hd, dev)
    acc.init(Part(out, lse))

    def rope():
        r = raw.view(1, tok, hq + 2 * hk, hd)
        M.apply_rope(r[:, :, :hq], cos, sin)
        kv = torch.empty(2, 1, tok, hk, hd, device=dev, dtype=dtype)
        M.apply_rope(r[:, :, hq : hq + hk], cos, sin, out=kv[0])
        kv[1].copy_(r[:, :, hq + hk :])

    def init():
        a = Acc.empty(1, hq, tok, hd, dev)
        a.init(Part(out, lse))

    def finalize():
        o = acc.o.to(dtype).transpose(1, 2)
        return o.reshape(tok, -1)

    pre = Lr.pre_attention(model, tok, model.q_dim + 2 * model.kv_dim)
    acc_b = tok * hq * hd * (model.dtype_bytes + model.accum_bytes)
    return {
        "norm": (lambda: M.rmsnorm(x, g), pre[0].hbm_bytes),
        "rope": (rope, pre[2].hbm_bytes),
        "residual": (lambda: x + y, Lr.residual("resid1", model, tok).hbm_bytes),
        "act": (lambda: M.activation(model, u), Lr.mlp_in(model, tok, 1)[2].hbm_bytes),
        "merge": (lambda: acc.merge(Part(out, lse)), Lr.lse_merge("merge", model, tok, hq, (), ()).hbm_bytes),
        "init": (init, acc_b),
        "finalize": (finalize, acc_b),
    }


def bench_ops(
    dev, dtype, model, reps: int, tok_big: int = 16384, tok_small: int = 1, calls: int = 300
) -> list[dict]:
    """Per op class: device time at a full-size shape (-> bytes factor over the ideal fused traffic) and
    host issue time at a tiny shape (wall time per call of a long chain: the host is the slower side)."""
    out = []
    big = _op_cases(model, tok_big, dev, dtype)
    small = _op_cases(model, tok_small, dev, dtype)
    for cls, (fn, ideal) in big.items():
        s = time_fn(fn, dev, reps=reps)
        out.append(_rec(s, op="op_device", cls=cls, tokens=tok_big, ideal_bytes=float(ideal)))
    x = torch.randn(tok_small, model.d_model, device=dev, dtype=dtype)
    w = torch.randn(64, model.d_model, device=dev, dtype=dtype)
    q = torch.randn(1, 1, 4, model.head_dim, device=dev, dtype=dtype)  # (B, S, H, D) as the executor holds it
    kv = torch.randn(1, 64, 4, model.head_dim, device=dev, dtype=dtype)
    kern = "cudnn" if dev.type == "cuda" else "math"
    small["gemm"] = (lambda: F.linear(x, w), 0.0)
    small["attention"] = (
        lambda: sdpa_lse(kern, q.transpose(1, 2), kv.transpose(1, 2), kv.transpose(1, 2), False),
        0.0,
    )
    for cls, (fn, _) in small.items():
        for _ in range(20):
            fn()
        _sync(dev)
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            _sync(dev)
            samples.append((time.perf_counter() - t0) / calls)
        out.append(_rec(samples, op="op_issue", cls=cls, tokens=tok_small, calls=calls))
    return out


def bench_executor_walk(dev, dtype, reps: int = 20) -> dict:
    """Wall time of the real executor walking a tiny one-GPU decode step (host-bound): what its per-op
    dispatch (tags, streams, events, buffer bookkeeping) adds to the issue time of the ops themselves."""
    from costmodel import presets
    from costmodel.build import build_schedule
    from costmodel.config import Config
    from costmodel.plan import Plan
    from costmodel.specs import Model, Workload
    from costmodel.topology import parse_topology
    from real import comm as C
    from real.executor import Executor

    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    tp = world if world in (1, 2, 4, 8) else 1
    model = Model(
        name="walk",
        layers=2,
        d_model=256 * tp,
        n_heads=2 * tp,
        n_kv_heads=2 * tp,
        head_dim=128,
        d_ff=1024 * tp,
    )
    wl = Workload(batch=1, seq_len=64, phase="decode", context_len=64)
    cfg = Config(
        hardware=presets.load_hardware("h200-sxm-published"),
        topology=parse_topology(f"nvswitch:{tp}"),
        model=model,
        workload=wl,
        plan=Plan(tp=tp),
    )
    sched = build_schedule(model, wl, cfg.plan, cfg.topology)
    kern = "cudnn" if dev.type == "cuda" else "math"
    groups = None
    if tp > 1:
        groups = C.Groups()
        groups.prepare(cfg.plan)
    if tp == 1 and rank:
        rank = 0
    ex = Executor(cfg, sched, rank, device=dev, dtype=dtype, kernel=kern, seed=0, groups=groups)
    for _ in range(5):
        ex.run()
    _sync(dev)
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            ex.run()
        _sync(dev)
        samples.append((time.perf_counter() - t0) / reps)
    counts: dict[str, int] = {}
    for op in sched.rank_ops(rank):
        if not op.is_compute:
            counts["comm"] = counts.get("comm", 0) + 1
        else:
            cls = op.role.op_class
            counts[cls] = counts.get(cls, 0) + 1
    if dist.is_initialized():
        samples = _max_over_ranks(samples, dev)
    return _rec(samples, op="executor_walk", ops=counts, n_ops=len(sched.rank_ops(rank)), tp=tp)


def bench_comm_issue(dev, calls: int = 200) -> dict:
    """Host time per tiny NCCL call issued back to back (all-reduce, all-gather, neighbour exchange)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    x = torch.ones(64, device=dev)
    g = torch.empty(64 * world, device=dev)
    y = torch.empty_like(x)

    def exchange():
        ops = [dist.P2POp(dist.isend, x, (rank + 1) % world), dist.P2POp(dist.irecv, y, (rank - 1) % world)]
        for r in dist.batch_isend_irecv(ops):
            r.wait()

    per = {}
    for name, fn in (
        ("all_reduce", lambda: dist.all_reduce(x)),
        ("all_gather", lambda: dist.all_gather_into_tensor(g, x)),
        ("p2p", exchange),
    ):
        for _ in range(20):
            fn()
        _sync(dev)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(dev)
        per[name] = (time.perf_counter() - t0) / calls
    s = _max_over_ranks([statistics.median(per.values())], dev)
    return _rec(s, op="op_issue", cls="comm", calls=calls, per_call_s=per)


# ---------------------------------------------------------------------------------------------
# CUDA-graph replay (the '-graph' profile: what the executor costs when the host is out of the way)
# ---------------------------------------------------------------------------------------------
def time_graph(
    fn: Callable[[], object], dev, calls: int = 20, reps: int = 5, collective: bool = False
) -> list[float]:
    """Per-call seconds of ``fn`` replayed from one CUDA graph of ``calls`` back-to-back calls (the
    graph's launch is spread over them).  ``collective``: every rank captures and replays together and
    each sample is the maximum over ranks."""
    for _ in range(2):
        fn()
    _sync(dev)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    g.replay()
    _sync(dev)
    out = []
    for _ in range(reps):
        if collective:
            dist.barrier()
            _sync(dev)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) * 1e-3 / calls)
    del g
    return _max_over_ranks(out, dev) if collective else out


def bench_graph_launch(dev, sizes=(1, 30, 300), reps: int = 9) -> dict:
    """Replay time of graphs of n tiny kernels: t(n) = launch + n * per_kernel (least squares)."""
    x = torch.zeros(8, device=dev)
    pts = []
    for n in sizes:
        s = time_graph(lambda: [x.add_(1.0) for _ in range(n)], dev, calls=1, reps=reps)
        pts.append((n, statistics.median(s)))
    ns, ts = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
    slope, icpt = np.polyfit(ns, ts, 1)
    return {
        "op": "graph_launch",
        "mode": "graph",
        "points": [{"kernels": n, "median_s": t} for n, t in pts],
        "launch_s": float(max(icpt, 0.0)),
        "per_kernel_s": float(slope),
    }


def _executor_variants(world: int) -> list:
    """Plans whose decode step the in-place op measurement walks: TP and every ring decode variant."""
    from costmodel.plan import Plan

    if world == 1:
        return [Plan()]
    return [Plan(tp=world)] + [Plan(ring=world, decode_attn=d) for d in ("pass-kv", "pass-q", "allgather")]


def bench_executor_ops_graph(
    dev, dtype, model_dims: dict, calls: int = 10, reps: int = 5, context: int = 256, batch: int = 1
) -> list[dict]:
    """Device time of each op of the executor's own decode step, in place: one layer of the model at
    ``batch`` sequences (one by default) and a short context, every op group (a kernel, or an NCCL group)
    captured alone in a CUDA graph of ``calls`` repetitions and replayed by every rank together.  At one
    sequence an elementwise op's time is its floor: the fixed cost of the kernels its implementation
    runs; at more, how that cost grows with rows."""
    from costmodel import presets
    from costmodel.build import build_schedule
    from costmodel.config import Config
    from costmodel.specs import Model, Workload
    from costmodel.topology import parse_topology
    from real import comm as C
    from real.executor import Executor

    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    d, ff, qd, kvd, hd = (model_dims[k] for k in ("d_model", "d_ff", "q_dim", "kv_dim", "head_dim"))
    model = Model(
        name="dims", layers=1, d_model=d, n_heads=qd // hd, n_kv_heads=kvd // hd, head_dim=hd, d_ff=ff
    )
    wl = Workload(batch=batch, seq_len=context, phase="decode", context_len=context)
    kern = "cudnn" if dev.type == "cuda" else "math"
    out = []
    for plan in _executor_variants(world):
        cfg = Config(
            hardware=presets.load_hardware("h200-sxm-published"),
            topology=parse_topology(f"nvswitch:{world}"),
            model=model,
            workload=wl,
            plan=plan,
        )
        sched = build_schedule(model, wl, plan, cfg.topology)
        groups = None
        if world > 1:
            groups = C.Groups()
            groups.prepare(plan)
        ex = Executor(cfg, sched, rank, device=dev, dtype=dtype, kernel=kern, seed=0, groups=groups)
        for _ in range(3):
            ex.run()
        _sync(dev)
        from real.executor import _group_batches

        env = dict(ex.inputs)  # the buffers as they are before the group measured (names are reused)
        for grp in _group_batches(ex.ops):
            op = grp[0]
            cls = op.role.op_class
            before = dict(env)
            s = time_graph(
                lambda: ex.run_ops(grp, dict(before)), dev, calls=calls, reps=reps, collective=world > 1
            )
            out.append(
                _rec(
                    s,
                    op="op_floor",
                    mode="graph",
                    cls=cls,
                    tag=op.tag,
                    plan=plan.name,
                    decode_attn=str(plan.decode_attn),
                    ops_in_group=len(grp),
                    **({"batch": batch} if batch != 1 else {}),
                )
            )
            ex.run_ops(grp, env)  # on to the next group's inputs
        ex = env = before = None  # freed before the next size
        _sync(dev)
    return out


def run_graph(model_dims: dict, quick: bool = False) -> list[dict]:
    """The measurements of the '-graph' profile, every one timed as a CUDA graph replay."""
    dev = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16
    reps = 3 if quick else 7
    R: list[dict] = []
    d, ff, qd, kvd, hd = (model_dims[k] for k in ("d_model", "d_ff", "q_dim", "kv_dim", "head_dim"))
    heads = qd // hd
    tokens = [1, 16] if quick else [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536]
    for tp in (1,) if quick else (1, 2):
        for m in tokens:
            for name, (n, k) in gemm_shapes(d, ff, qd, kvd, tp, model_dims.get("up_factor", 1)).items():
                x = torch.randn(m, k, device=dev, dtype=dtype)
                w = torch.randn(n, k, device=dev, dtype=dtype) / math.sqrt(k)
                s = time_graph(lambda: F.linear(x, w), dev, calls=10 if m <= 4096 else 2, reps=reps)
                R.append(
                    _rec(s, op="gemm", mode="graph", name=name, tp=tp, m=m, n=n, k=k, flops=2.0 * m * n * k)
                )
                x = w = None  # freed before the next size
    cases = (
        [(1, 256)]
        if quick
        else [
            (1, 1024),
            (1, 4096),
            (1, 16384),
            (1, 65536),
            (1, 262144),
            (16, 8192),
            (16, 16384),
            (16, 65536),
            (16, 131072),
            (64, 4096),
            (64, 16384),
            (64, 32768),
        ]
    )
    for kern in ("flash", "cudnn"):
        for b, L in cases:
            q = torch.randn(b, heads, 1, hd, device=dev, dtype=dtype)
            cache = torch.randn(2, b, L, heads, hd, device=dev, dtype=dtype)
            k, v = cache[0].transpose(1, 2), cache[1].transpose(1, 2)
            try:
                s = time_graph(
                    lambda: sdpa_lse(kern, q, k, v, False), dev, calls=10 if b * L <= 2**20 else 2, reps=reps
                )
            except RuntimeError as e:
                R.append(
                    {
                        "op": "decode_attention",
                        "mode": "graph",
                        "kernel": kern,
                        "error": str(e).splitlines()[0][:200],
                    }
                )
                break
            R.append(
                _rec(
                    s,
                    op="decode_attention",
                    mode="graph",
                    kernel=kern,
                    batch=b,
                    heads=heads,
                    kv_len=L,
                    head_dim=hd,
                    kv_bytes=2.0 * b * heads * L * hd * q.element_size(),
                    layout="executor",
                )
            )
            q = cache = k = v = None  # freed before the next size
    for n in [2**16] if quick else [2**20, 2**24, 2**28]:
        a_, b_ = torch.randn(n, device=dev, dtype=dtype), torch.randn(n, device=dev, dtype=dtype)
        c_ = torch.empty_like(a_)
        s = time_graph(lambda: torch.add(a_, b_, out=c_), dev, calls=10, reps=reps)
        R.append(
            _rec(s, op="elementwise", mode="graph", name="add", elements=n, bytes=3.0 * n * a_.element_size())
        )
        a_ = b_ = c_ = None  # freed before the next size
    from costmodel.specs import Model

    m = Model(name="dims", layers=1, d_model=d, n_heads=heads, n_kv_heads=kvd // hd, head_dim=hd, d_ff=ff)
    for cls, (fn, ideal) in _op_cases(m, 256 if quick else 16384, dev, dtype).items():
        s = time_graph(fn, dev, calls=5, reps=reps)
        R.append(
            _rec(
                s,
                op="op_device",
                mode="graph",
                cls=cls,
                tokens=256 if quick else 16384,
                ideal_bytes=float(ideal),
            )
        )
    R.append(bench_graph_launch(dev))
    R += bench_executor_ops_graph(dev, dtype, model_dims, calls=5 if quick else 10, reps=reps)
    if dist.is_initialized() and dist.get_world_size() > 1:
        sizes = [2**10, 2**16] if quick else [2**10, 2**14, 2**17, 2**20, 2**23, 2**26, 2**28, 2**30]
        R += bench_comm(dev, sizes, reps, graph=True)
    return R


# ---------------------------------------------------------------------------------------------
# decode attention across query heads x KV heads per GPU x batch x context (issue 12)
# ---------------------------------------------------------------------------------------------
DECODE_GRID = {
    "heads": (4, 8, 16, 32, 64),  # query heads per GPU
    "kv_heads": (1, 2, 4, 8, 16, 32),  # KV heads per GPU (those <= heads and dividing them)
    "batch": (1, 4, 8, 16, 32, 64),
    "context": (2048, 8192, 32768, 131072, 262144),  # keys per GPU
}
# held out of the fit (the check of its interpolation): batches and contexts between the grid's
DECODE_GRID_HELD_OUT = {"batch": (2, 48), "context": (6144, 49152, 196608)}
# the corners the first grid left out (issue 12: 1-2 query heads per GPU, batch 128, 512Ki keys per GPU),
# measured as a supplement (``--subset gaps``) with the grid's caches that fit in L2 re-measured cold
DECODE_GRID_GAPS = {"heads": (1, 2), "batch": (128,), "context": (524288,)}
DECODE_GRID_GAPS_HELD_OUT = {"batch": (96,), "context": (393216,)}
DECODE_GRID_WARM_BYTES = 100 * 2**20
# batches between the grid's (issue 12: a TP = 2 decode step at B = 20, 16 heads per GPU, missed by 18%):
# a thread-block count that fills waves badly; keys no validation record uses (``--subset batches``)
DECODE_GRID_BATCHES = {
    "heads": (8, 16, 32),
    "kv_heads": (8, 16, 32),
    "batch": (6, 10, 12, 20, 24, 40),
    "context": (36864, 92160),
}
# every batch 1-96 (issue 12: unseen decode steps at B = 9, 10, 20 missed by 8-16%: 72, 80 and 288 work
# items, between the grid's counts, where the kernel's split and wave rule change): the (query, KV) head
# pairs per GPU of the presets' TP shards, at key counts no validation record uses (``--subset items``);
# the read-time factor is fitted at each measured count of work items (sequences x KV heads)
DECODE_GRID_ITEMS = {
    "pairs": ((32, 32), (16, 16), (8, 8), (32, 8), (16, 4), (8, 2), (4, 1)),
    "batch": tuple(range(1, 97)),
    "context": (15360, 67584),
    "held_out_batch": (11, 27, 45, 77),
}
DECODE_GRID_ITEMS_CACHE_CAP = 24 * 2**30
# caches below this were read from L2 in the first grid (no rotation)
# the H200's L2 is 50 MB (NVIDIA H200 datasheet / Hopper whitepaper: "50 MB L2"); calls rotate over cache
# copies so that at least this many bytes are read between two reads of one copy
DECODE_GRID_COLD = 256 * 2**20
DECODE_GRID_MAX_CALLS = 256
DECODE_GRID_CACHE_CAP = 12 * 2**30  # bytes of one K/V cache (2 x B x S x Hk x D x 2) measured at most
DECODE_GRID_EXPAND_CAP = 24 * 2**30  # bytes of the K/V expanded to the query heads (GQA) at most


def decode_grid_cases(
    quick: bool = False, head_dim: int = 128, dtype_bytes: int = 2, subset: str = "all"
) -> list[dict]:
    """The grid's points, (kv_heads, batch, context) outer so one cache serves every head count: each a
    dict of heads, kv_heads, batch, kv_len, held_out.  Points whose cache or GQA-expanded K/V exceeds the
    caps are left out (they would only re-measure the bandwidth plateau at minutes of device time).
    ``subset="gaps"``: only the points of the grid widened by ``DECODE_GRID_GAPS`` that the first grid did
    not measure cold (1-2 query heads, batch 128, 512Ki keys, and caches small enough to have been
    served from L2), with ``DECODE_GRID_GAPS_HELD_OUT`` held out beside the grid's own held-out points."""
    if subset not in ("all", "gaps", "batches", "items"):
        raise ValueError(f"subset {subset!r} is not valid: give all, gaps, batches or items")
    if subset == "items" and not quick:
        g = DECODE_GRID_ITEMS
        return [
            {"heads": h, "kv_heads": hk, "batch": b, "kv_len": L, "held_out": b in g["held_out_batch"]}
            for hk in sorted({hk for _, hk in g["pairs"]})
            for L in g["context"]
            for b in g["batch"]
            for h in sorted(h for h, k in g["pairs"] if k == hk)
            if 2 * b * L * hk * head_dim * dtype_bytes <= DECODE_GRID_ITEMS_CACHE_CAP
        ]
    if subset == "batches" and not quick:
        g = DECODE_GRID_BATCHES
        return [
            {"heads": h, "kv_heads": hk, "batch": b, "kv_len": L, "held_out": b == 10}
            for hk in g["kv_heads"]
            for b in g["batch"]
            for L in g["context"]
            for h in g["heads"]
            if h >= hk and h % hk == 0 and 2 * b * L * hk * head_dim * dtype_bytes <= DECODE_GRID_CACHE_CAP
        ]
    if quick:
        return [
            {"heads": h, "kv_heads": hk, "batch": b, "kv_len": L, "held_out": b == 2}
            for hk in (1, 2)
            for b, L in ((1, 64), (2, 128))
            for h in (2, 4)
        ]
    gaps = subset == "gaps"
    heads = tuple(sorted(set(DECODE_GRID["heads"]) | (set(DECODE_GRID_GAPS["heads"]) if gaps else set())))
    batches = DECODE_GRID["batch"] + (DECODE_GRID_GAPS["batch"] if gaps else ())
    contexts = DECODE_GRID["context"] + (DECODE_GRID_GAPS["context"] if gaps else ())
    held_b = DECODE_GRID_HELD_OUT["batch"] + (DECODE_GRID_GAPS_HELD_OUT["batch"] if gaps else ())
    held_c = DECODE_GRID_HELD_OUT["context"] + (DECODE_GRID_GAPS_HELD_OUT["context"] if gaps else ())
    out = []
    grid = [(b, L, False) for b in batches for L in contexts]
    grid += [(b, L, True) for b in held_b for L in held_c]
    groups = [(hk, b, L, held) for hk in DECODE_GRID["kv_heads"] for b, L, held in grid]
    # a fixed shuffle of the caches: a run cut short by its time budget still covers the whole grid
    order = np.random.default_rng(12).permutation(len(groups))
    for i in order:
        hk, b, L, held = groups[i]
        cache = 2 * b * L * hk * head_dim * dtype_bytes
        if cache > DECODE_GRID_CACHE_CAP:
            continue
        for h in heads:
            if h < hk or h % hk:
                continue
            if h > hk and 2 * b * L * h * head_dim * dtype_bytes > DECODE_GRID_EXPAND_CAP:
                continue
            if gaps and not (
                h in DECODE_GRID_GAPS["heads"]
                or b in DECODE_GRID_GAPS["batch"] + DECODE_GRID_GAPS_HELD_OUT["batch"]
                or L in DECODE_GRID_GAPS["context"] + DECODE_GRID_GAPS_HELD_OUT["context"]
                or cache < DECODE_GRID_WARM_BYTES
            ):
                continue
            out.append({"heads": h, "kv_heads": hk, "batch": b, "kv_len": L, "held_out": held})
    return out


def bench_decode_grid(
    dev,
    dtype,
    kernels: list[str],
    cases: list[dict],
    head_dim: int = 128,
    reps: int = 5,
    graph: bool = True,
    budget_s: float = 0.0,
) -> list[dict]:
    """Decode attention as the executor calls it (``real.kernels``: one query per sequence against the
    executor's cache layout (2, B, S, Hk, D) viewed as (B, Hk, S, D); grouped K/V as they are, expanded to
    the query heads only where a kernel refuses them: ``kv_expanded`` in the record), at every point of
    ``cases`` for each kernel, replayed from CUDA graphs (``graph``; eager timing on CPU).  Records: op
    ``decode_attention_grid``; kv_bytes = the cache read (2 B S Hk D x element size).  ``budget_s`` > 0: no
    new cache is started after that many seconds (the points left are counted in a
    ``decode_attention_grid_skipped`` record)."""
    from real import kernels as K

    out = []
    t0 = time.perf_counter()
    esz = torch.empty((), dtype=dtype).element_size()
    bad: dict[str, str] = {}
    key = None
    caches = None
    for n, c in enumerate(cases):
        hk, b, L, h = c["kv_heads"], c["batch"], c["kv_len"], c["heads"]
        if key != (hk, b, L):
            if budget_s > 0 and time.perf_counter() - t0 > budget_s:
                out.append(
                    {"op": "decode_attention_grid_skipped", "points": len(cases) - n, "budget_s": budget_s}
                )
                break
            caches = None  # freed before the next size
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            one = 2 * b * L * hk * head_dim * esz
            # a decode step reads each layer's cache once, from HBM: calls rotate over copies of the cache
            # so that every call finds its cache out of L2 (at least DECODE_GRID_COLD bytes between reuses)
            copies = max(1, min(DECODE_GRID_MAX_CALLS, math.ceil(2 * DECODE_GRID_COLD / one)))
            caches = [torch.randn(2, b, L, hk, head_dim, device=dev, dtype=dtype) for _ in range(copies)]
            key = (hk, b, L)
        kvs = [(c_[0].transpose(1, 2), c_[1].transpose(1, 2)) for c_ in caches]
        q = torch.randn(b, 1, h, head_dim, device=dev, dtype=dtype).transpose(1, 2)
        kv_bytes = 2.0 * b * L * hk * head_dim * esz
        est = max(kv_bytes / 3e12, 8e-6)  # seconds, for sizing
        calls = int(min(20, max(2, math.ceil(1e-3 / est))))
        calls = int(min(DECODE_GRID_MAX_CALLS, max(calls, len(kvs), math.ceil(DECODE_GRID_COLD / kv_bytes))))
        for kern in kernels:
            if kern in bad:
                continue
            fn = K.get(kern)
            turn = [0]

            def call(fn=fn, turn=turn):
                k, v = kvs[turn[0] % len(kvs)]
                turn[0] += 1
                return fn(q, k, v, False)

            try:
                if graph:
                    s = time_graph(call, dev, calls=calls, reps=reps)
                else:
                    s = time_fn(call, dev, reps=reps, warmup=1)
            except RuntimeError as e:  # this kernel cannot run this shape here
                msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                out.append({"op": "decode_attention_grid", "kernel": kern, **c, "error": msg})
                if "out of memory" in msg:
                    torch.cuda.empty_cache() if dev.type == "cuda" else None
                continue
            out.append(
                _rec(
                    s,
                    op="decode_attention_grid",
                    mode="graph" if graph else "eager",
                    kernel=kern,
                    batch=b,
                    heads=h,
                    kv_heads=hk,
                    kv_len=L,
                    head_dim=head_dim,
                    kv_bytes=kv_bytes,
                    layout="executor",
                    # grouped K/V expanded to the query heads first (the kernel refused them as they are)
                    kv_expanded=h > hk and not K.GQA_NATIVE.get(f"{kern}/q1", True),
                    held_out=bool(c["held_out"]),
                    calls=calls,
                    cache_copies=len(kvs),  # calls rotate over them: each finds its cache out of L2
                )
            )
        q = kvs = None
    caches = None
    return out


def run_decode_grid(
    quick: bool = False,
    kernels: list[str] | None = None,
    reps: int = 5,
    budget_s: float = 0.0,
    subset: str = "all",
) -> dict:
    """The decode-attention grid as a raw calibration file (fitted with ``ringsim calibrate --from-raw``
    beside a full run): GPU, BF16, CUDA-graph replay; on CPU (tests), FP32 math kernel, eager timing."""
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    kern = kernels or (["flash", "cudnn"] if cuda else ["math"])
    hd = 8 if quick and not cuda else 128
    t0 = time.perf_counter()
    cases = decode_grid_cases(quick, hd, subset=subset)
    res = bench_decode_grid(dev, dtype, kern, cases, hd, reps, cuda, budget_s)
    return {
        "provenance": {**provenance(dev), "wall_s": round(time.perf_counter() - t0, 1)},
        "device": dev.type,
        "results": res,
        "suites": ["decode-grid" if subset == "all" else f"decode-grid-{subset}"],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m real.microbench --suites fp8 --model llama3-8b --out raw.json``: measure suites and write
    the raw JSON (``ringsim calibrate --from-raw`` fits it, e.g. as a supplement of a calibration run)."""
    import argparse
    import sys

    from costmodel import presets
    from costmodel.errors import SpecError
    from costmodel.results import write_json

    p = argparse.ArgumentParser(prog="python -m real.microbench", description=main.__doc__)
    p.add_argument(
        "--suites", default="fp8", help="comma-separated: eager, graph, fp8, gemm-rows (default fp8)"
    )
    p.add_argument("--model", default="seed-dense", help="model whose layer shapes are measured")
    p.add_argument("--out", required=True, help="raw JSON to write")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    a = p.parse_args(argv)
    try:
        suites = tuple(x.strip() for x in a.suites.split(",") if x.strip())
        bad = [x for x in suites if x not in ("eager", "graph", "fp8", "gemm-rows")]
        if bad or not suites:
            raise SpecError(
                f"--suites {a.suites!r} is not valid: give one or more of eager, graph, fp8, gemm-rows"
            )
        m = presets.load_model(a.model)
        dims = {k: getattr(m, k) for k in ("d_model", "d_ff", "q_dim", "kv_dim", "head_dim")}
        dims["up_factor"] = 2 if m.mlp == "swiglu" else 1  # gate and up as one GEMM (real.model)
        raw = run_all(dims, quick=a.quick, suites=suites)
    except SpecError as e:
        print(f"real.microbench: error: {e}", file=sys.stderr)
        return 2
    raw["model"] = m.name
    write_json(a.out, raw)
    print(f"wrote {a.out} ({len(raw['results'])} records)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
