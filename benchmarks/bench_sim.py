"""Benchmark: simulator speed, building the schedule included (figures, not a timed test).

    python benchmarks/bench_sim.py            # the targets of issue 16:
                                              #  * the seed configuration (16 layers, B = 128, L = 100,000,
                                              #    h100-sxm), tp=8,pp=2 and ring=16 with 16 micro-batches, on
                                              #    ib:2x8 and nvlink-domain:16 (target <= 1 s each);
                                              #  * the 1024-GPU zigzag ring of one layer at L = 1Mi on
                                              #    ib:128x8 (target <= 10 s and <= 1 GB)
                                              # + the 1024-GPU ring at L = 131,072
    python benchmarks/bench_sim.py --rings    # + rings of one layer on 8-GPU IB nodes, 128 and 256 GPUs
    python benchmarks/bench_sim.py --full     # + the seed ring (nvlink-domain:16) with coarsening off
    python benchmarks/bench_sim.py --repeat 5 # best of 5 runs of each case (default 3)
    python benchmarks/bench_sim.py --no-cli   # leave out the `ringsim simulate` command-line timings
    python benchmarks/bench_sim.py --against DIR --repeat 7
                                              # only the seed cases, each run alternately with this tree's
                                              # costmodel and sim and with those of the checkout DIR (e.g.
                                              # a worktree of main): CPU time of each, the ratio, and
                                              # whether the latencies agree bit for bit

Each run is a fresh process.  ``wall`` and ``cpu`` (that process's CPU time) cover ``run_config``:
building and simulating (the best of ``--repeat`` runs; the machine is shared, so CPU time is the
steadier figure); ``peak`` is the process's peak resident memory (``getrusage`` maxrss, the interpreter
and imports included, ~60 MB).  The rate is engine events per second of simulation (every simulation
the run made, coarsening tries included), or, for a ring timed by the rank x step recurrence
(``sim/ring_recurrence.py``), ops timed per second.  ``how`` says what was simulated and how exact it is:
units simulated / total and whether the period repeated exactly or to a drift within the tolerance
(``sim/run.py``), ring steps, or the recurrence (every op timed; equal to the full simulation to 1e-9 in
``tests/test_sim_ring_recurrence.py``).  The ``cli`` line of a target case times the whole command,
``ringsim simulate ... --json`` (interpreter start, imports, the analytic prediction beside it and the
JSON included), best of the runs too: twice, with Python's compiled modules cached (as an installed
package runs: the first run, untimed, writes them under a temporary PYTHONPYCACHEPREFIX) and with every
module compiled at each start (PYTHONDONTWRITEBYTECODE=1, which some sandboxes set).  The 1024-GPU
rings run on ``ib:128x8``: an NVLink domain holds at most 576 GPUs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

SEED = {"batch": 128, "seq": 100000, "layers": None}


def _case(plan: str, topo: str, layers: int | None, batch: int, seq: int, coarsen: bool) -> dict:
    from costmodel import presets
    from costmodel.config import Config
    from costmodel.plan import parse_plan
    from costmodel.specs import Workload
    from costmodel.topology import parse_topology
    from sim import run_config

    hw = presets.load_hardware("h100-sxm")
    model = presets.load_model("seed-dense", **({"layers": layers} if layers else {}))
    cfg = Config(
        hardware=hw,
        topology=parse_topology(topo),
        model=model,
        workload=Workload(batch=batch, seq_len=seq),
        plan=parse_plan(plan),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    r = run_config(cfg, coarsen=coarsen)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if r.method == "recurrence":
        how = "recurrence: every op timed, exact"
        ops, count, rate = r.ops_total, r.ops_total, r.ops_total / r.sim_s_all if r.sim_s_all else 0.0
        unit = "ops/s"
    else:
        how = (
            f"ring steps {r.ring_steps_simulated + 2}/{r.ring_steps_total + 2}"
            if r.ring_steps_total
            else f"units {r.units_simulated}/{r.units_total}"
        )
        if r.coarsened:
            how += " exact" if r.coarsen_exact else f" drift {r.coarsen_drift:.1e} <= {r.coarsen_tolerance:g}"
        else:
            how += " (all simulated)"
        ops, count = len(r.result.schedule.ops), r.events_all
        rate, unit = (r.events_all / r.sim_s_all if r.sim_s_all else 0.0), "events/s"
    return {
        "wall": wall,
        "cpu": cpu,
        "build": r.build_s,
        "ops": ops,
        "count": count,
        "rate": rate,
        "unit": unit,
        "how": how,
        "latency": r.latency_s,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _best(runs: list[dict]) -> dict:
    """The run of least CPU time (its wall and build time too), with the largest peak of all runs."""
    b = dict(min(runs, key=lambda r: r["cpu"]))
    b["peak_mb"] = max(r["peak_mb"] for r in runs)
    return b


def _verdict(wall: float, cpu: float, peak: float | None, target_s: float | None, target_mb: float | None):
    if target_s is None:
        return ""
    mem_ok = target_mb is None or peak is None or peak <= target_mb
    ok = wall <= target_s and mem_ok
    cpu_ok = cpu <= target_s and mem_ok
    what = f"target <= {target_s:g} s" + (f", <= {target_mb:g} MB" if target_mb else "")
    return f"  [{what}: {'met' if ok else 'met in CPU time' if cpu_ok else 'MISSED'}]"


def _one(label, plan, topo, layers, batch, seq, coarsen, repeat, cli, target_s=None, target_mb=None):
    runs = []
    for _ in range(repeat):
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
            runs.append(ex.submit(_case, plan, topo, layers, batch, seq, coarsen).result())
    r = _best(runs)
    print(
        f"{label:44s} wall {r['wall']:6.2f} s  cpu {r['cpu']:6.2f} s  build {r['build']:5.2f} s  "
        f"ops {r['ops']:>9,}  {r['rate']:>9,.0f} {r['unit']:8s}  peak {r['peak_mb']:5.0f} MB  "
        f"{r['how']:34s}  latency {r['latency']:.10g} s"
        f"{_verdict(r['wall'], r['cpu'], r['peak_mb'], target_s, target_mb)}",
        flush=True,
    )
    if cli:
        _cli(plan, topo, layers, batch, seq, repeat, target_s, bytecode=True)
        _cli(plan, topo, layers, batch, seq, repeat, target_s, bytecode=False)


_PYCACHE = tempfile.mkdtemp(prefix="bench_sim_pycache_")


def _cli_env(bytecode: bool) -> dict:
    """The command's environment: Python's default, compiled modules cached (as an installed package
    runs; here under a temporary PYTHONPYCACHEPREFIX, warmed by a first untimed run), or (``bytecode``
    False) every module compiled at each start (PYTHONDONTWRITEBYTECODE=1, as some sandboxes set)."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _cli(plan, topo, layers, batch, seq, repeat, target_s, bytecode: bool = True) -> None:
    """``ringsim simulate`` end to end in a fresh interpreter (best of ``repeat``)."""
    cmd = [sys.executable, "-m", "ringsim", "simulate", "--plan", plan, "--topology", topo]
    cmd += ["--batch", str(batch), "--seq", str(seq), "--json"]
    if layers:
        cmd += ["--layers", str(layers)]
    env = _cli_env(bytecode)
    if bytecode:  # the first run writes the cache (not timed)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - t0)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime))
    wall, cpu = min(walls), min(cpus)
    print(
        f"{'  cli: ringsim simulate ... --json':44s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
        f"(interpreter, imports, analytic prediction and JSON included; "
        f"{'bytecode cached' if bytecode else 'every module compiled'})"
        f"{_verdict(wall, cpu, None, target_s, None)}",
        flush=True,
    )


