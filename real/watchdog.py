"""A watchdog thread per rank: a rank that stops answering ends the job with a line that names it.

Every rank marks where it is (``step``: a configuration's setup, each pass, the check, ...) with the
bound that step gets, and a thread publishes that once a second to the job's store (the TCP store
torchrun or the first rank holds; its own connection, so that a main thread blocked in a store call
cannot block it).  The same thread reads every rank's mark and ends this process (exit 1, one line on
stderr) when

* a rank's heartbeat has not changed for ``stale_s`` (the process is frozen, or its host is gone), or
* the ranks furthest behind (the others wait for them in a collective) have spent longer than their
  bound in their step: they stopped answering.  When every rank is in the same step, the step must end
  within its bound after the last rank entered it (a collective that never completes).

If the store cannot be read, a rank falls back on its own clock: its step plus ``stale_s`` of grace.
torchrun stops the other ranks when one ends.  Nothing here needs a GPU.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import threading
import time

import torch.distributed as dist

PREFIX = "ringsim/watchdog"


class Watchdog:
    def __init__(
        self, rank: int, world: int, *, interval_s: float = 1.0, stale_s: float = 20.0, exit_fn=None
    ) -> None:
        self.rank, self.world, self.interval_s, self.stale_s = rank, world, interval_s, stale_s
        self._exit = exit_fn or _exit
        self._lock = threading.Lock()
        self._step, self._label, self._bound, self._why = 0, "start", float("inf"), ""
        self._entry = time.monotonic()
        self._beat = 0
        self._seen: dict[int, tuple[int, float]] = {}  # rank -> (beat, local time it last changed)
        self._store_ok_at = time.monotonic()
        self._stop = threading.Event()
        self._prefix = (
            f"{PREFIX}/{os.environ.get('TORCHELASTIC_RUN_ID', 'job')}/"
            f"{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
        )
        self._store = None
        try:
            self._store = dist.TCPStore(
                os.environ["MASTER_ADDR"],
                int(os.environ["MASTER_PORT"]),
                is_master=False,
                timeout=datetime.timedelta(seconds=max(2.0, 3 * interval_s)),
                wait_for_workers=False,
            )
        except Exception:  # noqa: BLE001 - without a store each rank watches its own clock
            self._store = None
        self._publish()
        self._thread = threading.Thread(target=self._loop, name="ringsim-watchdog", daemon=True)
        self._thread.start()

    def step(self, label: str, bound_s: float, why: str = "") -> None:
        """This rank now does ``label``; it must be done within ``bound_s`` (``why``: how it was set)."""
        with self._lock:
            self._step += 1
            self._label, self._bound, self._why, self._entry = label, float(bound_s), why, time.monotonic()

    def tick(self, label: str) -> None:
        """Progress within the step (same bound, same start): a rank that has not got this far is behind."""
        with self._lock:
            self._step += 1
            self._label = label

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    # -- the thread ------------------------------------------------------------------------------
    def _state(self) -> dict:
        with self._lock:
            self._beat += 1
            return {
                "beat": self._beat,
                "step": self._step,
                "label": self._label,
                "bound": self._bound,
                "why": self._why,
                "elapsed": time.monotonic() - self._entry,
            }

    def _publish(self) -> dict:
        st = self._state()
        if self._store is not None:
            try:
                self._store.set(
                    f"{self._prefix}{self.rank}",
                    json.dumps({**st, "bound": st["bound"] if st["bound"] < 1e300 else None}),
                )
            except Exception:  # noqa: BLE001 - judged on the local clock (judge)
                return st
            self._store_ok_at = time.monotonic()
        return st

    def _read(self) -> dict[int, dict] | None:
        if self._store is None:
            return None
        keys = [f"{self._prefix}{q}" for q in range(self.world)]
        try:
            out = {}
            for q, k in enumerate(keys):
                if self._store.check([k]):
                    out[q] = json.loads(self._store.get(k))
            return out
        except Exception:  # noqa: BLE001
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            mine = self._publish()
            try:
                verdict = self.judge(mine, self._read(), time.monotonic())
            except Exception:  # noqa: BLE001 - a watchdog must not die of its own bug
                verdict = None
            if verdict and not self._stop.is_set():
                self._exit(
                    f"real.run: rank {self.rank}: error: {verdict}; every rank stops "
                    f"(records already written are kept)"
                )
                return

    def judge(self, mine: dict, states: dict[int, dict] | None, now: float) -> str | None:
        """The line that ends the job, or None while every rank answers."""
        if states is None:
            if now - self._store_ok_at > self.stale_s and mine["elapsed"] > mine["bound"] + self.stale_s:
                return (
                    f"'{mine['label']}' did not finish within {mine['bound']:.0f} s ({mine['why']}) and the "
                    f"other ranks' heartbeats cannot be read: a rank stopped answering"
                )
            return None
        states = {**states, self.rank: mine}
        missing = [q for q in range(self.world) if q not in states]
        for q in missing:  # never heard of
            since = self._seen.setdefault(q, (None, now))[1]
            if now - since > self.stale_s:
                return f"rank {q} stopped answering: no heartbeat from it in {now - since:.0f} s"
        if missing:
            return None
        for q, st in states.items():  # a heartbeat that does not change: the process is frozen or gone
            beat, since = self._seen.get(q, (None, now))
            if st["beat"] != beat:
                self._seen[q] = (st["beat"], now)
            elif q != self.rank and now - since > self.stale_s:
                return (
                    f"rank {q} stopped answering: no heartbeat for {now - since:.0f} s "
                    f"(last seen in '{st['label']}')"
                )
        low = min(st["step"] for st in states.values())
        behind = sorted(q for q, st in states.items() if st["step"] == low)
        elapsed = min(states[q]["elapsed"] for q in behind)
        bound = min((states[q]["bound"] if states[q]["bound"] is not None else float("inf")) for q in behind)
        if elapsed <= bound:
            return None
        st = states[behind[0]]
        how = f"the bound there is {bound:.1f} s" + (f" ({st['why']})" if st.get("why") else "")
        if len(behind) == len(states) and len(states) > 1:
            return (
                f"no rank finished '{st['label']}' within its bound: "
                f"every rank has waited {elapsed:.1f} s in "
                f"it; {how}"
            )
        who = f"rank {behind[0]}" if len(behind) == 1 else "ranks " + ", ".join(map(str, behind))
        return f"{who} stopped answering: in '{st['label']}' for {elapsed:.1f} s; {how}"


def _exit(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)
