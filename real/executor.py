"""The executor: one rank walks its ops of a ``costmodel`` Schedule, in order, with real tensors.

Compute ops run on the compute stream (the current CUDA stream), communication ops on a second
stream; an op waits (CUDA events) only for the dependencies the schedule gives it that ran on the
other stream, so a ring step's transfer of the next K/V block overlaps its attention.  On CPU the ops
run one after the other and communication completes before the next op.  Every op runs inside a
``torch.profiler.record_function`` range named by its tag, so a profile lines up with the simulated
timeline op by op.

``capture()`` records the walk as a CUDA graph (every rank together, after eager passes have set up
communicators, kernel plans and receive buffers); ``run()`` then replays it: the host issues one
launch per pass instead of one call per kernel, so short passes (decode) run at the speed of the GPU.

Buffers are the schedule's buffer names (``x@0``, ``q``, ``kvcache/L0/mb0``, ``kvbuf1``, ...) in a dict;
``layout`` says which rows and heads they hold.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.profiler import record_function

from costmodel.config import Config
from costmodel.plan import DecodeAttn
from costmodel.schedule import Op, OpKind, Role, Schedule
from costmodel.specs import Phase

from . import comm, fused, kernels, layout, partial
from . import model as M
from .buffers import Acc, Packed, Part


class Executor:
    def __init__(
        self,
        cfg: Config,
        sched: Schedule,
        rank: int,
        *,
        device: torch.device,
        dtype: torch.dtype,
        kernel: str,
        seed: int,
        groups: comm.Groups | None = None,
        comm_priority: str = "high",
        attn_split: int = 1,
        exec_mode: str = "eager",
    ):
        self.cfg, self.plan, self.model, self.wl = cfg, cfg.plan, cfg.model, cfg.workload
        self.rank, self.device, self.dtype, self.kernel, self.seed = rank, device, dtype, kernel, seed
        self.attn = kernels.get(kernel)
        self.attn_split = max(1, int(attn_split))
        if sched.layer_repeat != 1 or sched.layers_built != cfg.model.layers:
            raise ValueError(
                f"the executor needs every layer built: the schedule has {sched.layers_built} of "
                f"{cfg.model.layers} (layer_repeat {sched.layer_repeat})"
            )
        self.ops = sched.rank_ops(rank)
        self.groups = groups
        plan, model = self.plan, self.model
        c = plan.coords(rank)
        self.stage, self.r, self.u, self.t = c["pp"], c["ring"], c["ulysses"], c["tp"]
        self.decode = self.wl.phase == Phase.DECODE
        self.pp_scatter = plan.pp > 1 and plan.tp > 1 and plan.pp_send == "scatter"  # geometry.pp_scatter
        self.mb = self.wl.batch // plan.microbatches
        lps = model.layers // plan.pp
        self.layer_ids = range(self.stage * lps, (self.stage + 1) * lps)
        self.weights = {
            i: M.layer_shard(model, i, seed, plan.tp, self.t, device, dtype) for i in self.layer_ids
        }
        if model.fp8_roles:  # --fp8: those GEMMs' weights in FP8 with per-output-channel scales
            for w in self.weights.values():
                M.quantize_layer(w, model.fp8_roles)
        # the LM head (the last stage's ranks that compute logits: costmodel/strategies/lm_head.py)
        self.head = (
            M.head_shard(model, seed, plan.tp, self.t, device, dtype)
            if any(op.role == Role.LM_HEAD for op in sched.rank_ops(rank))
            else None
        )
        w0 = self.weights[self.layer_ids[0]]
        self.hq, self.hk = w0.hq, w0.hk
        if (
            plan.ulysses > 1
        ):  # strategies.ulysses.rules: the KV heads split (checked when the config was built)
            self.uq, self.uk = layout.ulysses_heads(self.hq, self.hk, plan.ulysses, self.u)
        self.kv8 = str(model.kv_dtype) == "fp8"  # K/V stored and sent as FP8 (attention dequantises on load)
        self.kv_dtype = M.FP8_DTYPE if self.kv8 else dtype
        self.inputs: dict[str, object] = {}
        self._pool: dict[str, torch.Tensor] = {}
        (self._setup_decode if self.decode else self._setup_prefill)()
        self.cuda = device.type == "cuda"
        stream_of = {op.id: op.stream for op in self.ops}
        self._cross = {op.id: tuple(d for d in op.deps if stream_of[d] != op.stream) for op in self.ops}
        need = {d for ds in self._cross.values() for d in ds}
        if self.cuda:
            # communication on a high-priority stream: when a compute kernel is running, the block scheduler
            # starts NCCL's blocks before that kernel's remaining ones, so a transfer issued beside it
            # overlaps it instead of waiting for its last wave (measured: benchmarks/ring_decompose.py)
            prio = -1 if comm_priority == "high" else 0  # lower is higher; clamped to the device's range
            self.streams = {
                "compute": torch.cuda.current_stream(device),
                "comm": torch.cuda.Stream(device, priority=prio),
            }
            self.events = {i: torch.cuda.Event() for i in need}
        self.steps = _group_batches(self.ops)
        self.env: dict[str, object] = {}
        self.graph = None  # a captured pass (capture()); run() replays it
        self._recorded: set[int] | None = None  # while capturing: ops whose event this capture recorded
        self._graph_env: dict[str, object] = {}
        # the per-layer check (real.run, real.selftest): when a dict, each layer's attention output (after
        # the output projection, before the residual add) of each unit lands in it as {(layer, unit): rows}
        self.probe: dict[tuple[int, int], torch.Tensor] | None = None
        if exec_mode not in fused.EXEC_MODES:
            raise ValueError(f"exec_mode {exec_mode!r} is not valid: choose one of {list(fused.EXEC_MODES)}")
        self.exec_mode = exec_mode
        if exec_mode == "fused":  # fused kernels for the elementwise ops and the ring merge (real/fused.py)
            fused.install(self)

    # ------------------------------------------------------------------------------------------
    # setup: inputs, caches, tables (not timed)
    # ------------------------------------------------------------------------------------------
    def _setup_prefill(self) -> None:
        plan, model, wl, dev = self.plan, self.model, self.wl, self.device
        pos = layout.dense_positions(plan, self.rank, wl.seq_len)
        self.S = len(pos)
        self.lr = wl.seq_len // plan.ring
        self.cos, self.sin = M.rope_tables(torch.tensor(pos, device=dev), model.head_dim, self.dtype)
        self.lc = 0  # partial prefill: cached rows of this rank's block (real/partial.py)
        if wl.cached_len:
            partial.setup(self, pos)
        N = plan.chunks
        if N > 1:  # chunked prefill (no ring, no ulysses): units u = j N + c of mb sequences x L/N tokens
            self.S = self.lr = lc = wl.seq_len // N
            self.chunk_rope = [
                M.rope_tables(torch.arange(c * lc, (c + 1) * lc, device=dev), model.head_dim, self.dtype)
                for c in range(N)
            ]
        if self.stage == 0:
            x = M.prefill_input(model, wl.batch, wl.seq_len, self.seed, dev)[:, torch.tensor(pos, device=dev)]
            for j in range(plan.microbatches):
                xj = x[j * self.mb : (j + 1) * self.mb]
                for c in range(N):
                    blk = xj[:, c * self.S : (c + 1) * self.S] if N > 1 else xj
                    self.inputs[f"x@{j * N + c}"] = blk.reshape(-1, model.d_model).to(self.dtype)
        self.x_rows = self.mb * self.S

    def _setup_decode(self) -> None:
        plan, model, wl, dev = self.plan, self.model, self.wl, self.device
        self.first, self.rows, self.virt = layout.decode_rows(plan, wl, self.rank)
        C = wl.context
        self.cos, self.sin = M.rope_tables(torch.tensor([C - 1], device=dev), model.head_dim, self.dtype)
        if self.stage == 0:
            for j in range(plan.microbatches):
                x = M.decode_input(model, self.virt, self.seed, dev, j)
                self.inputs[f"x@{j}"] = x[self.first : self.first + self.rows].to(self.dtype).contiguous()
        self.x_rows = self.rows
        kvh = layout.tp_kv_heads(model, plan.tp, self.t)
        R = plan.ring
        self.Cl = C // R
        # whether this rank writes the new token's K/V into its cache (it holds the last chunk)
        self.writes_slot = plan.ring == 1 or layout.decode_owners(plan, wl) or self.r == R - 1
        heads = self.uk if plan.ulysses > 1 else slice(0, self.hk)
        rows = self.Cl if R > 1 else C
        for i in self.layer_ids:
            for j in range(plan.microbatches):
                # this rank's shard, filled one sequence at a time (rows of its chunk, heads of its slice)
                shard = torch.empty(
                    2,
                    self.virt,
                    rows,
                    heads.stop - heads.start,
                    model.head_dim,
                    device=dev,
                    dtype=self.kv_dtype,
                )
                for b in range(self.virt):
                    full = M.decode_cache_seq(model, i, j, b, C, self.seed, dev)[:, :, kvh.start : kvh.stop]
                    c = layout.decode_chunk(plan, wl, self.rank, b) if R > 1 else 0
                    blk = full[:, c * rows : (c + 1) * rows, heads]
                    shard[:, b] = M.to_kv8(blk) if self.kv8 else blk
                    del full
                self.inputs[f"kvcache/L{i}/mb{j}" + ("/heads" if plan.ulysses > 1 else "")] = shard

    # ------------------------------------------------------------------------------------------
    # the walk
    # ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Run this rank's ops once (replay the captured graph, if any); returns the buffers (outputs
        are ``x@j`` of the last stage)."""
        if self.graph is not None:
            self.graph.replay()
            self.env = self._graph_env
            return self.env
        return self.run_ops(self.steps, dict(self.inputs), grouped=True)

    def run_ops(self, ops: list, env: dict, grouped: bool = False) -> dict:
        """Run a subset of this rank's ops (e.g. one layer's attention) on given buffers, in the current
        stream (the comm stream forks from it and joins it again)."""
        self.env = env
        self._recorded = None
        if self.cuda:
            cur = torch.cuda.current_stream(self.device)
            self.streams["compute"] = cur
            if torch.cuda.is_current_stream_capturing():
                self.streams["comm"].wait_stream(cur)  # a captured side stream must fork from the capture
                self._recorded = set()
        for group in ops if grouped else _group_batches(ops):
            self._launch(group)
        if self.cuda:
            self.streams["compute"].wait_stream(self.streams["comm"])
        return self.env

    def capture(self) -> None:
        """Record one pass as a CUDA graph; later ``run()`` calls replay it.  Every rank captures at the
        same time, after at least one eager ``run()`` (NCCL communicators, cuBLAS/cuDNN plans and the
        receive buffers exist by then: none of them may be created while capturing)."""
        if not self.cuda:
            raise ValueError(
                f"CUDA graph capture needs a CUDA device: this executor runs on {self.device.type}"
            )
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            env = self.run_ops(self.steps, dict(self.inputs), grouped=True)
        torch.cuda.synchronize(self.device)
        self.streams["compute"] = torch.cuda.current_stream(self.device)
        self.graph, self._graph_env = graph, env

    def outputs(self) -> list[torch.Tensor]:
        return [self.env[f"x@{u}"] for u in range(self.plan.microbatches * self.plan.chunks)]

    def logits(self) -> list[torch.Tensor] | None:
        """Per micro-batch, this rank's logits (rows, ceil(vocab / tp)); None if it runs no LM head."""
        if self.head is None:
            return None
        return [self.env[f"logits@{j}"] for j in range(self.plan.microbatches)]

    def tokens(self) -> list[torch.Tensor] | None:
        """Per micro-batch, the chosen (greedy) token of each row (after the TP all-gather), or None."""
        if self.head is None:
            return None
        return [
            self.env[f"token@{j}"] if self.plan.tp > 1 else self.env[f"top@{j}"][:, 1].long()
            for j in range(self.plan.microbatches)
        ]

    def _launch(self, group: list[Op]) -> None:
        stream = group[0].stream
        with contextlib.ExitStack() as st:
            for op in group:
                st.enter_context(record_function(op.tag))
            if not self.cuda:
                self._dispatch(group)
                return
            s = self.streams[stream]
            for op in group:
                for d in self._cross[op.id]:
                    # while capturing, only events recorded in this capture can be waited on (a
                    # dependency on earlier, uncaptured work is complete: capture starts after a synchronise)
                    if d in self.events and (self._recorded is None or d in self._recorded):
                        s.wait_event(self.events[d])
            with torch.cuda.stream(s):
                self._dispatch(group)
            for op in group:
                ev = self.events.get(op.id)
                if ev is not None:
                    ev.record(s)
                    if self._recorded is not None:
                        self._recorded.add(op.id)

    def _dispatch(self, group: list[Op]) -> None:
        op = group[0]
        if op.kind in (OpKind.SEND, OpKind.RECV):
            return self._p2p(group)
        self._by_role[op.role](self, op)

    # -- helpers --------------------------------------------------------------------------------
    def _w(self, op: Op) -> M.LayerWeights:
        return self.weights[op.layer]

    def _on_comm(self, *ts) -> None:
        """Tell the caching allocator these tensors are used on the comm stream (and the compute one)."""
        if self.cuda:
            for t in ts:
                t.record_stream(self.streams["comm"])
                t.record_stream(self.streams["compute"])

    # ------------------------------------------------------------------------------------------
    # compute ops: dense part
    # ------------------------------------------------------------------------------------------
    def _op_norm(self, op: Op) -> None:
        w = self._w(op)
        self.env[op.writes[0]] = M.rmsnorm(self.env[op.reads[0]], w.g1 if op.role == Role.NORM1 else w.g2)

    def _op_linear(self, op: Op) -> None:
        w = self._w(op)
        if w.fp8 and op.role.value in w.fp8:  # FP8: quantise the activation rows, scaled GEMM
            self.env[op.writes[0]] = M.fp8_linear(self.env[op.reads[0]], w.fp8[op.role.value])
            return
        weight = {Role.QKV: w.wqkv, Role.O_PROJ: w.wo, Role.MLP_UP: w.wup, Role.MLP_DOWN: w.wdown}[op.role]
        self.env[op.writes[0]] = F.linear(self.env[op.reads[0]], weight)

    def _op_qkv_bias(self, op: Op) -> None:
        self.env[op.writes[0]] = self.env[op.reads[0]] + self._w(op).bqkv

    # -- the LM head ------------------------------------------------------------------------------
    def _op_final_norm(self, op: Op) -> None:
        """The rows that get logits (prefill: each sequence's last token, the last row of its piece)."""
        x = self.env[op.reads[0]]
        if not self.decode:
            x = x.view(self.mb, -1, x.shape[-1])[:, -1]
        self.env[op.writes[0]] = M.rmsnorm(x, self.head.g)

    def _op_lm_head(self, op: Op) -> None:
        self.env[op.writes[0]] = F.linear(self.env[op.reads[0]], self.head.w)

    def _op_logits_max(self, op: Op) -> None:
        """Each row's largest logit in this rank's vocabulary slice and its token id, (rows, 2) FP32."""
        v, i = self.env[op.reads[0]][:, : self.head.valid].float().max(dim=-1)
        self.env[op.writes[0]] = torch.stack([v, (i + self.head.lo).float()], dim=-1)

    def _logits_gather(self, op: Op) -> None:
        """The TP group's (max, id) pairs -> the id of the largest logit over the whole vocabulary."""
        top = self.env[op.reads[0]]
        out = torch.empty((len(op.peers),) + tuple(top.shape), device=self.device, dtype=torch.float32)
        self._on_comm(top, out)
        comm.all_gather_stacked(out, top, self.groups(op.peers))
        best = out[..., 0].argmax(dim=0)
        self.env[op.writes[0]] = out[..., 1].gather(0, best[None])[0].long()

    def _op_act(self, op: Op) -> None:
        self.env[op.writes[0]] = M.activation(self.model, self.env[op.reads[0]])

    def _op_resid(self, op: Op) -> None:
        self.env[op.writes[0]] = self.env[op.reads[0]] + self.env[op.reads[1]]
        if self.probe is not None and op.role == Role.RESID1:  # reads: the residual x@u, the attention y
            self.probe[(op.layer, int(op.reads[0].split("@")[1]))] = self.env[op.reads[1]].clone()

    def _op_rope(self, op: Op) -> None:
        D, hq, hk = self.model.head_dim, self.hq, self.hk
        raw = self.env[op.reads[0]]
        b = self.mb if not self.decode else self.rows
        raw = raw.view(b, -1, hq + 2 * hk, D)  # (B, S, heads, D); decode S = 1
        cos, sin = self.chunk_rope[op.chunk] if op.chunk >= 0 else (self.cos, self.sin)
        q = M.apply_rope(raw[:, :, :hq], cos, sin)
        kv = torch.empty(2, b, raw.shape[1], hk, D, device=raw.device, dtype=raw.dtype)
        M.apply_rope(raw[:, :, hq : hq + hk], cos, sin, out=kv[0])
        kv[1].copy_(raw[:, :, hq + hk :])
        self._rope_store(op, q, kv)

    def _rope_store(self, op: Op, q: torch.Tensor, kv: torch.Tensor) -> None:
        """q (B, S, hq, D) and this rank's new K/V (2, B, S, hk, D) where the schedule's buffers want them."""
        self.env[op.writes[0]] = q
        name = op.writes[1]
        if self.plan.ulysses > 1:
            self.env[name] = kv  # sent by the all-to-all as computed (FP8 K/V: quantised after it)
        elif not self.decode:
            self.env[name] = M.to_kv8(kv) if self.kv8 else kv  # prefill: the block (kept, and sent)
        elif self.writes_slot:  # decode: write the new token's K/V into the last slot of the cache
            cache = self.env[name]
            rows = slice(self.first, self.first + self.rows)
            cache[:, rows, cache.shape[2] - 1] = M.to_kv8(kv[:, :, 0]) if self.kv8 else kv[:, :, 0]

    # ------------------------------------------------------------------------------------------
    # compute ops: attention and merges
    # ------------------------------------------------------------------------------------------
    def _call(self, q, k, v, causal: bool):
        """q (B, S, H, D), k/v (B, Sk, Hk, D) -> out (B, H, S, D), lse (B, H, S); FP8 K/V dequantised
        (``attn_split``: kernels.split_call)."""
        if self.kv8:
            k, v = M.from_kv8(k, q.dtype), M.from_kv8(v, q.dtype)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        return kernels.split_call(self.attn, q, k, v, causal, self.attn_split)

    def _op_attn(self, op: Op) -> None:
        env, wl = self.env, self.wl
        q, kv = env[op.reads[0]], env[op.reads[1]]
        out, _ = self._call(q, kv[0], kv[1], wl.causal and not self.decode)
        out = out.transpose(1, 2)  # (B, S, H, D)
        env[op.writes[0]] = out.reshape(out.shape[0] * out.shape[1], -1) if op.writes[0] == "o" else out

    def _op_ring_attn(self, op: Op) -> None:
        if self.decode:
            return self._decode_ring_attn(op)
        qs, ks, causal = partial.attn_blocks(self, op)
        q, kv = self.env[op.reads[0]], self.env[op.reads[1]]
        out, lse = self._call(q[:, qs], kv[0][:, ks], kv[1][:, ks], causal)
        self.env[op.writes[0]] = Part(out, lse, qs)

    def _op_chunk_attn(self, op: Op) -> None:
        """Chunked prefill: the chunk's queries against the cached chunks before it (full) or against its
        own K/V (causal); a partial output for the log-sum-exp merge."""
        q = self.env[op.reads[0]]
        kvs = [self.env[r] for r in op.reads[1:]]
        kv = torch.cat(kvs, dim=2) if len(kvs) > 1 else kvs[0]
        out, lse = self._call(q, kv[0], kv[1], op.causal)
        self.env[op.writes[0]] = Part(out, lse)

    def _decode_ring_attn(self, op: Op) -> None:
        env, R, da = self.env, self.plan.ring, self.plan.decode_attn
        if da == DecodeAttn.ALLGATHER:
            q, kv = env[op.reads[0]], env[op.reads[1]]
        elif da == DecodeAttn.PASS_KV:
            q, kv = env[op.reads[0]], env[op.reads[1]][:, self.first : self.first + self.rows]
        else:  # pass-Q: the block of the rank t hops behind, against our chunk of its sequences
            cur = env[op.reads[0]]
            q = cur if isinstance(cur, torch.Tensor) else cur.q
            j = (self.r - op.step) % R
            kv = env[op.reads[1]][:, j * self.rows : (j + 1) * self.rows]
        out, lse = self._call(q, kv[0], kv[1], False)
        env[op.writes[0]] = Part(out, lse)

    def _op_init(self, op: Op) -> None:
        part: Part = self.env[op.reads[0]]
        b, h, _s, d = part.out.shape
        acc = Acc.empty(b, h, self.lr, d, self.device)
        acc.init(part)
        self.env[op.writes[0]] = acc

    def _op_merge(self, op: Op) -> None:
        env = self.env
        part: Part = env[op.reads[0]]
        first = self.decode and op.step == 0
        if self.decode and self.plan.decode_attn == DecodeAttn.PASS_Q:
            cur = env[op.reads[1]]
            if first:
                n, h, _, d = part.out.shape
                pk = Packed.new(n, h, d, self.dtype, self.device)
                pk.q.copy_(cur)
                pk.o.copy_(part.out)
                pk.lse.copy_(part.lse)
                env[op.writes[0]] = pk
            else:
                Acc(cur.o, cur.lse).merge(part)
            return
        if first:  # pass-KV decode: the first block starts the accumulator
            n, h, s, d = part.out.shape
            acc = Acc(torch.empty(n, h, s, d, device=self.device), torch.empty(n, h, s, device=self.device))
            acc.init(part)
            env[op.writes[0]] = acc
        else:
            env[op.reads[1]].merge(part)

    def _op_merge_parts(self, op: Op) -> None:
        if not self.decode:  # prefill pass-Q: the owner's R partials (real/partial.py)
            return partial.op_merge_parts(self, op)
        parts = self.env[op.reads[0]]  # (R, n, H, D + 1): output and lse of every ring rank
        o, lse = parts[..., :-1], parts[..., -1]
        total = torch.logsumexp(lse, dim=0)
        out = (torch.exp(lse - total).unsqueeze(-1) * o).sum(0)
        self.env[op.writes[0]] = out.to(self.dtype).reshape(out.shape[0], -1)

    def _op_finalize(self, op: Op) -> None:
        src = self.env[op.reads[0]]
        o = src.o.to(self.dtype).transpose(1, 2)  # (B, S, H, D)
        self.env[op.writes[0]] = o.reshape(o.shape[0] * o.shape[1], -1) if op.writes[0] == "o" else o

    # ------------------------------------------------------------------------------------------
    # communication ops
    # ------------------------------------------------------------------------------------------
    def _recv_buffer(self, name: str) -> torch.Tensor:
        buf = self._pool.get(name)
        if buf is not None:
            return buf
        buf = partial.recv_buffer(self, name)  # pass-Q's query blocks
        if buf is not None:
            self._pool[name] = buf
            return buf
        D, dev = self.model.head_dim, self.device
        if name.startswith("x@") and name.endswith("/part"):  # pipeline scatter: this TP rank's slice
            n = self.x_rows * self.model.d_model // self.plan.tp
            buf = torch.empty(n, device=dev, dtype=self.dtype)
        elif name.startswith("x@"):
            buf = torch.empty(self.x_rows, self.model.d_model, device=dev, dtype=self.dtype)
        elif name.startswith("kvbuf"):
            if self.decode:
                buf = torch.empty(2, self.virt, self.Cl, self.hk, D, device=dev, dtype=self.kv_dtype)
            else:
                hk = self.uk.stop - self.uk.start if self.plan.ulysses > 1 else self.hk
                buf = torch.empty(2, self.mb, self.lc + self.lr, hk, D, device=dev, dtype=self.kv_dtype)
        elif name.startswith("qblk"):
            buf = torch.empty(Packed.nbytes(self.rows, self.hq, D, self.dtype), device=dev, dtype=torch.uint8)
        else:
            raise RuntimeError(f"no receive buffer known for {name!r}")
        self._pool[name] = buf
        return buf

    def _p2p(self, group: list[Op]) -> None:
        sends, recvs = [], []
        for op in group:
            if op.kind == OpKind.SEND:
                t = self.env[op.reads[0]]
                t = t.buf if isinstance(t, Packed) else t.contiguous()
                if op.role == Role.PP_ACT and self.pp_scatter:
                    t = t.view(-1).chunk(self.plan.tp)[self.t]  # pipeline scatter: this TP rank's 1/tp
                sends.append((t, op.peers[0]))
            else:
                recvs.append((self._recv_buffer(op.writes[0]), op.peers[0], op.writes[0]))
        self._on_comm(*[t for t, _ in sends])
        u8 = lambda t: t.view(torch.uint8) if t.dtype == M.FP8_DTYPE else t  # noqa: E731 - FP8 K/V as bytes
        sends = [(u8(t), p) for t, p in sends]
        for w in comm.sendrecv(sends, [(u8(b), p) for b, p, _ in recvs]):
            w.wait()
        for buf, _, name in recvs:
            if name.startswith("qblk"):
                self.env[name] = Packed(buf, self.rows, self.hq, self.model.head_dim, self.dtype)
            else:
                self.env[name] = buf

    def _all_reduce(self, op: Op) -> None:
        y = self.env[op.reads[0]]
        self._on_comm(y)
        dist.all_reduce(y, group=self.groups(op.peers))

    def _all_gather(self, op: Op) -> None:
        part: Part = self.env[op.reads[0]]  # out (n, H, 1, D), lse (n, H, 1)
        pack = torch.cat([part.out.float().squeeze(2), part.lse], dim=-1).contiguous()
        out = torch.empty((len(op.peers),) + tuple(pack.shape), device=self.device, dtype=torch.float32)
        self._on_comm(pack, out)
        comm.all_gather_stacked(out, pack, self.groups(op.peers))
        self.env[op.writes[0]] = out

    def _pp_gather(self, op: Op) -> None:
        """Pipeline scatter: the slices the stage's TP ranks received -> the whole activations on each."""
        part = self.env[op.reads[0]]
        out = torch.empty(self.plan.tp, part.numel(), device=self.device, dtype=part.dtype)
        self._on_comm(part, out)
        comm.all_gather_stacked(out, part, self.groups(op.peers))
        self.env[op.writes[0]] = out.view(self.x_rows, self.model.d_model)

    def _a2a(self, chunks: list[torch.Tensor], peers) -> torch.Tensor:
        send = torch.stack([c.reshape(-1) for c in chunks])
        recv = torch.empty_like(send)
        self._on_comm(send, recv)
        dist.all_to_all_single(recv, send, group=self.groups(peers))
        return recv

    def _a2a_qkv(self, op: Op) -> None:
        """Ulysses: tokens (or decode rows) split, heads whole -> heads split, tokens whole."""
        U, env = self.plan.ulysses, self.env
        q, kv = env[op.reads[0]], env[op.reads[1]]  # (B, S, hq, D), (2, B, S, hk, D)
        chunks = []
        for u in range(U):
            qs, ks = layout.ulysses_heads(self.hq, self.hk, U, u)
            chunks.append(torch.cat([q[:, :, qs].reshape(-1), kv[:, :, :, ks].reshape(-1)]))
        recv = self._a2a(chunks, op.peers)
        b, s, _, D = q.shape
        uq, uk = self.uq.stop - self.uq.start, self.uk.stop - self.uk.start
        nq = b * s * uq * D
        qp = [recv[i, :nq].view(b, s, uq, D) for i in range(U)]
        kp = [recv[i, nq:].view(2, b, s, uk, D) for i in range(U)]
        if self.decode:  # rows of every owner, one new token each; write them into our head cache
            env[op.writes[0]] = torch.cat(qp, dim=0)
            new = torch.cat(kp, dim=1)
            self._on_comm(env[op.writes[0]], new)
            cache = env[op.writes[1]]
            cache[:, :, cache.shape[2] - 1] = M.to_kv8(new[:, :, 0]) if self.kv8 else new[:, :, 0]
        else:
            env[op.writes[0]] = torch.cat(qp, dim=1)
            kv = torch.cat(kp, dim=2)
            env[op.writes[1]] = M.to_kv8(kv) if self.kv8 else kv
            self._on_comm(env[op.writes[0]], env[op.writes[1]])

    def _a2a_o(self, op: Op) -> None:
        U, env = self.plan.ulysses, self.env
        o = env[op.reads[0]]  # (B, S, uq, D) with B (decode) or S (prefill) gathered over the group
        dim = 0 if self.decode else 1
        recv = self._a2a(list(o.chunk(U, dim=dim)), op.peers)
        b, s = (o.shape[0] // U, o.shape[1]) if self.decode else (o.shape[0], o.shape[1] // U)
        parts = [recv[i].view(b, s, o.shape[2], o.shape[3]) for i in range(U)]
        env[op.writes[0]] = torch.cat(parts, dim=2).reshape(b * s, -1)
        self._on_comm(env[op.writes[0]])

    # the executor's meaning of each role (send/recv pairs dispatch by kind: ``_p2p``)
    _by_role = {
        Role.NORM1: _op_norm,
        Role.NORM2: _op_norm,
        Role.QKV: _op_linear,
        Role.O_PROJ: _op_linear,
        Role.MLP_UP: _op_linear,
        Role.MLP_DOWN: _op_linear,
        Role.ACT: _op_act,
        Role.RESID1: _op_resid,
        Role.RESID2: _op_resid,
        Role.ROPE: _op_rope,
        Role.ATTN: _op_attn,
        Role.RING_ATTN: _op_ring_attn,
        Role.INIT: _op_init,
        Role.MERGE: _op_merge,
        Role.MERGE_PARTS: _op_merge_parts,
        Role.FINALIZE: _op_finalize,
        Role.TP_ALL_REDUCE: _all_reduce,
        Role.GATHER_PARTS: _all_gather,
        Role.A2A_QKV: _a2a_qkv,
        Role.A2A_PACK: lambda self, op: None,  # its copies run inside _a2a_qkv / _a2a_o (the model's op)
        Role.A2A_O: _a2a_o,
        Role.PP_GATHER: _pp_gather,
        Role.CHUNK_ATTN: _op_chunk_attn,
        Role.KV_APPEND: partial.op_kv_append,
        Role.A2A_PARTS: partial.op_a2a_parts,
        Role.QKV_BIAS: _op_qkv_bias,
        Role.FINAL_NORM: _op_final_norm,
        Role.LM_HEAD: _op_lm_head,
        Role.LOGITS_MAX: _op_logits_max,
        Role.LOGITS_GATHER: _logits_gather,
    }


def _group_batches(ops: list[Op]) -> list[list[Op]]:
    """Consecutive ops sharing a batch id >= 0 are issued together."""
    out: list[list[Op]] = []
    for op in ops:
        if op.batch >= 0 and out and out[-1][0].batch == op.batch:
            out[-1].append(op)
        else:
            out.append([op])
    return out
