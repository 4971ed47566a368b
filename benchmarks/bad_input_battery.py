"""Issue 17's battery: bad and edge inputs across every command, by the issue's categories, each judged
clean or not, with counts per category.  It reports what it sees (it exits 1 when any case is not clean).

    python benchmarks/bad_input_battery.py            # the table of counts (about 3-6 minutes on 2 cores)
    python benchmarks/bad_input_battery.py -v         # and one line per case: verdict, exit code, message
    python benchmarks/bad_input_battery.py --quick    # without the cases that start processes (torchrun, ...)

Clean means, per case: bad input ends in exit 2 with one line on stderr (warnings aside), no traceback,
nothing written (no output folder, no record), and within the case's time limit (a check made up front,
not after the work); valid edge input ends in exit 0; an interrupted run leaves the previous results byte
for byte and no temporary file; a cut JSONL line is named and left out; a stopped rank ends the job
within its bound; a failed check marks the record failed, the run exits non-zero and ``validate`` leaves
it out.  Commands run in this process (``main(argv)``) where they can, each under a SIGALRM time limit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CATEGORIES = [
    "tracebacks",
    "silently accepted",
    "late checks",
    "half-written outputs",
    "appending after a crash",
    "hangs",
    "failed checks",
]
TINY = ["--d-model", "32", "--heads", "4", "--kv-heads", "2", "--head-dim", "8", "--d-ff", "64"]
ONE = ["--topology", "nvswitch:1", "--plan", "tp=1", *TINY, "--layers", "2", "--seq", "16", "--warmup", "0"]


@dataclass
class Case:
    category: str
    label: str
    run: Callable[[Path], tuple[bool, str]]  # (clean, what happened), run in a fresh folder
    limit_s: float = 60.0
    slow: bool = False  # starts processes (skipped by --quick)


@dataclass
class Outcome:
    case: Case
    clean: bool
    note: str
    seconds: float
    extra: dict = field(default_factory=dict)


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


# -- how one command is run and judged -------------------------------------------------------------------


def _call(fn, argv: list[str], cwd: Path) -> tuple[int | str, str, str]:
    """(exit code or 'traceback: ...', stdout, stderr) of fn(argv) run in ``cwd``."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = fn(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
            except Timeout:
                raise
            except BaseException as e:  # noqa: BLE001 - a traceback is what the battery counts
                rc = f"traceback: {type(e).__name__}: {e}".splitlines()[0][:200]
                traceback.print_exc(file=err)
    finally:
        os.chdir(old)
    return rc, out.getvalue(), err.getvalue()


def _ringsim(argv):
    from ringsim.cli import main

    return main(argv)


def _real_run(argv):
    """real.run as a job of one process, in this process (it starts and ends its process group)."""
    import torch.distributed as dist

    from real import run as real_run
    from real.selftest import free_port

    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    os.environ.update(env, MASTER_PORT=str(free_port()))
    try:
        return real_run.main(argv)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for k in env:
            os.environ.pop(k, None)


def _subst(argv: list[str], d: Path) -> list[str]:
    """DIR: an existing folder, FILE: an existing file, OUT: a new path, NOTUTF8: a file of bad bytes."""
    (d / "a-folder").mkdir(exist_ok=True)
    (d / "a-file").write_text("x\n")
    (d / "bad.toml").write_bytes(b"\xff\xfe not utf-8")
    names = {"DIR": d / "a-folder", "FILE": d / "a-file", "OUT": d / "out", "NOTUTF8": d / "bad.toml"}
    return [
        re.sub(r"\b(DIR|FILE|OUT|NOTUTF8)\b", lambda m: str(names[m.group(1)]), a)
        if isinstance(a, str)
        else a
        for a in argv
    ]


def _one_sentence(rc, err: str) -> tuple[bool, str]:
    lines = [ln for ln in err.splitlines() if ln.strip() and "warning:" not in ln]
    if isinstance(rc, str):
        return False, rc
    if "Traceback" in err:
        return False, f"exit {rc} with a traceback: {lines[-1][:160] if lines else ''}"
    if rc != 2:
        return False, f"exit {rc} (want 2): {(lines or ['(no message)'])[-1][:160]}"
    if len(lines) != 1:
        return False, f"exit 2 but {len(lines)} lines on stderr: {' | '.join(lines)[:200]}"
    return True, f"exit 2: {lines[0][:200]}"


def bad(cmd: str, argv: list[str], *, quick_s: float | None = None, not_measured: bool = False):
    """A bad input: exit 2 with one sentence, no output left (OUT), within ``quick_s`` if given (a check
    made before the work), and for real.run nothing measured."""

    def run(d: Path) -> tuple[bool, str]:
        fn = _ringsim if cmd != "real.run" else _real_run
        args = _subst(([cmd] if cmd != "real.run" else []) + argv, d)
        t0 = time.monotonic()
        rc, out, err = _call(fn, args, d)
        took = time.monotonic() - t0
        ok, note = _one_sentence(rc, err)
        if ok and (d / "out").exists():
            ok, note = False, f"exit 2, but the output {d / 'out'} was left behind"
        if ok and list(d.glob("**/*.jsonl")) and cmd == "real.run":
            ok, note = False, "exit 2, but a record was written"
        if ok and quick_s is not None and took > quick_s:
            ok, note = False, f"exit 2 only after {took:.1f} s (the work ran first): {note}"
        if ok and not_measured and re.search(r"real\.run: (single|FAILED|ring|tp)", out):
            ok, note = False, f"exit 2 after measuring: {note}"
        return ok, note

    return run


