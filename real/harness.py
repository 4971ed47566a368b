"""Glue shared by ``real.run`` and the tests: process-group setup, one configuration's executor, the
output gathered from every rank, and the single-device reference it must equal."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from costmodel.build import build_schedule
from costmodel.config import Config
from costmodel.geometry import Geometry, holds_last_token
from costmodel.specs import Phase

from . import comm, layout, reference
from .executor import Executor


def init_distributed(backend: str, timeout_s: float, device: torch.device | None = None) -> None:
    """Join the job torchrun (or a test) started: RANK, WORLD_SIZE, MASTER_ADDR/PORT from the
    environment; collectives that do not finish within ``timeout_s`` fail instead of hanging."""
    if "WORLD_SIZE" not in os.environ:  # started without torchrun: a job of one process
        from .selftest import free_port

        os.environ.update(
            RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())
        )
    kw = {}
    if device is not None and device.type == "cuda":
        kw["device_id"] = device  # eager NCCL init: a broken fabric fails here, not mid-run
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kw)


def local_device() -> torch.device:
    if torch.cuda.is_available():
        d = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(d)
        return d
    return torch.device("cpu")


def make_executor(
    cfg: Config,
    *,
    device,
    dtype,
    kernel: str,
    seed: int,
    groups: comm.Groups,
    comm_priority: str = "high",
    attn_split: int = 1,
    exec_mode: str = "eager",
) -> Executor:
    sched = build_schedule(cfg.model, cfg.workload, cfg.plan, cfg.topology, cfg.hardware, kernel=cfg.kernel)
    groups.prepare(cfg.plan)
    return Executor(
        cfg,
        sched,
        dist.get_rank(),
        device=device,
        dtype=dtype,
        kernel=kernel,
        seed=seed,
        groups=groups,
        comm_priority=comm_priority,
        attn_split=attn_split,
        exec_mode=exec_mode,
    )


def gather_output(ex: Executor) -> torch.Tensor:
    """The whole output (prefill: (B, L, d); decode: (B, d)) assembled from the last stage's ranks
    (every rank gets it)."""
    last = ex.plan.pp - 1
    return _assemble(ex, ex.outputs() if ex.stage == last else None, last)


def gather_attn(ex: Executor) -> list[torch.Tensor]:
    """Each layer's attention output (after the output projection, before the residual add) assembled
    like the output, from the stage that holds the layer (every rank gets it); ``ex.probe`` must have
    been a dict while the executor ran."""
    if ex.probe is None:
        raise ValueError("gather_attn needs the executor's probe: set ex.probe = {} before running it")
    plan, lps = ex.plan, ex.model.layers // ex.plan.pp
    units = plan.microbatches * plan.chunks
    out = []
    for layer in range(ex.model.layers):
        s = layer // lps
        mine = [ex.probe[(layer, u)] for u in range(units)] if ex.stage == s else None
        out.append(_assemble(ex, mine, s))
    return out


def _assemble(ex: Executor, units: list[torch.Tensor] | None, stage: int) -> torch.Tensor:
    """Rows in the layout of the executor's x@u (one tensor per unit u) on the ranks of pipeline stage
    ``stage`` (``units`` is None on the others) -> the whole (prefill: (B, L, d); decode: (B, d))."""
    plan, wl, model = ex.plan, ex.wl, ex.model
    mine = (
        torch.cat([t.reshape(-1, model.d_model) for t in units])
        if units is not None
        else torch.zeros(
            plan.microbatches * plan.chunks * ex.x_rows, model.d_model, device=ex.device, dtype=ex.dtype
        )
    )
    allout = torch.empty((plan.n_ranks,) + tuple(mine.shape), device=ex.device, dtype=mine.dtype)
    comm.all_gather_stacked(allout, mine.contiguous(), dist.group.WORLD)
    B, m, mb = wl.batch, plan.microbatches, ex.mb
    if wl.phase == Phase.PREFILL:
        out = torch.empty(B, wl.seq_len, model.d_model, device=ex.device, dtype=mine.dtype)
    else:
        out = torch.empty(B, model.d_model, device=ex.device, dtype=mine.dtype)
    for q in range(plan.n_ranks):
        c = plan.coords(q)
        s, t = c["pp"], c["tp"]
        if s != stage or t != 0:
            continue
        if wl.phase == Phase.PREFILL and plan.chunks > 1:  # units (j, c): mb sequences x L/N tokens each
            N, lc = plan.chunks, wl.seq_len // plan.chunks
            blk = allout[q].view(m, N, mb, lc, model.d_model).permute(0, 2, 1, 3, 4)
            out[:] = blk.reshape(B, wl.seq_len, model.d_model)
        elif wl.phase == Phase.PREFILL:
            pos = torch.tensor(layout.dense_positions(plan, q, wl.seq_len), device=ex.device)
            out[:, pos] = allout[q].view(B, len(pos), model.d_model)
        else:
            first, rows, _ = layout.decode_rows(plan, wl, q)
            blk = allout[q].view(m, rows, model.d_model)
            n = max(0, min(rows, mb - first))
            for j in range(m):
                out[j * mb + first : j * mb + first + n] = blk[j, :n]
    return out


def gather_logits(ex: Executor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The LM head's output assembled from the ranks that ran it (every rank gets it): logits (B, vocab)
    and the chosen tokens (B,); None for a model without an LM head."""
    plan, wl, model = ex.plan, ex.wl, ex.model
    if not model.has_lm_head:
        return None
    geo = Geometry.of(model, wl, plan)
    m, rows, cols = plan.microbatches, int(geo.head_rows), int(geo.vocab_cols)
    mine = torch.zeros(m, rows, cols + 1, device=ex.device, dtype=torch.float32)
    if ex.head is not None:
        for j, (lg, tok) in enumerate(zip(ex.logits(), ex.tokens())):
            mine[j, :, :cols] = lg.float()
            mine[j, :, cols] = tok.float()
    allout = torch.empty((plan.n_ranks,) + tuple(mine.shape), device=ex.device, dtype=torch.float32)
    comm.all_gather_stacked(allout, mine, dist.group.WORLD)
    B, mb, V = wl.batch, ex.mb, model.vocab
    logits = torch.empty(B, V, device=ex.device, dtype=torch.float32)
    tokens = torch.empty(B, device=ex.device, dtype=torch.long)
    for q in range(plan.n_ranks):
        c = plan.coords(q)
        if c["pp"] != plan.pp - 1 or (wl.phase == Phase.PREFILL and not holds_last_token(plan, q)):
            continue
        lo, hi = min(c["tp"] * cols, V), min((c["tp"] + 1) * cols, V)
        first, n = (0, mb) if wl.phase == Phase.PREFILL else layout.decode_rows(plan, wl, q)[:2]
        n = max(0, min(n, mb - first))
        for j in range(m):
            b = slice(j * mb + first, j * mb + first + n)
            logits[b, lo:hi] = allout[q, j, :n, : hi - lo]
            if c["tp"] == 0:
                tokens[b] = allout[q, j, :n, cols].long()
    return logits, tokens


