"""Run many plans in one group of processes and compare each with the single-device reference.

Used by the tests (CPU, gloo) and runnable by hand: ``python -m real.selftest --nproc 4``.
Each case is a list of ``ringsim predict`` options; the result of each is (case, rel_err, attn_rel_err,
error): the relative error of the whole output and of each layer's attention output (after the output
projection, before the residual add) against the reference's.

``FAULTS`` break the executor on purpose (one ring block dropped, the log-sum-exp merge replaced by a
plain mean, one micro-batch's attention dropped, two ulysses head pieces swapped): ``run_cases(...,
fault=name)`` injects one into every case, so a test can show the check catches it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from costmodel.options import add_config_arguments, config_from_args
from costmodel.schedule import Role

from . import comm, harness

# a tiny model: 4 query heads sharing 2 KV heads (grouped-query), head_dim 8, SwiGLU or GELU
TINY = [
    "--hardware",
    "h100-sxm",
    "--d-model",
    "32",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--head-dim",
    "8",
    "--d-ff",
    "64",
    "--set",
    "model.vocab=50",  # the LM head runs (50 does not divide by 4: the TP slices are padded)
]
BIAS_TIED = ["--set", "model.qkv_bias=true", "--set", "model.tie_embeddings=true"]


def cases(n: int) -> list[list[str]]:
    """Every plan kind at ``n`` ranks (n in {2, 4})."""
    topo = ["--topology", f"nvswitch:{n}"]
    pre = TINY + topo + ["--layers", "2", "--batch", "2"]
    out: list[list[str]] = []
    seq = str(8 * n)
    for variant in ("plain", "zigzag", "striped"):
        out.append(pre + ["--seq", seq, "--plan", f"ring={n}", "--ring-variant", variant])
    out.append(pre + ["--seq", seq, "--plan", f"ring={n}", "--ring-variant", "zigzag", "--no-causal"])
    out.append(pre + ["--seq", "12", "--plan", f"tp={n}", "--mlp", "swiglu"] + BIAS_TIED)
    out.append(pre + ["--seq", seq, "--plan", f"ulysses={n}"] + BIAS_TIED)
    out.append(
        TINY
        + topo
        + ["--layers", str(n), "--batch", "4", "--seq", "12", "--plan", f"pp={n}", "--microbatches", "2"]
    )
    out.append(
        TINY
        + topo
        + ["--layers", str(n), "--batch", "2", "--seq", "16", "--plan", f"pp={n}", "--chunks", "4"]
    )  # chunked prefill: chunks attend to the stage's cached chunks
    dec = pre + ["--phase", "decode", "--seq", "1", "--context", str(6 * n), "--batch", "3"]
    out.append(dec + ["--plan", f"tp={n}"] + BIAS_TIED)
    for da in ("pass-kv", "pass-q", "allgather"):
        out.append(dec + ["--plan", f"ring={n}", "--decode-attn", da])
    out.append(dec + ["--plan", f"ulysses={n}"])
    if n == 4:
        out.append(pre + ["--seq", "16", "--plan", "tp=2,ring=2", "--ring-variant", "zigzag"])
        out.append(pre + ["--seq", "16", "--plan", "tp=2,ring=2", "--ring-variant", "striped"])
        out.append(pre + ["--seq", "16", "--plan", "ulysses=2,ring=2", "--ring-variant", "zigzag"])
        out.append(pre + ["--seq", "12", "--plan", "tp=2,ulysses=2"])
        tp_pp = (
            TINY
            + topo
            + ["--layers", "4", "--batch", "4", "--seq", "12", "--plan", "tp=2,pp=2", "--microbatches", "2"]
        )
        out.append(tp_pp)  # --pp-send scatter (default): slices, all-gather
        out.append(tp_pp + ["--pp-send", "full"])
        out.append(tp_pp + ["--chunks", "3"])  # chunked prefill
        out.append(
            TINY
            + topo
            + [
                "--layers",
                "2",
                "--batch",
                "2",
                "--seq",
                "16",
                "--plan",
                "tp=2,ring=2",
                "--phase",
                "decode",
                "--context",
                "16",
                "--decode-attn",
                "pass-q",
            ]
        )
        out.append(
            TINY
            + topo
            + [
                "--layers",
                "2",
                "--batch",
                "4",
                "--seq",
                "1",
                "--plan",
                "tp=2,pp=2",
                "--phase",
                "decode",
                "--context",
                "10",
                "--microbatches",
                "2",
            ]
        )
    return out


def parse(argv: list[str]):
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    return config_from_args(p.parse_args(argv))


# Each fault changes one executor instance (its ``_by_role`` table or a method), nothing shared: the
# cases after it in the same process run unharmed.


def _drop_ring_block(ex) -> None:
    """The last ring rank (in causal plain rings the only one with remote blocks to merge) leaves out its
    first remote K/V block's partial output at layer 0: that merge is skipped."""
    merge = ex._by_role[Role.MERGE]

    def op(self, o):
        if not (self.r == self.plan.ring - 1 and o.layer == 0 and o.step == 1 and o.call == 0):
            merge(self, o)

    ex._by_role = {**ex._by_role, Role.MERGE: op}


def _lse_mean(ex) -> None:
    """Every merge of partial outputs takes their plain mean: the log-sum-exp weights are left out."""
    from . import buffers

    merge = ex._by_role[Role.MERGE]
    orig = buffers.merge_into

    def mean(acc_o, acc_lse, out, lse):
        orig(acc_o, acc_lse, out, acc_lse.clone())  # equal log-sum-exps: both weights 1/2

    def op(self, o):
        buffers.merge_into = mean
        try:
            merge(self, o)
        finally:
            buffers.merge_into = orig

    ex._by_role = {**ex._by_role, Role.MERGE: op}


