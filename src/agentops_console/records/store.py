"""Opening a records DB, writing records idempotently in batches, and reading them back.

Writes: one transaction per batch (BEGIN IMMEDIATE, executemany), keyed by (agent,
session_id). A copy of a session replaces the stored one (row and span list) only when it is
more complete: ended beats running, then a later last event, then more spans. Otherwise the
stored copy is kept (the same copy again, or an in-flight copy arriving after the final
one). So a restarted watcher can write everything it sees again: nothing is lost and
nothing is duplicated. Only a writer (holding the single-writer lock) may write.

A later run of a conversation that the agent no longer held is a new session object under
the same id: it started after the stored copy ended. It is merged into the stored row
instead of replacing it (`merge_runs`), and the row keeps what it was before that run
(`_MERGE` in its data), so a fuller copy of the same run redoes the merge and a replay of
it changes nothing.

Times are stored as ISO-8601 UTC text with microseconds, which sorts in time order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from ..governance.clock import iso, now_iso
from ..governance.db import BUSY_TIMEOUT_S
from ..governance.migrations import current_version
from ..protocol.models import FLAGS_KEPT
from ..protocol.records import SessionRecord, SpanRecord
from . import schema
from .errors import AmbiguousSession, RecordsProblem, SessionNotFound, WriterBusy
from .lock import WriterLock

#: Keys per `IN (VALUES ...)` lookup: well under SQLite's bound-parameter limit.
_LOOKUP_CHUNK = 400
_SESSION_COLS = ", ".join(schema.SESSION_COLUMNS)
#: pydantic's serializers, called directly (skips model_dump_json's argument handling).
_SESSION_JSON = SessionRecord.__pydantic_serializer__
_SPANS_JSON = TypeAdapter(list[SpanRecord]).serializer
#: A plain set: pydantic converts a frozenset on every call.
_SESSION_DATA_EXCLUDE = {*schema.SESSION_COLUMNS, "spans"}


@dataclass(frozen=True, slots=True)
class Filters:
    """What `sessions list|export` narrow by; None means "any"."""

    agent: str | None = None
    version: str | None = None
    workflow: str | None = None
    outcome: str | None = None
    flag: str | None = None
    principal: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("agent", self.agent),
            ("agent_version", self.version),
            ("workflow", self.workflow),
            ("final_outcome", self.outcome),
            ("principal", self.principal),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.flag is not None:
            clauses.append("instr(flag_kinds, ?) > 0")
            params.append(f",{self.flag},")
        if self.since is not None:
            clauses.append("started_at >= ?")
            params.append(iso(self.since))
        if self.until is not None:
            clauses.append("started_at < ?")
            params.append(iso(self.until))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@dataclass(slots=True)
class WriteResult:
    inserted: int = 0
    replaced: int = 0
    #: Copies not more complete than the one already stored (or another in the same batch).
    kept: int = 0
    #: Later runs (new session objects under a stored id) merged into the stored row.
    merged: int = 0

    def add(self, other: WriteResult) -> None:
        self.inserted += other.inserted
        self.replaced += other.replaced
        self.kept += other.kept
        self.merged += other.merged


@dataclass(frozen=True, slots=True)
class Gap:
    id: int
    agent: str
    from_seq: int
    to_seq: int
    noticed_at: str
    filled: bool
    filled_at: str | None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    agent: str
    last_seq: int
    last_event_at: str | None
    updated_at: str


@dataclass(slots=True)
class _Rows:
    """One batch turned into rows, ready for executemany."""

    inserts: list[tuple[Any, ...]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)
    #: (session, its spans' JSON array): written whole, replacing what was stored.
    spans: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Held:
    """What `_stored` knows of a stored row, from its columns (and, for a merged row, the
    start of its last run)."""

    id: int
    rank: tuple[int, datetime, int]
    ended_at: datetime | None
    #: A merged row's last run's start, else None.
    last_run: datetime | None


def utc_text(moment: datetime) -> str:
    """`iso()` for an aware time, skipping the conversion when it is already in UTC."""
    if moment.tzinfo is UTC:
        return moment.isoformat(timespec="microseconds")
    return iso(moment)


def session_row(record: SessionRecord) -> tuple[list[Any], str]:
    """(session column values + final, span_count, flag_kinds, recorded_at, data; the spans
    as one JSON array). The split between columns and `data` is schema.py's; recorded_at is
    None here: write_batch sets it when the row is written.

    Columns are read straight off the model and `data` is serialized once by pydantic's
    own (Rust) JSON encoder with the columns left out: no intermediate dict, no second
    pass through the stdlib encoder (about 3x faster than dump-then-json.dumps). Null
    fields are left out of `data` (every nullable field defaults to null, so reading back
    gives the same record; nulls inside arguments and outputs are kept): a third less to
    write.
    """
    ended = record.ended_at
    kinds = ",".join(flag.kind for flag in record.flags)
    values: list[Any] = [
        record.agent,
        record.session_id,
        record.agent_version,
        record.tenant,
        record.workflow,
        record.principal,
        record.trace_id,
        utc_text(record.started_at),
        None if ended is None else utc_text(ended),
        utc_text(record.last_event_at),
        record.status,
        record.final_outcome,
        record.tokens_in,
        record.tokens_out,
        record.cost_usd,
        int(record.final),
        len(record.spans),
        f",{kinds}," if kinds else "",
        None,
        _SESSION_JSON.to_json(record, exclude=_SESSION_DATA_EXCLUDE, exclude_none=True).decode(),
    ]
    return values, _SPANS_JSON.to_json(record.spans, exclude_none=True).decode()


@dataclass(slots=True)
class SessionRows:
    """One session as rows, ready to write: the `sessions` row's values (the columns, final,
    span_count, flag_kinds, recorded_at, data; recorded_at is set when written) and its
    spans as one JSON array (`span_lists`). From a record (`rows_of_record`) or straight
    from an agent's JSON (records/wire_rows.py, the watcher's fast path)."""

    agent: str
    session_id: str
    final: bool
    #: The last event's time as the column holds it, for the completeness rank.
    last_event_at: str
    values: list[Any]
    #: The spans' record fields, a JSON array (null fields left out).
    spans: str

    def completeness(self) -> tuple[int, datetime, int]:
        """SessionRecord.completeness of the record these rows hold."""
        last = datetime.fromisoformat(self.last_event_at)
        return (int(self.final), last, int(self.values[_SPAN_COUNT]))


#: Index of recorded_at in SessionRows.values.
RECORDED_AT = len(schema.SESSION_COLUMNS) + 3
_LAST_EVENT_AT = schema.SESSION_COLUMNS.index("last_event_at")
_STARTED_AT = schema.SESSION_COLUMNS.index("started_at")
_SPAN_COUNT = len(schema.SESSION_COLUMNS) + 1
_DATA = len(schema.SESSION_COLUMNS) + 4
#: The key of a merged row's `data` that keeps the row as it was before its last run: not
#: a record field (a reader ignores it), only what redoing that run's merge needs.
_MERGE = "_merge"


def rows_of_record(record: SessionRecord) -> SessionRows:
    values, spans = session_row(record)
    last = values[_LAST_EVENT_AT]
    return SessionRows(record.agent, record.session_id, record.final, last, values, spans)


def _rank(final: int, last_event_at: str, spans: int) -> tuple[int, datetime, int]:
    return (final, datetime.fromisoformat(last_event_at), spans)


_Copy = SessionRecord | SessionRows
#: One pass of a batch: at most one copy per (agent, session_id), with its start and rank.
_Wave = dict[tuple[str, str], tuple[datetime, tuple[int, datetime, int], _Copy]]


def _started(record: _Copy) -> datetime:
    if isinstance(record, SessionRows):
        return datetime.fromisoformat(record.values[_STARTED_AT])
    return record.started_at


def _rows_of(record: _Copy) -> SessionRows:
    return record if isinstance(record, SessionRows) else rows_of_record(record)


def _fields(columns: Sequence[Any], data: str) -> dict[str, Any]:
    """A session's record fields (JSON values, no spans) from its columns and data."""
    fields: dict[str, Any] = json.loads(data)
    fields.update(zip(schema.SESSION_COLUMNS, columns, strict=True))
    return fields


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _joined_spans(stored: str | None, kept: int, later: str, offset: int) -> str:
    """The first `kept` stored spans, then a later run's with their loop numbers moved past
    the earlier runs' loops (ASCII JSON: any text the decoder let through stays writable)."""
    spans: list[dict[str, Any]] = json.loads(stored)[:kept] if stored else []
    for span in json.loads(later):
        span["loop"] = int(span.get("loop", 0)) + offset
        spans.append(span)
    return json.dumps(spans, separators=(",", ":"))


