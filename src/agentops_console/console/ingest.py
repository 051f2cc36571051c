"""One apply queue for every agent's feed, worked on under a time budget per slice.

At 20,000 sessions the console starts behind: the agents queue tens of thousands of events
while it loads their snapshots. Parsed and applied back to back on the event loop, that
backlog held every key press for up to a second; yielding every few events per feed made
it worse (each step of a key's handling then waited for a slice of every agent). So all
ingestion shares one budget instead:

- every `period_s` a slice opens: queued events are applied (`drain`) and the feeds may
  read and parse more, together for at most `budget_s`; the rest of the period is the
  screen's and the keyboard's, whatever the backlog;
- a feed that finds the slice spent, or the queue at `high_water`, waits in `put` for the
  next slice: the backlog stays in the sockets, not in memory;
- within a drain, an event that only carries a session's new summary is skipped when a
  later queued event carries a newer one for the same session (the last one has the
  same effect: spend is a difference, flags and status are all in the summary);
- a snapshot goes through the queue behind its agent's queued events (so they never
  overwrite it), or straight into the store when none are queued;
- the sessions a slice applied are re-placed in the store's orders at its end (outside
  the budget), so the refresh tick has next to nothing left to re-place.

Events keep their order per agent (one feed puts them in order; the drain is FIFO).
`behind` and `backlog` are what the status bar shows as "catching up (N queued)": the
backlog mostly waits in the streams, where the console cannot count it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..protocol.models import AgentInfo, Approval, Event, SessionSummary
from .store import EVENTS_WITH_MORE, FleetStore

#: Applying and parsing share at most this much of each period, so a key press waits at
#: most about one budget for ingestion, whatever the backlog.
BUDGET_S = 0.008
PERIOD_S = 0.008
#: Events queued but not applied, at most: the rest waits in the agents' streams.
HIGH_WATER = 2000
#: The console is behind when most of the last slices were used up: a feed was still
#: reading as one ended (its put came less than `_FULL_MARGIN_S` after the end) or the
#: queue was left non-empty. At 2,000 events/s a slice is about half used.
_RECENT_SLICES = 10
_BEHIND_FROM = 7
_FULL_MARGIN_S = 0.002
#: Events taken from the queue at once: repeats of a session inside one batch coalesce.
_BATCH = 256


@dataclass(frozen=True, slots=True)
class _Snapshot:
    info: AgentInfo
    sessions: list[SessionSummary]
    approvals: list[Approval]


_Item = tuple[str, Event | _Snapshot]


class Ingest:
    """Owned by the app; `run()` is its slice timer, `put`/`snapshot` are the feeds' way in."""

    def __init__(
        self,
        store: FleetStore,
        *,
        budget_s: float = BUDGET_S,
        period_s: float = PERIOD_S,
        high_water: int = HIGH_WATER,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
        self.budget_s = budget_s
        self.period_s = period_s
        self.high_water = high_water
        self.clock = clock
        self._queue: deque[_Item] = deque()
        self._queued_by_source: dict[str, int] = {}
        self._slice_end = 0.0
        self._turn = asyncio.Event()
        self._slice_full = False
        self._recent: deque[bool] = deque(maxlen=_RECENT_SLICES)
        #: the agent-side time of the newest event applied: how far behind the rows are
        #: (the bench's steady state: this is recent, and stays so)
        self.applied_at: datetime | None = None

    @property
    def backlog(self) -> int:
        """Events received and not applied yet."""
        return len(self._queue)

    @property
    def behind(self) -> bool:
        """Ingestion has used every slice for a while: the rows are behind the agents."""
        return sum(self._recent) >= _BEHIND_FROM

    # -- the feeds' side ---------------------------------------------------------------
    async def put(self, source: str, event: Event) -> None:
        """Queue one event; wait for the next slice when this one is spent or the queue full."""
        self._queue.append((source, event))
        self._queued_by_source[source] = self._queued_by_source.get(source, 0) + 1
        now = self.clock()
        if now >= self._slice_end or len(self._queue) >= self.high_water:
            if now - self._slice_end < _FULL_MARGIN_S or len(self._queue) >= self.high_water:
                self._slice_full = True  # cut off while reading, not woken after the slice
            await self._turn.wait()

    def snapshot(
        self,
        source: str,
        info: AgentInfo,
        sessions: list[SessionSummary],
        approvals: list[Approval],
    ) -> None:
        """Into the store now, or behind the agent's queued events (they are older)."""
        if self._queued_by_source.get(source, 0):
            self._queue.append((source, _Snapshot(info, sessions, approvals)))
            self._queued_by_source[source] += 1
        else:
            self.store.apply_snapshot(source, info, sessions, approvals)

    # -- the slices --------------------------------------------------------------------
    async def run(self) -> None:
        """Open a slice every period until cancelled."""
        while True:
            self.turn()
            await asyncio.sleep(self.period_s)

    def turn(self) -> None:
        """One slice: apply what is queued (at most half the budget while feeds wait for
        room, so both sides progress), then let the feeds read until the budget is spent."""
        start = self.clock()
        share = self.budget_s / 2 if len(self._queue) >= self.high_water else self.budget_s
        if self.drain(start + share):
            # re-placed in the sessions' orders now, a slice's worth (~20 sessions) at a
            # time: left to the 0.25 s refresh tick, 500 of them held a key ~20-40 ms
            self.store.settle_orders()
        self._recent.append(self._slice_full or bool(self._queue))
        self._slice_full = False
        self._slice_end = start + self.budget_s
        turn, self._turn = self._turn, asyncio.Event()
        turn.set()

    def drain(self, deadline: float) -> int:
        """Apply queued items in order until `deadline` (at least one batch); returns how
        many events were taken."""
        taken = 0
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(_BATCH, len(queue)))]
            self._apply(batch)
            taken += len(batch)
            if self.clock() >= deadline:
                break
        return taken

    def _apply(self, batch: list[_Item]) -> None:
        store = self.store
        last = _last_summary_index(batch)
        counts = self._queued_by_source
        for n, (source, item) in enumerate(batch):
            counts[source] -= 1
            if isinstance(item, _Snapshot):
                store.apply_snapshot(source, item.info, item.sessions, item.approvals)
            elif n in last or not _summary_only(item):
                store.apply_event(source, item)
            else:
                store.skip_event(source, item)  # a later event in the batch has it newer
            if not isinstance(item, _Snapshot):
                self.applied_at = item.at
        for source in {source for source, _ in batch}:
            if not counts[source]:
                del counts[source]


def _summary_only(event: Event) -> bool:
    """The event's whole effect on the store is its session summary (most events)."""
    return event.session is not None and event.type not in EVENTS_WITH_MORE


def _last_summary_index(batch: list[_Item]) -> set[int]:
    """Positions of the last summary-only event per session within the batch; a snapshot
    of the agent ends the run (events before it must not be merged with ones after)."""
    last: dict[tuple[str, str], int] = {}
    keep: set[int] = set()
    for n, (source, item) in enumerate(batch):
        if isinstance(item, _Snapshot):
            keep.update(i for key, i in last.items() if key[0] == source)
            for key in [key for key in last if key[0] == source]:
                del last[key]
        elif _summary_only(item):
            assert item.session is not None
            last[(source, item.session.id)] = n
    keep.update(last.values())
    return keep
