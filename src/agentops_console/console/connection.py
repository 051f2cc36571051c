"""Keep one agent's feed alive: snapshot, then the event stream, reconnecting for ever.

The sequence follows docs/endpoint.md: GET /v1/agent (its `last_event_seq`), the
sessions and approvals, then the stream with `Last-Event-ID`. After a drop the stream is
resumed from the last applied event; a `gap` event (the agent dropped a reader too far
behind, or was asked to resume from before its event ring), a jump in `seq` or an agent
that restarted (new `started_at`, or a sequence behind ours) means events were lost, so
the snapshot is fetched again and the stream resumed from its `last_event_seq`.
Failures back off exponentially and mark the agent stale in the store, never blocking
anything else: each agent runs in a worker of its own.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from textual.message import Message

from ..protocol.client import AsyncAgentClient, EndpointError
from ..protocol.models import AgentInfo, Event
from .messages import AgentLive, AgentStale
from .store import FleetStore

#: A stream with nothing, not even a keep-alive, for this long is probed: an agent that
#: hangs with its socket open goes stale within ~25 s. The runtime sends keep-alives every
#: 5 s and refuses intervals above MAX_KEEPALIVE_S (15 s), so a quiet agent never trips it.
STREAM_IDLE_S = 20.0


@dataclass(frozen=True, slots=True)
class AgentSource:
    """Where an agent is and its token: held in memory (`token`, never in the repr) or
    named by the environment variable that holds it (`token_env`)."""

    key: str
    url: str
    token_env: str | None = None
    token: str | None = field(default=None, repr=False)

    def resolve_token(self) -> str | None:
        """The in-memory token wins; otherwise the variable is read now, not at startup."""
        if self.token:
            return self.token
        if not self.token_env:
            return None
        return os.environ.get(self.token_env) or None


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


class _Gap(Exception):
    """Events were lost: the snapshot must be fetched again."""


class _Idle(Exception):
    """Nothing arrived for a while: check the agent is there and reopen the stream."""


class AgentConnection:
    """Runs until cancelled; `post` receives AgentLive / AgentStale messages."""

    def __init__(
        self,
        source: AgentSource,
        store: FleetStore,
        post: Callable[[Message], object],
        client: AsyncAgentClient | None = None,
        *,
        backoff: Backoff | None = None,
        idle_s: float = STREAM_IDLE_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.store = store
        self.post = post
        self.client = client or AsyncAgentClient(source.url, source.resolve_token())
        self.backoff = backoff or Backoff()
        self.idle_s = idle_s
        self.sleep = sleep
        self.retries = 0
        self.snapshots = 0
        self._started_at: datetime | None = None
        store.add_agent(source.key, source.url)

    @property
    def last_seq(self) -> int:
        return self.store.agents[self.source.key].last_seq

    async def run(self) -> None:
        fresh = False  # a snapshot was just taken: stream from it without asking again
        while True:
            try:
                if not fresh:
                    await self._connect()
                fresh = False
                await self._stream()
                error = "event stream closed by the agent"
            except _Gap:
                try:
                    await self._snapshot("gap")
                except EndpointError as exc:
                    error = str(exc)
                else:
                    fresh = True
                    continue
            except _Idle:
                continue  # _connect probes the agent; only a failure there marks it stale
            except EndpointError as exc:
                error = str(exc)
            self.retries += 1
            delay = self.backoff.delay(self.retries)
            shown = self.store.mark_stale(self.source.key, error, self.retries)
            self.post(AgentStale(self.source.key, shown, self.retries, delay))
            await self.sleep(delay)

    async def _connect(self) -> None:
        info = await self.client.agent()
        if self._started_at is None:
            await self._snapshot("first", info)
        elif info.started_at != self._started_at or info.last_event_seq < self.last_seq:
            await self._snapshot("restart", info)
        else:
            self.store.mark_live(self.source.key, info)
            self.post(AgentLive(self.source.key, "resumed"))
        self.retries = 0

    async def _snapshot(
        self, why: Literal["first", "gap", "restart", "resumed"], info: AgentInfo | None = None
    ) -> None:
        if info is None:
            info = await self.client.agent()
        sessions = await self.client.sessions()
        approvals = await self.client.approvals()
        self.store.apply_snapshot(self.source.key, info, sessions, approvals)
        self._started_at = info.started_at
        self.snapshots += 1
        self.post(AgentLive(self.source.key, why))

    async def _stream(self) -> None:
        """Apply events until the stream ends; raises _Gap when events were lost: the agent
        says so (`gap`, then it closes the stream) or a sequence number is skipped."""
        key = self.source.key
        store = self.store
        events = self.client.stream(self.last_seq)
        try:
            async for event in _idle_limited(events, self.idle_s):
                if event is None:
                    continue  # a keep-alive: the agent is there
                if event.type == "gap":
                    raise _Gap
                expected = store.agents[key].last_seq + 1
                if event.seq < expected:
                    continue  # already reflected in the snapshot
                if event.seq > expected:
                    raise _Gap
                store.apply_event(key, event)
        finally:
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()

    async def aclose(self) -> None:
        await self.client.aclose()


async def _idle_limited(
    events: AsyncIterator[Event | None], idle_s: float
) -> AsyncIterator[Event | None]:
    """The stream, raising _Idle when nothing (not even a keep-alive, passed up as None)
    arrives for `idle_s`; the agent is then probed rather than declared dead."""
    iterator = aiter(events)
    while True:
        try:
            event = await asyncio.wait_for(anext(iterator), idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _Idle from None
        yield event