def _drop_microbatch(ex) -> None:
    """Micro-batch 1's attention at the stage's first layer is not computed (its output left zero)."""
    attn, first = ex._by_role[Role.ATTN], ex.layer_ids[0]

    def op(self, o):
        attn(self, o)
        if o.mb == 1 and o.layer == first:
            self.env[o.writes[0]].zero_()

    ex._by_role = {**ex._by_role, Role.ATTN: op}


def _swap_ulysses(ex) -> None:
    """The all-to-all back to tokens hands over head pieces 0 and 1 in swapped places at layer 0."""
    a2a_o, a2a = ex._by_role[Role.A2A_O], ex._a2a
    state = {"on": False}

    def swapped(chunks, peers):
        recv = a2a(chunks, peers)
        return recv[[1, 0, *range(2, recv.shape[0])]] if state["on"] else recv

    def op(self, o):
        state["on"] = o.layer == 0
        try:
            a2a_o(self, o)
        finally:
            state["on"] = False

    ex._a2a = swapped
    ex._by_role = {**ex._by_role, Role.A2A_O: op}


FAULTS = {
    "drop-ring-block": _drop_ring_block,
    "lse-mean": _lse_mean,
    "drop-microbatch": _drop_microbatch,
    "swap-ulysses": _swap_ulysses,
}


def check_case(
    argv: list[str], groups: comm.Groups, seed: int = 0, fault: str | None = None, exec_mode: str = "eager"
) -> tuple[float, list[float]]:
    """(relative error of the whole output, relative error of each layer's attention output)."""
    cfg = parse(argv)
    dev = torch.device("cpu")
    ex = harness.make_executor(
        cfg, device=dev, dtype=torch.float32, kernel="math", seed=seed, groups=groups, exec_mode=exec_mode
    )
    if fault is not None:
        FAULTS[fault](ex)
    ex.run()
    ex.probe = {}
    ex.run()  # twice: state left by one forward pass must not change the next
    out = harness.gather_output(ex)
    head = harness.gather_logits(ex)
    attn = harness.gather_attn(ex)
    ref, attn_errs = harness.reference_output(cfg, device=dev, seed=seed, attn=attn)
    err = harness.rel_err(out, ref)
    if head is not None:  # the LM head: its logits, and the chosen tokens are the reference's argmax
        ref_logits = harness.reference_logits(cfg, ref, device=dev, seed=seed)
        err = max(err, harness.rel_err(head[0], ref_logits))
        if not torch.equal(head[1], ref_logits.argmax(dim=-1)):
            raise AssertionError(
                f"LM head chose tokens {head[1].tolist()}, the reference's argmax is "
                f"{ref_logits.argmax(dim=-1).tolist()}"
            )
    return err, attn_errs


def _worker(
    rank: int,
    n: int,
    port: int,
    case_list: list[list[str]],
    result_path: str,
    faults: list[str | None],
    exec_mode: str = "eager",
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(n))
    torch.set_num_threads(1)
    harness.init_distributed("gloo", timeout_s=120)
    groups = comm.Groups()
    results = []
    for argv, fault in zip(case_list, faults, strict=True):
        try:
            (err, attn), msg = check_case(argv, groups, fault=fault, exec_mode=exec_mode), ""
        except Exception as e:  # noqa: BLE001 - reported per case
            err, attn, msg = float("nan"), [], f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        results.append(
            {"case": " ".join(argv), "fault": fault, "rel_err": err, "attn_rel_err": attn, "error": msg}
        )
        dist.barrier()
    if rank == 0:
        with open(result_path, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_method() -> str:
    """forkserver where the platform has it: one server process imports torch and this module once, and
    each run's ranks are forked from it (a spawned rank imports torch anew, seconds of CPU each); it
    serves every later run of this process.  Elsewhere spawn."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    multiprocessing.get_context("forkserver").set_forkserver_preload([__name__])
    return "forkserver"


def run_cases(
    n: int,
    case_list: list[list[str]] | None = None,
    fault: str | list[str | None] | None = None,
    exec_mode: str = "eager",
) -> list[dict]:
    """Run the cases in one spawn of ``n`` processes; ``fault``: one fault for every case, or one per case;
    ``exec_mode``: the executor's eager or fused kernels (real/fused.py; on CPU uncompiled)."""
    case_list = cases(n) if case_list is None else case_list
    faults = list(fault) if isinstance(fault, list) else [fault] * len(case_list)
    for f in faults:
        if f is not None and f not in FAULTS:
            raise ValueError(f"fault {f!r} is not known: valid are {sorted(FAULTS)}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "results.json")
        mp.start_processes(
            _worker,
            args=(n, free_port(), case_list, path, faults, exec_mode),
            nprocs=n,
            join=True,
            start_method=_start_method(),
        )
        with open(path) as f:
            return json.load(f)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m real.selftest")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--fault", choices=sorted(FAULTS), help="inject this fault into every case")
    p.add_argument("--exec-mode", default="eager", choices=["eager", "fused"], help="the executor's kernels")
    a = p.parse_args(argv)
    bad = 0
    for r in run_cases(a.nproc, fault=a.fault, exec_mode=a.exec_mode):
        amax = max(r["attn_rel_err"], default=float("nan"))
        ok = r["error"] == "" and r["rel_err"] <= 1e-5 and amax <= 1e-5
        bad += not ok
        print(
            f"{'ok ' if ok else 'BAD'} {r['rel_err']:.2e} attn {amax:.2e} {r['case']}"
            f"{' ' + r['error'] if r['error'] else ''}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
