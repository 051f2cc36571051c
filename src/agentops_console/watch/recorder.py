"""Recording finished sessions: fetch each one's detail, write them in batches, and move the
agent's stream position forward only in the transaction that stored what it covers.

Per agent the recorder keeps the session ends it was told about, in event order. A fetch
runs for each (a few at a time per agent, retried while the agent is away); a flush writes
every fetch that finished at the head of each agent's queue, and the position of the last
event whose every session end is now stored, in one transaction. So after a `kill -9` the
stored position never claims a session that is not stored: the watcher resumes there and
loses nothing, and the upsert by (agent, session_id) duplicates nothing.

A session the agent no longer has when it is fetched (evicted, or the agent restarted) is a
gap row for its event, never silent. A write that fails (a full disk) is retried with
backoff; the stream goes on meanwhile, and nothing half-written is ever stored (one
transaction per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..protocol.client import AsyncAgentClient, EndpointError
from ..protocol.models import AgentInfo, Approval, SessionSummary
from ..protocol.records import FINAL_STATUSES, SessionRecord, build_record
from ..protocol.text import error_line
from ..records.store import RecordsStore, open_store

log = logging.getLogger("agentops.watch")
T = TypeVar("T")

#: Sessions per write transaction at most.
BATCH = 500
#: Detail fetches in flight per agent.
FETCHES_PER_AGENT = 8
_APPROVALS_KEPT = 5_000
#: Longest write error kept for `watch status`.
_ERROR_CHARS = 300


class StoreThread:
    """The records store lives on one thread of its own (SQLite connections are per thread);
    the event loop hands it work and awaits the answer."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentops-records")
        self.store: RecordsStore | None = None

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self, path: Path) -> RecordsStore:
        self.store = await self.call(lambda: open_store(path, writer=True, create=True))
        return self.store

    async def close(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await self.call(store.close)
        self._pool.shutdown(wait=True)


@dataclass(slots=True)
class _End:
    """A session end waiting to be stored; `seq` is the event that reported it."""

    seq: int
    session_id: str
    event_at: datetime | None
    task: asyncio.Task[SessionRecord | None]


@dataclass(slots=True)
class AgentTrack:
    """One agent's recording state (also what the health report shows)."""

    key: str
    client: AsyncAgentClient
    name: str | None = None
    info: AgentInfo | None = None
    ends: deque[_End] = field(default_factory=deque)
    queued: set[str] = field(default_factory=set)
    approvals: OrderedDict[str, list[Approval]] = field(default_factory=OrderedDict)
    #: The last event handed to the recorder, and its time.
    last_seq: int = 0
    last_event_at: datetime | None = None
    #: What the store holds for this agent (position and counts written).
    stored_seq: int | None = None
    recorded: int = 0
    lost: int = 0
    gaps: int = 0
    evicted_known: int | None = None
    fetches: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(FETCHES_PER_AGENT))

    def remember_approval(self, approval: Approval) -> None:
        if approval.status == "pending":
            return
        held = self.approvals.setdefault(approval.session_id, [])
        held[:] = [a for a in held if a.id != approval.id] + [approval]
        self.approvals.move_to_end(approval.session_id)
        while len(self.approvals) > _APPROVALS_KEPT:
            self.approvals.popitem(last=False)

    def lag_s(self) -> float:
        """How far recording is behind: the age of the oldest session end not yet stored."""
        if not self.ends or self.ends[0].event_at is None:
            return 0.0
        return max(0.0, time.time() - self.ends[0].event_at.timestamp())