#: Counters that add up over runs; consecutive_tool_calls is a streak a new object restarts.
_SUMMED_COUNTERS = ("loops", "tool_calls", "retries", "unauthorized_attempts")


def merge_runs(first: Mapping[str, Any], later: Mapping[str, Any]) -> dict[str, Any]:
    """One record's fields (JSON values, no spans) from the runs so far (`first`) and a
    later run that was a new session object under the same id, as the runtime would have
    kept a re-opened session (docs/records.md, "A later run of a conversation"): who, what
    and the start from the first; status, end and outcome from the later run; usage,
    counters and flags added up."""
    merged = dict(first)
    for name in (
        "agent_version",
        "ended_at",
        "status",
        "final_outcome",
        "outcome_reason",
        "budget",
        "loop_cost_usd",
    ):
        merged[name] = later.get(name)
    merged["last_event_at"] = max(
        (first["last_event_at"], later["last_event_at"]), key=datetime.fromisoformat
    )
    for name in ("tenant", "trace_id", "input"):
        merged[name] = first.get(name) if first.get(name) is not None else later.get(name)
    for name in ("output", "killed", "policy_version"):
        merged[name] = later.get(name) if later.get(name) is not None else first.get(name)
    for name in ("tokens_in", "tokens_out", "cost_usd"):
        merged[name] = first.get(name, 0) + later.get(name, 0)
    counters: dict[str, Any] = dict(later.get("counters") or {})
    earlier: Mapping[str, Any] = first.get("counters") or {}
    for name in _SUMMED_COUNTERS:
        counters[name] = earlier.get(name, 0) + counters.get(name, 0)
    merged["counters"] = counters
    flags = list(first.get("flags") or [])
    flags += [f for f in later.get("flags") or [] if f not in flags]
    merged["flags"] = flags[-FLAGS_KEPT:]  # the newest, as the runtime keeps them
    return {k: v for k, v in merged.items() if v is not None}


