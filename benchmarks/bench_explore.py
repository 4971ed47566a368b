"""Benchmark: ``ringsim explore`` end to end (issue 16: >= 3e5 configurations/s through ``ringsim
sweep``/``explore`` at ~1e6 points, peak memory <= 1 GiB): points, configurations per second on wall and
CPU time, peak RSS, and where the time goes: evaluation (``run_experiment``: plans, validity masks, the
model), maps (``build_maps`` + ``crossover``), files (explore.npz/.csv/.json, maps.json, crossover,
EXPLORE.md) and figures (``plots.explore``: a winner and a speed-up map per (topology, phase, batch), PNG +
SVG).  A benchmark, not a test: it prints, it asserts nothing about speed.

    python benchmarks/bench_explore.py                 # seed.toml at --points 100 and 200 (~5e5, ~1e6)
    python benchmarks/bench_explore.py --quick         # --points 10 (~5e4 points)
    python benchmarks/bench_explore.py --repeat 5      # each case 5 times, the run of least CPU kept
    python benchmarks/bench_explore.py --points 100    # one case
    python benchmarks/bench_explore.py --no-csv        # each case also with --no-csv (npz only)

Each run is a fresh child process (``ringsim explore studies/experiments/seed.toml --points N --quiet``,
the explore module's stages wrapped with timers); its peak RSS and CPU time come from
``resource.getrusage(RUSAGE_CHILDREN)`` in a runner process that starts it as its only child.  CPU time
is what the figures are judged on (the machine is shared: the wall is longer than the CPU time used).
A stage's CPU is its own thread's (``time.thread_time``): explore() writes the data files in a thread while
the maps and figures are made, so their CPU is what explore() spends (all threads) beyond its named
stages, "files and the rest"; the import of ``plots.explore`` (matplotlib), made up front here to time the
figures, is counted with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "studies" / "experiments" / "seed.toml"
TARGET_RATE, TARGET_RSS = 3e5, 2**30

# the child: ringsim explore with the stages of studies.explore timed (CPU and wall, seconds)
CHILD = r"""
import json, sys, time
spent = {}
c, w = time.process_time(), time.perf_counter()
import plots.explore as pe  # matplotlib: the figures' (ringsim explore imports it after the evaluation)
imported = [time.process_time() - c, time.perf_counter() - w]
import studies.explore as se
from ringsim.cli import main

def timed(name, f, clock=time.thread_time):
    # a stage's CPU on its own thread (the data files are written by a thread meanwhile: their CPU is
    # what explore() spends beyond its named stages, "files and the rest")
    def g(*a, **k):
        c, w = clock(), time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            s = spent.setdefault(name, [0.0, 0.0])
            s[0] += clock() - c
            s[1] += time.perf_counter() - w
    return g

se.run_experiment = timed("evaluation", se.run_experiment)
se.build_maps = timed("maps", se.build_maps)
se.crossover = timed("maps", se.crossover)
pe.explore_figures = timed("figures", pe.explore_figures)
se.explore = timed("total in explore()", se.explore, time.process_time)
points = {}
_rows = se.render_markdown
def render(*a, **k):
    points["n"] = k["n_points"]
    return _rows(*a, **k)
se.render_markdown = render
rc = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"rc": rc, "spent": spent, "imported": imported, "points": points.get("n", 0)}, f)
"""

# the runner: starts the child as its only child, so RUSAGE_CHILDREN is the child's own
RUNNER = r"""
import json, resource, subprocess, sys, time
w = time.perf_counter()
p = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - w
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": p.returncode, "wall": wall, "cpu": u.ru_utime + u.ru_stime, "user": u.ru_utime,
               "sys": u.ru_stime, "maxrss_kib": u.ru_maxrss}, f)
"""


def run_once(points: int, no_csv: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_explore.") as tmp:
        stages, usage = Path(tmp) / "stages.json", Path(tmp) / "usage.json"
        argv = [sys.executable, "-c", CHILD, str(stages), "explore", str(EXPERIMENT), "--points", str(points)]
        argv += ["--out", str(Path(tmp) / "out"), "--quiet"] + (["--no-csv"] if no_csv else [])
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run([sys.executable, "-c", RUNNER, str(usage), *argv], check=True, cwd=REPO, env=env)
        u = json.loads(usage.read_text())
        if u["rc"] != 0:
            raise SystemExit(f"ringsim explore --points {points} failed (exit {u['rc']})")
        s = json.loads(stages.read_text())
    spent = s["spent"]
    inside = spent.pop("total in explore()")
    named = sum(v[0] for v in spent.values())
    spent["files and the rest of explore()"] = [
        inside[0] - named,
        inside[1] - sum(v[1] for v in spent.values()),
    ]
    imp = s["imported"]  # plots.explore (matplotlib), imported up front here to time the figures: theirs
    spent["start-up (imports, experiment, checks)"] = [
        u["cpu"] - inside[0] - imp[0],
        u["wall"] - inside[1] - imp[1],
    ]
    spent["figures"] = [a + b for a, b in zip(spent.get("figures", [0.0, 0.0]), imp)]
    return {**u, "points": s["points"], "spent": spent}


def fmt_rate(n: float, t: float) -> str:
    return f"{n / t:.3g}/s" if t > 0 else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, nargs="+", default=None, help="lengths per map (default 100 200)")
    ap.add_argument("--quick", action="store_true", help="--points 10")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case, the least CPU kept (default 3)")
    ap.add_argument("--no-csv", action="store_true", help="each case also with ringsim explore --no-csv")
    a = ap.parse_args(argv)
    cases = a.points or ([10] if a.quick else [100, 200])
    print(
        f"# bench_explore: {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}), python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    print(f"# experiment {EXPERIMENT.relative_to(REPO)}; best (least CPU) of {a.repeat} runs per case")
    for pts, no_csv in [(p, c) for p in cases for c in ((False, True) if a.no_csv else (False,))]:
        runs = [run_once(pts, no_csv) for _ in range(max(1, a.repeat))]
        best = min(runs, key=lambda r: r["cpu"])
        n = best["points"]
        rss = best["maxrss_kib"] * 1024
        print(f"\n## --points {pts}{' --no-csv' if no_csv else ''}: {n:,} points")
        print(
            f"configurations/s: {fmt_rate(n, best['cpu'])} on CPU ({best['cpu']:.2f} s: user "
            f"{best['user']:.2f}, sys {best['sys']:.2f}), {fmt_rate(n, best['wall'])} on wall "
            f"({best['wall']:.2f} s); target "
            f"{TARGET_RATE:.0e}/s: {'met' if n / best['cpu'] >= TARGET_RATE else 'not met'} (CPU)"
        )
        print(
            f"peak RSS: {rss / 2**20:.0f} MiB; target {TARGET_RSS / 2**20:.0f} MiB: "
            f"{'met' if rss <= TARGET_RSS else 'not met'}"
        )
        every = ", ".join(f"{r['cpu']:.2f}" for r in runs)
        print(f"CPU of every run: {every} s")
        print("| stage | CPU s | share | wall s |")
        print("|---|---|---|---|")
        for k, (c, w) in best["spent"].items():
            print(f"| {k} | {c:.2f} | {c / best['cpu']:.0%} | {w:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
