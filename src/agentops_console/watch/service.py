"""`agentops watch`: follow every agent, record, open incidents, page, respond; until SIGTERM.

One asyncio loop. Per agent an `AgentFeed` (protocol/feed.py) feeds an `AgentWatch`, which
hands session ends to the `Recorder`, events to the `AlertDetector` (incidents, through the
`IncidentDesk`, which pages through the `Notifier`) and to the `Responder` (rules). Beside
them: the recorder's flush loop, the health beat and retention pruning. Nothing an agent,
a sink or the governance DB does can block recording: incidents, actions and the argument
reads of denials (`DeferredDenials`, bounded per agent) run as tasks of their own, sinks
have their own queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import JsonValue

from ..governance.clock import utcnow
from ..protocol.client import AsyncAgentClient, EndpointError, EventHead
from ..protocol.feed import AgentFeed, SeqGap, SnapshotWhy, StaleReason
from ..protocol.models import AgentInfo, Approval, Event, SessionSummary
from ..protocol.records import FINAL_STATUSES
from ..protocol.text import error_line
from ..records.retention import PruneResult, prune
from ..records.store import RecordsStore
from .alerts import AlertDetector, is_denial
from .config import WatchConfig
from .health import health_path, write_health
from .incidents import IncidentDesk, WatchEvidence
from .recorder import AgentTrack, Recorder, StoreThread
from .respond import Executor, GovernanceAudit, Responder
from .sinks import Notifier

log = logging.getLogger("agentops.watch")

HEALTH_EVERY_S = 2.0
#: The event types the watcher asks its agents for (`GET /v1/events?types=`): session ends
#: (and the other events that can carry a final status) to record, flags for alerts and
#: rules, resolved approvals for the records, evictions for gaps. Span events, ~20 of ~22
#: per 10-call session, are neither rendered by the agent nor sent: within the agent's
#: render budget the stream then keeps up with a busy agent (docs/watch.md).
WATCH_EVENTS = frozenset(
    {
        "session_ended",
        "session_updated",
        "session_killed",
        "flag",
        "approval_resolved",
        "sessions_evicted",
    }
)
#: A cost rule (`cost_usd_gt`) reads the session summary of the events that change the cost.
COST_EVENTS = WATCH_EVENTS | {"span_ended"}
#: Events the watcher reads as EventHead (protocol/client.py): recording needs only their
#: position and session's identity and status; no alert or flag rule looks at them.
LIGHT_EVENTS = frozenset({"session_ended"})
#: Tries, and the pause between them, to find a denied call in its session's detail (the
#: agent publishes the flag just before it records the refused span).
ARGUMENT_TRIES = 3
ARGUMENT_RETRY_S = 0.05
#: Denials judged off the stream per agent at most (each holds at most one argument fetch,
#: a GET of the session's detail). Denials are rare and a burst is 3 by default: 8 lets a
#: burst's fetches run side by side, while a flood of them (a policy refusing everything)
#: waits on the stream for a slot (backpressure) instead of piling up tasks and requests.
DENIALS_IN_FLIGHT = 8
PRUNE_EVERY_S = 300.0
#: At shutdown, how long incidents, actions and deferred denials may still take.
DRAIN_TASKS_S = 5.0
#: Longest prune error kept for `watch status`.
_PRUNE_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Source:
    """An agent to follow: its key (registry name, else URL), URL and token."""

    key: str
    url: str
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class WatchOptions:
    records: Path
    config: WatchConfig
    sources: tuple[Source, ...]
    governance_db: Path | None
    dry_run: bool = False
    keep_days: float | None = None
    max_mb: float | None = None
    runbooks: Path | None = None
    health_every_s: float = HEALTH_EVERY_S
    prune_every_s: float = PRUNE_EVERY_S


class AgentWatch:
    """The FeedListener of one agent."""

    def __init__(self, service: WatchService, source: Source, client: AsyncAgentClient) -> None:
        self.service = service
        self.source = source
        self.client = client
        self.track: AgentTrack = service.recorder.track(source.key, client)
        # a cost rule looks at the session summary of the events: then they come whole
        costly = any(r.when.cost_usd_gt is not None for r in service.responder.rules.rules)
        self.feed = AgentFeed(
            client,
            self,
            light=frozenset() if costly else LIGHT_EVENTS,
            on_light=self.on_light_event,
            types=COST_EVENTS if costly else WATCH_EVENTS,
            on_position=self.on_position,
        )
        self.state: Literal["connecting", "live", "stale", "unauthorized"] = "connecting"
        self.error: str | None = None
        self.stale_since: datetime | None = None
        self.unreachable_open = False
        self.denials = DeferredDenials(self)

    @property
    def name(self) -> str:
        return self.track.name or self.source.key

    async def on_snapshot(
        self,
        info: AgentInfo,
        sessions: list[SessionSummary],
        approvals: list[Approval],
        why: SnapshotWhy,
        gap: SeqGap | None,
    ) -> None:
        service = self.service
        recorder = service.recorder
        track = self.track
        track.name = info.agent
        track.info = info
        track.batch_route = None  # a restarted agent may be another version: ask again
        service.clients[info.agent] = self.client
        if why == "first":
            store = service.store.store
            assert store is not None
            position = await service.store.call(store.position, info.agent)
            if position is not None:
                self.feed.resume_from(position.last_seq)
                track.stored_seq = position.last_seq
        else:
            track.stored_seq = None  # write the position afresh after a gap or restart
        for approval in approvals:
            track.remember_approval(approval)
        missing = await recorder.missing(track, sessions)
        seq = self.feed.last_seq
        recorder.event_seen(track, seq, track.last_event_at or info.started_at)
        for session_id in missing:
            recorder.session_ended(track, seq, session_id, None)
        if why == "gap" and gap is not None:
            lost = _could_have_lost(track, info, sessions)
            await recorder.record_gap(track, gap.first, max(gap.last, gap.first), not lost)
        track.evicted_known = info.sessions_evicted
        log.info(
            "%s: snapshot (%s): %d sessions, %d finished ones to record, streaming from %d",
            info.agent,
            why,
            len(sessions),
            len(missing),
            seq,
        )

    async def on_event(self, event: Event) -> None:
        service = self.service
        track = self.track
        service.recorder.event_seen(track, event.seq, event.at)
        session = event.session
        if event.approval is not None and event.type == "approval_resolved":
            track.remember_approval(event.approval)
        if event.type == "sessions_evicted" and track.evicted_known is not None:
            track.evicted_known += int(event.data.get("count", 0) or 0)
        if session is not None and (
            event.type == "session_ended" or session.status in FINAL_STATUSES
        ):
            service.recorder.session_ended(track, event.seq, session.id, event.at)
        needed = service.detector.arguments_needed(event)
        if needed is not None or (self.denials.pending and is_denial(event)):
            await self.denials.judge(event, needed)
        else:
            self.alert(event, None)
        if service.responder.rules.rules:
            service.spawn(self._respond(event))

    async def on_light_event(self, event: EventHead) -> None:
        """A LIGHT_EVENTS event: what on_event does with it, from the fields it needs."""
        recorder = self.service.recorder
        track = self.track
        recorder.event_seen(track, event.seq, event.at)
        session = event.session
        if session is not None and (
            event.type == "session_ended" or session.status in FINAL_STATUSES
        ):
            recorder.session_ended(track, event.seq, session.id, event.at)

    async def on_position(self, seq: int) -> None:
        """The stream passed events its filter skipped: the position to store moves on."""
        self.track.last_seq = seq

    def alert(self, event: Event, arguments: JsonValue) -> None:
        """Raise the alerts the detector sees in `event` (incidents are tasks of their own)."""
        service = self.service
        for alert in service.detector.observe(self.name, event, arguments):
            service.spawn(service.desk.raise_alert(alert))

    async def span_arguments(self, session_id: str, span_id: str) -> JsonValue:
        """A span's arguments from its session's detail (None when it cannot be had):
        asked only for a denial that may be a cross-tenant export, so flags are rare."""
        for attempt in range(ARGUMENT_TRIES):
            if attempt:
                await asyncio.sleep(ARGUMENT_RETRY_S)
            try:
                detail = await self.client.session_raw(session_id)
            except EndpointError as exc:
                log.warning("%s: session %s unreadable: %s", self.name, session_id, exc)
                return None
            spans = detail.get("spans")
            for span in spans if isinstance(spans, list) else ():
                if isinstance(span, dict) and span.get("id") == span_id:
                    arguments: JsonValue = span.get("arguments")
                    return arguments
        return None

    async def _respond(self, event: Event) -> None:
        for outcome in await self.service.responder.handle(self.name, event):
            (log.info if outcome.ok else log.warning)("%s", outcome.message)

    async def on_live(self, info: AgentInfo, why: SnapshotWhy | Literal["resumed"]) -> None:
        if self.state != "live":
            log.info("%s: live (%s)", info.agent, why)
        self.state = "live"
        self.error = None
        self.stale_since = None
        if self.unreachable_open:
            self.unreachable_open = False
            await self.service.desk.resolve_cause(
                (info.agent, "agent_unreachable", "agent"), "the agent answers again"
            )

    async def on_stale(self, reason: StaleReason, error: str, retry: int, delay: float) -> None:
        if self.state in ("live", "connecting") or self.error != error:
            log.warning("%s: %s (%s); retry %d in %.1f s", self.name, reason, error, retry, delay)
        self.state = "unauthorized" if reason == "unauthorized" else "stale"
        self.error = error
        if self.stale_since is None:
            self.stale_since = utcnow()

    async def check_unreachable(self) -> None:
        policy = self.service.detector.policy
        if self.state != "stale" or self.stale_since is None or self.unreachable_open:
            return
        if "agent_unreachable" not in policy.causes:
            return
        now = utcnow()
        if (now - self.stale_since).total_seconds() < policy.unreachable_s:
            return
        self.unreachable_open = True
        alert = self.service.detector.unreachable(
            self.name, self.stale_since, now, self.error or "?"
        )
        await self.service.desk.raise_alert(alert)

    def health(self) -> dict[str, Any]:
        track = self.track
        return {
            "url": self.source.url,
            "state": self.state,
            "error": self.error,
            "last_event_at": track.last_event_at.isoformat() if track.last_event_at else None,
            "last_seq": track.last_seq,
            "stored_seq": track.stored_seq,
            "lag_s": round(track.lag_s(), 3),
            "pending": len(track.ends),
            "recorded": track.recorded,
            "lost": track.lost,
            "gaps": track.gaps,
        }


class DeferredDenials:
    """The policy denials of one agent that wait for their denied call's arguments, judged
    off the stream.

    Why: the arguments are read from the session's detail (up to ARGUMENT_TRIES GETs,
    ARGUMENT_RETRY_S apart, while the agent has not yet recorded the refused span); awaited
    inline, each such denial held back the agent's whole stream: recording, other alerts,
    rules. Now each gets a task (`WatchService.spawn`) that fetches at once, side by side
    with the others, then waits until the denial before it has been judged and only then
    calls `AlertDetector.observe`. So the detector still sees this agent's denials in stream
    order, one call each, as with the inline fetch: the burst windows count every denial
    once, a burst alert names the same last denial with the same flag time, and a denial
    judged a cross-tenant export is still left out of the burst count. (Counting at once and
    judging only the cross-tenant check later would not keep that: the verdict decides
    whether the denial counts.) A denial that needs no arguments queues behind pending ones
    for the same reason; every other event is judged at once. At most DENIALS_IN_FLIGHT
    tasks per agent: the next denial waits on the stream for a slot.
    """

    def __init__(self, watch: AgentWatch) -> None:
        self.watch = watch
        self._slots = asyncio.Semaphore(DENIALS_IN_FLIGHT)
        self._last: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        return self._last is not None and not self._last.done()

    async def judge(self, event: Event, needed: tuple[str, str] | None) -> None:
        """Hand `event` to a task of its own once one of the agent's slots is free."""
        await self._slots.acquire()
        try:
            task = self.watch.service.spawn(self._judge(event, needed, self._last))
        except BaseException:
            self._slots.release()
            raise
        # a done callback, not a `finally`: it runs even for a task cancelled before it began
        task.add_done_callback(lambda _: self._slots.release())
        self._last = task

    async def _judge(
        self, event: Event, needed: tuple[str, str] | None, before: asyncio.Task[None] | None
    ) -> None:
        watch = self.watch
        arguments: JsonValue = None
        if needed is not None:
            try:
                arguments = await watch.span_arguments(*needed)
            except Exception as exc:  # judged without them: the denial still counts
                log.warning("%s: arguments of span %s unreadable: %r", watch.name, needed[1], exc)
        if before is not None:
            await asyncio.wait((before,))  # in stream order; its own failure is logged
        watch.alert(event, arguments)