def good(cmd: str, argv: list[str], *, want_out: str | None = None):
    """A valid edge input: exit 0 (and, if given, this text in stdout)."""

    def run(d: Path) -> tuple[bool, str]:
        fn = _ringsim if cmd != "real.run" else _real_run
        rc, out, err = _call(fn, _subst(([cmd] if cmd != "real.run" else []) + argv, d), d)
        if rc != 0:
            return False, f"exit {rc}: {(err.strip().splitlines() or [''])[-1][:200]}"
        if want_out and want_out not in out:
            return False, f"exit 0 but {want_out!r} not in the output"
        return True, "exit 0" + (f" ({want_out})" if want_out else "")

    return run


# -- records and files --------------------------------------------------------------------------------------


def _rec(**kw) -> dict:
    r = {
        "record": "real.run",
        "schema": 1,
        "status": "ok",
        "exec": "eager",
        "args": ["--hardware", "h100-sxm", "--topology", "nvswitch:1", "--plan", "tp=1", "--seq", "16Ki"],
        "latency_s": {"median": 0.01, "min": 0.009, "max": 0.011},
        "attn_kernel_real": {"chosen": "flash"},
        "check": {
            "passed": True,
            "rel_err": 1e-3,
            "tol": 1e-2,
            "attn_rel_err": [2e-3],
            "attn_rel_err_max": 2e-3,
        },
    }
    r.update(kw)
    return r


def _jsonl(d: Path, lines: list[str], name: str = "v.jsonl", end: str = "\n") -> str:
    p = d / name
    p.write_text("\n".join(lines) + end)
    return str(p)


def validate_bad(line: str):
    """validate on a file whose second line is ``line``: exit 2 naming the file and line 2."""

    def run(d: Path) -> tuple[bool, str]:
        p = _jsonl(d, [json.dumps(_rec()), line])
        rc, _, err = _call(_ringsim, ["validate", "--no-sim", p], d)
        ok, note = _one_sentence(rc, err)
        if ok and f"{p}:2" not in err:
            ok, note = False, f"exit 2 but the message does not name {p}:2: {note}"
        return ok, note

    return run


def validate_left_out(line: str, reason: str):
    """validate on a file with one good record and ``line``: exit 0, the record left out and said so."""

    def run(d: Path) -> tuple[bool, str]:
        p = _jsonl(d, [json.dumps(_rec()), line])
        rc, out, err = _call(_ringsim, ["validate", "--no-sim", "--json", p], d)
        if rc != 0:
            return False, f"exit {rc}: {err.strip()[-200:]}"
        res = json.loads(out)
        if len(res["records"]) != 1 or res["left_out"].get(reason) != 1:
            return False, f"used {len(res['records'])} records, left out {res['left_out']}"
        return True, f"exit 0, used 1, left out: {reason}"

    return run


# -- interruptions ------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


SWEEP = ["sweep", "--quiet", "--points", "6", "--gpus", "8,16"]


def sweep_writer_interrupt(k: int, where: str):
    def run(d: Path) -> tuple[bool, str]:
        import costmodel.results as R

        out = d / "s"
        rc, _, err = _call(_ringsim, [*SWEEP, "--out", str(out)], d)
        if rc != 0:
            return False, f"the first sweep failed: {err[-200:]}"
        before = _snapshot(out)
        n = {"calls": 0}
        orig = {k_: getattr(R, k_) for k_ in ("write_npz", "write_csv", "write_json")}

        def wrap(fn):
            def w(*a, **kw):
                n["calls"] += 1
                i = n["calls"]  # this call's number (the npz is written in a thread beside the CSV)
                if i == k and where == "before":
                    raise KeyboardInterrupt
                r = fn(*a, **kw)
                if i == k:
                    raise KeyboardInterrupt
                return r

            return w

        try:
            for name, fn in orig.items():
                setattr(R, name, wrap(fn))
            rc, _, err = _call(_ringsim, [*SWEEP, "--seq", "16k:64k", "--out", str(out)], d)
        finally:
            for name, fn in orig.items():
                setattr(R, name, fn)
        if _snapshot(out) != before:
            return False, f"exit {rc}; the previous sweep changed"
        if sorted(os.listdir(d)) != ["s"]:
            return False, f"left behind: {sorted(os.listdir(d))}"
        return True, f"exit {rc}: previous sweep intact, nothing left behind"

    return run


def _spawn(args: list[str], **env) -> subprocess.Popen:
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(k, None)
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _interrupt_after(p: subprocess.Popen, delay: float, sig=signal.SIGINT) -> int:
    try:
        return p.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
        p.communicate(timeout=60)
        return p.returncode


