"""The watcher's health: a small JSON file beside the records DB, rewritten every few seconds,
and `agentops watch --status`, which reads it together with the records DB.

A file rather than a table: the records DB is written by the watcher alone and its schema is
the records', and a health beat must not wait behind a long batch (nor fail with it on a
full disk: then the file keeps its last good content, and its age tells). The file is
replaced atomically (write beside, rename), so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

#: A health file older than this (with the writer lock free) means no watcher is running.
STALE_AFTER_S = 15.0


def health_path(records: Path) -> Path:
    return records.with_name(records.name + ".watch.json")


def write_health(path: Path, data: dict[str, Any]) -> bool:
    """Replace the file; False (and the old file kept) when it cannot be written."""
    part = path.with_name(path.name + f".{os.getpid()}.part")
    try:
        part.write_text(json.dumps(data, default=str, separators=(",", ":")), encoding="utf-8")
        os.replace(part, path)
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink()
        return False
    return True


def read_health(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def status_report(records: Path, writer_running: bool) -> dict[str, Any]:
    """What `--status` shows: the health file's last beat plus what the records DB holds."""
    from ..records.store import open_store

    beat = read_health(health_path(records)) or {}
    age = time.time() - float(beat.get("written_at", 0) or 0)
    running = writer_running and bool(beat) and beat.get("state") == "running"
    report: dict[str, Any] = {
        "records": str(records),
        "running": running,
        "pid": beat.get("pid"),
        "beat_age_s": round(age, 1) if beat else None,
        "dry_run": beat.get("dry_run"),
        "state": beat.get("state", "never ran") if beat else "never ran",
        "agents": {},
        "sinks": beat.get("sinks", {}),
        "incidents": beat.get("incidents", {}),
        "write_errors": beat.get("write_errors", 0),
        "last_write_error": beat.get("last_write_error"),
    }
    agents: dict[str, dict[str, Any]] = {
        str(k): dict(v) for k, v in (beat.get("agents") or {}).items()
    }
    if records.exists():
        with open_store(records) as store:
            conn = store.conn
            for name, count in conn.execute("SELECT agent, count(*) FROM sessions GROUP BY agent"):
                agents.setdefault(name, {})["recorded_total"] = count
            for name, count in conn.execute(
                "SELECT agent, count(*) FROM gaps WHERE filled = 0 GROUP BY agent"
            ):
                agents.setdefault(name, {})["gaps_unfilled"] = count
            for name, seq, at in conn.execute(
                "SELECT agent, last_seq, last_event_at FROM stream_positions"
            ):
                entry = agents.setdefault(name, {})
                entry["stored_seq"] = seq
                entry.setdefault("last_event_at", at)
    for entry in agents.values():
        entry.setdefault("recorded_total", 0)
        entry.setdefault("gaps_unfilled", 0)
    report["agents"] = agents
    return report
