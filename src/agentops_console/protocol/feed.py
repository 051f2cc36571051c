"""Follow one agent for ever: snapshot, then the event stream, with no screen attached.

The sequence is docs/endpoint.md's: GET /v1/agent (its `last_event_seq`), the sessions and
approvals, then GET /v1/events with `Last-Event-ID`. A dropped stream is resumed from the
last event delivered. Events were lost when the agent says so (a `gap` event, after which
it closes the stream), when a sequence number is skipped, or when the agent restarted (a
new `started_at`, or a sequence behind ours): then the snapshot is fetched again and the
stream resumed from its `last_event_seq`. A feed with `types` asks the agent for only those
event types (`?types=`): the sequence then jumps by design, so only the explicit `gap` event
means a loss, and the `id:`-only messages the agent sends past skipped events move the
position on (`on_position`). An older agent ignores the filter and sends everything: the
feed drops what was not asked for; one that refuses it (400) is followed unfiltered.
Failures back off exponentially with jitter; a stream silent for too long (not even a
keep-alive) is probed. A 401/403 is reported as `unauthorized`, never as `unreachable`:
retrying does not fix a wrong token.

`AgentFeed` reports through `FeedListener` (four async callbacks), so the console (a thin
adapter posting Textual messages) and the headless watcher share one implementation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from .client import AsyncAgentClient, Decode, EndpointError, EventHead, Position, parse_data
from .models import AgentInfo, Approval, Event, EventType, SessionSummary

#: A stream with nothing, not even a keep-alive, for this long is probed. The runtime sends
#: keep-alives every 5 s and refuses intervals above 15 s, so a quiet agent never trips it.
STREAM_IDLE_S = 20.0

#: What a filter can name (`gap` always comes).
_ALL_TYPES = frozenset(get_args(EventType)) - {"gap"}
#: Why a snapshot was taken: the first connect, events lost, or a restarted agent.
SnapshotWhy = Literal["first", "gap", "restart"]
#: Why the agent is not live: nothing answered, the token was refused, another HTTP error,
#: or the agent ended the stream.
StaleReason = Literal["unreachable", "unauthorized", "refused", "closed"]


@dataclass(frozen=True, slots=True)
class SeqGap:
    """Sequence numbers `first..last` were never delivered (`last` may be unknown: -1)."""

    first: int
    last: int
    why: str


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential with jitter, capped: 0.5 s, 1 s, 2 s ... 30 s."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.5  # share of the delay that is randomised

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt - 1))
        return base * (1 - self.jitter + self.jitter * rng())


class FeedListener(Protocol):
    """What a feed reports. Callbacks run on the feed's task, in order; a slow callback
    slows the feed (the agent then reports a gap, and a snapshot catches up)."""

    async def on_snapshot(
        self,
        info: AgentInfo,
        sessions: list[SessionSummary],
        approvals: list[Approval],
        why: SnapshotWhy,
        gap: SeqGap | None,
    ) -> None: ...

    async def on_event(self, event: Event) -> None: ...

    async def on_live(self, info: AgentInfo, why: SnapshotWhy | Literal["resumed"]) -> None: ...

    async def on_stale(self, reason: StaleReason, error: str, retry: int, delay: float) -> None: ...


class _Gap(Exception):
    def __init__(self, gap: SeqGap) -> None:
        super().__init__(gap.why)
        self.gap = gap


class _Idle(Exception):
    """Nothing arrived for a while: check the agent is there and reopen the stream."""


class _FilterRefused(Exception):
    """The agent answered 400 to `?types=`: stream again without it."""


def stale_reason(exc: EndpointError) -> StaleReason:
    if exc.status in (401, 403):
        return "unauthorized"
    return "unreachable" if exc.status is None else "refused"


class AgentFeed:
    """Runs until cancelled. `last_seq` is the last event delivered (or covered by the last
    snapshot); `resume_from()` lowers it during the first snapshot, for a reader that has
    its own stored position (the stream then replays from there)."""

    def __init__(
        self,
        client: AsyncAgentClient,
        listener: FeedListener,
        *,
        backoff: Backoff | None = None,
        idle_s: float = STREAM_IDLE_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        light: frozenset[str] = frozenset(),
        on_light: Callable[[EventHead], Awaitable[None]] | None = None,
        types: frozenset[str] | None = None,
        on_position: Callable[[int], Awaitable[None]] | None = None,
        decode: Decode = parse_data,
    ) -> None:
        """`light` event types (never `gap`) are delivered to `on_light` as EventHead,
        validated only as far as a follower that moves along needs (see EventHead); the
        others, and all of them without `on_light`, to the listener's `on_event`. With
        `types` only events of those types are delivered, and `on_position` hears each
        position the stream moves to past events it skipped (no event to go with it).
        `decode` turns each delivered event's data into an Event (the console's skips
        the span it never shows); the feed reads only `seq`, `type` and a gap's fields."""
        self.client = client
        self.listener = listener
        self.light = light - {"gap"} if on_light is not None else frozenset()
        self.on_light = on_light
        self.types = types - {"gap"} if types is not None else None
        self.on_position = on_position
        self.decode = decode
        #: Whether the agent is asked to filter (False once it refused `?types=`).
        self.ask_filter = self.types is not None
        self.backoff = backoff or Backoff()
        self.idle_s = idle_s
        self.sleep = sleep
        self.last_seq = 0
        self.retries = 0
        self.snapshots = 0
        self.info: AgentInfo | None = None
        self._started_at: datetime | None = None
        self._first = True

    def resume_from(self, seq: int) -> None:
        """Stream from `seq` (exclusive) instead of the snapshot's position; only while the
        first snapshot is being handled, and never forwards."""
        if self._first and 0 <= seq < self.last_seq:
            self.last_seq = seq

    async def run(self) -> None:
        fresh = False  # a snapshot was just taken: stream from it without asking again
        while True:
            try:
                if not fresh:
                    await self._connect()
                fresh = False
                await self._stream()
                reason: StaleReason = "closed"
                error = "event stream closed by the agent"
            except _Gap as lost:
                try:
                    await self._snapshot("gap", gap=lost.gap)
                except EndpointError as exc:
                    reason, error = stale_reason(exc), str(exc)
                else:
                    fresh = True
                    continue
            except _Idle:
                continue  # _connect probes the agent; only a failure there marks it stale
            except _FilterRefused:
                fresh = True  # nothing was delivered: the same position, unfiltered
                continue
            except EndpointError as exc:
                reason, error = stale_reason(exc), str(exc)
            self.retries += 1
            delay = self.backoff.delay(self.retries)
            await self.listener.on_stale(reason, error, self.retries, delay)
            await self.sleep(delay)

    async def _connect(self) -> None:
        info = await self.client.agent()
        if self._started_at is None:
            await self._snapshot("first", info)
        elif info.started_at != self._started_at or info.last_event_seq < self.last_seq:
            gap = SeqGap(self.last_seq + 1, -1, "the agent restarted")
            await self._snapshot("restart", info, gap)
        else:
            self.info = info
            await self.listener.on_live(info, "resumed")
        self.retries = 0

    async def _snapshot(
        self, why: SnapshotWhy, info: AgentInfo | None = None, gap: SeqGap | None = None
    ) -> None:
        if info is None:
            info = await self.client.agent()
        sessions = await self.client.sessions()
        approvals = await self.client.approvals()
        self.info = info
        self.last_seq = info.last_event_seq
        self._started_at = info.started_at
        if why == "restart":  # it may be another version: ask it to filter again
            self.ask_filter = self.types is not None
        self.snapshots += 1
        try:
            await self.listener.on_snapshot(info, sessions, approvals, why, gap)
        finally:
            self._first = False
        await self.listener.on_live(info, why)

    async def _stream(self) -> None:
        """Deliver events until the stream ends; raises _Gap when events were lost."""
        events: AsyncIterator[Event | EventHead | Position | None]
        types = self.types
        asked = types if self.ask_filter else None
        # from an agent that sends every type anyway, the unasked ones are only dropped:
        # the cheap parse is enough for them
        light = self.light if types is None else self.light | (_ALL_TYPES - types)
        if light:
            events = self.client.stream_light(self.last_seq, light, asked, self.decode)
        else:
            events = self.client.stream(self.last_seq, asked, self.decode)
        limited = _idle_limited(events, self.idle_s)
        # a sequence jump is the filter's only while the agent filters: one that sends an
        # unasked event ignores it (an older agent), and its jumps are losses again
        filtering = asked is not None
        try:
            async for event in limited:
                if event is None:
                    continue  # a keep-alive: the agent is there
                if isinstance(event, Position):  # past events the agent's filter skipped
                    if asked is not None and event.seq > self.last_seq:
                        await self._moved(event.seq)
                    continue
                if event.type == "gap" and isinstance(event, Event):
                    first = event.gap_from if event.gap_from is not None else self.last_seq + 1
                    last = event.gap_to if event.gap_to is not None else -1
                    raise _Gap(SeqGap(first, last, event.reason or "the agent skipped events"))
                expected = self.last_seq + 1
                if event.seq < expected:
                    continue  # already delivered or covered by the snapshot
                if event.seq > expected and not filtering:  # a filter skips by design
                    raise _Gap(SeqGap(expected, event.seq - 1, "sequence jumped"))
                if types is not None and event.type not in types:
                    filtering = False  # an agent that does not filter
                    await self._moved(event.seq)
                    continue
                self.last_seq = event.seq
                if isinstance(event, EventHead):
                    assert self.on_light is not None
                    await self.on_light(event)
                else:
                    await self.listener.on_event(event)
        except EndpointError as exc:
            if exc.status == 400 and asked is not None:
                self.ask_filter = False
                raise _FilterRefused from exc
            raise
        finally:
            await limited.aclose()  # its idle timer goes with it
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()

    async def _moved(self, seq: int) -> None:
        self.last_seq = seq
        if self.on_position is not None:
            await self.on_position(seq)


