"""The records DB schema, versioned like the governance DB's: each step runs once, in order,
in its own transaction with its bookkeeping. Never edit a shipped step; add a new one.

Sessions keep their queryable audit fields as columns and everything else as one JSON
`data` text. A session's spans are one JSON array (`span_lists`, keyed by the session's
integer id): spans are only ever read, replaced and deleted with their session, and one row
costs the writer a fifth of what ten span rows did (v2). The `spans` view gives them back
as rows, with the v1 columns, for anyone querying with SQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

from pydantic import ValidationError

from ..governance.migrations import Migration, run_migrations
from ..protocol.text import validation_line
from .errors import RecordsProblem

APPLICATION = "agentops-records"

#: Session fields stored as columns (the rest of the record goes into `data`).
SESSION_COLUMNS = (
    "agent",
    "session_id",
    "agent_version",
    "tenant",
    "workflow",
    "principal",
    "trace_id",
    "started_at",
    "ended_at",
    "last_event_at",
    "status",
    "final_outcome",
    "tokens_in",
    "tokens_out",
    "cost_usd",
)
#: Span fields that were columns of v1's `spans` table, and are the `spans` view's now.
SPAN_COLUMNS = (
    "span_id",
    "parent_span_id",
    "kind",
    "name",
    "tool_name",
    "policy_decision",
    "outcome",
    "started_at",
    "latency_ms",
    "token_in",
    "token_out",
    "estimated_cost_usd",
)


def _db(conn: sqlite3.Connection) -> Any:
    import sqlite_utils

    return sqlite_utils.Database(conn, recursive_triggers=False)


def _v1_sessions_spans_gaps(conn: sqlite3.Connection) -> None:
    db = _db(conn)
    db.create_table("meta", {"key": str, "value": str}, pk="key", not_null={"value"})
    columns: dict[str, Any] = {"id": int}
    columns.update({c: str for c in SESSION_COLUMNS})
    columns.update(
        {
            "tokens_in": int,
            "tokens_out": int,
            "cost_usd": float,
            "final": int,
            "span_count": int,
            "flag_kinds": str,
            "recorded_at": str,
            "data": str,
        }
    )
    db.create_table(
        "sessions",
        columns,
        pk="id",
        not_null={
            "agent",
            "session_id",
            "agent_version",
            "workflow",
            "principal",
            "started_at",
            "last_event_at",
            "status",
            "final_outcome",
            "final",
            "span_count",
            "flag_kinds",
            "recorded_at",
            "data",
        },
    )
    sessions = db["sessions"]
    sessions.create_index(["agent", "session_id"], index_name="sessions_key", unique=True)
    sessions.create_index(["started_at"], index_name="sessions_started")
    sessions.create_index(["agent", "started_at"], index_name="sessions_agent_started")
    span_columns: dict[str, Any] = {"session": int, "idx": int}
    span_columns.update({c: str for c in SPAN_COLUMNS})
    span_columns.update(
        {
            "latency_ms": float,
            "token_in": int,
            "token_out": int,
            "estimated_cost_usd": float,
            "data": str,
        }
    )
    db.create_table(
        "spans",
        span_columns,
        pk=("session", "idx"),
        not_null={"session", "idx", "span_id", "kind", "name", "outcome", "started_at", "data"},
    )
    db.create_table(
        "gaps",
        {
            "id": int,
            "agent": str,
            "from_seq": int,
            "to_seq": int,
            "noticed_at": str,
            "filled": int,
            "filled_at": str,
        },
        pk="id",
        not_null={"agent", "from_seq", "to_seq", "noticed_at", "filled"},
        defaults={"filled": 0},
    )
    db["gaps"].create_index(["agent", "from_seq"], index_name="gaps_agent")
    db.create_table(
        "stream_positions",
        {"agent": str, "last_seq": int, "last_event_at": str, "updated_at": str},
        pk="agent",
        not_null={"agent", "last_seq", "updated_at"},
    )


def _span_view_sql() -> str:
    """`spans` as rows (v1's columns) over the JSON arrays: for ad-hoc SQL, not for the
    store, which reads a session's array whole."""
    columns = ",\n  ".join(f"json_extract(j.value, '$.{c}') AS {c}" for c in SPAN_COLUMNS)
    return (
        "CREATE VIEW spans AS SELECT\n  l.session AS session,\n  CAST(j.key AS INTEGER) AS idx,"
        f"\n  {columns},\n  j.value AS data\nFROM span_lists AS l, json_each(l.spans) AS j"
    )


def _v1_span(row: tuple[Any, ...]) -> dict[str, Any]:
    """A v1 span row (session, idx, columns, data) as the span's record fields."""
    span = json.loads(row[-1])
    if not isinstance(span, dict):
        raise ValueError(f"its data is JSON {type(span).__name__}, not an object")
    span.update((k, v) for k, v in zip(SPAN_COLUMNS, row[2:-1], strict=True) if v is not None)
    return span


def _v2_span_lists(conn: sqlite3.Connection) -> None:
    """v1's span rows become one JSON array per session, streamed a session at a time.

    Each array goes through the record's span model and its serializer, so it holds the
    very bytes the v2 writer would (field order, `...Z` times; v1's `started_at` column
    was `+00:00` text) and a session upgraded reads, merges and shows in the `spans` view
    like one written since. A span that is not a record's (its data not JSON, a field of
    the wrong type) stops the upgrade with one line naming it: the transaction is rolled
    back and the file stays v1, nothing lost."""
    from pydantic import TypeAdapter

    from ..protocol.records import SpanRecord

    spans_of = TypeAdapter(list[SpanRecord])
    conn.execute("CREATE TABLE span_lists (session INTEGER PRIMARY KEY, spans TEXT NOT NULL)")
    rows = conn.execute(
        f"SELECT session, idx, {', '.join(SPAN_COLUMNS)}, data FROM spans ORDER BY session, idx"
    )

    def array(session: int, group: Iterable[tuple[Any, ...]]) -> tuple[int, str]:
        idx = 0
        try:
            fields = []
            for row in group:
                idx = int(row[1])
                fields.append(_v1_span(row))
            spans = spans_of.validate_python(fields)
        except ValueError as exc:  # JSONDecodeError and ValidationError are ValueErrors
            if isinstance(exc, ValidationError) and exc.errors():
                loc = exc.errors()[0]["loc"]
                idx = int(loc[0]) if loc else idx
                why = validation_line(exc, "span", skip=1)
            elif isinstance(exc, json.JSONDecodeError):
                why = f"its data is not JSON ({exc.msg} at character {exc.pos})"
            else:
                why = str(exc).splitlines()[0]
            raise RecordsProblem(
                f"cannot upgrade to records schema v2: {_named(conn, session)}, span {idx}:"
                f" {why}; the file is left as it was (v1)"
            ) from None
        return session, spans_of.serializer.to_json(spans, exclude_none=True).decode()

    lists = (array(session, group) for session, group in groupby(rows, key=itemgetter(0)))
    while chunk := list(islice(lists, 500)):
        conn.executemany("INSERT INTO span_lists (session, spans) VALUES (?, ?)", chunk)
    conn.execute("DROP TABLE spans")
    conn.execute(_span_view_sql())


def _named(conn: sqlite3.Connection, session: int) -> str:
    """A session row as a person finds it: its agent and id (else the row id)."""
    row = conn.execute("SELECT agent, session_id FROM sessions WHERE id = ?", (session,)).fetchone()
    return f"session row {session}" if row is None else f"session {row[1]} of agent {row[0]}"


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, spans, stream gaps and positions", _v1_sessions_spans_gaps),
    Migration(2, "a session's spans as one JSON array", _v2_span_lists),
)
LATEST = MIGRATIONS[-1].version


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the missing steps, each in its own BEGIN IMMEDIATE (autocommit connection), so
    two processes creating the DB at once apply each step once."""
    return run_migrations(conn, MIGRATIONS, APPLICATION)
