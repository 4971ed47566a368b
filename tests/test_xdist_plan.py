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


class _Worker:
    """A worker as the scheduler sees it: what it was sent; a dead one's pipe is broken."""

    def __init__(self, name: str) -> None:
        self.name, self.dead, self.sent, self.shutting_down = name, False, [], False
        self.gateway = type("gateway", (), {"id": name})()

    def send_runtest_some(self, indices) -> None:
        if self.dead:
            raise OSError("cannot send (already closed?)")  # execnet's error on a broken pipe
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True

    def __repr__(self) -> str:
        return self.name


class _Config:
    option = type("option", (), {"loadscopereorder": False})()

    def getvalue(self, name):
        return ["2*popen"] if name == "tx" else None

    def getoption(self, name):
        return "loadfile" if name == "dist" else None


def test_work_sent_to_a_worker_that_died_unseen_is_put_back_with_the_rest():
    """A worker dies in its second test; the scheduler then hears that it finished its first and sends it
    more (its end not yet handled): the send fails (a broken pipe) and the run goes on; once the end is
    handled, every test the dead worker had been given and not finished, but the one it died in, goes to
    the other worker, each once.  (pytest-xdist 3.8: an INTERNALERROR, seen in this suite's own run.)"""
    from xdist_plan import XdistPlan

    sched = XdistPlan({"t_whole.py"}, {}, {"t_whole.py": 5}, 0.1).pytest_xdist_make_scheduler(_Config(), None)
    ids = ["t_whole.py::w1", "t_whole.py::w2", "t_whole.py::w3"] + [f"t_a.py::a{i}" for i in range(8)]
    a, b = _Worker("a"), _Worker("b")
    for w in (a, b):
        sched.add_node(w)
        sched.add_node_collection(w, list(ids))
    sched.schedule()
    assert a.sent == [0, 1, 2] and len(b.sent) == 2  # the heaviest unit first
    a.dead = True  # in w2
    sched.mark_test_complete(a, 0)  # w1's end, heard after: a is sent more, and the send fails
    assert a.sent == [0, 1, 2]
    assert sched.remove_node(a) == "t_whole.py::w2"  # the test it died in (xdist reports it failed)
    done = []
    while True:  # b runs what it is given, in order
        todo = [i for i in b.sent if i not in done]
        if not todo:
            break
        done.append(todo[0])
        sched.mark_test_complete(b, todo[0])
    assert b.shutting_down
    assert sorted(ids[i] for i in b.sent) == sorted(set(ids) - {"t_whole.py::w1", "t_whole.py::w2"})
    assert len(b.sent) == len(set(b.sent))  # each once


def test_a_replacement_still_collecting_at_the_first_schedule_waits_for_its_collection():
    """A worker dies after its collection, before the other's (the run's collection is then complete with
    the other's); its replacement, still collecting, is not given work by the first schedule (pytest-xdist
    3.8: KeyError, an INTERNALERROR), and is given work once it has collected; every test is sent once."""
    from xdist_plan import XdistPlan

    sched = XdistPlan(set(), {}, {}, 0.1).pytest_xdist_make_scheduler(_Config(), None)
    ids = [f"t_a.py::a{i}" for i in range(8)]
    a, b = _Worker("a"), _Worker("b")
    sched.add_node(a)
    sched.add_node(b)
    sched.add_node_collection(a, list(ids))
    assert sched.remove_node(a) is None  # died before it was given anything
    c = _Worker("c")  # its replacement
    sched.add_node(c)
    sched.add_node_collection(b, list(ids))
    sched.schedule()
    assert len(b.sent) >= 2 and c.sent == []
    sched.add_node_collection(c, list(ids))
    sched.schedule()  # as pytest-xdist calls it when a later worker has collected
    assert len(c.sent) >= 2
    done = {w: [] for w in (b, c)}
    while any(i not in done[w] for w in (b, c) for i in w.sent):
        for w in (b, c):
            todo = [i for i in w.sent if i not in done[w]]
            if todo:
                done[w].append(todo[0])
                sched.mark_test_complete(w, todo[0])
    assert b.shutting_down and c.shutting_down
    assert sorted(b.sent + c.sent) == list(range(len(ids)))  # each test sent once, to one worker