def _could_have_lost(track: AgentTrack, info: AgentInfo, sessions: list[SessionSummary]) -> bool:
    """After a gap: could a session have ended and left the agent's ring unseen? Only if the
    agent evicted sessions meanwhile and the oldest one it still holds ended after the last
    event we had (else every session that ended in the gap is still there, and recorded)."""
    known = track.evicted_known
    if known is not None and info.sessions_evicted <= known:
        return False
    ended = [s.ended_at for s in sessions if s.ended_at is not None]
    if not ended or track.last_event_at is None:
        return info.sessions_evicted > 0
    return min(ended) > track.last_event_at


class WatchService:
    def __init__(self, options: WatchOptions) -> None:
        self.options = options
        self.store = StoreThread()
        self.recorder = Recorder(self.store)
        self.clients: dict[str, AsyncAgentClient] = {}
        self.detector = AlertDetector(options.config.incidents)
        self.notifier = Notifier(options.config.build_sinks())
        self.desk = IncidentDesk(
            options.governance_db,
            self.notifier,
            options.config.incidents,
            options.runbooks,
            WatchEvidence(self.clients, self.store, self.recorder),
        )
        audit = None if options.dry_run else _audit(options.governance_db)
        self.responder = Responder(
            options.config.rulebook(),
            Executor(self.clients, audit, dry_run=options.dry_run or audit is None),
        )
        self.watches: list[AgentWatch] = []
        self.started_at = time.time()
        self.pruned = 0
        self.prune_error: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("watch task failed: %r", task.exception())

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Until stop() (SIGTERM / SIGINT); the records DB is open (and locked) first."""
        options = self.options
        await self.store.open(options.records)
        loop = asyncio.get_running_loop()
        # only the main thread can take signals; in-process (the demo) the owner calls stop()
        main = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if main else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        if main:
            _tune_gc()
        try:
            await self.desk.load()
            async with self.notifier:
                await self._serve()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.store.close()

    async def _serve(self) -> None:
        options = self.options
        for source in options.sources:
            client = AsyncAgentClient(source.url, source.token)
            self.watches.append(AgentWatch(self, source, client))
        workers = [
            asyncio.create_task(w.feed.run(), name=f"feed-{w.source.key}") for w in self.watches
        ]
        workers.append(asyncio.create_task(self.recorder.run(), name="recorder"))
        workers.append(asyncio.create_task(self._beat(), name="health"))
        if options.keep_days is not None or options.max_mb is not None:
            workers.append(asyncio.create_task(self._prune(), name="prune"))
        log.info(
            "watching %d agent(s); records %s%s",
            len(self.watches),
            options.records,
            " (dry run)" if options.dry_run else "",
        )
        try:
            await self._stop.wait()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self._drain()

    async def _drain(self) -> None:
        """Write what was fetched, let incidents and pages go out, then stop."""
        await self._settle(DRAIN_TASKS_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush_all(), 5)
        self.recorder.cancel()
        await self.notifier.drain(3)
        self._write_health("stopped")
        for watch in self.watches:
            await watch.client.aclose()
        log.info("stopped")

    async def _settle(self, timeout: float) -> None:
        """Let the service's tasks finish, and those they start meanwhile (a judged denial
        raises its alert as a task of its own); cancel what is left at the deadline, so
        none is destroyed pending when the loop closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        leftover = list(self._tasks)
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=1)

    async def _flush_all(self) -> None:
        for _ in range(100):
            ready = [e for t in self.recorder.tracks for e in t.ends if e.fetched.done()]
            if not ready:
                await self.recorder.flush()
                return
            if not await self.recorder.flush():
                return

    async def _beat(self) -> None:
        while True:
            for watch in self.watches:
                await watch.check_unreachable()
            await self.desk.sweep_resolved()
            await asyncio.to_thread(self._write_health, "running")
            await asyncio.sleep(self.options.health_every_s)

    def _write_health(self, state: str) -> None:
        data = {
            "state": state,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "written_at": time.time(),
            "dry_run": self.options.dry_run,
            "agents": {w.name: w.health() for w in self.watches},
            "sinks": {n: c.as_dict() for n, c in self.notifier.counters().items()},
            "incidents": self.desk.counters(),
            "write_errors": self.recorder.write_errors,
            "last_write_error": self.recorder.last_write_error,
            "pruned": self.pruned,
            "prune_error": self.prune_error,
        }
        write_health(health_path(self.options.records), data)

    async def _prune(self) -> None:
        options = self.options
        while True:
            store = self.store.store
            if store is not None:
                try:
                    result = await self.store.call(_prune_once, store, options)
                except Exception as exc:
                    self.prune_error = error_line(exc, _PRUNE_ERROR_CHARS)
                    log.error("retention prune failed: %s", self.prune_error)
                else:
                    self.prune_error = None
                    self.pruned += result.sessions
                    if result.sessions:
                        log.info("pruned %d sessions", result.sessions)
            await asyncio.sleep(options.prune_every_s)


#: Allocations between young collections in a watcher process (CPython's default is 700).
GC_YOUNG = 50_000


def _tune_gc() -> None:
    """In a watcher process of its own: the records in flight are thousands of acyclic
    objects that reference counting frees; with CPython's defaults the cyclic collector
    walked them again and again, a third of the CPU of a batch. Start-up objects are frozen
    out of its way and young collections come less often."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 100)


def _prune_once(store: RecordsStore, options: WatchOptions) -> PruneResult:
    return prune(store, keep_days=options.keep_days, max_mb=options.max_mb)


def _audit(db: Path | None) -> GovernanceAudit | None:
    return GovernanceAudit(db) if db is not None else None


def configure_logging() -> None:
    """One line per message on stderr, with the time: a service's log, not a traceback."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s agentops watch: %(message)s"))
    root = logging.getLogger("agentops")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
