"""The executor's fused mode (``real.run --exec-mode fused``): the kernels the ideal profiles
(``h200-sxm``, ``h100-sxm``: ideal fused kernels issued from a CUDA graph) assume, so that they can be
held against a measurement.

What changes against the eager mode (everything else, communication and the ring's double-buffered
K/V included, runs as in ``executor.py``):

* RMSNorm (both norms and the final one), RoPE of queries and keys with the V copy into the K/V block,
  the activation (SwiGLU or GELU-tanh), the residual and QKV-bias adds: one ``torch.compile``-d function each
  (``dynamic=False``, ``fullgraph=True``): one or two fused kernels instead of up to seven, compiled once
  per shape at the first (warm-up) pass, outside timing;
* the ring's log-sum-exp merge (prefill): the partial outputs of the steps are kept as the attention
  kernel wrote them (BF16 output, FP32 log-sum-exp) and merged once, at the finalize, in one compiled
  kernel that writes the BF16 output in the layout the output projection reads (no FP32 accumulator,
  no per-step passes, no init copy; at most ``FOLD_AT`` parts are held: more are folded into one FP32
  part first).  Decode pass-KV merges into its FP32 accumulator in one compiled kernel per step (pass-Q:
  one kernel and two copies into the travelling buffer); the all-gather merge is one compiled kernel;
* the QKV projection is one GEMM with the concatenated weights in both modes (``model.layer_shard``:
  under TP each rank concatenates its own shards), and a pass is replayed from a CUDA graph with
  ``--exec graph`` in both modes (prefill as well as decode).

On a CPU (tests, CI) the same Python functions run uncompiled: the same maths, op by op
(``compile=False``), since compiling on a CPU needs a C++ toolchain and minutes; RINGSIM_FUSED_COMPILE=1
compiles them there too (``python -m real.selftest --exec-mode fused`` then checks the compiled path).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

from costmodel.plan import DecodeAttn
from costmodel.schedule import Op, Role
from costmodel.specs import MlpKind

from .buffers import Part

FOLD_AT = 4  # ring parts held before the finalize: more are merged into one FP32 part first (memory)
EPS = 1e-6


# ---------------------------------------------------------------------------------------------
# the fused functions: plain torch, the same maths as model.py / buffers.py; compiled on a GPU
# ---------------------------------------------------------------------------------------------
def rmsnorm(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS) * g.float()).to(x.dtype)


def swiglu(u: torch.Tensor) -> torch.Tensor:
    gate, up = u.chunk(2, dim=-1)
    return F.silu(gate) * up


def gelu_tanh(u: torch.Tensor) -> torch.Tensor:
    return F.gelu(u, approximate="tanh")


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


def _rot(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], dim=-1) * sin


def rope_qkv(raw: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, hq: int, hk: int):
    """raw (B, S, hq + 2 hk, D) -> q (B, S, hq, D) and kv (2, B, S, hk, D), RoPE on q and k."""
    q = _rot(raw[:, :, :hq], cos, sin)
    k = _rot(raw[:, :, hq : hq + hk], cos, sin)
    return q, torch.stack([k, raw[:, :, hq + hk :]])


def merged(acc_o, acc_lse, out, lse):
    """(acc e^acc_lse + out e^lse) / e^new_lse and new_lse = logaddexp(acc_lse, lse), as new tensors."""
    new = torch.logaddexp(acc_lse, lse)
    o = acc_o * torch.exp(acc_lse - new).unsqueeze(-1) + out.float() * torch.exp(lse - new).unsqueeze(-1)
    return o, new


def merge_into(acc_o, acc_lse, out, lse) -> None:
    """In place, as ``buffers.merge_into`` (one kernel when compiled: the inputs are written directly)."""
    o, new = merged(acc_o, acc_lse, out, lse)
    acc_o.copy_(o)
    acc_lse.copy_(new)


def merge_gathered(parts: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(R, n, H, D + 1) gathered outputs and log-sum-exps -> (n, H * D) in ``dtype``."""
    o, lse = parts[..., :-1], parts[..., -1]
    total = torch.logsumexp(lse, dim=0)
    out = (torch.exp(lse - total).unsqueeze(-1) * o).sum(0)
    return out.to(dtype).reshape(out.shape[0], -1)