def sweep_signal(seed: int):
    def run(d: Path) -> tuple[bool, str]:
        rnd = random.Random(seed)
        out = d / "s"
        _call(_ringsim, [*SWEEP, "--out", str(out)], d)
        before = _snapshot(out)
        sig = rnd.choice([signal.SIGINT, signal.SIGTERM])
        delay = rnd.uniform(0.5, 4.0)
        args = ["-m", "ringsim", "sweep", "--quiet", "--points", "20000", "--seq", "4k:1M", "--out", str(out)]
        rc = _interrupt_after(_spawn(args), delay, sig)
        hidden = [n for n in os.listdir(out) if n.startswith(".")] + [n for n in os.listdir(d) if n != "s"]
        if hidden:
            return False, f"temporary files left: {hidden}"
        name = signal.Signals(sig).name
        if _snapshot(out) == before:
            return True, f"{name} after {delay:.1f} s (exit {rc}): previous sweep intact"
        from costmodel.results import read_csv_columns, read_npz

        man = json.loads((out / "sweep.json").read_text())
        specs_npz, cols = read_npz(out / "sweep.npz")
        specs_csv, _ = read_csv_columns(out / "sweep.csv")
        if man["specs"] == specs_npz == specs_csv and len(cols["L"]) == man["points"] > 1000:
            return True, f"{name} after {delay:.1f} s (exit {rc}): after the swap, a whole new set"
        return False, f"{name} after {delay:.1f} s (exit {rc}): neither the previous nor a whole new sweep"

    return run


def reproduce_interrupt(stop_after: int):
    def run(d: Path) -> tuple[bool, str]:
        from studies.reproduce import reproduce

        out = d / "rep"
        out.mkdir()
        (out / "REPORT.md").write_text("previous report\n")
        calls: list[str] = []

        def log(msg):
            calls.append(msg)
            if len(calls) >= stop_after:
                raise KeyboardInterrupt

        try:
            reproduce(
                out, points=2, gpus=(8,), topologies=("ib",), phases=("prefill",), timeline=False, log=log
            )
            return False, "not interrupted"
        except KeyboardInterrupt:
            pass
        if (out / "REPORT.md").read_text() != "previous report\n" or os.listdir(out) != ["REPORT.md"]:
            return False, "the previous report changed"
        if sorted(os.listdir(d)) != ["rep"]:
            return False, f"left behind: {sorted(os.listdir(d))}"
        return True, f"interrupted at log line {stop_after}: previous report intact, nothing left behind"

    return run


def reproduce_sigterm(d: Path) -> tuple[bool, str]:
    out = d / "rep"
    out.mkdir()
    (out / "REPORT.md").write_text("previous report\n")
    p = _spawn(["-m", "ringsim", "reproduce", "--points", "3", "--quiet", "--out", str(out)])
    rc = _interrupt_after(p, 3.0, signal.SIGTERM)
    if sorted(os.listdir(d)) != ["rep"] or os.listdir(out) != ["REPORT.md"]:
        return False, f"exit {rc}; left: {sorted(os.listdir(d))} / {os.listdir(out)}"
    return True, f"SIGTERM after 3 s (exit {rc}): previous report intact, no temporary folder"


def real_run_sigint(seed: int):
    def run(d: Path) -> tuple[bool, str]:
        from costmodel.results import read_jsonl

        out = d / "r.jsonl"
        old = [_rec(), _rec(status="refused", reason="x")]
        out.write_text("".join(json.dumps(r) + "\n" for r in old))
        before = out.read_bytes()
        delay = random.Random(seed).uniform(1.0, 8.0)
        rc = _interrupt_after(_spawn(["-m", "real.run", *ONE, "--seq", "16;24;32", "--out", str(out)]), delay)
        if not out.read_bytes().startswith(before):
            return False, "earlier records changed"
        skipped: list[str] = []
        recs = read_jsonl(out, skipped)
        if recs[:2] != old or os.listdir(d) != ["r.jsonl"]:
            return False, "earlier records lost or files left behind"
        return True, f"SIGINT after {delay:.1f} s (exit {rc}): earlier records intact, {len(recs) - 2} new"

    return run


# -- appending after a crash --------------------------------------------------------------------------------


def append_after_cut(d: Path) -> tuple[bool, str]:
    from costmodel.results import append_jsonl, read_jsonl

    p = d / "r.jsonl"
    p.write_text(json.dumps(_rec()) + "\n" + json.dumps(_rec())[:50])
    append_jsonl(p, {"b": 2})
    lines = p.read_text().splitlines()
    if len(lines) != 3 or json.loads(lines[2]) != {"b": 2}:
        return False, f"the new record was glued on: {lines[-1][:80]}"
    try:
        read_jsonl(p)
        return False, "the cut line (no longer last) was read silently"
    except Exception as e:  # noqa: BLE001
        if "r.jsonl:2:" not in str(e):
            return False, f"not named by its true line: {e}"
        return True, f"new record on line 3; the cut line named: {str(e)[:120]}"


