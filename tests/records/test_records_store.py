"""The records store on real SQLite files: idempotent upserts, queries, the single-writer
rule, and one-line errors for files that are not a records DB."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from agentops_console.governance.clock import iso
from agentops_console.protocol.records import SessionRecord, load_jsonl
from agentops_console.records import schema
from agentops_console.records.errors import (
    AmbiguousSession,
    RecordsProblem,
    SessionNotFound,
    WriterBusy,
)
from agentops_console.records.store import Filters, RecordsStore, open_store

from .live import shifted


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordsStore]:
    s = open_store(tmp_path / "records.db", writer=True, create=True)
    yield s
    s.close()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def test_round_trip_from_a_live_runtime(
    store: RecordsStore, live_records: dict[str, SessionRecord]
) -> None:
    result = store.write(live_records.values())
    assert (result.inserted, result.replaced, result.kept) == (4, 0, 0)
    for record in live_records.values():
        assert store.get(record.session_id) == record
    assert [r.session_id for r in store.query()] == [
        "s-killed",
        "s-approved",
        "s-denied",
        "s-ordinary",
    ]
    assert all(r.spans == [] for r in store.query())  # list reads no spans


def test_writing_the_same_session_twice_keeps_one_row(
    store: RecordsStore, live_records: dict[str, SessionRecord]
) -> None:
    record = live_records["ordinary"]
    store.write([record])
    again = store.write([record, record])
    assert (again.inserted, again.replaced, again.kept) == (0, 0, 2)
    assert _rows(store.path, "SELECT count(*) FROM sessions") == [(1,)]
    assert _rows(store.path, "SELECT count(*) FROM spans") == [(2,)]


def test_partial_then_complete_copy_replaces_and_not_the_reverse(
    store: RecordsStore, live_records: dict[str, SessionRecord]
) -> None:
    complete = live_records["ordinary"]
    partial = complete.model_copy(
        update={
            "status": "running",
            "ended_at": None,
            "spans": complete.spans[:1],
            "last_event_at": complete.started_at,
        }
    )
    store.write([partial])
    assert len(store.get(complete.session_id).spans) == 1
    assert store.write([complete]).replaced == 1
    assert store.get(complete.session_id) == complete
    late = store.write([partial])  # an in-flight copy arriving after the final one
    assert late.kept == 1 and store.get(complete.session_id) == complete
    # both in one batch, in either order: the complete copy wins
    store2 = open_store(store.path.with_name("other.db"), writer=True, create=True)
    with store2:
        store2.write([complete, partial])
        assert store2.get(complete.session_id) == complete
    assert _rows(store.path, "SELECT count(*) FROM spans") == [(2,)]


def test_batches_of_any_size_write_the_same(
    tmp_path: Path, live_records: dict[str, SessionRecord]
) -> None:
    base = list(live_records.values())
    many = [shifted(r, days=d) for d in range(1, 51) for r in base]
    for size in (1, 7, 1000):
        with open_store(tmp_path / f"b{size}.db", writer=True, create=True) as s:
            assert s.write(many, batch_size=size).inserted == len(many)
            assert s.count() == len(many)
            assert s.get(many[-1].session_id) == many[-1]


def test_filters(store: RecordsStore, live_records: dict[str, SessionRecord]) -> None:
    old = shifted(live_records["ordinary"], days=10).model_copy(update={"agent_version": "1.3.2"})
    store.write([*live_records.values(), old])

    def ids(**kw: object) -> list[str]:
        return [r.session_id for r in store.query(Filters(**kw))]  # type: ignore[arg-type]

    assert ids(version="1.3.2") == [old.session_id]
    assert ids(outcome="failed") == ["s-killed"]
    assert ids(flag="killed") == ["s-killed"]
    assert ids(flag="kill") == []  # whole kinds only
    assert ids(workflow="crm") == ["s-denied"]
    assert ids(principal="user-3310") == ["s-approved"]
    assert ids(agent="billing") == []
    cutoff = live_records["ordinary"].started_at - timedelta(days=1)
    assert ids(until=cutoff) == [old.session_id]
    assert old.session_id not in ids(since=cutoff)
    assert ids(limit=2) == ["s-killed", "s-approved"]
    oldest_first = [r.session_id for r in store.query(Filters(limit=2), newest_first=False)]
    assert oldest_first == ["s-approved", "s-killed"]


def test_get_unknown_and_ambiguous(
    store: RecordsStore, live_records: dict[str, SessionRecord]
) -> None:
    record = live_records["ordinary"]
    store.write([record, record.model_copy(update={"agent": "billing"})])
    with pytest.raises(AmbiguousSession, match=r"billing, it-support.*--agent"):
        store.get(record.session_id)
    assert store.get(record.session_id, agent="billing").agent == "billing"
    with pytest.raises(SessionNotFound, match="no recorded session nope"):
        store.get("nope")


def test_gaps_and_stream_positions_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    with open_store(path, writer=True, create=True) as s:
        gap = s.record_gap("it-support", 10, 42)
        s.record_gap("billing", 3, 3)
        s.set_position("it-support", 41, "2025-05-01T09:30:00+00:00")
        s.set_position("it-support", 99, "2025-05-01T09:31:00+00:00")
        s.fill_gap(gap)
    with open_store(path) as s:
        [filled] = s.gaps(agent="it-support")
        assert (filled.from_seq, filled.to_seq, filled.filled) == (10, 42, True)
        assert [g.agent for g in s.gaps(filled=False)] == ["billing"]
        position = s.position("it-support")
        assert position is not None and position.last_seq == 99
        assert s.position("research") is None


def test_a_reader_cannot_write(tmp_path: Path, live_records: dict[str, SessionRecord]) -> None:
    path = tmp_path / "records.db"
    open_store(path, writer=True, create=True).close()
    with open_store(path) as reader, pytest.raises(RecordsProblem, match="read-only"):
        reader.write([live_records["ordinary"]])


def test_second_writer_refuses_while_readers_read(
    tmp_path: Path, live_records: dict[str, SessionRecord]
) -> None:
    path = tmp_path / "records.db"
    with open_store(path, writer=True, create=True) as first:
        first.write([live_records["ordinary"]])
        with pytest.raises(WriterBusy) as err:
            open_store(path, writer=True)
        assert str(err.value).startswith(f"{path} is already being written by another process")
        assert f"pid {__import__('os').getpid()}" in str(err.value)
        with open_store(path) as reader:
            assert reader.count() == 1
    with open_store(path, writer=True) as again:  # released on close
        assert again.count() == 1


_HOLDER = """
import sys, time
from agentops_console.records.store import open_store
store = open_store(sys.argv[1], writer=True, create=True)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_with_sigkill_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(WriterBusy, match=f"pid {child.pid}"):
            open_store(path, writer=True)
    finally:
        child.kill()
        child.wait(10)
    deadline = time.monotonic() + 5
    while True:
        try:
            open_store(path, writer=True).close()
            break
        except WriterBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_missing_empty_corrupt_and_foreign_files(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(RecordsProblem, match=r"no records database at .*none.db"):
        open_store(missing)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(RecordsProblem, match="is empty, not a records database"):
        open_store(empty)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RecordsProblem, match=r"not a records database \(not SQLite\)"):
        open_store(garbage, writer=True, create=True)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(RecordsProblem, match=r"an SQLite file but not a records database$"):
        open_store(foreign, writer=True, create=True)
    with pytest.raises(RecordsProblem, match="is a directory"):
        open_store(tmp_path)


