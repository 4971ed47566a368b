import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from costmodel.presets import load_hardware, load_model  # noqa: E402
from costmodel.specs import Model  # noqa: E402

# -- how pytest-xdist shares the tests between its workers (pyproject: -n auto --dist loadfile) -------------
# A file's tests go to one worker together where the file has a module fixture (made once there) or shares a
# session fixture with another file (XDIST_TOGETHER); every other test is a unit of its own, so that a file
# of a few slow tests does not keep one worker busy while the other idles.  The units start heaviest first
# (longest processing time first), from XDIST_SECONDS: rough seconds on one core of this suite's slow
# files (the whole file) and slow tests (each of its cases), from each test's CPU and wall time in a run
# of the suite (benchmarks/results/speed_20261128_tests3/cpu_per_test_xdist.txt); what is not listed
# counts as light.  A wrong figure only changes the order, never what runs.  The scheduler itself is
# tests/xdist_plan.py (a worker that dies fails its test; the run goes on).
XDIST_WHOLE = {
    "tests/test_best.py",
    "tests/test_cli_fuzz.py",
    "tests/test_explore.py",
    "tests/test_fault_injection.py",
    "tests/test_lm_head.py",
    "tests/test_real_executor.py",
    "tests/test_reproduce.py",
    "tests/test_sim_agreement.py",
    "tests/test_sim_effects.py",
    "tests/test_sim_engine.py",
    "tests/test_validation_targets.py",
}
XDIST_TOGETHER = {"tests/test_repository_paths.py": "tests/test_reproduce.py"}  # the `reproduced` fixture
XDIST_LIGHT_S = 0.1
XDIST_SECONDS: dict[str, float] = {  # 2026-11-28, this 2-core machine under other work: wall of the tests
    # that wait (a watchdog's bound, a signal after a delay), CPU of the rest, rounded
    "tests/test_reproduce.py": 19,  # with test_repository_paths.py: the `reproduced` run
    "tests/test_explore.py": 15,
    "tests/test_real_executor.py": 15,
    "tests/test_cli_fuzz.py": 8,
    "tests/test_fault_injection.py": 8,
    "tests/test_validation_targets.py": 7,
    "tests/test_best.py": 3,
    "tests/test_sim_agreement.py": 3,
    "tests/test_lm_head.py": 1.5,
    "tests/test_validation_calibrate.py::test_calibrate_measures_and_fits_on_cpu": 10,
    "tests/test_xdist_plan.py::test_a_dead_worker_fails_its_test_and_the_run_goes_on": 4,  # each case
    "tests/test_real_run.py::test_a_rank_that_stops_answering_ends_every_rank_with_an_error": 10,
    "tests/test_sim_ring_recurrence.py::test_slowly_settling_units_coarsen_exactly_from_the_long_try": 10,
    "tests/test_bad_inputs.py::test_interrupted_reproduce_leaves_the_previous_results": 9,
    "tests/test_real_run.py::test_two_ranks_append_records_and_keep_them": 8,
    "tests/test_sweep_files.py::test_plot_npz_and_csv_make_the_same_figures": 8,
    "tests/test_progress.py::test_plot_and_validate_show_progress_on_a_terminal_and_not_in_a_pipe": 7,
    "tests/test_partial_prefill.py::test_executor_matches_reference_with_a_prefix_cache": 6,
    "tests/test_robustness.py::test_real_run_interrupted_at_a_random_moment_keeps_earlier_records": 6,
    "tests/test_fused.py::test_fused_mode_matches_the_reference": 5,
    "tests/test_sim_coarsen_tolerance.py::test_drifting_period_is_coarsened_within_tolerance": 5,
    "tests/test_fp8.py::test_executor_fp8_within_tolerance": 4,
    "tests/test_fused.py::test_fused_mode_sees_a_dropped_ring_block": 4,
    "tests/test_plots.py::test_sweep_csv_and_json_make_the_same_figures": 4,
    "tests/test_robustness.py::test_reproduce_terminated_leaves_no_temporary_folder": 3.5,
    "tests/test_fp8.py::test_executor_kv_fp8_p1_and_ring_p2": 3,
    "tests/test_sim_coarsen_tolerance.py::test_exact_repeats_say_exact_and_tolerance_zero_refuses_drift": 3,
    "tests/test_sim_ring_recurrence.py::test_cli_simulate_a_large_ring_by_the_recurrence": 3,
    "tests/test_sim_ring_recurrence.py::"
    "test_run_config_takes_the_recurrence_from_min_ring_and_no_coarsen_the_engine": 3,
    "tests/test_fair.py::test_gen_tokens_real_run_measures_independent_steps": 2.5,
    "tests/test_fp8.py::test_executor_fp8_tp2_matches_reference": 2.5,
    "tests/test_cli_polish.py::test_best_with_nothing_that_fits_is_an_error_with_the_reason": 2.5,
    "tests/test_real_units.py::test_real_imports_only_costmodel_and_torch": 2.5,
    "tests/test_sim_ring_coarsen.py::test_ring_coarsening_without_slowdown_and_with_shared_nics": 2.5,
    "tests/test_ring_recurrence.py::test_rings_finished_in_floats_equal_the_vector_loop_bit_for_bit": 2.3,
    "tests/test_decode_attention_model.py::test_calibrate_fits_the_grid_into_every_profile_mode": 2,
    "tests/test_decode_attention_model.py::test_quick_grid_runs_on_cpu_and_writes_raw_records": 2,
    "tests/test_validation_calibrate.py::test_committed_profile_is_the_fit_of_committed_raw": 1.5,
    "tests/test_sim_ring_coarsen.py::test_ring_coarsening_falls_back": 1.5,
    "tests/test_plots.py::test_plots_never_imports_torch": 1.4,
    "tests/test_sim_ring_coarsen.py::test_ring_coarsening_changes_no_result": 1.2,
}


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        from xdist_plan import XdistPlan

        config.pluginmanager.register(
            XdistPlan(XDIST_WHOLE, XDIST_TOGETHER, XDIST_SECONDS, XDIST_LIGHT_S), "ringsim-xdist-plan"
        )