def validate_cut_last_line(d: Path) -> tuple[bool, str]:
    p = _jsonl(d, [json.dumps(_rec()), json.dumps(_rec())[:40]], end="")
    rc, out, err = _call(_ringsim, ["validate", "--no-sim", "--json", p], d)
    if rc != 0 or len(json.loads(out)["records"]) != 1 or f"{p}:2: the last line is cut short" not in err:
        return False, f"exit {rc}: {err.strip()[-200:]}"
    return True, "exit 0: the cut last line is named (line 2) and left out with a warning"


def validate_blank_lines_true_numbers(d: Path) -> tuple[bool, str]:
    p = _jsonl(d, [json.dumps(_rec()), "", "", "[1, 2]"])
    rc, _, err = _call(_ringsim, ["validate", "--no-sim", p], d)
    ok, note = _one_sentence(rc, err)
    return (ok and f"{p}:4:" in err), note


def real_run_append_after_cut(d: Path) -> tuple[bool, str]:
    from costmodel.results import read_jsonl_lines

    p = d / "r.jsonl"
    p.write_text(json.dumps(_rec()) + "\n" + json.dumps(_rec())[:50])
    rc, _, err = _call(_real_run, [*ONE, "--out", str(p)], d)
    lines = p.read_text().splitlines()
    if rc != 0 or len(lines) != 3:
        return False, f"exit {rc}, {len(lines)} lines: {err.strip()[-200:]}"
    if json.loads(lines[2]).get("status") != "ok":
        return False, "the new record is not on a line of its own"
    try:
        read_jsonl_lines(p)
    except Exception as e:  # noqa: BLE001
        return ("r.jsonl:2:" in str(e)), f"new record on line 3; the cut line 2 named: {str(e)[:100]}"
    return False, "the cut line was read silently"


# -- hangs --------------------------------------------------------------------------------------------------


def hung_rank(d: Path) -> tuple[bool, str]:
    """Rank 1 of 2 stops at its first pass: the job ends within the step's bound (3 s) plus the watchdog's
    period, with a line naming rank 1."""
    t0 = time.monotonic()
    args = ["--standalone", "--nproc-per-node", "2", "-m", "real.run", "--topology", "nvswitch:2", *TINY]
    args += [
        "--layers",
        "2",
        "--seq",
        "16",
        "--plan",
        "ring=2",
        "--timeout-s",
        "3",
        "--out",
        str(d / "r.jsonl"),
    ]
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", RINGSIM_REAL_STALL="1:120")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(k, None)
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *args],
        cwd=ROOT, env=e, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    took = time.monotonic() - t0
    m = re.search(
        r"rank 1 stopped answering: in '[^']*' for ([0-9.]+) s; the bound there is ([0-9.]+) s", r.stderr
    )
    if r.returncode == 0 or not m:
        return False, f"exit {r.returncode} after {took:.0f} s without naming rank 1"
    waited, bound = float(m.group(1)), float(m.group(2))
    ok = waited <= bound + 2.5 and took < 55
    return ok, f"ended after {waited:.1f} s in the step (bound {bound:.0f} s), {took:.0f} s in all"


# -- failed checks ------------------------------------------------------------------------------------------


def failed_check_env(env: dict, needle: str):
    """real.run with a fault injected: exit 1, the record failed, validate leaves it out."""

    def run(d: Path) -> tuple[bool, str]:
        from validation.compare import compare

        out = d / "r.jsonl"
        extra = ["--microbatches", "2", "--batch", "2"] if "RINGSIM_REAL_FAULT" in env else []
        p = _spawn(["-m", "real.run", *ONE, *extra, "--out", str(out)], **env)
        _, err = p.communicate(timeout=120)
        recs = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
        if p.returncode != 1 or "Traceback" in err or not recs:
            return False, f"exit {p.returncode}: {err.strip()[-200:]}"
        r = recs[0]
        if r["status"] != "failed" or r["check"]["passed"] is not False or needle not in r["reason"]:
            return False, f"record status {r['status']}: {r.get('reason')}"
        rows = compare([str(out)], simulate=False)
        if len(rows) != 0 or rows.left_out != {"failed its check against the reference": 1}:
            return False, f"validate used it: {len(rows)} rows"
        return True, f"exit 1, record failed ({r['reason'][:90]}...), validate leaves it out"

    return run


