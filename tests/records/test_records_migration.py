"""The records DB's v1 -> v2 upgrade (a session's spans as one JSON array) on a real file
written in v1's layout, and the `spans` view that keeps v1's span columns for SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from agentops_console.governance.migrations import run_migrations
from agentops_console.protocol.records import SessionRecord, load_jsonl
from agentops_console.records import schema
from agentops_console.records.store import RECORDED_AT, open_store, session_row, utc_text

SAMPLE = Path(__file__).parents[2] / "fixtures" / "records" / "demo-fleet.jsonl"


def _v1_span_rows(record: SessionRecord) -> list[tuple[Any, ...]]:
    """A session's spans as v1 wrote them: the columns, and the rest as `data`."""
    rows = []
    for idx, span in enumerate(record.spans):
        columns = [getattr(span, c) for c in schema.SPAN_COLUMNS]
        columns[schema.SPAN_COLUMNS.index("started_at")] = utc_text(span.started_at)
        data = span.model_dump_json(exclude=set(schema.SPAN_COLUMNS), exclude_none=True)
        rows.append((idx, *columns, data))
    return rows


def _v1_db(path: Path, records: list[SessionRecord]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    run_migrations(conn, schema.MIGRATIONS, schema.APPLICATION, target=1)
    cols = ", ".join(schema.SESSION_COLUMNS)
    marks = ", ".join("?" * (len(schema.SESSION_COLUMNS) + 6))
    span_marks = ", ".join("?" * (len(schema.SPAN_COLUMNS) + 3))
    conn.execute("BEGIN")
    for n, record in enumerate(records, 1):
        values, _ = session_row(record)
        values[RECORDED_AT] = "2025-06-02T09:00:00.000000+00:00"
        conn.execute(
            f"INSERT INTO sessions (id, {cols}, final, span_count, flag_kinds, recorded_at, data)"
            f" VALUES ({marks})",
            (n, *values),
        )
        conn.executemany(
            f"INSERT INTO spans (session, idx, {', '.join(schema.SPAN_COLUMNS)}, data)"
            f" VALUES ({span_marks})",
            [(n, *row) for row in _v1_span_rows(record)],
        )
    conn.execute("COMMIT")
    conn.close()


def test_a_v1_db_is_upgraded_in_place_and_reads_back_equal(tmp_path: Path) -> None:
    records = list(load_jsonl(SAMPLE))
    path = tmp_path / "records.db"
    _v1_db(path, records)
    spans_before = sum(len(r.spans) for r in records)
    with open_store(path, writer=True) as store:
        assert store.schema_version() == 2
        for record in records:
            assert store.get(record.session_id, agent=record.agent) == record
        # the view gives v1's rows back: one per span, same columns
        assert store.conn.execute("SELECT count(*) FROM spans").fetchone()[0] == spans_before
        tools = store.conn.execute(
            "SELECT tool_name, policy_decision, token_in FROM spans"
            " WHERE session = 1 AND kind = 'tool' ORDER BY idx"
        ).fetchall()
        first = records[0]
        assert tools == [
            (s.tool_name, s.policy_decision, s.token_in) for s in first.spans if s.kind == "tool"
        ]
        # and an upgraded row takes a more complete copy like any other
        running = records[1].model_copy(update={"spans": records[1].spans[:1]})
        assert store.write([running]).kept == 1
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "span_lists" in tables


def test_the_spans_view_has_v1s_columns(tmp_path: Path) -> None:
    records = list(load_jsonl(SAMPLE))[:20]
    with open_store(tmp_path / "records.db", writer=True, create=True) as store:
        store.write(records)
        got = store.conn.execute(
            f"SELECT session, idx, {', '.join(schema.SPAN_COLUMNS)} FROM spans"
            " ORDER BY session, idx"
        ).fetchall()
    want = []
    for n, record in enumerate(sorted(records, key=lambda r: r.started_at), 1):
        for idx, span in enumerate(record.spans):
            values = [getattr(span, c) for c in schema.SPAN_COLUMNS]
            at = schema.SPAN_COLUMNS.index("started_at")
            values[at] = span.started_at.isoformat().replace("+00:00", "Z")
            want.append((n, idx, *values))
    assert sorted(got) == sorted(want)