class RecordsStore:
    """One connection to one records DB. Not thread-safe: one per thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: WriterLock | None) -> None:
        self.conn = conn
        self.path = path
        self._lock = lock

    @property
    def writer(self) -> bool:
        return self._lock is not None

    def close(self) -> None:
        self.conn.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RecordsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write, all or nothing; a failed write (disk full, I/O) is a RecordsProblem."""
        if self._lock is None:
            raise RecordsProblem(f"{self.path} was opened read-only; writes need the writer lock")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise RecordsProblem(f"{self.path}: cannot start a write: {exc}") from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise RecordsProblem(f"{self.path}: write failed, nothing stored: {exc}") from None
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    # -- writing sessions ------------------------------------------------------------------
    def write(self, records: Iterable[SessionRecord], batch_size: int = 1000) -> WriteResult:
        """Upsert records, `batch_size` per transaction."""
        total = WriteResult()
        batch: list[SessionRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                total.add(self.write_batch(batch))
                batch = []
        if batch:
            total.add(self.write_batch(batch))
        return total

    def write_batch(
        self,
        records: Sequence[SessionRecord | SessionRows],
        positions: Mapping[str, tuple[int, str | None]] | None = None,
    ) -> WriteResult:
        """Upsert one batch in one transaction; `positions` (agent -> (last_seq,
        last_event_at)) are stored in the same transaction, so a stream position never
        claims records that were not written. Records may come as rows already.

        Copies of one session object (same id, same start) are ranked and the best one is
        written; several runs of one id in a batch (objects with different starts) are
        written in start order, one pass each, so each later run merges into the row the
        earlier one left."""
        result = WriteResult()
        best: dict[tuple[str, str, datetime], tuple[tuple[int, datetime, int], _Copy]] = {}
        for record in records:
            key = (record.agent, record.session_id, _started(record))
            rank = record.completeness()
            held = best.get(key)
            if held is not None:
                result.kept += 1
                if rank < held[0]:
                    continue
            best[key] = (rank, record)
        if not best and not positions:
            return result
        ordered = list(best.items())
        if len(ordered) != len({key[:2] for key in best}):  # several runs of an id
            ordered.sort(key=lambda item: item[0][2])
        waves: list[_Wave] = [{}]
        for (agent, session_id, started), (rank, record) in ordered:
            for wave in waves:
                if (agent, session_id) not in wave:
                    break
            else:
                wave = {}
                waves.append(wave)
            wave[(agent, session_id)] = (started, rank, record)
        with self.transaction() as conn:
            for agent, (last_seq, last_event_at) in (positions or {}).items():
                _upsert_position(conn, agent, last_seq, last_event_at)
            next_id = int(
                conn.execute("SELECT coalesce(max(id), 0) + 1 FROM sessions").fetchone()[0]
            )
            now = now_iso()
            for wave in waves:
                if wave:
                    next_id = self._write_wave(conn, wave, next_id, now, result)
        return result

    def _write_wave(
        self,
        conn: sqlite3.Connection,
        wave: _Wave,
        next_id: int,
        now: str,
        result: WriteResult,
    ) -> int:
        """One copy per key: insert, replace, merge a later run, or keep what is stored."""
        stored = self._stored(conn, list(wave))
        rows = _Rows()
        for key, (started, rank, record) in wave.items():
            old = stored.get(key)
            if old is None:
                made = _rows_of(record)
                made.values[RECORDED_AT] = now
                rows.inserts.append((next_id, *made.values))
                rows.spans.append((next_id, made.spans))
                next_id += 1
                result.inserted += 1
                continue
            if old.rank[0]:  # stored final: is this a later run, or a run already merged?
                # (a copy read at a kill is final before its end: its last event then)
                later = rank[0] and started > (old.ended_at or old.rank[1])
                if later or (old.last_run is not None and started == old.last_run):
                    made = _rows_of(record)
                    if self._merge(conn, old, made, rank, redo=not later, rows=rows, now=now):
                        result.merged += 1
                    else:
                        result.kept += 1
                    continue
                if old.last_run is not None:  # a copy of an earlier run of a merged row
                    result.kept += 1
                    continue
            if rank <= old.rank:
                result.kept += 1
                continue
            made = _rows_of(record)
            made.values[RECORDED_AT] = now
            rows.updates.append((*made.values, old.id))
            rows.spans.append((old.id, made.spans))
            result.replaced += 1
        self._apply(conn, rows)
        return next_id

    def _merge(
        self,
        conn: sqlite3.Connection,
        old: _Held,
        made: SessionRows,
        rank: tuple[int, datetime, int],
        *,
        redo: bool,
        rows: _Rows,
        now: str,
    ) -> bool:
        """Merge a later run (`made`) into the stored row: onto the row as it is, or with
        `redo` (a copy of the row's last run) onto the row as it was before that run, when
        this copy is more complete than the one merged; False when there is nothing to do.
        Reads the stored row's data: only in this rare case."""
        row = conn.execute(
            f"SELECT {_SESSION_COLS}, span_count, data,"
            " (SELECT spans FROM span_lists WHERE session = sessions.id)"
            " FROM sessions WHERE id = ?",
            (old.id,),
        ).fetchone()
        *columns, span_count, data, stored_spans = row
        stored = _fields(columns, data)
        book = stored.pop(_MERGE, None)
        if redo:
            if not isinstance(book, dict):
                return False
            base, base_spans = book["base"], int(book["spans"])
            if rank <= (old.rank[0], old.rank[1], int(span_count) - base_spans):
                return False
        else:
            base, base_spans = stored, int(span_count)
        later = _fields(made.values[: len(schema.SESSION_COLUMNS)], made.values[_DATA])
        merged = SessionRecord.model_validate(merge_runs(base, later))
        values, _ = session_row(merged)
        values[_SPAN_COUNT] = base_spans + int(made.values[_SPAN_COUNT])
        values[RECORDED_AT] = now
        book = {"run_started_at": made.values[_STARTED_AT], "spans": base_spans, "base": base}
        values[_DATA] = f'{values[_DATA][:-1]},"{_MERGE}":{_dumps(book)}}}'
        rows.updates.append((*values, old.id))
        offset = int(base.get("counters", {}).get("loops", 0))
        rows.spans.append((old.id, _joined_spans(stored_spans, base_spans, made.spans, offset)))
        return True

    def _stored(
        self, conn: sqlite3.Connection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], _Held]:
        found: dict[tuple[str, str], _Held] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            values = ", ".join("(?, ?)" for _ in chunk)
            params = [part for key in chunk for part in key]
            for row in conn.execute(
                "SELECT id, agent, session_id, final, last_event_at, span_count, ended_at,"
                f" json_extract(data, '$.{_MERGE}.run_started_at') FROM sessions"
                f" WHERE (agent, session_id) IN (VALUES {values})",
                params,
            ):
                found[(row[1], row[2])] = _Held(
                    row[0],
                    _rank(row[3], row[4], row[5]),
                    None if row[6] is None else datetime.fromisoformat(row[6]),
                    None if row[7] is None else datetime.fromisoformat(row[7]),
                )
        return found

    @staticmethod
    def _apply(conn: sqlite3.Connection, rows: _Rows) -> None:
        extra = "final, span_count, flag_kinds, recorded_at, data"
        width = len(schema.SESSION_COLUMNS) + 5
        if rows.updates:
            assignments = ", ".join(
                f"{c} = ?" for c in (*schema.SESSION_COLUMNS, *extra.split(", "))
            )
            conn.executemany(f"UPDATE sessions SET {assignments} WHERE id = ?", rows.updates)
        if rows.inserts:
            marks = ", ".join("?" * (width + 1))
            conn.executemany(
                f"INSERT INTO sessions (id, {_SESSION_COLS}, {extra}) VALUES ({marks})",
                rows.inserts,
            )
        if rows.spans:
            conn.executemany(
                "INSERT OR REPLACE INTO span_lists (session, spans) VALUES (?, ?)", rows.spans
            )

    # -- reading sessions ------------------------------------------------------------------
    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def get(self, session_id: str, agent: str | None = None) -> SessionRecord:
        """One session with its spans; SessionNotFound, or AmbiguousSession when the id is
        recorded for several agents and `agent` does not say which."""
        sql = f"SELECT id, {_SESSION_COLS}, data FROM sessions WHERE session_id = ?"
        params: list[Any] = [session_id]
        if agent is not None:
            sql += " AND agent = ?"
            params.append(agent)
        rows = self.conn.execute(sql + " LIMIT 10", params).fetchall()
        if not rows:
            where = f" for agent {agent}" if agent is not None else ""
            raise SessionNotFound(f"no recorded session {session_id}{where} in {self.path}")
        if len(rows) > 1:
            agents = ", ".join(sorted(str(r[1]) for r in rows))
            raise AmbiguousSession(
                f"session {session_id} is recorded for several agents ({agents}); add --agent"
            )
        return self._record(rows[0], spans=True)

    def query(
        self, filters: Filters = Filters(), *, spans: bool = False, newest_first: bool = True
    ) -> Iterator[SessionRecord]:
        """Matching sessions by start time. With a limit, the newest `limit` are chosen,
        then given in the requested order. Without `spans`, records carry none."""
        where, params = filters.where()
        order = "DESC" if newest_first or filters.limit is not None else "ASC"
        sql = (
            f"SELECT id, {_SESSION_COLS}, data FROM sessions{where}"
            f" ORDER BY started_at {order}, id {order}"
        )
        if filters.limit is not None:
            sql += " LIMIT ?"
            params.append(filters.limit)
        cursor = self.conn.execute(sql, params)
        if filters.limit is not None and not newest_first:
            rows: Iterable[Any] = reversed(cursor.fetchall())
        else:
            rows = cursor
        for row in rows:
            yield self._record(row, spans=spans)

    def _record(self, row: Sequence[Any], *, spans: bool) -> SessionRecord:
        data: dict[str, Any] = json.loads(row[-1])
        data.update(zip(schema.SESSION_COLUMNS, row[1:-1], strict=True))
        data["spans"] = self._spans(int(row[0])) if spans else []
        return SessionRecord.model_validate(data)

    def _spans(self, session: int) -> list[dict[str, Any]]:
        row = self.conn.execute(
            "SELECT spans FROM span_lists WHERE session = ?", (session,)
        ).fetchone()
        spans: list[dict[str, Any]] = [] if row is None else json.loads(row[0])
        return spans

    # -- stream gaps and positions (the watcher's bookkeeping) ---------------------------
    def record_gap(
        self, agent: str, from_seq: int, to_seq: int, noticed_at: str | None = None
    ) -> int:
        """A stretch of the event stream that could not be fetched: never lost silently."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO gaps (agent, from_seq, to_seq, noticed_at, filled)"
                " VALUES (?, ?, ?, ?, 0)",
                (agent, from_seq, to_seq, noticed_at or now_iso()),
            )
            return int(cursor.lastrowid or 0)

    def fill_gap(self, gap_id: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE gaps SET filled = 1, filled_at = ? WHERE id = ?", (now_iso(), gap_id)
            )

    def gaps(self, agent: str | None = None, filled: bool | None = None) -> list[Gap]:
        sql = "SELECT id, agent, from_seq, to_seq, noticed_at, filled, filled_at FROM gaps"
        clauses: list[str] = []
        params: list[Any] = []
        if agent is not None:
            clauses.append("agent = ?")
            params.append(agent)
        if filled is not None:
            clauses.append("filled = ?")
            params.append(int(filled))
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self.conn.execute(sql + " ORDER BY agent, from_seq", params).fetchall()
        return [Gap(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def set_position(self, agent: str, last_seq: int, last_event_at: str | None = None) -> None:
        """Where the agent's stream was read up to, so a restarted watcher resumes there."""
        with self.transaction() as conn:
            _upsert_position(conn, agent, last_seq, last_event_at)

    def final_ends(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """The last event time of each of these (agent, session_id) keys that is stored in
        a final (ended) copy: one query per 400 keys."""
        held = self._stored(self.conn, list(keys))
        return {key: old.rank[1] for key, old in held.items() if old.rank[0]}

    def position(self, agent: str) -> StreamPosition | None:
        row = self.conn.execute(
            "SELECT agent, last_seq, last_event_at, updated_at FROM stream_positions"
            " WHERE agent = ?",
            (agent,),
        ).fetchone()
        return None if row is None else StreamPosition(row[0], row[1], row[2], row[3])

    def schema_version(self) -> int:
        return current_version(self.conn)


def _upsert_position(
    conn: sqlite3.Connection, agent: str, last_seq: int, last_event_at: str | None
) -> None:
    conn.execute(
        "INSERT INTO stream_positions (agent, last_seq, last_event_at, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (agent) DO UPDATE SET"
        " last_seq = excluded.last_seq, last_event_at = excluded.last_event_at,"
        " updated_at = excluded.updated_at",
        (agent, last_seq, last_event_at, now_iso()),
    )


# -- opening -------------------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True
    )
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def check_is_records(conn: sqlite3.Connection, path: Path, create: bool) -> bool:
    """Any existing file must be a records DB before we touch it. True when it is empty."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        raise RecordsProblem(f"{path} is not a records database (not SQLite)") from None
    if not tables:
        if create:
            return True
        raise RecordsProblem(f"{path} is empty, not a records database")
    application = None
    if "meta" in tables and "schema_migrations" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'application'").fetchone()
        application = None if row is None else row[0]
    if application != schema.APPLICATION:
        what = f" (it is an {application} database)" if isinstance(application, str) else ""
        raise RecordsProblem(f"{path} is an SQLite file but not a records database{what}")
    return False


def _upgrade(conn: sqlite3.Connection, target: Path, version: int, lock: WriterLock | None) -> None:
    """Run the missing schema steps. A reader takes the writer lock for them: a writer
    that holds it runs an older agentops (this one upgrades on open), and would find its
    tables gone under it (v2 made v1's `spans` a view: every write of an old watcher
    would fail, its sessions lost once the agent drops them); so the reader refuses."""
    held = lock
    if held is None and version > 0:
        held = WriterLock(target)
        try:
            held.acquire()
        except WriterBusy as busy:
            if busy.holder is None:  # no lock file: no writer either, and no upgrade
                raise
            raise RecordsProblem(
                f"{target} has records schema v{version} and its writer is running"
                f"{busy.holder}: this agentops reads v{schema.LATEST} and does not upgrade"
                " the file under a writer; restart the writer with this agentops (it"
                " upgrades the file), then try again"
            ) from None
    try:
        schema.migrate(conn)
    except RecordsProblem as problem:  # a step that refuses this file's data
        raise RecordsProblem(f"{target}: {problem}") from None
    finally:
        if held is not lock and held is not None:
            held.release()


def open_store(path: Path | str, *, writer: bool = False, create: bool = False) -> RecordsStore:
    """Open (with `create`, make) the records DB at `path`, upgrading an old schema.

    A `writer` takes the single-writer lock first and holds it until `close()`
    (WriterBusy when another process holds it). RecordsProblem, one line, for a missing,
    corrupt, foreign or too new file.
    """
    target = Path(path).expanduser()
    if not target.exists():
        if not create:
            raise RecordsProblem(
                f"no records database at {target}; record sessions with"
                " `agentops sessions import FILE` (or pass --records)"
            )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordsProblem(f"cannot create {target.parent}: {exc.strerror}") from None
    elif target.is_dir():
        raise RecordsProblem(f"{target} is a directory, not a records database")
    lock = WriterLock(target) if writer else None
    if lock is not None:
        lock.acquire()
    try:
        conn = _connect(target)
    except sqlite3.Error as exc:
        if lock is not None:
            lock.release()
        raise RecordsProblem(f"cannot open {target}: {exc}") from None
    try:
        if check_is_records(conn, target, create):
            # only possible before the first table: lets prune give space back to the disk
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = current_version(conn)
        if version > schema.LATEST:
            raise RecordsProblem(
                f"{target} has records schema v{version}, newer than this agentops "
                f"(v{schema.LATEST}); upgrade agentops-console"
            )
        if version < schema.LATEST:
            _upgrade(conn, target, version, lock)
    except BaseException as exc:
        conn.close()
        if lock is not None:
            lock.release()
        if isinstance(exc, sqlite3.DatabaseError):
            raise RecordsProblem(f"{target}: {exc}") from None
        raise
    return RecordsStore(conn, target, lock)