def _header() -> str:
    """What ran where: the command, the UTC date, the git revision (+ if the tree has changes), the
    machine (CPU model, cores), Python, numpy and simpy."""
    import datetime
    import platform

    import numpy as np
    import simpy

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        git = ["git", "-C", root]
        rev = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
        rev = (rev or "unknown") + ("+" if dirty.stdout.strip() else "")
    except OSError:
        rev = "unknown (no git)"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"# {date}  git {rev}  python {' '.join(['benchmarks/bench_sim.py', *sys.argv[1:]])}\n"
        f"# machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}, simpy {simpy.__version__}, {platform.system()} {platform.release()}"
    )


_AGAINST_CODE = """
import json, os, sys
sys.path.insert(0, {bench!r})
from bench_sim import _case
r = _case({plan!r}, {topo!r}, None, {batch}, {seq}, True)
import costmodel
src = os.path.abspath(list(costmodel.__path__)[0])
got = {{"cpu": r["cpu"], "latency": r["latency"].hex(), "how": r["how"], "from": src}}
print(json.dumps(got))
"""


def _against(other: str, repeat: int) -> None:
    """Each seed case run ``repeat`` times alternately with this tree's packages and with ``other``'s (a
    fresh interpreter each, started in the tree, ``PYTHONPATH`` naming it): least and median CPU of
    ``run_config``; the tree each run imported is checked."""
    import json
    import statistics

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"this tree": here, "other": os.path.abspath(other)}
    print(f"# other: {trees['other']}")
    for topo in ("ib:2x8", "nvlink-domain:16"):
        for plan in ("tp=8,pp=2,mb=16", "ring=16,mb=16"):
            code = _AGAINST_CODE.format(
                bench=os.path.dirname(os.path.abspath(__file__)),
                plan=plan,
                topo=topo,
                batch=SEED["batch"],
                seq=SEED["seq"],
            )
            got: dict[str, list] = {k: [] for k in trees}
            for _ in range(repeat):
                for name, root in trees.items():
                    env = {**os.environ, "PYTHONPATH": root}
                    out = subprocess.run(  # cwd: python -c puts it first on sys.path, before PYTHONPATH
                        [sys.executable, "-c", code],
                        env=env,
                        cwd=root,
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    got[name].append(json.loads(out.strip().splitlines()[-1]))
                    if os.path.dirname(got[name][-1]["from"]) != root:
                        raise RuntimeError(
                            f"{name} imported costmodel from {got[name][-1]['from']}, not {root}"
                        )
            cpu = {k: [r["cpu"] for r in v] for k, v in got.items()}
            lats = {r["latency"] for v in got.values() for r in v}
            mine, theirs = min(cpu["this tree"]), min(cpu["other"])
            med = {k: statistics.median(v) for k, v in cpu.items()}
            same = "identical bit for bit" if len(lats) == 1 else "DIFFERS: " + ", ".join(sorted(lats))
            print(
                f"seed {plan} ({topo}): cpu this tree {mine:.3f} s (median {med['this tree']:.3f}), "
                f"other {theirs:.3f} s (median {med['other']:.3f}), ratio {theirs / mine:.2f}x; "
                f"latency {same} ({got['this tree'][0]['how']})",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rings", action="store_true", help="also rings of one layer on 128 and 256 GPUs")
    ap.add_argument(
        "--full", action="store_true", help="also the seed ring on nvlink-domain:16 with coarsening off"
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case; the best is shown (default 3)")
    ap.add_argument("--no-cli", action="store_true", help="leave out the ringsim simulate timings")
    ap.add_argument(
        "--long", action="store_true", help="(kept for old command lines: the 1Mi ring always runs)"
    )
    ap.add_argument(
        "--ring1024", action="store_true", help="(kept for old command lines: the 1024-GPU ring always runs)"
    )
    ap.add_argument(
        "--against",
        metavar="DIR",
        default=None,
        help="only the seed cases, run alternately with this tree and the checkout DIR (CPU, ratio, latency)",
    )
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error(f"--repeat {a.repeat} is not valid: it must be a positive integer")
    if a.against is not None and not os.path.isdir(os.path.join(a.against, "costmodel")):
        ap.error(
            f"--against {a.against!r} is not valid: it must be a checkout of this project (with costmodel/)"
        )
    cli = not a.no_cli
    print(_header())
    if a.against is not None:
        print(f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
        _against(a.against, a.repeat)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        return
    print(f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}")
    for topo in ("ib:2x8", "nvlink-domain:16"):
        for plan in ("tp=8,pp=2,mb=16", "ring=16,mb=16"):
            _one(
                f"seed {plan} ({topo})",
                plan,
                topo,
                None,
                SEED["batch"],
                SEED["seq"],
                True,
                a.repeat,
                cli,
                target_s=1.0,
            )
    if a.full:
        _one(
            "seed ring=16,mb=16 (nvlink-domain:16), no coarsening",
            "ring=16,mb=16",
            "nvlink-domain:16",
            None,
            128,
            100000,
            False,
            1,
            False,
        )
    for R in [128, 256] if a.rings else []:
        _one(
            f"ring={R}, 1 layer, L={2 * R * 64} (ib:{R // 8}x8)",
            f"ring={R}",
            f"ib:{R // 8}x8",
            1,
            1,
            2 * R * 64,
            True,
            a.repeat,
            False,
        )
    _one(
        "ring=1024, 1 layer, L=131072 (ib:128x8)",
        "ring=1024",
        "ib:128x8",
        1,
        1,
        131072,
        True,
        a.repeat,
        False,
    )
    _one(
        "ring=1024, 1 layer, L=1Mi (ib:128x8)",
        "ring=1024",
        "ib:128x8",
        1,
        1,
        1 << 20,
        True,
        a.repeat,
        cli,
        target_s=10.0,
        target_mb=1024.0,
    )


if __name__ == "__main__":
    main()