def merge_parts(outs: list, lses: list, rows: tuple, s: int, dtype, final: bool):
    """Partial attention outputs ``outs[i]`` (B, H, q_i, D) with log-sum-exps ``lses[i]`` (B, H, q_i) over
    the accumulator rows ``rows[i]`` = (start, stop) of ``s`` rows, merged by their log-sum-exps.
    ``final``: the output (B, s, H, D) in ``dtype``, contiguous (what the output projection reads);
    else (out (B, H, s, D) FP32, lse (B, H, s)).  Rows no part covers: output 0, log-sum-exp -inf."""
    cuts = sorted({0, s} | {a for a, _ in rows} | {b for _, b in rows})
    segs_o, segs_l = [], []
    b_, h_, _, d_ = outs[0].shape
    for a, b in zip(cuts[:-1], cuts[1:]):
        cov = [i for i, (lo, hi) in enumerate(rows) if lo <= a and b <= hi]
        if not cov:
            segs_o.append(outs[0].new_zeros((b_, h_, b - a, d_), dtype=torch.float32))
            segs_l.append(lses[0].new_full((b_, h_, b - a), float("-inf")))
            continue
        ls = [lses[i][:, :, a - rows[i][0] : b - rows[i][0]] for i in cov]
        os_ = [outs[i][:, :, a - rows[i][0] : b - rows[i][0]].float() for i in cov]
        tot = ls[0]
        for x in ls[1:]:
            tot = torch.logaddexp(tot, x)
        if len(cov) == 1:
            o = os_[0]
        else:
            o = os_[0] * torch.exp(ls[0] - tot).unsqueeze(-1)
            for x, lx in zip(os_[1:], ls[1:]):
                o = o + x * torch.exp(lx - tot).unsqueeze(-1)
        segs_o.append(o)
        segs_l.append(tot)
    o = segs_o[0] if len(segs_o) == 1 else torch.cat(segs_o, dim=2)
    if final:
        return o.transpose(1, 2).to(dtype).contiguous()
    return o, (segs_l[0] if len(segs_l) == 1 else torch.cat(segs_l, dim=2))


_FUNCS = {
    "rmsnorm": rmsnorm,
    "swiglu": swiglu,
    "gelu_tanh": gelu_tanh,
    "add": add,
    "rope_qkv": rope_qkv,
    "merge_into": merge_into,
    "merged": merged,
    "merge_gathered": merge_gathered,
    "merge_parts": merge_parts,
}
_COMPILED: dict[str, object] = {}  # one compiled function per process (dynamo keeps one entry per shape)
RECOMPILE_LIMIT = 1024  # every configuration of a run is a new shape: never fall back to eager for that


def _compiled(name: str):
    f = _COMPILED.get(name)
    if f is None:
        import torch._dynamo

        cfg = torch._dynamo.config
        for key in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit"):
            if hasattr(cfg, key):
                setattr(cfg, key, max(getattr(cfg, key), RECOMPILE_LIMIT))
        f = _COMPILED[name] = torch.compile(_FUNCS[name], dynamic=False, fullgraph=True)
    return f


