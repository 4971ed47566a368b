"""pytest-xdist's loadfile scheduler with this suite's units and order (tests/conftest.py says which), and
safe when a worker dies.  It overrides methods of pytest-xdist's own scheduler (``LoadScopeScheduling``),
checked against 3.8: pyproject.toml pins the test extra to 3.8.x.

Units: a file's tests go to one worker together where the file is in ``whole`` (or ``together`` maps it
to another file that is); every other test is a unit of its own.  Order: heaviest first, from
``seconds`` (a scope's, or a test's summed over its cases; ``light_s`` for one not listed).

A dead worker ("node down: Not properly terminated") is reported as the failure of the test it was
running, and the run goes on.  pytest-xdist 3.8's ``LoadScopeScheduling`` hangs there instead (issues
pytest-dev/pytest-xdist#1323, #1327, #1378): ``remove_node`` puts back every unit the dead worker was
ever given, the completed ones too, each of which a later worker receives as an empty list of tests and
never reports on, so it is never given more; and a replacement worker given one unit of one test waits
for a second item (a worker runs a test once it knows the next one, or that there is none) that is
never sent.  Here the dead worker's completed units and the test it died in (already reported failed,
as pytest-xdist's ``load`` scheduler does: a test that kills its worker would kill the next one too) are
not put back, an empty unit is never sent, and a worker is given units until it holds two tests or the
queue is empty, when it is told so at once; a replacement worker is given work once it has collected
(pytest-dev/pytest-xdist#1189: not before); work sent to a worker that has died before its end is
handled (a broken pipe: pytest-xdist ends the run with an INTERNALERROR) stays assigned to it, and is put
back with the rest when its end is handled.
"""

from __future__ import annotations


class XdistPlan:
    def __init__(self, whole: set, together: dict, seconds: dict, light_s: float) -> None:
        self.whole, self.together, self.seconds, self.light_s = whole, together, seconds, light_s

    def cost(self, scope: str, nodeids: dict) -> float:
        if scope in self.seconds:
            return self.seconds[scope]
        return sum(self.seconds.get(n.split("[", 1)[0], self.light_s) for n in nodeids)

    def pytest_xdist_make_scheduler(self, config, log):
        if config.getoption("dist") != "loadfile":
            return None  # another --dist asked for on the command line: xdist's own
        from xdist.scheduler import LoadFileScheduling

        plan = self

        class Plan(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                f = nodeid.split("::", 1)[0]
                f = plan.together.get(f, f)
                return f if f in plan.whole else nodeid

            def _assign_work_unit(self, node) -> bool:
                if node not in self.registered_collections:  # a replacement still collecting (the first
                    return False  # schedule gives every worker a unit): _reschedule gives it work later
                if not getattr(self, "_ordered", False):  # the queue is complete at the first assignment
                    units = sorted(self.workqueue.items(), key=lambda u: -plan.cost(*u))
                    self.workqueue.clear()
                    self.workqueue.update(units)
                    self._ordered = True
                while self.workqueue:
                    scope, unit = next(iter(self.workqueue.items()))
                    if any(not done for done in unit.values()):
                        break
                    del self.workqueue[scope]  # nothing left to run in it
                else:
                    return True
                try:
                    super()._assign_work_unit(node)
                except OSError:  # the worker died and its end is not yet handled: the unit stays assigned
                    return False  # to it, and remove_node puts it back
                return True

            def _reschedule(self, node) -> None:
                if node.shutting_down or node not in self.registered_collections:
                    return  # a replacement worker still collecting is scheduled once it has
                if self.workqueue and self._pending_of(self.assigned_work[node]) <= 2:
                    if not self._assign_work_unit(node):
                        return
                    while self.workqueue and self._pending_of(self.assigned_work[node]) < 2:
                        if not self._assign_work_unit(node):
                            return
                if not self.workqueue:
                    node.shutdown()

            def remove_node(self, node):
                workload = self.assigned_work.pop(node)
                if not self._pending_of(workload):
                    return None
                crashitem = next(n for unit in workload.values() for n, done in unit.items() if not done)
                for unit in workload.values():
                    if crashitem in unit:
                        unit[crashitem] = True
                for scope, unit in workload.items():
                    if any(not done for done in unit.values()):
                        self.workqueue[scope] = unit  # the rest of the unit it died in, and those it had
                        # not begun
                for other in self.assigned_work:
                    self._reschedule(other)
                return crashitem

        return Plan(config, log)
