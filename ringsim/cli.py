"""The ``ringsim`` command: wiring only.  Each subcommand lives in its own module with
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their command
runs, so a laptop without torch can use every command that does not execute on GPUs."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading

from costmodel.errors import SpecError

COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("ringsim.cmd_predict", "analytic prediction for one configuration"),
    "explore": ("ringsim.cmd_explore", "which plan wins at each length and GPU count -> maps + EXPLORE.md"),
    "sweep": ("ringsim.cmd_sweep", "vectorised analytic sweep over L x P x plans -> CSV + JSON"),
    "reproduce": ("ringsim.cmd_reproduce", "the seed experiment checked with physics -> REPORT.md + figures"),
    "plot": ("ringsim.cmd_plot", "re-make the figures of a results file (sweep, timeline, validation, ...)"),
    "best": ("ringsim.cmd_best", "rank every placeable plan for a workload; say why the others lose"),
    "simulate": ("ringsim.cmd_simulate", "discrete-event simulation of one configuration's schedule"),
    "validate": (
        "ringsim.cmd_validate",
        "analytic model and simulator vs stored measurements: table, summary, plot",
    ),
    "calibrate": (
        "ringsim.cmd_calibrate",
        "measure microbenchmarks (torchrun, GPU) -> calibrated profile TOML",
    ),
    "presets": (
        "ringsim.cmd_presets",
        "list the model and hardware presets and topology forms, with their sources",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse with the house's error: one line on stderr, exit 2 (no usage block)."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _summary() -> str:
    """``ringsim --help``: what the tool answers, every command in one line, an example to start from."""
    from ringsim import __version__

    w = max(len(n) for n in COMMANDS)
    cmds = "\n".join(f"  {n:<{w}}  {h}" for n, (_, h) in COMMANDS.items())
    return f"""ringsim {__version__}: when does Ring Attention with sequence parallelism beat tensor/pipeline
parallelism for long-context inference, by how much, and why?  One schedule, three engines that must
agree: a closed-form analytic model, a discrete-event simulator, a torch executor (GPUs).

usage: ringsim COMMAND [options]     ringsim COMMAND --help     ringsim --version

commands:
{cmds}

example:
  ringsim predict --topology ib:2x8 --batch 8 --seq 128Ki --plan ring=16
  ringsim sweep --gpus 8,16,32 --topology ib --out sweep/ && ringsim plot sweep/sweep.npz --out figs/

Lengths and counts: k = x1000, M = x1,000,000 (decimal); Ki = x1024, Mi = x1,048,576 (binary);
figures label their axes the same way.  Bad input exits 2 with one line saying what is valid."""


@contextlib.contextmanager
def _term_as_exit():
    """SIGTERM (``timeout``, a job scheduler) ends the command like Ctrl-C does: through its cleanup (no
    temporary folder left behind), exit 143.  Main thread only; the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from ringsim import __version__

        print(f"ringsim {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(
                f"ringsim: error: unknown command {argv[0]!r}; valid: {', '.join(COMMANDS)} "
                "(see ringsim --help)",
                file=sys.stderr,
            )
            return 2
        print(_summary())
        return 0 if argv else 2
    name = argv[0]
    mod = importlib.import_module(COMMANDS[name][0])
    sp = _Parser(prog=f"ringsim {name}", description=COMMANDS[name][1])
    mod.add_arguments(sp)
    args = sp.parse_args(argv[1:])
    try:
        with _term_as_exit():
            return int(mod.run(args) or 0)
    except SpecError as e:
        print(f"ringsim {name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the command reads or writes: named in one line, never a traceback
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"ringsim {name}: error:{where} {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ringsim {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
