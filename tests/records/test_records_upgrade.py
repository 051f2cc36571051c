"""The v1 -> v2 upgrade on real v1 files, beyond the happy path: the arrays it writes are the
v2 writer's very bytes, a session without spans reads, replaces and merges, a span that is
not a record's stops the upgrade with one line and leaves the file as it was, and a reader
never upgrades the file under a running (older) writer. Real SQLite files in tmp_path,
the sample's records, the CLI through Typer's runner."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentops_console.cli.main import app
from agentops_console.protocol.records import SessionRecord, load_jsonl
from agentops_console.records.errors import RecordsProblem
from agentops_console.records.lock import WriterLock
from agentops_console.records.store import open_store, rows_of_record

from .test_records_migration import SAMPLE, _v1_db


@pytest.fixture(scope="module")
def sample() -> list[SessionRecord]:
    return list(load_jsonl(SAMPLE))[:40]


def _version_and_spans_kind(path: Path) -> tuple[int, str]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'spans'").fetchone()[0]
    finally:
        conn.close()
    return int(version), str(kind)


def test_upgraded_arrays_are_the_v2_writers_bytes(
    tmp_path: Path, sample: list[SessionRecord]
) -> None:
    """v1 kept a span's start as `+00:00` column text and the rest as `data`: an upgraded
    array must not keep that form (nor the columns-last key order), or the `spans` view
    mixes `+00:00` and `Z` times and upgraded rows differ from every row written since."""
    path = tmp_path / "records.db"
    _v1_db(path, sample)
    with open_store(path, writer=True) as store:
        stored = dict(store.conn.execute("SELECT session, spans FROM span_lists"))
        starts = [r[0] for r in store.conn.execute("SELECT started_at FROM spans")]
    for n, record in enumerate(sample, 1):
        # (a session without spans had no v1 rows, so it has no array: read as none)
        assert stored.get(n, "[]") == rows_of_record(record).spans, record.session_id
    assert starts and all(s.endswith("Z") for s in starts)


def test_a_v1_session_without_spans_reads_replaces_and_merges(
    tmp_path: Path, sample: list[SessionRecord]
) -> None:
    """v1 had no span row for it, so v2 has no span_lists row: every reader and writer
    copes (the view shows none, a fuller copy replaces it, a later run merges onto it)."""
    full, other = sample[0], sample[1]
    assert full.final and full.ended_at is not None and full.spans
    bare = full.model_copy(update={"spans": []})
    path = tmp_path / "records.db"
    _v1_db(path, [bare, other.model_copy(update={"spans": []})])
    with open_store(path, writer=True) as store:
        assert store.conn.execute("SELECT count(*) FROM span_lists").fetchone()[0] == 0
        assert store.get(bare.session_id, agent=bare.agent) == bare
        assert store.conn.execute("SELECT count(*) FROM spans").fetchone()[0] == 0
        assert [r.spans for r in store.query(spans=True)] == [[], []]
        # a later run (a new session object under the same id) merges onto no spans
        gap = full.ended_at - full.started_at + timedelta(hours=1)
        later = full.model_copy(
            update={
                "started_at": full.started_at + gap,
                "ended_at": full.ended_at + gap,
                "last_event_at": full.last_event_at + gap,
            }
        )
        assert store.write([later]).merged == 1
        merged = store.get(full.session_id, agent=full.agent)
        offset = bare.counters.loops
        assert [(s.span_id, s.loop) for s in merged.spans] == [
            (s.span_id, s.loop + offset) for s in later.spans
        ]
        # a fuller copy of a span-less running row replaces it, spans and all
        running = other.model_copy(update={"status": "running", "ended_at": None, "spans": []})
        store.conn.execute(
            "UPDATE sessions SET final = 0, status = 'running', ended_at = NULL"
            " WHERE session_id = ?",
            (other.session_id,),
        )
        assert store.get(other.session_id, agent=other.agent) == running
        assert store.write([other]).replaced == 1
        assert store.get(other.session_id, agent=other.agent) == other


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("data", "{not json", "span 1: its data is not JSON"),
        ("data", "[1, 2]", "span 1: its data is JSON list, not an object"),
        ("kind", "bogus", "span 1: kind: Input should be"),
    ],
)
def test_a_span_that_is_not_a_records_stops_the_upgrade_with_one_line(
    tmp_path: Path, sample: list[SessionRecord], column: str, value: str, says: str
) -> None:
    path = tmp_path / "records.db"
    _v1_db(path, sample[:3])
    victim = sample[1]
    assert len(victim.spans) > 1
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"UPDATE spans SET {column} = ? WHERE session = 2 AND idx = 1", (value,))
    conn.close()
    with pytest.raises(RecordsProblem) as caught:
        open_store(path, writer=True)
    message = str(caught.value)
    assert "\n" not in message
    assert f"session {victim.session_id} of agent {victim.agent}, {says}" in message
    assert message.startswith(f"{path}: cannot upgrade to records schema v2")
    assert _version_and_spans_kind(path) == (1, "table")  # rolled back: still v1, intact
    result = CliRunner().invoke(app, ["sessions", "list", "--records", str(path)])
    assert result.exit_code == 6
    assert "Traceback" not in result.stdout + result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_reader_never_upgrades_the_file_under_a_running_writer(
    tmp_path: Path, sample: list[SessionRecord]
) -> None:
    """A writer holding a v1 file runs an older agentops (this one upgrades on open): a
    reader that upgraded it would turn the old writer's `spans` table into a view and fail
    its every write. The reader refuses with one line; once the writer is gone, it upgrades."""
    path = tmp_path / "records.db"
    _v1_db(path, sample[:2])
    old_writer = WriterLock(path)  # what the older watcher holds while it runs
    old_writer.acquire()
    try:
        with pytest.raises(RecordsProblem) as caught:
            open_store(path)
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message and "\n" not in message
        assert "has records schema v1 and its writer is running" in message
        result = CliRunner().invoke(app, ["sessions", "list", "--records", str(path)])
        assert result.exit_code == 6 and "its writer is running" in result.stderr
        assert _version_and_spans_kind(path) == (1, "table")  # the old writer's table
    finally:
        old_writer.release()
    with open_store(path) as store:  # no writer: a reader upgrades, and lets go of the lock
        assert store.schema_version() == 2
        assert store.count() == 2
    with open_store(path, writer=True) as store:
        assert store.writer
