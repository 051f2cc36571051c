"""The sessions view's columns: what each cell says, how rows sort, what `/` matches.

Kept apart from the widget (and from Textual) so the table logic is plain functions a
test can call, and so the widget compares raw values before it builds any Text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..protocol.models import FLAG_KINDS, SessionSummary
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
    #: Kept on a narrow terminal in this order (1 first); `ESSENTIAL` ones are never
    #: dropped, only cut (down to `min_width`) when even they do not fit.
    priority: int = 99
    min_width: int = 0


#: What an operator acts on: status, flags, cost vs budget, workflow, session.
ESSENTIAL = 5

_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_KIND_ORDER = {kind: n for n, kind in enumerate(FLAG_KINDS)}


def flag_kinds(s: SessionSummary) -> list[str]:
    """The session's flag kinds, each once, the most severe first (then in the order
    the protocol lists them, which puts a runaway loop before its consequences)."""
    rank: dict[str, int] = {}
    for f in s.flags:
        if f.kind != "unpriced":
            rank[f.kind] = min(rank.get(f.kind, 9), _SEVERITY_RANK.get(f.severity, 3))
    return sorted(rank, key=lambda kind: (rank[kind], _KIND_ORDER.get(kind, 99), kind))


def flags_cell(s: SessionSummary) -> str:
    """`runaway_loop +2`: the most severe kind in full, and how many more there are
    (all of them are in the detail view and match the `/` filter)."""
    kinds = flag_kinds(s)
    if not kinds:
        return ""
    return kinds[0] if len(kinds) == 1 else f"{kinds[0]} +{len(kinds) - 1}"


def _flag_order(s: SessionSummary) -> tuple[int, int]:
    if not s.flags:  # most sessions: every column's sort value is taken per update
        return (0, 0)
    kinds = flag_kinds(s)
    worst = min((_SEVERITY_RANK.get(f.severity, 3) for f in s.flags), default=9)
    return (-(3 - worst) if kinds else 0, -len(kinds))


COLUMNS: tuple[Column, ...] = (
    Column("agent", "agent", lambda s, _: s.agent, lambda s: s.agent, True, 24, 6, 8),
    Column("workflow", "workflow", lambda s, _: s.workflow, lambda s: s.workflow, True, 24, 4, 8),
    Column("status", "status", lambda s, _: s.status, lambda s: s.status, priority=1),
    Column("flags", "flags", lambda s, _: flags_cell(s), _flag_order, priority=2),
    Column(
        "cost",
        "cost/budget",
        lambda s, _: fmt.cost_vs_budget(s.cost_usd, s.budget.max_cost_usd_session),
        lambda s: s.cost_usd,
        priority=3,
    ),
    Column("id", "session", lambda s, _: s.id, lambda s: s.id, True, 24, 5, 8),
    Column(
        "age",
        "age",
        lambda s, now: fmt.age(s.started_at, now),
        lambda s: -s.started_at.timestamp(),
        priority=7,
    ),
    Column(
        "principal",
        "principal",
        lambda s, _: s.principal,
        lambda s: s.principal,
        True,
        priority=8,
    ),
    Column("tools", "tools", lambda s, _: str(s.tool_calls), lambda s: s.tool_calls, priority=9),
    Column("loops", "loops", lambda s, _: str(s.loops), lambda s: s.loops, priority=10),
    Column(
        "tokens",
        "tokens in/out",
        lambda s, _: f"{fmt.count(s.tokens_in)}/{fmt.count(s.tokens_out)}",
        lambda s: s.tokens_in + s.tokens_out,
        priority=11,
    ),
    Column(
        "consec",
        "consec",
        lambda s, _: str(s.consecutive_tool_calls),
        lambda s: s.consecutive_tool_calls,
        priority=12,
    ),
    Column("retries", "retries", lambda s, _: str(s.retries), lambda s: s.retries, priority=13),
    Column(
        "tenant",
        "tenant",
        lambda s, _: s.tenant or "-",
        lambda s: s.tenant or "",
        True,
        priority=14,
    ),
)
COLUMN_KEYS: tuple[str, ...] = tuple(c.key for c in COLUMNS)
BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}


def fit(widths: Sequence[int], room: int, pad: int = 2) -> list[tuple[int, int]]:
    """Which columns to show in `room` cells, and how wide: (column index, width) in
    display order. Columns are taken by priority while they fit; the essential ones
    always, their agent-chosen text cut (widest first, to `min_width`) when needed."""
    chosen: dict[int, int] = {}
    used = 0
    for n in sorted(range(len(COLUMNS)), key=lambda i: COLUMNS[i].priority):
        need = widths[n] + pad
        if COLUMNS[n].priority <= ESSENTIAL or used + need <= room:
            chosen[n] = widths[n]
            used += need
    while used > room:
        cuttable = [n for n in chosen if chosen[n] > COLUMNS[n].min_width and COLUMNS[n].untrusted]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda n: (chosen[n], -COLUMNS[n].priority))
        chosen[widest] -= 1
        used -= 1
    return sorted(chosen.items())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cells(summary: SessionSummary, now: datetime) -> tuple[str, ...]:
    return tuple(_cut(column.cell(summary, now), column.width) for column in COLUMNS)


def haystack(summary: SessionSummary) -> str:
    """What `/` searches, lowercase: agent, workflow, principal, tenant, status, flags, id."""
    return " ".join(
        (
            summary.agent,
            summary.workflow,
            summary.principal,
            summary.tenant or "",
            summary.status,
            " ".join(flag_kinds(summary)),
            summary.id,
        )
    ).lower()


def matches(summary: SessionSummary, needle: str) -> bool:
    """`/` filter: every word must appear in agent, workflow, principal, tenant, status,
    flags or id (case-insensitive), so `pw-reset killed` narrows as expected."""
    if not needle.strip():
        return True
    text = haystack(summary)
    return all(word in text for word in needle.lower().split())


def sort_key(column: str) -> Callable[[SessionSummary], Any]:
    """Ties break on the session id so the order is total and stable between redraws."""
    by = BY_KEY[column].sort
    return lambda s: (by(s), s.agent, s.id)