class Recorder:
    def __init__(self, store: StoreThread, *, batch: int = BATCH, flush_s: float = 0.2) -> None:
        self.store = store
        self.batch = batch
        self.flush_s = flush_s
        self.tracks: list[AgentTrack] = []
        self.write_errors = 0
        self.last_write_error: str | None = None
        self.batches = 0
        self._wake = asyncio.Event()

    def track(self, key: str, client: AsyncAgentClient) -> AgentTrack:
        track = AgentTrack(key, client)
        self.tracks.append(track)
        return track

    # -- what the feed tells -----------------------------------------------------------
    def session_ended(
        self, track: AgentTrack, seq: int, session_id: str, event_at: datetime | None
    ) -> None:
        if session_id in track.queued:
            return
        track.queued.add(session_id)
        task = asyncio.create_task(self._fetch(track, session_id), name=f"fetch-{session_id}")
        track.ends.append(_End(seq, session_id, event_at, task))
        if sum(len(t.ends) for t in self.tracks) >= self.batch:
            self._wake.set()

    def event_seen(self, track: AgentTrack, seq: int, at: datetime) -> None:
        track.last_seq = seq
        track.last_event_at = at

    async def missing(self, track: AgentTrack, sessions: list[SessionSummary]) -> list[str]:
        """Finished sessions of this snapshot the store does not hold in their final copy."""
        assert track.name is not None and self.store.store is not None
        store = self.store.store
        keys = [(track.name, s.id) for s in sessions if s.status in FINAL_STATUSES]
        have = await self.store.call(store.final_keys, keys)
        return [sid for (_, sid) in keys if (track.name, sid) not in have]

    async def _fetch(self, track: AgentTrack, session_id: str) -> SessionRecord | None:
        """The session's record, or None when the agent no longer has it (lost: a gap)."""
        delay = 0.5
        while True:
            async with track.fetches:
                try:
                    detail = await track.client.session(session_id)
                except EndpointError as exc:
                    if exc.status == 404:
                        return None
                    error = str(exc)
                else:
                    info = track.info
                    assert info is not None
                    return build_record(detail, info, track.approvals.get(session_id, ()))
            log.debug("fetch %s on %s failed (%s); retrying", session_id, track.key, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    # -- writing -------------------------------------------------------------------------
    async def run(self) -> None:
        """Flush for ever (cancel to stop; call `flush()` once more to write the rest)."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            self._wake.clear()
            ok = await self.flush()
            if ok:
                failures = 0
                continue
            failures += 1
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def flush(self) -> bool:
        """Write every finished fetch at the head of each queue, with the positions they
        complete; False when the write failed (nothing was stored, all is kept to retry)."""
        records: list[SessionRecord] = []
        lost: list[tuple[str, int]] = []
        positions: dict[str, tuple[int, str | None]] = {}
        taken: list[tuple[AgentTrack, int, int, int]] = []
        for track in self.tracks:
            if track.name is None:
                continue
            count = 0
            for end in track.ends:
                if not end.task.done() or len(records) >= self.batch:
                    break
                record = end.task.result()
                if record is None:
                    lost.append((track.name, end.seq))
                else:
                    records.append(record)
                count += 1
            seq = track.last_seq if count == len(track.ends) else track.ends[count].seq - 1
            if track.stored_seq is not None and seq <= track.stored_seq and not count:
                continue
            at = track.last_event_at.isoformat() if track.last_event_at else None
            positions[track.name] = (seq, at)
            n_lost = sum(1 for name, _ in lost if name == track.name)
            taken.append((track, count, seq, n_lost))
        if not positions:
            return True
        assert self.store.store is not None
        try:
            await self.store.call(_write, self.store.store, records, positions, lost)
        except Exception as exc:  # a full disk, an I/O error: keep everything, retry
            self.write_errors += 1
            self.last_write_error = error_line(exc, _ERROR_CHARS)
            log.error("records write failed (will retry): %s", self.last_write_error)
            return False
        self.last_write_error = None
        self.batches += 1
        for track, count, seq, n_lost in taken:
            for _ in range(count):
                end = track.ends.popleft()
                track.queued.discard(end.session_id)
            track.recorded += count - n_lost
            track.lost += n_lost
            track.gaps += n_lost
            track.stored_seq = seq
        if any(len(t.ends) and t.ends[0].task.done() for t in self.tracks):
            self._wake.set()
        return True

    async def record_gap(self, track: AgentTrack, first: int, last: int, filled: bool) -> None:
        """A stretch of the stream that was lost (`filled`: a snapshot made up for it)."""
        assert track.name is not None and self.store.store is not None
        store = self.store.store
        name = track.name

        def write() -> None:
            gap_id = store.record_gap(name, first, last)
            if filled:
                store.fill_gap(gap_id)

        try:
            await self.store.call(write)
        except Exception as exc:
            self.write_errors += 1
            self.last_write_error = error_line(exc, _ERROR_CHARS)
            log.error("could not record a stream gap on %s: %s", name, self.last_write_error)
            return
        if not filled:
            track.gaps += 1

    def cancel(self) -> None:
        for track in self.tracks:
            for end in track.ends:
                end.task.cancel()


def _write(
    store: RecordsStore,
    records: list[SessionRecord],
    positions: dict[str, tuple[int, str | None]],
    lost: list[tuple[str, int]],
) -> None:
    for agent, seq in lost:
        store.record_gap(agent, seq, seq)
    store.write_batch(records, positions)