def test_the_governance_db_is_named_as_such(tmp_path: Path) -> None:
    from agentops_console.governance.db import open_db

    open_db(tmp_path / "gov.db", create=True).close()
    with pytest.raises(RecordsProblem, match=r"\(it is an agentops-governance database\)"):
        open_store(tmp_path / "gov.db")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    open_store(path, writer=True, create=True).close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from the future', '2099-01-01')",
            (schema.LATEST + 1,),
        )
    with pytest.raises(RecordsProblem, match=f"schema v{schema.LATEST + 1}, newer than this"):
        open_store(path)
    # the refusal released the writer lock
    with pytest.raises(RecordsProblem, match="newer"):
        open_store(path, writer=True)


def test_a_failed_write_stores_nothing(
    store: RecordsStore, live_records: dict[str, SessionRecord]
) -> None:
    good = live_records["ordinary"]
    with store.conn:  # a trigger stands in for a full disk halfway through the batch
        store.conn.execute(
            "CREATE TEMP TRIGGER fail_spans BEFORE INSERT ON span_lists WHEN NEW.session = 2"
            " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )
    with pytest.raises(sqlite3.IntegrityError):
        store.write([good, live_records["denied"]])
    assert store.count() == 0 and not store.conn.in_transaction


SAMPLE = Path(__file__).parents[2] / "fixtures" / "records" / "demo-fleet.jsonl"


def test_every_sample_record_reads_back_equal(store: RecordsStore) -> None:
    """The fast row builder (columns off the model, `data` by pydantic without nulls) loses
    nothing: outcomes, reasons, input/output, flags, overrides, tool outputs."""
    records = list(load_jsonl(SAMPLE))
    assert store.write(records, batch_size=100).inserted == len(records)
    for record in records:
        assert store.get(record.session_id, agent=record.agent) == record


def test_nulls_inside_values_and_other_time_zones_survive(
    store: RecordsStore, live_records: dict[str, SessionRecord]
) -> None:
    """Null fields are left out of `data`, but a null inside arguments, outputs or
    attributes is data; a time in another zone is stored as UTC text that sorts."""
    base = live_records["ordinary"]
    plus2 = timezone(timedelta(hours=2))
    span = base.spans[0].model_copy(
        update={
            "arguments": {"a": None, "b": [None, 0, ""]},
            "tool_output": None,
            "attributes": {"x": None},
            "started_at": base.spans[0].started_at.astimezone(plus2),
        }
    )
    odd = base.model_copy(
        update={
            "session_id": "s-odd",
            "started_at": base.started_at.astimezone(plus2),
            "input": "",
            "spans": [span],
        }
    )
    store.write([odd])
    back = store.get("s-odd")
    assert back == odd
    assert back.spans[0].arguments == {"a": None, "b": [None, 0, ""]}
    assert back.input == ""
    started = _rows(store.path, "SELECT started_at FROM sessions WHERE session_id = 's-odd'")
    assert started == [(iso(odd.started_at),)] and str(started[0][0]).endswith("+00:00")
