"""Retention: drop whole sessions, oldest first, by age and by size, without stalling writers.

Deletes run in batches of `batch` sessions, one short transaction each, so a watcher writing
at the same time waits at most one batch (its busy timeout is far longer). Age counts from a
session's start. Size is the live data in the file (pages in use, not the free list), so
the loop stops as soon as enough is deleted; then an incremental vacuum gives the freed
pages back to the file system and a WAL checkpoint truncates the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..governance.clock import iso, utcnow
from .store import RecordsStore

#: Pages freed per incremental-vacuum step (4 MiB with the default 4 KiB pages).
_VACUUM_STEP = 1024


@dataclass(slots=True)
class PruneResult:
    sessions: int = 0
    spans: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def live_bytes(store: RecordsStore) -> int:
    """Bytes of the file holding data (page count minus the free list)."""
    conn = store.conn
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return (pages - free) * size


def file_bytes(store: RecordsStore) -> int:
    return store.path.stat().st_size


def _delete_oldest(store: RecordsStore, batch: int, before: str | None) -> tuple[int, int]:
    """One batch, one transaction: (sessions, spans) deleted."""
    with store.transaction() as conn:
        if before is None:
            found = conn.execute(
                "SELECT id, span_count FROM sessions ORDER BY started_at, id LIMIT ?", (batch,)
            ).fetchall()
        else:
            found = conn.execute(
                "SELECT id, span_count FROM sessions WHERE started_at < ?"
                " ORDER BY started_at, id LIMIT ?",
                (before, batch),
            ).fetchall()
        if not found:
            return 0, 0
        ids = [(row[0],) for row in found]
        conn.executemany("DELETE FROM span_lists WHERE session = ?", ids)
        conn.executemany("DELETE FROM sessions WHERE id = ?", ids)
        return len(found), sum(int(row[1]) for row in found)


def prune(
    store: RecordsStore,
    *,
    keep_days: float | None = None,
    max_mb: float | None = None,
    now: datetime | None = None,
    batch: int = 500,
) -> PruneResult:
    """Delete sessions that started more than `keep_days` ago, then the oldest ones until
    the live data is at most `max_mb` MiB. Either bound may be None (not applied)."""
    if keep_days is not None and keep_days < 0:
        raise ValueError("keep_days must not be negative")
    if max_mb is not None and max_mb < 0:
        raise ValueError("max_mb must not be negative")
    result = PruneResult(bytes_before=file_bytes(store))
    if keep_days is not None:
        cutoff = iso((now or utcnow()) - timedelta(days=keep_days))
        while True:
            sessions, spans = _delete_oldest(store, batch, cutoff)
            result.sessions += sessions
            result.spans += spans
            if sessions < batch:
                break
    if max_mb is not None:
        limit = int(max_mb * 1024 * 1024)
        while (live := live_bytes(store)) > limit:
            # no more than the excess is worth, at the average size of a session
            per_session = live / max(store.count(), 1)
            step = min(batch, max(1, math.ceil((live - limit) / per_session)))
            sessions, spans = _delete_oldest(store, step, None)
            result.sessions += sessions
            result.spans += spans
            if not sessions:
                break
    if result.sessions:
        _give_back(store)
    result.bytes_after = file_bytes(store)
    return result


def _give_back(store: RecordsStore) -> None:
    """Return free pages to the file system in steps, each its own short write."""
    conn = store.conn
    while int(conn.execute("PRAGMA freelist_count").fetchone()[0]) > 0:
        before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_STEP})").fetchall()
        if int(conn.execute("PRAGMA freelist_count").fetchone()[0]) >= before:
            break  # auto_vacuum is off (a DB made elsewhere): nothing more to give back
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