def faults_caught(d: Path) -> tuple[bool, str]:
    """Each fault of real.selftest.FAULTS, 2 processes on CPU: the per-layer check at >= 10x the BF16
    tolerance (1e-2)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from real import selftest\n"
        "B = [*selftest.TINY, '--topology', 'nvswitch:2', '--layers', '2', '--seq', '256']\n"
        "R = B + ['--batch', '2', '--plan', 'ring=2', '--ring-variant', 'zigzag']\n"
        "C = [(R, 'drop-ring-block'), (R, 'lse-mean'),\n"
        "     (B + ['--batch', '4', '--plan', 'pp=2', '--microbatches', '2'], 'drop-microbatch'),\n"
        "     (B + ['--batch', '2', '--plan', 'ulysses=2'], 'swap-ulysses')]\n"
        "if __name__ == '__main__':\n"
        "    res = selftest.run_cases(2, [c for c, _ in C], fault=[f for _, f in C])\n"
        "    print(json.dumps([(r['fault'], max(r['attn_rel_err'] or [0]), r['rel_err']) for r in res]))\n"
    )
    (d / "faults.py").write_text(code)
    r = subprocess.run([sys.executable, str(d / "faults.py")], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return False, f"exit {r.returncode}: {r.stderr.strip()[-200:]}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    ratios = {f: a / 1e-2 for f, a, _ in res}
    text = ", ".join(f"{f} {x:.0f}x" for f, x in ratios.items())
    return all(x >= 10 for x in ratios.values()), f"per-layer check at {text} the BF16 tolerance"


# -- the table ----------------------------------------------------------------------------------------------


def cases() -> list[Case]:
    C: list[Case] = []

    def add(cat, label, run, **kw):
        C.append(Case(cat, label, run, **kw))

    T = "tracebacks"
    for s in [
        "hardware.achievable.gemm.efficiency=0.7",
        "hardware.provenance=5",
        "model.vocab=abc",
        "model.layers=abc",
        "model.d_model=abc",
        "model.heads=[1]",
        "model.kv_heads={}",
        "model.head_dim=1.5",
        "model.d_ff=-3",
        "hardware.peak.bf16_TFLOPs=abc",
        "hardware.peak.hbm_TBps=[1,2]",
        "hardware.memory_GB=abc",
        "nosuchkind.x=1",
        "model.nosuch=1",
        "model",
        "=3",
        "model.layers=",
    ]:
        add(T, f"predict --set {s}", bad("predict", ["--set", s]))
    for flag in ("--hardware", "--model"):
        for v in ("DIR", "NOTUTF8", "/nonexistent.toml", "FILE", "/proc/self/mem"):
            add(T, f"predict {flag} {v}", bad("predict", [flag, v]))
    for field_ in ("layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "vocab", "dtype_bytes"):
        text = (ROOT / "costmodel/presets/model/seed-dense.toml").read_text()
        broken = re.sub(rf"^{field_}\s*=.*$", f'{field_} = "abc"', text, flags=re.M)

        def preset_run(d: Path, broken=broken) -> tuple[bool, str]:
            (d / "m.toml").write_text(broken)
            return bad("predict", ["--model", str(d / "m.toml")])(d)

        add(T, f"predict --model m.toml with {field_} a string", preset_run)
    for cmd in ("predict", "simulate", "best"):
        extra = ["--gpus", "8"] if cmd == "best" else []
        add(T, f"{cmd} --seq 1e26 (digits)", bad(cmd, [*extra, "--seq", "9" * 26]))
    add(T, "sweep --seq 8k:<huge>", bad("sweep", ["--seq", "8k:" + "9" * 30, "--out", "OUT"]))
    for p in ("ring=P/0", "ring=Q", "tp=0", "tp=P/3", "ring", "tp=8,,pp=2"):
        add(T, f"sweep --plans {p}", bad("sweep", ["--plans", p, "--out", "OUT", "--quiet"]))
    add(T, "best --max-batch 0", bad("best", ["--gpus", "8", "--max-batch", "0"]))
    sim = ["--layers", "1", "--seq", "4096", "--plan", "tp=2", "--topology", "nvswitch:2"]
    for v in ("/proc/nope/t.json", "DIR", "FILE/t.json"):
        add(T, f"simulate --trace {v}", bad("simulate", [*sim, "--trace", v]))
        add(T, f"simulate --timeline {v}", bad("simulate", [*sim, "--timeline", v]))
    for line, what in [
        ("[1, 2]", "an array line"),
        ('"a string"', "a string line"),
        ("3", "a number line"),
        (json.dumps(_rec(latency_s={"median": "0.01", "min": 1, "max": 1})), "a string median"),
        (json.dumps(_rec(latency_s={"median": 0, "min": 1, "max": 1})), "a zero median"),
        (json.dumps(_rec(latency_s={"median": float("nan"), "min": 1, "max": 1})), "a NaN median"),
        (json.dumps(_rec(latency_s={"median": 1e999, "min": 1, "max": 1})), "an infinite median"),
        (json.dumps(_rec(latency_s={"median": True, "min": 1, "max": 1})), "a boolean median"),
        (json.dumps(_rec(latency_s=[1, 2])), "latency_s an array"),
        (json.dumps(_rec(args=["--layers", "abc"])), "args with a bad value"),
        (json.dumps(_rec(args="--seq 16")), "args a string"),
        (json.dumps(_rec(status="weird")), "an unknown status"),
        (json.dumps(_rec(check="yes")), "check a string"),
    ]:
        add(T, f"validate: {what}", validate_bad(line))
    for v, what in [("0", "0"), ("-5", "negative"), ("nan", "nan"), ("inf", "inf")]:
        add(T, f"real.run --timeout-s {what}", bad("real.run", [*ONE, "--timeout-s", v, "--out", "OUT"]))
    for k in ("flash", "cudnn"):
        add(T, f"real.run --kernel {k} on CPU", bad("real.run", [*ONE, "--kernel", k, "--out", "OUT"]))
    add(T, "real.run --exec graph on CPU", bad("real.run", [*ONE, "--exec", "graph", "--out", "OUT"]))
    for v in ("DIR", "FILE/r.jsonl", "/proc/version"):
        add(T, f"real.run --out {v}", bad("real.run", [*ONE, "--out", v]))
    for v in ("FILE", "/proc/x"):
        add(T, f"real.run --profile-dir {v}", bad("real.run", [*ONE, "--out", "OUT", "--profile-dir", v]))
    for v, what in [
        ("/nonexistent.json", "missing"),
        ("DIR", "a folder"),
        ("FILE", "not JSON"),
        ("NOTUTF8", "not UTF-8"),
    ]:
        add(T, f"calibrate --from-raw {what}", bad("calibrate", ["--from-raw", v, "--out", "OUT/p.toml"]))
    for body, what in [("[1, 2]", "an array"), ('{"results": 3}', "results a number"), ("{}", "empty")]:

        def raw_run(d: Path, body=body) -> tuple[bool, str]:
            (d / "raw.json").write_text(body)
            return bad("calibrate", ["--from-raw", str(d / "raw.json"), "--out", "OUT/p.toml"])(d)

        add(T, f"calibrate --from-raw {what}", raw_run)
    for v, what in [("/nonexistent.json", "missing"), ("DIR", "a folder"), ("FILE", "not JSON")]:
        add(T, f"plot {what}", bad("plot", ["--out", "OUT", v]))

    S = "silently accepted"
    for f in ("layers", "heads", "kv_heads", "d_model", "d_ff", "head_dim"):
        add(S, f"predict --set model.{f}=true", bad("predict", ["--set", f"model.{f}=true"]))
    for v in ("inf", "nan", "-1", "0"):
        add(
            S,
            f"predict --set hardware.peak.bf16_TFLOPs={v}",
            bad("predict", ["--set", f"hardware.peak.bf16_TFLOPs={v}"]),
        )
    for v in ("0", "-8", "x", "", "1.5", "８", "8,,16"):
        add(S, f"sweep --gpus {v!r}", bad("sweep", ["--gpus", v, "--out", "OUT", "--quiet"]))
    for flag, v in [("--top", "-1"), ("--top", "0"), ("--confirm-with-sim", "-2"), ("--max-batch", "-4")]:
        add(S, f"best {flag} {v}", bad("best", ["--gpus", "8", flag, v]))
    for cmd, args in [
        ("predict", ["--seq", "١٢٨Ki"]),
        ("predict", ["--topology", "nvswitch:８"]),
        ("predict", ["--batch", "٤"]),
        ("predict", ["--layers", "２"]),
        ("simulate", ["--seq", "８Ki"]),
        ("simulate", ["--nics-per-node", "８"]),
        ("best", ["--gpus", "８"]),
        ("best", ["--gpus", "8", "--top", "３"]),
        ("sweep", ["--points", "４", "--out", "OUT"]),
        ("reproduce", ["--sweep-batch", "８", "--out", "OUT"]),
        ("real.run", [*ONE, "--reps", "٥", "--out", "OUT"]),
        ("real.run", [*ONE, "--seq", "١٦", "--out", "OUT"]),
    ]:
        add(
            S,
            f"{cmd} {' '.join(args[-2:] if cmd != 'real.run' else args[-4:-2])} (non-ASCII digits)",
            bad(cmd, args),
        )
    for flag in ("--out", "--profile-dir", "--reps", "--timeout-s"):
        v = {"--out": "a.jsonl;b.jsonl", "--profile-dir": "p;q", "--reps": "5;6", "--timeout-s": "3;4"}[flag]
        args = [*ONE, "--out", "OUT"] + ([flag, v] if flag != "--out" else [])
        if flag == "--out":
            args = [*ONE, "--out", v]
        add(S, f"real.run {flag} {v!r} (';' is for configuration options)", bad("real.run", args))
    for flag, v in [
        ("--batch", "0"),
        ("--seq", "0"),
        ("--layers", "0"),
        ("--heads", "3"),
        ("--kv-heads", "0"),
        ("--microbatches", "0"),
        ("--chunks", "0"),
        ("--gen-tokens", "0"),
        ("--context", "-1"),
        ("--head-dim", "1.5"),
    ]:
        add(S, f"predict {flag} {v}", bad("predict", [flag, v]))
    add(
        S,
        "validate: a negative median",
        validate_bad(json.dumps(_rec(latency_s={"median": -0.01, "min": 0.009, "max": 0.011}))),
    )
    add(S, "validate: --hardware missing", bad("validate", ["--hardware", "/nonexistent.toml", "FILE"]))
    add(S, "presets --yaml", bad("presets", ["--yaml"]))
    add(S, "reproduce --points 1", bad("reproduce", ["--points", "1", "--out", "OUT"]))
    add(S, "predict (valid defaults, edge: --seq 1)", good("predict", ["--seq", "1"]))
    add(S, "predict --seq 1Mi --plan ring=8 (valid)", good("predict", ["--seq", "1Mi", "--plan", "ring=8"]))

    L = "late checks"
    two = [*ONE[:-2], "--seq", "16;24"]
    add(
        L,
        "real.run --out read-only, 2 configurations",
        bad("real.run", [*two, "--out", "/proc/version"], not_measured=True),
    )
    add(
        L,
        "real.run --check-seq 8q",
        bad("real.run", [*two, "--check-seq", "8q", "--out", "OUT"], not_measured=True),
    )
    add(
        L,
        "real.run --check-seq ８",
        bad("real.run", [*two, "--check-seq", "８", "--out", "OUT"], not_measured=True),
    )
    add(
        L,
        "real.run --profile-dir a file",
        bad("real.run", [*two, "--profile-dir", "FILE", "--out", "OUT"], not_measured=True),
    )
    add(
        L,
        "real.run second configuration bad (--seq '16;0')",
        bad("real.run", [*ONE[:-2], "--seq", "16;0", "--out", "OUT"], not_measured=True),
    )
    big = ["--plan", "ring=8", "--seq", "1Mi", "--layers", "8", "--no-coarsen"]
    for v in ("/proc/nope/t.json", "DIR", "FILE/t.json"):
        add(L, f"simulate (long) --trace {v}", bad("simulate", [*big, "--trace", v], quick_s=5))
    add(L, "simulate (long) --timeline DIR", bad("simulate", [*big, "--timeline", "DIR"], quick_s=5))
    add(
        L,
        "sweep (large) --out a file",
        bad("sweep", ["--points", "50000", "--out", "FILE", "--quiet"], quick_s=5),
    )
    add(
        L,
        "sweep (large) --out under /proc",
        bad("sweep", ["--points", "50000", "--out", "/proc/x/s", "--quiet"], quick_s=5),
    )
    add(L, "reproduce --out a file", bad("reproduce", ["--out", "FILE"], quick_s=5))
    add(L, "reproduce --out under /proc", bad("reproduce", ["--out", "/proc/rp"], quick_s=5))
    add(L, "reproduce --claims not TOML", bad("reproduce", ["--claims", "FILE", "--out", "OUT"], quick_s=8))
    add(
        L,
        "calibrate --out a folder",
        bad(
            "calibrate",
            ["--from-raw", str(ROOT / "validation/data/calibration/h200x2_raw.json"), "--out", "DIR"],
            quick_s=5,
        ),
    )

    H = "half-written outputs"
    for cmd, args in [
        ("sweep", ["--gpus", "x", "--out", "OUT"]),
        ("sweep", ["--points", "0", "--out", "OUT"]),
        ("sweep", ["--plans", "ring=P/0", "--out", "OUT"]),
        ("sweep", ["--model", "/nonexistent.toml", "--out", "OUT"]),
        ("reproduce", ["--points", "0", "--out", "OUT"]),
        ("reproduce", ["--sweep-batch", "0", "--out", "OUT"]),
        ("reproduce", ["--claims", "/nonexistent.toml", "--out", "OUT"]),
        ("calibrate", ["--from-raw", "FILE", "--out", "OUT/p.toml"]),
        ("simulate", ["--seq", "0", "--trace", "OUT/t.json"]),
        ("real.run", [*ONE, "--reps", "3", "--out", "OUT/r.jsonl"]),
        ("plot", ["--out", "OUT", "FILE"]),
        ("validate", ["--out", "OUT", "FILE"]),
    ]:
        add(H, f"rejected {cmd} {' '.join(args[-4:-2]) or args[0]} leaves no output", bad(cmd, args))
    for k in (1, 2, 3):
        for where in ("before", "after"):
            add(
                H,
                f"sweep re-run interrupted at writer {k} ({where} it wrote)",
                sweep_writer_interrupt(k, where),
            )
    for seed in (1, 2, 3):
        add(
            H, f"sweep re-run: SIGINT/SIGTERM at a random moment (seed {seed})", sweep_signal(seed), slow=True
        )
    add(H, "reproduce interrupted at its first log line", reproduce_interrupt(1))
    add(H, "reproduce terminated (SIGTERM) after 3 s", reproduce_sigterm, slow=True)
    for seed in (1, 2):
        add(H, f"real.run SIGINT at a random moment (seed {seed})", real_run_sigint(seed), slow=True)

    A = "appending after a crash"
    add(A, "append_jsonl after a cut last line", append_after_cut)
    add(A, "validate: a cut last line warns and is left out", validate_cut_last_line)
    add(A, "validate: a bad line after blank lines, true line number", validate_blank_lines_true_numbers)
    add(A, "real.run appends after a cut last line", real_run_append_after_cut)

    G = "hangs"
    add(
        G,
        "sweep --points 1e9",
        bad("sweep", ["--points", "1000000000", "--out", "OUT", "--quiet"], quick_s=5),
        limit_s=30,
    )
    add(
        G,
        "reproduce --points 1e9",
        bad("reproduce", ["--points", "1000000000", "--out", "OUT"], quick_s=5),
        limit_s=30,
    )
    add(
        G,
        "reproduce --sweep-batch 1e22",
        bad("reproduce", ["--sweep-batch", "1" + "0" * 22, "--out", "OUT"], quick_s=5),
        limit_s=30,
    )
    add(
        G,
        "simulate --gen-tokens 1e8 (decode): refused, at most 2**20 steps",
        bad("simulate", ["--phase", "decode", "--gen-tokens", "100000000"], quick_s=5),
        limit_s=30,
    )
    add(
        G,
        "simulate --layers 100000 ring=8 1Mi: refused, at most 1,024 layers",
        bad("simulate", ["--layers", "100000", "--plan", "ring=8", "--seq", "1Mi"], quick_s=5),
        limit_s=30,
    )
    add(
        G,
        "best --gpus 8 --max-batch 2**50",
        good("best", ["--gpus", "8", "--objective", "throughput", "--max-batch", str(2**50)]),
        limit_s=30,
    )
    add(G, "a stopped rank (torchrun, 2 processes, --timeout-s 3)", hung_rank, limit_s=120, slow=True)

    F = "failed checks"
    add(
        F,
        "real.run: output spoiled (RINGSIM_REAL_BAD_CHECK)",
        failed_check_env({"RINGSIM_REAL_BAD_CHECK": "0"}, "the tolerance"),
        slow=True,
    )
    add(
        F,
        "real.run: a micro-batch dropped (per-layer check)",
        failed_check_env({"RINGSIM_REAL_FAULT": "drop-microbatch"}, "layer 0's attention output"),
        slow=True,
    )
    add(
        F,
        "validate: passed false, status ok",
        validate_left_out(
            json.dumps(_rec(check={"passed": False, "rel_err": 0.5, "tol": 1e-2})),
            "failed its check against the reference",
        ),
    )
    add(
        F,
        "validate: status failed",
        validate_left_out(
            json.dumps(_rec(status="failed", reason="check failed")), "failed its check against the reference"
        ),
    )
    add(
        F,
        "validate: refused",
        validate_left_out(json.dumps(_rec(status="refused", reason="x")), "refused (not measured)"),
    )
    add(
        F,
        "validate: passed true but an error above the tolerance",
        validate_left_out(
            json.dumps(
                _rec(
                    check={
                        "passed": True,
                        "rel_err": 1e-3,
                        "tol": 1e-2,
                        "attn_rel_err": [0.3],
                        "attn_rel_err_max": 0.3,
                    }
                )
            ),
            "failed its check against the reference",
        ),
    )
    add(F, "the four executor faults, 2 processes on CPU", faults_caught, limit_s=300, slow=True)
    return C


def run_case(c: Case) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="battery.") as tmp:
        d = Path(tmp)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, c.limit_s)
        t0 = time.monotonic()
        try:
            clean, note = c.run(d)
        except Timeout:
            clean, note = False, f"still running after {c.limit_s:.0f} s (stopped)"
        except Exception as e:  # noqa: BLE001 - the battery's own failure to run a case counts against it
            clean, note = False, f"the case broke: {type(e).__name__}: {e}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        return Outcome(c, clean, note, time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    p.add_argument("--quick", action="store_true", help="leave out the cases that start processes")
    p.add_argument("-k", default="", help="only cases whose label holds this text")
    p.add_argument("--json", help="also write every outcome to this JSON file")
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    todo = [c for c in cases() if a.k in c.label and not (a.quick and c.slow)]
    outcomes = []
    for c in todo:
        o = run_case(c)
        outcomes.append(o)
        if a.verbose:
            print(
                f"{'clean' if o.clean else 'NOT  '} {o.seconds:6.1f}s [{c.category}] {c.label}: {o.note}",
                flush=True,
            )
    print(f"\n{len(outcomes)} bad or edge inputs; clean = exit 2 with one sentence, or correct handling")
    print(f"{'category':26s} {'cases':>6s} {'clean':>6s} {'not':>5s}")
    for cat in CATEGORIES:
        os_ = [o for o in outcomes if o.case.category == cat]
        if os_:
            n_ok = sum(o.clean for o in os_)
            print(f"{cat:26s} {len(os_):6d} {n_ok:6d} {len(os_) - n_ok:5d}")
    n_ok = sum(o.clean for o in outcomes)
    print(f"{'all':26s} {len(outcomes):6d} {n_ok:6d} {len(outcomes) - n_ok:5d}")
    bad_ = [o for o in outcomes if not o.clean]
    if bad_:
        print("\nnot clean:")
        for o in bad_:
            print(f"  [{o.case.category}] {o.case.label}: {o.note}")
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                [
                    {
                        "category": o.case.category,
                        "case": o.case.label,
                        "clean": o.clean,
                        "note": o.note,
                        "seconds": round(o.seconds, 2),
                    }
                    for o in outcomes
                ],
                indent=1,
            )
            + "\n"
        )
    return 0 if not bad_ else 1


if __name__ == "__main__":
    sys.exit(main())