async def _idle_limited(
    events: AsyncIterator[Event | EventHead | Position | None], idle_s: float
) -> AsyncGenerator[Event | EventHead | Position | None, None]:
    """The stream, raising _Idle when nothing (not even a keep-alive, passed up as None)
    arrives for `idle_s`; the agent is then probed rather than declared dead.

    One timer for the whole stream, re-armed from the last arrival when it fires: an
    `asyncio.timeout` around every read cost more than reading the event (a watcher reads
    ~10,000 a second). As asyncio.timeout does, the read is cancelled and the cancellation
    taken back (`uncancel`), so a cancellation from outside is never swallowed."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    iterator = aiter(events)
    watchdog = _Watchdog(loop, task, idle_s)
    try:
        while True:
            watchdog.reading_since = loop.time()
            try:
                event = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if watchdog.fired and task.uncancel() == 0:
                    raise _Idle from None
                raise
            finally:
                watchdog.reading_since = None
            yield event
    finally:
        watchdog.stop()


class _Watchdog:
    """Cancels `task` once a read has waited `idle_s`; between reads (the listener is busy
    with an event) it only looks again later."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], idle_s: float):
        self.loop = loop
        self.task = task
        self.idle_s = idle_s
        self.reading_since: float | None = None
        self.fired = False
        self._handle = loop.call_at(loop.time() + idle_s, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        since = self.reading_since
        if since is not None and now - since >= self.idle_s:
            self.fired = True
            self.task.cancel()
            return
        start = now if since is None else since
        self._handle = self.loop.call_at(start + self.idle_s, self._check)

    def stop(self) -> None:
        self._handle.cancel()
