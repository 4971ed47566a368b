"""Run many plans in one group of processes and compare each with the single-device reference.

Used by the tests (CPU, gloo) and runnable by hand: ``python -m real.selftest --nproc 4``.
Each case is a list of ``ringsim predict`` options; the result of each is (case, rel_err, error).
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


def check_case(argv: list[str], groups: comm.Groups, seed: int = 0) -> float:
    cfg = parse(argv)
    dev = torch.device("cpu")
    ex = harness.make_executor(cfg, device=dev, dtype=torch.float32, kernel="math", seed=seed, groups=groups)
    ex.run()
    ex.run()  # twice: state left by one forward pass must not change the next
    out = harness.gather_output(ex)
    head = harness.gather_logits(ex)
    ref = harness.reference_output(cfg, device=dev, seed=seed)
    err = harness.rel_err(out, ref)
    if head is not None:  # the LM head: its logits, and the chosen tokens are the reference's argmax
        ref_logits = harness.reference_logits(cfg, ref, device=dev, seed=seed)
        err = max(err, harness.rel_err(head[0], ref_logits))
        if not torch.equal(head[1], ref_logits.argmax(dim=-1)):
            raise AssertionError(
                f"LM head chose tokens {head[1].tolist()}, the reference's argmax is "
                f"{ref_logits.argmax(dim=-1).tolist()}"
            )
    return err


def _worker(rank: int, n: int, port: int, case_list: list[list[str]], result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(n))
    torch.set_num_threads(1)
    harness.init_distributed("gloo", timeout_s=120)
    groups = comm.Groups()
    results = []
    for argv in case_list:
        try:
            err, msg = check_case(argv, groups), ""
        except Exception as e:  # noqa: BLE001 - reported per case
            err, msg = float("nan"), f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        results.append({"case": " ".join(argv), "rel_err": err, "error": msg})
        dist.barrier()
    if rank == 0:
        with open(result_path, "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cases(n: int, case_list: list[list[str]] | None = None) -> list[dict]:
    case_list = cases(n) if case_list is None else case_list
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "results.json")
        mp.spawn(_worker, args=(n, free_port(), case_list, path), nprocs=n, join=True)
        with open(path) as f:
            return json.load(f)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m real.selftest")
    p.add_argument("--nproc", type=int, default=2)
    a = p.parse_args(argv)
    bad = 0
    for r in run_cases(a.nproc):
        ok = r["error"] == "" and r["rel_err"] <= 1e-5
        bad += not ok
        print(
            f"{'ok ' if ok else 'BAD'} {r['rel_err']:.2e} {r['case']}{' ' + r['error'] if r['error'] else ''}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
