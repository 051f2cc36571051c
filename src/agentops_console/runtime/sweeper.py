"""The idle sweep on a timer: OTel sessions have no explicit end when their root span never
comes, so a quiet one must end on time, not only when some later span arrives.

One daemon thread per running runtime, started and stopped with its endpoint; `stop()`
joins it, so nothing is left behind. It sleeps on an Event, so stopping is immediate.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

#: Longest pause between sweeps; shorter when the idle time itself is short.
MAX_EVERY_S = 5.0


def sweep_every(idle_s: float) -> float:
    """A quarter of the idle time, at most 5 s: a session ends within 1.25 x idle_s."""
    return min(MAX_EVERY_S, max(0.01, idle_s / 4))


class Sweeper:
    def __init__(self, sweep: Callable[[], object], every_s: float) -> None:
        self._sweep = sweep
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="agentops-idle-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            with contextlib.suppress(Exception):  # a failed sweep is retried next time
                self._sweep()
