"""Full garbage collections on the console's schedule: while the operator is idle.

The console holds every session of the fleet: at 20,000 sessions a few hundred thousand
long-lived objects, replaced at the event rate (each event brings a new summary). CPython
starts a full collection whenever a quarter of that many new objects have survived, every
few seconds at 2,000 events/s, and a full collection walks every object: 100-360 ms
measured, during which no key is handled. Those pauses were most of the key → screen p95.

Reference counting frees the replaced summaries anyway (they hold no cycles); the cyclic
collector only has to find cycles, and most cycles die young. So the young generations
keep their automatic collections and only the full one is paced: it runs from the app's
refresh tick once no key or mouse event came for `idle_s`, at most every `min_every_s`,
and at the latest after `max_every_s` however busy the operator is (memory stays bounded).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

#: A full-collection threshold CPython never reaches: the automatic ones stop.
NEVER = 2**31 - 1


class GcPacer:
    def __init__(
        self,
        *,
        idle_s: float = 2.0,
        min_every_s: float = 30.0,
        max_every_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        collect: Callable[[int], int] = gc.collect,
    ) -> None:
        self.idle_s = idle_s
        self.min_every_s = min_every_s
        self.max_every_s = max_every_s
        self.clock = clock
        self.collect = collect
        self.collections = 0
        self._saved: tuple[int, int, int] | None = None
        self._last_input = self._last_full = clock()

    @property
    def active(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        if self._saved is None:
            young, middle, _ = self._saved = gc.get_threshold()
            gc.set_threshold(young, middle, NEVER)
            self._last_full = self.clock()

    def stop(self) -> None:
        """Put the collector back as it was (the app is unmounting)."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def input_seen(self) -> None:
        self._last_input = self.clock()

    def tick(self) -> bool:
        """Called on the refresh timer: True when it ran a full collection."""
        if self._saved is None:
            return False
        now = self.clock()
        since = now - self._last_full
        idle = now - self._last_input >= self.idle_s
        if since < self.min_every_s or (not idle and since < self.max_every_s):
            return False
        self.collect(2)
        self._last_full = self.clock()
        self.collections += 1
        return True