class Kernels:
    """The fused functions, compiled (``compile=True``: a GPU) or run as they are (a CPU: the same
    maths op by op).  A function whose compilation fails runs uncompiled from then on, and the failure
    is kept in ``fallbacks`` (name -> error): real.run writes it into the record, and ``ringsim validate``
    leaves such a record out of the fused group (it did not run the fused kernels)."""

    def __init__(self, compile: bool):
        self.compile = compile
        self.fallbacks: dict[str, str] = {}

    def __getattr__(self, name: str):
        if name not in _FUNCS:
            raise AttributeError(name)
        if not self.compile or name in self.fallbacks:
            return _FUNCS[name]
        return lambda *args: self._call(name, *args)

    def _call(self, name: str, *args):
        try:
            return _compiled(name)(*args)
        except Exception as e:  # noqa: BLE001 - kept and reported; the same maths runs uncompiled
            if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
                raise  # no fallback while a CUDA graph is captured: the failure must surface
            self.fallbacks[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            print(
                f"real.fused: {name} did not compile ({self.fallbacks[name]}); it runs uncompiled",
                file=sys.stderr,
            )
            return _FUNCS[name](*args)


# ---------------------------------------------------------------------------------------------
# the ring accumulator of fused prefill: parts kept until the finalize
# ---------------------------------------------------------------------------------------------
class Pending:
    """The partial outputs of a prefill ring (or chunked prefill) not merged yet, for ``rows`` query rows."""

    def __init__(self, rows: int):
        self.rows = rows
        self.parts: list[Part] = []

    @staticmethod
    def _span(p: Part, s: int) -> tuple[int, int]:
        return (0, s) if p.rows is None else (p.rows.start, p.rows.stop)

    def add(self, part: Part, k: Kernels) -> None:
        self.parts.append(part)
        if len(self.parts) >= FOLD_AT:
            o, lse = self._merge(k, None, final=False)
            self.parts = [Part(o, lse, None)]

    def _merge(self, k: Kernels, dtype, final: bool):
        ps = self.parts
        rows = tuple(self._span(p, self.rows) for p in ps)
        return k.merge_parts([p.out for p in ps], [p.lse for p in ps], rows, self.rows, dtype, final)

    def finalize(self, k: Kernels, dtype) -> torch.Tensor:
        """The merged output, (B, S, H, D) in ``dtype``."""
        return self._merge(k, dtype, final=True)


# ---------------------------------------------------------------------------------------------
# the executor's ops in fused mode (installed over ``Executor._by_role`` by ``install``)
# ---------------------------------------------------------------------------------------------
def _op_norm(ex, op: Op) -> None:
    w = ex._w(op)
    ex.env[op.writes[0]] = ex.fk.rmsnorm(ex.env[op.reads[0]], w.g1 if op.role == Role.NORM1 else w.g2)


def _op_final_norm(ex, op: Op) -> None:
    x = ex.env[op.reads[0]]
    if not ex.decode:
        x = x.view(ex.mb, -1, x.shape[-1])[:, -1]
    ex.env[op.writes[0]] = ex.fk.rmsnorm(x, ex.head.g)


def _op_act(ex, op: Op) -> None:
    f = ex.fk.swiglu if ex.model.mlp == MlpKind.SWIGLU else ex.fk.gelu_tanh
    ex.env[op.writes[0]] = f(ex.env[op.reads[0]])


def _op_resid(ex, op: Op) -> None:
    ex.env[op.writes[0]] = ex.fk.add(ex.env[op.reads[0]], ex.env[op.reads[1]])
    if ex.probe is not None and op.role == Role.RESID1:
        ex.probe[(op.layer, int(op.reads[0].split("@")[1]))] = ex.env[op.reads[1]].clone()


def _op_qkv_bias(ex, op: Op) -> None:
    ex.env[op.writes[0]] = ex.fk.add(ex.env[op.reads[0]], ex._w(op).bqkv)


def _op_rope(ex, op: Op) -> None:
    D, hq, hk = ex.model.head_dim, ex.hq, ex.hk
    b = ex.mb if not ex.decode else ex.rows
    raw = ex.env[op.reads[0]].view(b, -1, hq + 2 * hk, D)
    cos, sin = ex.chunk_rope[op.chunk] if op.chunk >= 0 else (ex.cos, ex.sin)
    q, kv = ex.fk.rope_qkv(raw, cos, sin, hq, hk)
    ex._rope_store(op, q, kv)


def _op_init(ex, op: Op) -> None:
    if ex.decode:
        return ex._eager_by_role[op.role](ex, op)
    acc = Pending(ex.lr)
    acc.add(ex.env[op.reads[0]], ex.fk)
    ex.env[op.writes[0]] = acc


def _op_merge(ex, op: Op) -> None:
    env = ex.env
    if not ex.decode:
        env[op.reads[1]].add(env[op.reads[0]], ex.fk)
        return
    if op.step == 0:  # the first block starts the accumulator (a copy, as in eager mode)
        return ex._eager_by_role[op.role](ex, op)
    acc, part = env[op.reads[1]], env[op.reads[0]]
    if ex.plan.decode_attn == DecodeAttn.PASS_Q:
        # the travelling accumulator's o and lse are views of one byte buffer (they alias): merged into
        # new tensors by one kernel, then copied into their slots
        o, lse = ex.fk.merged(acc.o, acc.lse, part.out, part.lse)
        acc.o.copy_(o)
        acc.lse.copy_(lse)
    else:
        ex.fk.merge_into(acc.o, acc.lse, part.out, part.lse)


def _op_merge_parts(ex, op: Op) -> None:
    ex.env[op.writes[0]] = ex.fk.merge_gathered(ex.env[op.reads[0]], ex.dtype)


def _op_finalize(ex, op: Op) -> None:
    src = ex.env[op.reads[0]]
    if not isinstance(src, Pending):
        return ex._eager_by_role[op.role](ex, op)
    o = src.finalize(ex.fk, ex.dtype)  # (B, S, H, D)
    ex.env[op.writes[0]] = o.reshape(o.shape[0] * o.shape[1], -1) if op.writes[0] == "o" else o


ROLES = {
    Role.NORM1: _op_norm,
    Role.NORM2: _op_norm,
    Role.FINAL_NORM: _op_final_norm,
    Role.ACT: _op_act,
    Role.RESID1: _op_resid,
    Role.RESID2: _op_resid,
    Role.QKV_BIAS: _op_qkv_bias,
    Role.ROPE: _op_rope,
    Role.INIT: _op_init,
    Role.MERGE: _op_merge,
    Role.MERGE_PARTS: _op_merge_parts,
    Role.FINALIZE: _op_finalize,
}
EXEC_MODES = ("eager", "fused")


def install(ex, compile: bool | None = None) -> None:
    """Switch executor ``ex`` to the fused ops (``compile``: default on a CUDA device, or everywhere with
    RINGSIM_FUSED_COMPILE=1: how a CPU test runs the compiled path)."""
    if compile is None:
        compile = ex.device.type == "cuda" or os.environ.get("RINGSIM_FUSED_COMPILE") == "1"
    ex.fk = Kernels(compile)
    ex._eager_by_role = type(ex)._by_role
    ex._by_role = {**type(ex)._by_role, **ROLES}
