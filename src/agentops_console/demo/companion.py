"""The demo's `agentops watch`: the real WatchService, in process, on a thread of its own.

The fleet's endpoints are its sources (tokens in memory only), its records DB sits beside
the demo's governance DB and it pages to a JSON-lines file there, so a demo run shows
what a deployment gets: sessions recorded (the console opens them after the agent has
forgotten them), incidents with MTTD from the flag, and pages. Starting costs the caller
a thread start (the thread opens everything), so the console appears as fast as before;
`stop()` drains the service, reads what it did, and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.text import error_line, one_line
from .fleet import Endpoint

#: A watcher log line or error, as the demo report keeps it.
LOG_CHARS = 300

if TYPE_CHECKING:
    from ..watch.service import WatchService

#: The loggers the service writes to; the demo keeps their lines (a console is on screen).
_LOGGER = "agentops.watch"
_LOG_KEPT = 50
#: The demo's sink name, as the health report and the page file's reader see it.
SINK_NAME = "demo-pages"


@dataclass(frozen=True, slots=True)
class WatchPaths:
    governance: Path
    records: Path
    pages: Path

    @classmethod
    def beside(cls, governance: Path) -> WatchPaths:
        """Records and pages next to the governance DB, as `agentops watch` defaults."""
        return cls(
            governance, governance.with_name("records.db"), governance.with_name("pages.jsonl")
        )


@dataclass(slots=True)
class WatchSummary:
    """What the watcher did in this run, read once it has stopped."""

    recorded: int = 0
    lost: int = 0
    gaps: int = 0
    pages_sent: int = 0
    pages_failed: int = 0
    incidents: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    log: list[str] = field(default_factory=list)


class _Keep(logging.Handler):
    def __init__(self, lines: deque[str]) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(one_line(record.getMessage(), LOG_CHARS))


class DemoWatch:
    """`start()` early (imports and the records DB open in the background), call
    `governance_ready()` once the governance DB is seeded, wait for `ready` (every agent
    followed) before releasing traffic, and `stop()` before the fleet stops (the last
    sessions are fetched from the agents); then read `summary`."""

    def __init__(self, endpoints: Sequence[Endpoint], paths: WatchPaths) -> None:
        self.endpoints = list(endpoints)
        self.paths = paths
        self.summary = WatchSummary()
        self.started_at = time.time()
        self._lines: deque[str] = deque(maxlen=_LOG_KEPT)
        self._handler = _Keep(self._lines)
        self._propagate = True
        self._lock = threading.Lock()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._service: WatchService | None = None
        self._thread: threading.Thread | None = None
        self._recancel: asyncio.Task[None] | None = None
        self._governance = threading.Event()
        #: Set once every agent is followed (or the watcher gave up): events from then on
        #: reach it; a flag raised before would not open an incident.
        self.ready = threading.Event()

    def governance_ready(self) -> None:
        """The governance DB may be opened now (the seeder is done with it)."""
        self._governance.set()

    def start(self) -> None:
        logger = logging.getLogger(_LOGGER)
        self._propagate = logger.propagate
        logger.addHandler(self._handler)
        logger.propagate = False  # no stray lines over the console's screen
        self.started_at = time.time()
        self._thread = threading.Thread(
            target=self._main, name="agentops-demo-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> WatchSummary:
        """Stop the service (it writes what it fetched and lets pages out) and join it."""
        with self._lock:
            self._stopping = True
            loop, service = self._loop, self._service
        self._governance.set()
        if loop is not None and service is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended on its own
                loop.call_soon_threadsafe(self._halt, service)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self.summary.error is None:
                self.summary.error = f"the watcher did not stop within {timeout:g} s"
        logger = logging.getLogger(_LOGGER)
        logger.removeHandler(self._handler)
        logger.propagate = self._propagate
        self.summary.log = list(self._lines)
        return self.summary

    def _halt(self, service: WatchService) -> None:
        service.stop()
        self._recancel = asyncio.create_task(_cancel_feeds_again())

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except Exception as exc:  # the demo goes on without its watcher, and says why
            self.summary.error = one_line(f"{type(exc).__name__}: {exc}", LOG_CHARS)
        finally:
            self.ready.set()

    async def _run(self) -> None:
        from ..governance.api import open_governance
        from ..watch.config import WatchConfig
        from ..watch.service import Source, WatchOptions, WatchService
        from ..watch.sinks.spec import FileSpec

        paths = self.paths
        await asyncio.to_thread(self._governance.wait)
        open_governance(paths.governance, create=True).close()  # incidents need the DB
        sink = FileSpec(kind="file", name=SINK_NAME, path=str(paths.pages))
        options = WatchOptions(
            records=paths.records,
            config=WatchConfig(str(paths.pages.parent / "demo-watch.toml"), sinks=(sink,)),
            sources=tuple(Source(e.agent, e.url, e.token) for e in self.endpoints),
            governance_db=paths.governance,
        )
        service = WatchService(options)
        with self._lock:
            if self._stopping:
                return
            self._loop = asyncio.get_running_loop()
            self._service = service
        watching = asyncio.create_task(self._until_following(service))
        try:
            await service.run()
        finally:
            watching.cancel()
            self._collect(service)

    async def _until_following(self, service: WatchService) -> None:
        while not service.watches or any(w.state == "connecting" for w in service.watches):
            await asyncio.sleep(0.02)
        self.ready.set()

    def _collect(self, service: WatchService) -> None:
        summary = self.summary
        tracks = service.recorder.tracks
        summary.recorded = sum(t.recorded for t in tracks)
        summary.lost = sum(t.lost for t in tracks)
        summary.gaps = sum(t.gaps for t in tracks)
        counters = service.notifier.counters().values()
        summary.pages_sent = sum(c.sent for c in counters)
        summary.pages_failed = sum(c.failed + c.dropped for c in counters)
        try:
            summary.incidents = _incidents(self.paths.governance, self.started_at)
        except Exception as exc:
            summary.error = "cannot read the watcher's incidents: " + error_line(exc, LOG_CHARS)


async def _cancel_feeds_again() -> None:
    """On Python 3.11 `asyncio.wait_for` (protocol/feed.py's idle limit) can swallow a
    cancellation that meets an arriving event, and the service's one `cancel()` of a feed
    is lost; the feed then streams on while the agent lives. Cancel stragglers again."""
    while True:
        await asyncio.sleep(0.2)
        for task in asyncio.all_tasks():
            if task.get_name().startswith("feed-") and not task.done():
                task.cancel()


def _incidents(db: Path, since: float) -> list[dict[str, Any]]:
    """The incidents the watcher opened in this run (a kept DB holds earlier runs' too)."""
    from ..governance.api import open_governance
    from ..governance.clock import parse_ts
    from ..watch.incidents import ACTOR

    with open_governance(db, create=False) as gdb:
        rows = gdb.query(
            "SELECT id, agent, flag_kind, session_id, severity, runbook, status, started_at,"
            " detected_at FROM incidents WHERE opened_by = ? ORDER BY id",
            (ACTOR,),
        )
    found = []
    for row in rows:
        detected = parse_ts(row["detected_at"]).timestamp()
        if detected < since - 1:
            continue
        started = parse_ts(row["started_at"]).timestamp() if row["started_at"] else None
        found.append(
            {
                "id": int(row["id"]),
                "cause": row["flag_kind"],
                "agent": row["agent"],
                "session_id": row["session_id"],
                "severity": row["severity"],
                "runbook": row["runbook"],
                "status": row["status"],
                "started_at": started,
                "detected_at": detected,
                "mttd_s": None if started is None else round(detected - started, 3),
            }
        )
    return found
