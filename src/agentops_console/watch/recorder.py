"""Recording finished sessions: fetch their details in batches, write them in batches, and
move the agent's stream position forward only in the transaction that stored what it covers.

Per agent the recorder keeps the session ends it was told about, in event order. The ends
not yet asked for are fetched together, up to a few hundred per request
(`GET /v1/session-details`, two requests in flight per agent, retried while the agent is
away); an agent without that route (an older runtime answers 404) is asked one session at a
time instead (`GET /v1/sessions/{id}`, a few at a time). A flush writes every fetched end at
the head of each agent's queue, and the position of the last event whose every session end
is now stored, in one transaction. So after a `kill -9` the
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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..protocol.client import AsyncAgentClient, EndpointError, raw_details
from ..protocol.models import SESSION_DETAILS_MAX, AgentInfo, Approval, SessionSummary
from ..protocol.records import FINAL_STATUSES, SessionRecord, record_from_wire
from ..protocol.text import error_line
from ..records.store import RecordsStore, SessionRows, open_store
from ..records.wire_rows import answer_rows, fast_rows

log = logging.getLogger("agentops.watch")
T = TypeVar("T")
#: A fetched session: rows ready to write, a record, or None (a gap row).
Built = SessionRows | SessionRecord | None

#: Sessions per write transaction at most.
BATCH = 500
#: Batch reads in flight per agent, and the most ids (and bytes of ids) one may ask for:
#: two overlap the agent serialising one batch with the watcher building the other's records.
BATCHES_PER_AGENT = 2
FETCH_BATCH = SESSION_DETAILS_MAX
_FETCH_ID_CHARS = 24_000
#: A batch read waits this long for more ends unless a full batch is waiting: live, ends
#: come one by one, and a read each cost the watcher ~1 ms of CPU (recording waits for the
#: flush every `flush_s` anyway, so this adds no lag that shows).
FETCH_LINGER_S = 0.05
#: Detail fetches in flight per agent, one session each (agents without the batch route).
FETCHES_PER_AGENT = 8
#: Answers of an endpoint that does not have the batch route (an older runtime).
_NO_BATCH_ROUTE = frozenset({400, 404, 405, 501})
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
    """A session end waiting to be stored; `seq` is the event that reported it. `fetched`
    resolves to its record, or None when the agent no longer has it (a gap row)."""

    seq: int
    session_id: str
    event_at: datetime | None
    fetched: asyncio.Future[Built]
    #: Taken into a fetch: what it gets may predate a later end of the same session.
    asked: bool = False


@dataclass(slots=True)
class AgentTrack:
    """One agent's recording state (also what the health report shows)."""

    key: str
    client: AsyncAgentClient
    name: str | None = None
    info: AgentInfo | None = None
    ends: deque[_End] = field(default_factory=deque)
    #: The latest queued end of each session id.
    queued: dict[str, _End] = field(default_factory=dict)
    #: Ends not asked for yet, and the batch reads in flight.
    waiting: deque[_End] = field(default_factory=deque)
    batches: int = 0
    #: A batch read is waiting FETCH_LINGER_S for more ends before it takes them.
    lingering: bool = False
    #: Whether the agent serves GET /v1/session-details (None: not asked yet this snapshot).
    batch_route: bool | None = None
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
        self._fetches: set[asyncio.Task[None]] = set()

    def track(self, key: str, client: AsyncAgentClient) -> AgentTrack:
        track = AgentTrack(key, client)
        self.tracks.append(track)
        return track

    # -- what the feed tells -----------------------------------------------------------
    def session_ended(
        self, track: AgentTrack, seq: int, session_id: str, event_at: datetime | None
    ) -> None:
        """Queue a session end to record. A repeat is skipped only while the queued end is
        not yet asked for (that fetch will see this end too); once it is, a new end is
        queued: the fetch may have read the session before this end (a killed session's
        `session_killed`, a run of a re-opened conversation), and the store keeps the more
        complete copy."""
        held = track.queued.get(session_id)
        if held is not None and not held.asked:
            return
        end = _End(seq, session_id, event_at, asyncio.get_running_loop().create_future())
        track.queued[session_id] = end
        track.ends.append(end)
        track.waiting.append(end)
        self._pump(track)
        if sum(len(t.ends) for t in self.tracks) >= self.batch:
            self._wake.set()

    def event_seen(self, track: AgentTrack, seq: int, at: datetime) -> None:
        track.last_seq = seq
        track.last_event_at = at

    async def missing(self, track: AgentTrack, sessions: list[SessionSummary]) -> list[str]:
        """Finished sessions of this snapshot the store does not hold in a final copy as
        recent as the agent's (a conversation that ran and ended again while the watcher
        missed its events has a later last event): one look-up for the snapshot."""
        assert track.name is not None and self.store.store is not None
        store = self.store.store
        name = track.name
        finished = [s for s in sessions if s.status in FINAL_STATUSES]
        have = await self.store.call(store.final_ends, [(name, s.id) for s in finished])
        return [
            s.id
            for s in finished
            if (stored := have.get((name, s.id))) is None or _aware(s.last_event_at) > stored
        ]

    # -- fetching ------------------------------------------------------------------------
    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    def _pump(self, track: AgentTrack) -> None:
        """Ask for what waits: in batches while the agent serves them (ends that arrive
        meanwhile make the next batch bigger), else one fetch per session."""
        while track.waiting:
            if track.batch_route is False:
                end = track.waiting.popleft()
                end.asked = True
                self._spawn(self._fetch_one(track, end), f"fetch-{end.session_id}")
                continue
            if track.batches >= (1 if track.batch_route is None else BATCHES_PER_AGENT):
                return
            full = len(track.waiting) >= FETCH_BATCH
            if not full and track.lingering:
                return  # the lingering read takes what waits
            track.batches += 1
            track.lingering = not full
            ends = _take(track.waiting) if full else None
            self._spawn(self._fetch_batch(track, ends), f"fetch-batch-{track.key}")
            if not full:
                return

    async def _fetch_batch(self, track: AgentTrack, ends: list[_End] | None) -> None:
        """Fetch `ends` (None: what waits after FETCH_LINGER_S) with GET
        /v1/session-details until each is resolved (what an answer left for later is asked
        again at once; a failure is retried with backoff), or hand them to per-session
        fetches when the agent has no such route."""
        delay = 0.5
        try:
            if ends is None:
                try:
                    await asyncio.sleep(FETCH_LINGER_S)
                finally:
                    track.lingering = False
                ends = _take(track.waiting)
            while ends:
                try:
                    body = await track.client.session_details_body([e.session_id for e in ends])
                    held = {e.session_id: list(track.approvals.get(e.session_id, ())) for e in ends}
                    info = track.info
                    assert info is not None
                    # built on the store's thread, not a thread of its own: with a third
                    # thread taking the GIL the watcher spent ~450 µs of CPU per session
                    # instead of ~310. The body is validated there too, off the event loop.
                    built, more = await self.store.call(_answer_records, body, info, held)
                except EndpointError as exc:
                    if exc.status in _NO_BATCH_ROUTE and track.batch_route is not True:
                        log.info("%s: no batch reads (%s); one session at a time", track.key, exc)
                        track.batch_route = False
                        for end in ends:
                            end.asked = False
                        track.waiting.extendleft(reversed(ends))
                        return
                    log.debug("batch fetch on %s failed (%s); retrying", track.key, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                track.batch_route = True
                delay = 0.5
                later = set(more)
                for end in ends:
                    if end.session_id not in later and not end.fetched.done():
                        end.fetched.set_result(built.get(end.session_id))
                ends = [e for e in ends if e.session_id in later]
                self._wake.set()
        finally:
            track.batches -= 1
            self._pump(track)

    async def _fetch_one(self, track: AgentTrack, end: _End) -> None:
        """One session's record with GET /v1/sessions/{id}: None when the agent no longer
        has it (lost: a gap), retried while the agent is away."""
        delay = 0.5
        while True:
            async with track.fetches:
                try:
                    detail = await track.client.session_raw(end.session_id)
                except EndpointError as exc:
                    if exc.status == 404:
                        end.fetched.set_result(None)
                        return
                    error = str(exc)
                else:
                    info = track.info
                    assert info is not None
                    held = {end.session_id: list(track.approvals.get(end.session_id, ()))}
                    # on the store's thread, as _fetch_batch builds: off the event loop
                    found = await self.store.call(_records, [detail], info, held)
                    end.fetched.set_result(found.get(end.session_id))
                    return
            log.debug("fetch %s on %s failed (%s); retrying", end.session_id, track.key, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    # -- writing -------------------------------------------------------------------------
    async def run(self) -> None:
        """Flush for ever (cancel to stop; call `flush()` once more to write the rest)."""
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # lands as the wake-up completes, and a stopped watcher then never exits
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_s):
                    await self._wake.wait()
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
        records: list[SessionRecord | SessionRows] = []
        lost: list[tuple[str, int]] = []
        positions: dict[str, tuple[int, str | None]] = {}
        taken: list[tuple[AgentTrack, int, int, int]] = []
        for track in self.tracks:
            if track.name is None:
                continue
            count = 0
            for end in track.ends:
                if not end.fetched.done() or len(records) >= self.batch:
                    break
                record = end.fetched.result()
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
                if track.queued.get(end.session_id) is end:
                    del track.queued[end.session_id]
            track.recorded += count - n_lost
            track.lost += n_lost
            track.gaps += n_lost
            track.stored_seq = seq
        if any(len(t.ends) and t.ends[0].fetched.done() for t in self.tracks):
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
        for task in list(self._fetches):
            task.cancel()
        for track in self.tracks:
            track.waiting.clear()
            for end in track.ends:
                end.fetched.cancel()


def _aware(moment: datetime) -> datetime:
    """A time an agent sent without a zone is taken as UTC (stored times are aware)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _take(waiting: deque[_End]) -> list[_End]:
    """The next batch of ends to ask for: at most FETCH_BATCH, and ids short enough for
    one request line."""
    ends: list[_End] = []
    chars = 0
    while waiting and len(ends) < FETCH_BATCH and chars < _FETCH_ID_CHARS:
        end = waiting.popleft()
        end.asked = True
        ends.append(end)
        chars += len(end.session_id) + 4
    return ends


def _answer_records(
    body: bytes, info: AgentInfo, approvals: Mapping[str, Sequence[Approval]]
) -> tuple[dict[str, Built], list[str]]:
    """Records by session id from a GET /v1/session-details body, and the ids it left for
    later (`more`): rows validated straight from the bytes (records/wire_rows.py
    `answer_rows`); what that does not take is decoded and built by `_records`.
    EndpointError when the body is not a session-details answer."""
    fast = answer_rows(body, info, approvals)
    if fast is not None and not fast.others:
        return dict(fast.rows), fast.more
    answer = raw_details(body)
    if fast is None:
        return _records(answer.sessions, info, approvals), answer.more
    built: dict[str, Built] = dict(fast.rows)
    built.update(_records([answer.sessions[i] for i in fast.others], info, approvals))
    return built, fast.more


def _records(
    details: Sequence[dict[str, Any]],
    info: AgentInfo,
    approvals: Mapping[str, Sequence[Approval]],
) -> dict[str, Built]:
    """Records by session id, each validated once from the decoded detail (on the store's
    thread, off the event loop): as rows straight from the JSON (records/wire_rows.py),
    or, for a detail that path does not take, as a record built by record_from_wire. A
    detail that is not a valid record is logged and becomes a gap row (None): never
    silent, and it cannot hold back the sessions behind it."""
    asked = [
        d for d in details if isinstance(d.get("id"), str) and d.get("id") in approvals
    ]  # not one we asked for: skipped
    built: dict[str, Built] = {}
    for detail, rows in zip(asked, fast_rows(asked, info, approvals), strict=True):
        session_id = detail["id"]
        if rows is not None:
            built[session_id] = rows
            continue
        try:
            built[session_id] = record_from_wire(detail, info, approvals[session_id])
        except ValueError as exc:
            why = error_line(exc, _ERROR_CHARS)
            log.warning("%s: session %s is not a valid record: %s", info.agent, session_id, why)
            built[session_id] = None
    return built


def _write(
    store: RecordsStore,
    records: list[SessionRecord | SessionRows],
    positions: dict[str, tuple[int, str | None]],
    lost: list[tuple[str, int]],
) -> None:
    for agent, seq in lost:
        store.record_gap(agent, seq, seq)
    store.write_batch(records, positions)
