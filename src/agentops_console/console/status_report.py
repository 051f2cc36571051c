"""`agentops status`: the fleet and its sessions, fetched once, as JSON or as tables."""

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
from .connection import AgentSource
from .store import utc_now
from .text import literal


@dataclass(slots=True)
class AgentReport:
    source: AgentSource
    info: AgentInfo | None = None
    sessions: list[SessionSummary] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.key,
            "endpoint": self.source.url,
            "reachable": self.error is None,
            "error": self.error,
            "agent": None if self.info is None else self.info.model_dump(mode="json"),
            "sessions": [s.model_dump(mode="json") for s in self.sessions],
        }


async def _fetch(source: AgentSource, timeout_s: float) -> AgentReport:
    report = AgentReport(source)
    try:
        async with AsyncAgentClient(source.url, source.resolve_token()) as client:
            report.info = await asyncio.wait_for(client.agent(), timeout_s)
            report.sessions = await asyncio.wait_for(client.sessions(), timeout_s)
    except EndpointError as exc:
        report.error = str(exc)
    except TimeoutError:
        report.error = f"{source.url} did not answer within {timeout_s:.0f}s"
    return report


async def gather(sources: list[AgentSource], timeout_s: float = 10.0) -> list[AgentReport]:
    return list(await asyncio.gather(*(_fetch(s, timeout_s) for s in sources)))


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
            literal("live" if r.error is None else f"unreachable: {r.error}", limit=80),
            str(len(r.sessions)),
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
