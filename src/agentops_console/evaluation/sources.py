"""Where recorded sessions come from for replay and compare: a JSONL export
(`agentops sessions export`) or a records DB, narrowed by agent, version and start time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..protocol.records import SessionRecord, load_jsonl

_SQLITE = b"SQLite format 3\x00"


def is_records_db(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == _SQLITE
    except OSError:
        return False


def recorded(
    path: Path,
    *,
    agent: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[SessionRecord]:
    """Records with their spans, oldest first. A JSONL file's unreadable line is a
    RecordFormatError naming file:line; a records DB's problem is a RecordsProblem."""
    if is_records_db(path):
        from ..records.store import Filters, open_store

        with open_store(path) as store:
            filters = Filters(agent=agent, version=version, since=since, until=until)
            yield from store.query(filters, spans=True, newest_first=False)
        return
    for record in load_jsonl(path):
        if agent is not None and record.agent != agent:
            continue
        if version is not None and record.agent_version != version:
            continue
        if since is not None and record.started_at < since:
            continue
        if until is not None and record.started_at >= until:
            continue
        yield record
