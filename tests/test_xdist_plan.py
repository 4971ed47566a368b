"""The suite's own pytest-xdist scheduler (tests/xdist_plan.py) when a worker dies: the test it died in
is reported failed, every other test runs once, and the run ends (pytest-xdist 3.8's loadfile scheduler
hangs there, waiting for workers that wait for tests)."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _suite(folder) -> None:
    (folder / "conftest.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {HERE!r})
        from xdist_plan import XdistPlan

        def pytest_configure(config):
            if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
                config.pluginmanager.register(
                    XdistPlan({{"test_whole.py"}}, {{}}, {{"test_whole.py": 5}}, 0.1), "plan"
                )
        """)
    )
    (folder / "pytest.ini").write_text("[pytest]\n")  # this folder is the run's root, not the suite's
    (folder / "test_a.py").write_text("".join(f"def test_a{i}():\n    pass\n" for i in range(6)))
    # a file run as one unit (first, the heaviest), its worker killed in its second test
    (folder / "test_whole.py").write_text(
        "import os\n\ndef test_w1():\n    pass\n\n"
        "def test_w2():\n    os._exit(1)\n\n"
        "def test_w3():\n    pass\n"
    )
    # units of one test each, queued last: the worker that dies here has completed earlier units
    (folder / "test_z.py").write_text(
        "import os\n\ndef test_crash():\n    os._exit(3)\n\ndef test_after():\n    pass\n"
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dead_worker_fails_its_test_and_the_run_goes_on(tmp_path, workers):
    _suite(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTEST_XDIST"))}
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(workers), "--dist", "loadfile"]
        + ["-q", "-rA", "-o", "addopts="],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # pytest-xdist's own scheduler never ends this run
    )
    out = p.stdout
    assert p.returncode == 1, out + p.stderr
    assert "2 failed, 9 passed" in out, out
    failed = sorted(re.findall(r"^FAILED (\S+)", out, re.M))
    assert failed == ["test_whole.py::test_w2", "test_z.py::test_crash"], out
    passed = re.findall(r"^PASSED (\S+)", out, re.M)
    assert len(passed) == len(set(passed)) == 9, out  # each once: nothing put back ran twice
    assert {"test_whole.py::test_w1", "test_whole.py::test_w3", "test_z.py::test_after"} <= set(passed)
    assert re.search(r"crashed while running 'test_z.py::test_crash'", out), out