def reference_logits(cfg: Config, ref_out: torch.Tensor, *, device, seed: int) -> torch.Tensor | None:
    """The reference LM head of the reference output (prefill: each sequence's last token), or None."""
    if not cfg.model.has_lm_head:
        return None
    rows = ref_out[:, -1] if cfg.workload.phase == Phase.PREFILL else ref_out
    return reference.logits(cfg.model, rows, seed, device, ref_out.dtype)


def reference_output(
    cfg: Config,
    *,
    device,
    seed: int,
    dtype=torch.float32,
    attn: list[torch.Tensor] | None = None,
    keep_attn: list | None = None,
) -> torch.Tensor | tuple[torch.Tensor, list[float]]:
    """The single-device reference output.  With ``attn`` (the executor's per-layer attention outputs,
    ``gather_attn``): (output, the relative error of each layer's attention output against the
    reference's), each layer compared as soon as the reference has computed it.  ``keep_attn`` (a list):
    the reference's own per-layer attention outputs are appended to it (the BF16 noise floor)."""
    wl, plan = cfg.workload, cfg.plan
    errs: list[float] = []
    if wl.phase == Phase.PREFILL:

        def cb(layer, a):
            if attn is not None:
                errs.append(rel_err(attn[layer], a))
            if keep_attn is not None:
                keep_attn.append(a.detach().clone())

        out = reference.prefill(
            cfg.model,
            cfg.model.layers,
            wl.batch,
            wl.seq_len,
            wl.causal,
            seed,
            device,
            dtype,
            on_attn=cb if (attn is not None or keep_attn is not None) else None,
            cached=wl.cached_len,
        )
    else:
        virt = max(layout.decode_rows(plan, wl, r)[2] for r in range(plan.n_ranks))
        ref_attn: list[torch.Tensor] = []
        out = reference.decode(
            cfg.model,
            cfg.model.layers,
            wl.batch,
            plan.microbatches,
            wl.context,
            seed,
            device,
            virt,
            dtype,
            attn=ref_attn,
        )
        if attn is not None:
            errs = [rel_err(a, r) for a, r in zip(attn, ref_attn, strict=True)]
        if keep_attn is not None:
            keep_attn.extend(ref_attn)
    return out if attn is None else (out, errs)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in FP64; inf if out has a NaN."""
    o, r = out.double(), ref.double()
    if not torch.isfinite(o).all():
        return float("inf")
    return float((o - r).norm() / r.norm())