def pytest_unconfigure(config):
    """Stop multiprocessing's fork server if a test started one (real.selftest.run_cases forks its ranks
    from it): it ends with the run, waited for, so that its CPU time and its ranks' count in this process's
    children like any subprocess's (``time`` of the run sees them)."""
    fs = sys.modules.get("multiprocessing.forkserver")
    server = getattr(fs, "_forkserver", None)
    stop = getattr(server, "_stop", None)  # CPython's own (its tests stop the server so)
    if stop is not None and getattr(server, "_forkserver_pid", None) is not None:
        stop()


@pytest.fixture
def real_run_main(capsys, monkeypatch):
    """``python -m real.run ARGS`` as a call in this process, for arguments refused before anything runs
    (or --help): the interpreter and torch are loaded already, where a fresh process takes seconds to
    import torch.  Same environment as the tests' subprocesses (no torchrun variables); an unexpected
    error, which the command ends with ``os._exit(1)`` after its traceback, ends the call with code 1
    here.  Returns a ``subprocess.CompletedProcess`` (returncode, stdout, stderr).  The entry point's own
    lines run as processes in the tests that measure."""
    import subprocess

    from real import run as real_run

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)

    def _exit(code):
        raise SystemExit(code)

    monkeypatch.setattr(real_run.os, "_exit", _exit)

    def call(args: list[str]) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = real_run.main(list(args))
        except SystemExit as e:  # argparse's --help and usage errors, or the command's os._exit
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["real.run", *args], code, out.out, out.err)

    return call


def _python_m_child(module: str, args: list[str], env: dict, cwd: str, out_path: str, err_path: str) -> None:
    """In the forked process: the environment, folder and standard streams a subprocess would have, then
    the module run as ``python -m`` runs it (runpy, as __main__; its exit code is this process's)."""
    import io
    import runpy

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    n = env.get("OMP_NUM_THREADS", "")
    if "torch" in sys.modules and n.isdigit() and int(n) > 0:  # torch, imported in the server, read it then
        sys.modules["torch"].set_num_threads(int(n))
    for fd, path in ((1, out_path), (2, err_path)):  # appended to: the ranks of a job share them
        f = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
    sys.argv = [module, *args]
    if module.endswith(".py"):  # a script: ``python PATH ARGS``, its folder first on the path
        sys.path.insert(0, os.path.dirname(os.path.abspath(module)))
        runpy.run_path(module, run_name="__main__")
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)


