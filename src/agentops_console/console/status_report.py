"""`agentops status`: the fleet and its running sessions, fetched once, as JSON or tables.

Bounded whatever the agent holds: one `GET /v1/agent` (counts) and the first page of
running sessions, within one total timeout per agent. Listing every session of an agent
with 100,000 took 95 s; the counts say how many there are, the console shows them all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from ..protocol.client import AsyncAgentClient, EndpointError
from ..protocol.models import AgentInfo, SessionSummary
from . import format as fmt
from . import session_rows
from .connection import AgentSource, unauthorized
from .store import utc_now
from .text import literal

#: Running sessions listed per agent (the first page); the counts cover the rest.
SESSIONS_SHOWN = 200
#: Everything asked of one agent must be answered within this.
TIMEOUT_S = 10.0


@dataclass(slots=True)
class AgentReport:
    source: AgentSource
    info: AgentInfo | None = None
    sessions: list[SessionSummary] = field(default_factory=list)
    more_sessions: bool = False
    error: str | None = None

    @property
    def unauthorized(self) -> bool:
        return self.error is not None and self.error.startswith("unauthorized")

    @property
    def state(self) -> str:
        """`live`, `unauthorized: ...` or `unreachable: ...`, as the console says it."""
        if self.error is None:
            return "live"
        return self.error if self.unauthorized else f"unreachable: {self.error}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.key,
            "endpoint": self.source.url,
            "reachable": self.error is None,
            "unauthorized": self.unauthorized,
            "error": self.error,
            "agent": None if self.info is None else self.info.model_dump(mode="json"),
            "sessions": [s.model_dump(mode="json") for s in self.sessions],
            # the list is the first page of running sessions; the counts are in "agent"
            "sessions_truncated": self.more_sessions,
        }


async def _fetch(source: AgentSource, timeout_s: float, shown: int) -> AgentReport:
    report = AgentReport(source)

    async def ask(client: AsyncAgentClient) -> None:
        report.info = await client.agent()
        page = await client.sessions_page(status="active", limit=shown)
        report.sessions = page.sessions
        report.more_sessions = page.next_cursor is not None

    try:
        async with AsyncAgentClient(source.url, source.resolve_token()) as client:
            await asyncio.wait_for(ask(client), timeout_s)
    except EndpointError as exc:
        report.error = unauthorized(source, str(exc)) if exc.status in (401, 403) else str(exc)
    except TimeoutError:
        report.info = None
        report.error = f"{source.url} too slow: no full answer within {timeout_s:g}s"
    return report


async def gather(
    sources: list[AgentSource], timeout_s: float = TIMEOUT_S, shown: int = SESSIONS_SHOWN
) -> list[AgentReport]:
    return list(await asyncio.gather(*(_fetch(s, timeout_s, shown) for s in sources)))


def render(reports: list[AgentReport], console: Console) -> None:
    """Tables of agents and sessions; agent text shown literally, never as markup."""
    now = utc_now()
    fleet = Table(title="agents", title_justify="left")
    for label in ("agent", "version", "policy", "endpoint", "state", "sessions", "cost"):
        fleet.add_column(label)
    for r in reports:
        info = r.info
        fleet.add_row(
            literal(info.agent if info else r.source.key),
            literal(info.version if info else "-"),
            literal((info.policy.version or "none") if info else "-"),
            literal(r.source.url),
            literal(r.state, limit=80),
            "-" if info is None else f"{info.sessions_active} running / {info.sessions_total}",
            fmt.usd(info.cost_usd_total) if info else "-",
        )
    console.print(fleet)
    sessions = Table(title="sessions", title_justify="left")
    for column in session_rows.COLUMNS:
        sessions.add_column(column.label)
    for r in reports:
        for summary in sorted(r.sessions, key=lambda s: s.started_at):
            sessions.add_row(*(literal(cell) for cell in session_rows.cells(summary, now)))
    console.print(sessions)
    for r in reports:
        if r.more_sessions and r.info is not None:
            console.print(
                f"{literal(r.info.agent)}: showing the first {len(r.sessions)} of "
                f"{r.info.sessions_active} running sessions (the console shows them all)"
            )
