"""Attention kernels that return the log-sum-exp (what a ring merge needs).

Every kernel takes q (B, H, Sq, D), k and v (B, Hk, Sk, D) with Hk dividing H (grouped-query),
and returns (out (B, H, Sq, D) in q's dtype, lse (B, H, Sq) in FP32, natural log).  ``causal`` with
Sq != Sk aligns the mask at the end (query i sees keys j <= i + Sk - Sq).

* ``math``: portable (CPU and GPU, any dtype), FP32 accumulation; the reference kernel.
* ``flash``: ``aten._scaled_dot_product_flash_attention`` (CUDA, FP16/BF16).
* ``cudnn``: ``aten._scaled_dot_product_cudnn_attention`` (CUDA, cuDNN >= 9 on Hopper).
* ``efficient``: ``aten._scaled_dot_product_efficient_attention`` (CUDA, FP32 too): used for the
  FP32 reference on GPU, never chosen as the default.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

KERNELS = ("math", "flash", "cudnn")
FAST_GPU_KERNELS = ("cudnn", "flash")


def _expand_kv(k: torch.Tensor, h: int) -> torch.Tensor:
    hk = k.shape[1]
    if hk == h:
        return k
    return k.repeat_interleave(h // hk, dim=1)


def attn_math(q, k, v, causal: bool, scale: float | None = None):
    _, h, sq, d = q.shape
    sk = k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    kf, vf = _expand_kv(k, h).float(), _expand_kv(v, h).float()
    s = torch.matmul(q.float(), kf.transpose(-1, -2)) * scale
    if causal:
        i = torch.arange(sq, device=q.device)[:, None]
        j = torch.arange(sk, device=q.device)[None, :]
        s = s.masked_fill(j > i + (sk - sq), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    out = torch.matmul(torch.exp(s - lse[..., None]), vf)
    return out.to(q.dtype), lse


# Grouped-query attention: whether a kernel took K/V with fewer heads than Q as they are (FA2 and cuDNN
# read each KV head once for its group of query heads) or refused them, so that the K/V had to be
# expanded to every query head first (a copy of the whole K/V per call: a decode step reads the cache
# h / hk times over).  Keyed by (kernel, causal, one query row); filled by the first call (an eager pass
# always precedes a CUDA graph capture), reported in real.run's records.
GQA_NATIVE: dict[str, bool] = {}


def _gqa(name: str, call: Callable, q, k, v):
    h, hk = q.shape[1], k.shape[1]
    if hk == h:
        return call(k, v)
    key = f"{name}/{'q1' if q.shape[2] == 1 else 'qn'}"
    if GQA_NATIVE.get(key, True):
        try:
            r = call(k, v)
            GQA_NATIVE[key] = True
            return r
        except RuntimeError:
            GQA_NATIVE[key] = False
    return call(_expand_kv(k, h), _expand_kv(v, h))


def _check_causal(q, k, causal: bool, name: str) -> None:
    if causal and q.shape[2] != k.shape[2]:
        raise ValueError(f"{name} kernel: causal attention needs Sq == Sk, got {q.shape[2]} and {k.shape[2]}")


def attn_flash(q, k, v, causal: bool, scale: float | None = None):
    _check_causal(q, k, causal, "flash")
    r = _gqa(
        "flash",
        lambda k, v: torch.ops.aten._scaled_dot_product_flash_attention(
            q, k, v, 0.0, causal, False, scale=scale
        ),
        q,
        k,
        v,
    )
    return r[0], r[1].reshape(q.shape[:3])


def attn_cudnn(q, k, v, causal: bool, scale: float | None = None):
    _check_causal(q, k, causal, "cudnn")
    r = _gqa(
        "cudnn",
        lambda k, v: torch.ops.aten._scaled_dot_product_cudnn_attention(
            q, k, v, None, True, 0.0, causal, False, scale=scale
        ),
        q,
        k,
        v,
    )
    return r[0], r[1].reshape(q.shape[:3]).float()


_IMPL: dict[str, Callable] = {"math": attn_math, "flash": attn_flash, "cudnn": attn_cudnn}


def split_call(fn: Callable, q, k, v, causal: bool, n: int = 1):
    """``fn`` run as up to ``n`` kernels over groups of KV heads (and their query heads): exact, since
    heads are independent.  A transfer that becomes ready while one kernel holds every SM starts at the
    next kernel boundary instead of the end of the whole call (benchmarks/results/ring_bias_x4_20261128)."""
    n = math.gcd(max(1, n), k.shape[1])
    if n == 1:
        return fn(q, k, v, causal)
    parts = [fn(a, b, c, causal) for a, b, c in zip(q.chunk(n, 1), k.chunk(n, 1), v.chunk(n, 1))]
    return torch.cat([o for o, _ in parts], 1), torch.cat([lse for _, lse in parts], 1)


def get(name: str) -> Callable:
    if name not in _IMPL:
        raise ValueError(f"attention kernel {name!r} is not valid: choose one of {list(_IMPL)}")
    return _IMPL[name]


def probe(
    name: str, device: torch.device, dtype: torch.dtype, heads: int = 4, head_dim: int = 128
) -> str | None:
    """None if ``name`` runs here and matches ``math`` on a small causal and a non-causal call, else why
    not."""
    if name == "math":
        return None
    if device.type != "cuda":
        return "needs a CUDA device"
    try:
        g = torch.Generator(device=device).manual_seed(1)
        q, k, v = (
            torch.randn(1, heads, 256, head_dim, device=device, dtype=dtype, generator=g) for _ in range(3)
        )
        for causal, kk, vv in ((True, k, v), (False, k[:, :, :128], v[:, :, :128])):
            o, lse = _IMPL[name](q, kk, vv, causal)
            ro, rl = attn_math(q, kk, vv, causal)
            if not (
                torch.allclose(o.float(), ro.float(), atol=2e-2, rtol=2e-2)
                and torch.allclose(lse, rl, atol=1e-2, rtol=1e-3)
            ):
                return "wrong results against the math kernel"
        return None
    except Exception as e:  # noqa: BLE001 - any failure means 'not available here'
        return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


def choose(
    requested: str, device: torch.device, dtype: torch.dtype, shape: tuple[int, int, int, int], reps: int = 3
) -> dict:
    """Pick the attention kernel: ``requested`` if given, else the fastest working one on ``shape``
    (B, H, S, D; causal).  Returns {"chosen", "requested", "available", "unavailable", "probe_ms"}."""
    cands = ["math"] if device.type != "cuda" or dtype == torch.float32 else list(FAST_GPU_KERNELS)
    if requested != "auto":
        cands = [requested]
    avail, why, ms = [], {}, {}
    for name in cands:
        err = probe(name, device, dtype)
        if err is None:
            avail.append(name)
        else:
            why[name] = err
    if not avail:
        raise RuntimeError(f"no attention kernel of {cands} runs here: {why}")
    if len(avail) > 1:
        b, h, s, d = shape
        g = torch.Generator(device=device).manual_seed(2)
        q, k, v = (
            torch.randn(b, s, h, d, device=device, dtype=dtype, generator=g).transpose(1, 2) for _ in range(3)
        )
        for name in avail:
            f = _IMPL[name]
            f(q, k, v, True)
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                f(q, k, v, True)
            torch.cuda.synchronize(device)
            ms[name] = (time.perf_counter() - t0) / reps * 1e3
        del q, k, v
    chosen = min(avail, key=lambda n: ms.get(n, 0.0))
    return {
        "chosen": chosen,
        "requested": requested,
        "available": avail,
        "unavailable": why,
        "probe_ms": ms,
        "probe_shape_bhsd": list(shape) if ms else None,
    }