def _forked(folder, module: str, args: list[str], envs: list[dict], cwd: str, timeout: float):
    """Run ``module`` once per environment of ``envs`` in processes forked from the fork server (see
    ``python_m``), sharing one stdout and one stderr; when one ends with an error the others are stopped.
    Returns (exit codes, stdout, stderr)."""
    import multiprocessing
    import subprocess
    import time
    from multiprocessing.connection import wait

    from real import selftest

    ctx = multiprocessing.get_context(selftest._start_method())
    out, err = str(folder / "stdout"), str(folder / "stderr")
    open(out, "w").close()
    open(err, "w").close()
    procs = [
        ctx.Process(target=_python_m_child, args=(module, list(args), e, str(cwd), out, err)) for e in envs
    ]
    for p in procs:
        p.start()
    end = time.monotonic() + timeout
    try:
        while any(p.exitcode is None for p in procs):
            left = end - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired([module, *args], timeout)
            wait([p.sentinel for p in procs if p.exitcode is None], timeout=left)
            if any(p.exitcode not in (None, 0) for p in procs):
                break  # a failed rank: the others are stopped, as torchrun stops them
    finally:
        for p in procs:
            if p.exitcode is None:
                p.terminate()
                p.join(10)
                if p.exitcode is None:
                    p.kill()
            p.join()
    with open(out) as fo, open(err) as fe:
        return [p.exitcode for p in procs], fo.read(), fe.read()


@pytest.fixture
def python_m(tmp_path_factory):
    """``python -m MODULE ARGS``, or ``python SCRIPT.py ARGS`` (``env``, ``cwd``, ``timeout`` as
    subprocess.run takes them; output as text) in a new process forked from multiprocessing's fork
    server, which has torch and the executor imported already (real.selftest's; a fresh interpreter
    spends seconds of CPU importing torch).  The process is the command's own: its environment, folder,
    streams, exit code, os._exit and threads; only the imports before the command's are shared.
    Returns a ``subprocess.CompletedProcess``.  The tests that run the entry point itself (torchrun,
    signals) start real subprocesses."""
    import subprocess

    def run(module: str, args: list[str], env: dict | None = None, cwd: str = ROOT, timeout: float = 240):
        env = dict(os.environ if env is None else env)
        (code,), out, err = _forked(tmp_path_factory.mktemp("python_m"), module, args, [env], cwd, timeout)
        return subprocess.CompletedProcess([module, *args], code, out, err)

    return run


@pytest.fixture
def torchrun_m(tmp_path_factory):
    """``torchrun --standalone --nproc-per-node N -m MODULE ARGS`` for tests whose subject is what the
    ranks compute, not the launcher: N processes forked as ``python_m`` forks one, each with the variables
    torchrun gives its ranks (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
    OMP_NUM_THREADS 1 unless set), rank 0 holding the job's store; one stdout and stderr for all, as
    torchrun passes its ranks' through; a rank that fails stops the others and the job exits 1, as
    torchrun's.  Tests of torchrun's own part (a rank that stops answering, the calibrate command, records
    that name torchrun) start torchrun itself."""
    import subprocess

    from real.selftest import free_port

    def run(n: int, module: str, args: list[str], env: dict | None = None, cwd: str = ROOT, timeout=240):
        base = dict(os.environ if env is None else env)
        base.setdefault("OMP_NUM_THREADS", "1")
        base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(n))
        base["LOCAL_WORLD_SIZE"] = str(n)
        envs = [{**base, "RANK": str(r), "LOCAL_RANK": str(r)} for r in range(n)]
        codes, out, err = _forked(tmp_path_factory.mktemp("torchrun_m"), module, args, envs, cwd, timeout)
        return subprocess.CompletedProcess(["torchrun", module, *args], int(any(codes)), out, err)

    return run


@pytest.fixture(scope="session")
def h100():
    return load_hardware("h100-sxm")


@pytest.fixture(scope="session")
def h200():
    return load_hardware("h200-sxm")


@pytest.fixture(scope="session")
def seed():
    return load_model("seed-dense")


@pytest.fixture(scope="session")
def tiny():
    """A small model for building whole schedules quickly."""
    return Model(name="tiny", layers=2, d_model=256, n_heads=8, n_kv_heads=8, head_dim=32, d_ff=1024)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """(out, result) of one small ``reproduce`` run, shared by the tests that read what it writes
    (test_reproduce.py, test_repository_paths.py): small maps (one P, one topology, 3 lengths) and one
    small question keep it fast; the seed tables are complete.  Tests must not write into ``out``."""
    from studies.reproduce import reproduce

    out = tmp_path_factory.mktemp("rep")
    q = tmp_path_factory.mktemp("q") / "small-question.toml"
    q.write_text(
        'title = "a small question"\nmodel = "llama3-8b"\ntopology = ["ib"]\ngpus = [16]\n'
        'phase = ["decode"]\nseq = "128Ki:1Mi"\npoints = 2\n'
    )
    r = reproduce(
        out,
        points=3,
        gpus=(16,),
        topologies=("nvlink-domain",),
        phases=("prefill",),
        questions=(q,),
        timeline=False,
        log=lambda *a: None,
    )
    return out, r
