"""The sessions view's columns: what each cell says, how rows sort, what `/` matches.

Kept apart from the widget (and from Textual) so the table logic is plain functions a
test can call, and so the widget compares raw values before it builds any Text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..protocol.models import SessionSummary
from . import format as fmt


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    #: The cell as text; `untrusted` cells come from the agent and are shown literally.
    cell: Callable[[SessionSummary, datetime], str]
    sort: Callable[[SessionSummary], Any]
    untrusted: bool = False
    #: Widest the cell gets; longer agent-chosen text is cut with an ellipsis.
    width: int = 24


def _flags(s: SessionSummary) -> str:
    kinds = sorted({f.kind for f in s.flags if f.kind != "unpriced"})
    return ",".join(kinds)


COLUMNS: tuple[Column, ...] = (
    Column("agent", "agent", lambda s, _: s.agent, lambda s: s.agent, untrusted=True),
    Column("workflow", "workflow", lambda s, _: s.workflow, lambda s: s.workflow, untrusted=True),
    Column(
        "principal", "principal", lambda s, _: s.principal, lambda s: s.principal, untrusted=True
    ),
    Column(
        "tenant", "tenant", lambda s, _: s.tenant or "-", lambda s: s.tenant or "", untrusted=True
    ),
    Column("status", "status", lambda s, _: s.status, lambda s: s.status),
    Column("loops", "loops", lambda s, _: str(s.loops), lambda s: s.loops),
    Column("tools", "tools", lambda s, _: str(s.tool_calls), lambda s: s.tool_calls),
    Column(
        "consec",
        "consec",
        lambda s, _: str(s.consecutive_tool_calls),
        lambda s: s.consecutive_tool_calls,
    ),
    Column("retries", "retries", lambda s, _: str(s.retries), lambda s: s.retries),
    Column(
        "tokens",
        "tokens in/out",
        lambda s, _: f"{fmt.count(s.tokens_in)}/{fmt.count(s.tokens_out)}",
        lambda s: s.tokens_in + s.tokens_out,
    ),
    Column(
        "cost",
        "cost/budget",
        lambda s, _: fmt.cost_vs_budget(s.cost_usd, s.budget.max_cost_usd_session),
        lambda s: s.cost_usd,
    ),
    Column("flags", "flags", lambda s, _: _flags(s), lambda s: len(s.flags)),
    Column(
        "age", "age", lambda s, now: fmt.age(s.started_at, now), lambda s: -s.started_at.timestamp()
    ),
    Column("id", "session", lambda s, _: s.id, lambda s: s.id, untrusted=True),
)
COLUMN_KEYS: tuple[str, ...] = tuple(c.key for c in COLUMNS)
BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cells(summary: SessionSummary, now: datetime) -> tuple[str, ...]:
    return tuple(_cut(column.cell(summary, now), column.width) for column in COLUMNS)


def matches(summary: SessionSummary, needle: str) -> bool:
    """`/` filter: every word must appear in agent, workflow, principal, tenant, status,
    flags or id (case-insensitive), so `pw-reset killed` narrows as expected."""
    if not needle.strip():
        return True
    haystack = " ".join(
        (
            summary.agent,
            summary.workflow,
            summary.principal,
            summary.tenant or "",
            summary.status,
            _flags(summary),
            summary.id,
        )
    ).lower()
    return all(word in haystack for word in needle.lower().split())


def sort_key(column: str) -> Callable[[SessionSummary], Any]:
    """Ties break on the session id so the order is total and stable between redraws."""
    by = BY_KEY[column].sort
    return lambda s: (by(s), s.agent, s.id)
