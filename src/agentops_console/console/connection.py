"""One agent's feed in the console: `protocol.feed.AgentFeed` with the store as listener.

The feed does the work the watcher shares (snapshot, stream with `Last-Event-ID`, backoff,
probing a silent stream, gap or restart → a fresh snapshot; docs/endpoint.md). This
adapter only puts what it reports into the store and tells the app what an operator should
notice: `AgentLive` when the agent answers (and why a snapshot was taken), `AgentStale`
with the retry count when it does not. A refused token is said as such, never as
"unreachable": retrying does not fix it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from textual.message import Message

from ..protocol.client import AsyncAgentClient
from ..protocol.feed import STREAM_IDLE_S, AgentFeed, Backoff, SeqGap, SnapshotWhy, StaleReason
from ..protocol.models import AgentInfo, Approval, Event, SessionSummary
from .decode import decode_event
from .ingest import Ingest
from .messages import AgentLive, AgentStale
from .store import FleetStore

__all__ = ["STREAM_IDLE_S", "AgentConnection", "AgentSource", "Backoff"]


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
        ingest: Ingest | None = None,
    ) -> None:
        self.source = source
        self.store = store
        #: the app's one apply queue (console/ingest.py); without it, applied at once
        self.ingest = ingest
        self.post = post
        self.client = client or AsyncAgentClient(source.url, source.resolve_token())
        store.add_agent(source.key, source.url)
        # events are validated without their span: no view reads it (console/decode.py)
        self.feed = AgentFeed(
            self.client, self, backoff=backoff, idle_s=idle_s, sleep=sleep, decode=decode_event
        )
        # a store that already follows this agent (a reconnecting console) resumes from it
        self.feed.last_seq = store.agents[source.key].last_seq

    @property
    def last_seq(self) -> int:
        return self.feed.last_seq

    @property
    def retries(self) -> int:
        return self.feed.retries

    @property
    def snapshots(self) -> int:
        return self.feed.snapshots

    async def run(self) -> None:
        await self.feed.run()

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- FeedListener -------------------------------------------------------------------
    async def on_snapshot(
        self,
        info: AgentInfo,
        sessions: list[SessionSummary],
        approvals: list[Approval],
        why: SnapshotWhy,
        gap: SeqGap | None,
    ) -> None:
        if self.ingest is not None:
            self.ingest.snapshot(self.source.key, info, sessions, approvals)
        else:
            self.store.apply_snapshot(self.source.key, info, sessions, approvals)

    async def on_event(self, event: Event) -> None:
        if self.ingest is not None:
            await self.ingest.put(self.source.key, event)
        else:
            self.store.apply_event(self.source.key, event)

    async def on_live(self, info: AgentInfo, why: SnapshotWhy | Literal["resumed"]) -> None:
        if why == "resumed":  # a snapshot already marked it live
            self.store.mark_live(self.source.key, info)
        self.post(AgentLive(self.source.key, why))

    async def on_stale(self, reason: StaleReason, error: str, retry: int, delay: float) -> None:
        shown = self.store.mark_stale(self.source.key, self._reason(reason, error), retry)
        self.post(AgentStale(self.source.key, shown, retry, delay))

    def _reason(self, reason: StaleReason, error: str) -> str:
        return unauthorized(self.source, error) if reason == "unauthorized" else error


def unauthorized(source: AgentSource, error: str) -> str:
    """What a 401/403 means for this source, said as such: retrying does not fix a
    token, and "unreachable" sent people looking at the network."""
    variable = source.token_env
    if source.token is None and variable and not os.environ.get(variable):
        return f"unauthorized: token variable {variable} not set ({error})"
    if source.token is None and not variable:
        return f"unauthorized: no token given (--token-env VAR) ({error})"
    return f"unauthorized: wrong token ({error})"
