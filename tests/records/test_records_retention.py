"""Retention on a real file: whole sessions go, oldest first, by age and by size."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentops_console.protocol.records import SessionRecord
from agentops_console.records.retention import live_bytes, prune
from agentops_console.records.store import open_store

from .live import shifted


def _fill(path: Path, live: dict[str, SessionRecord], days: range) -> list[SessionRecord]:
    records = [shifted(r, days=d) for d in days for r in live.values()]
    with open_store(path, writer=True, create=True) as store:
        store.write(records)
    return records


def test_prune_by_age_deletes_whole_sessions_in_batches(
    tmp_path: Path, live_records: dict[str, SessionRecord]
) -> None:
    path = tmp_path / "records.db"
    _fill(path, live_records, range(1, 41))  # 160 sessions, 1..40 days old
    with open_store(path, writer=True) as store:
        result = prune(store, keep_days=10.5, batch=7)
        assert result.sessions == 30 * 4  # 11..40 days old
        kept = list(store.query())
        assert len(kept) == 40 and store.count() == 40
    with sqlite3.connect(path) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM spans WHERE session NOT IN (SELECT id FROM sessions)"
        ).fetchone()
        assert orphans == (0,)
        assert conn.execute("SELECT count(*) FROM spans").fetchone()[0] == result.spans // 3


def test_prune_by_size_keeps_the_newest_and_gives_space_back(
    tmp_path: Path, live_records: dict[str, SessionRecord]
) -> None:
    path = tmp_path / "records.db"
    big = {
        name: r.model_copy(update={"outcome_reason": "x" * 4000})
        for name, r in live_records.items()
    }
    _fill(path, big, range(1, 201))  # 800 sessions, several MiB
    with open_store(path, writer=True) as store:
        before = path.stat().st_size
        assert live_bytes(store) > 2 * 1024 * 1024
        result = prune(store, max_mb=1)
        assert live_bytes(store) <= 1024 * 1024
        assert result.bytes_after < before / 2  # incremental vacuum shrank the file
        newest = {r.session_id for r in store.query()}
        assert {f"s-ordinary-{d}d" for d in range(1, 10)} <= newest
        assert "s-ordinary-200d" not in newest


def test_prune_without_bounds_or_with_bad_ones(
    tmp_path: Path, live_records: dict[str, SessionRecord]
) -> None:
    path = tmp_path / "records.db"
    _fill(path, live_records, range(1, 3))
    with open_store(path, writer=True) as store:
        assert prune(store).sessions == 0 and store.count() == 8
        with pytest.raises(ValueError, match="keep_days"):
            prune(store, keep_days=-1)
