"""The watcher under faults, for real: `kill -9` twenty times while agents keep working, and
a records DB that cannot grow (the process's file-size limit: writes fail with EFBIG, which
SQLite reports as a full disk) until the limit is lifted."""

from __future__ import annotations

import random
import resource
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime

from .test_watcher_process import (
    Setup,
    _status,
    ordinary,
    recorded,
    runtimes,
    url_of,
    wait_for,
    wait_live,
    watch_setup,
)


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[Setup]:
    with watch_setup(tmp_path) as made:
        yield made


@contextmanager
def working(agents: list[Runtime], pause_s: float = 0.1) -> Iterator[list[set[str]]]:
    """Each agent runs sessions (an LLM call and 9 tool calls) back to back until the block
    ends; yields the ids of the finished ones, per agent."""
    done: list[set[str]] = [set() for _ in agents]
    stop = threading.Event()

    def run(rt: Runtime, ids: set[str]) -> None:
        while not stop.is_set():
            ids.add(ordinary(rt, tools=9))
            time.sleep(pause_s)

    threads = [
        threading.Thread(target=run, args=(rt, ids), daemon=True)
        for rt, ids in zip(agents, done, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        yield done
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def _gaps(faulty: Setup) -> list[tuple[str, int, int, int]]:
    conn = sqlite3.connect(f"file:{faulty.records}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT agent, from_seq, to_seq, filled FROM gaps"))
    finally:
        conn.close()


def test_kill_9_twenty_times_while_agents_work_loses_and_duplicates_nothing(
    faulty: Setup,
) -> None:
    rng = random.Random(9)
    started = time.monotonic()
    with runtimes(2) as agents:
        urls = [url_of(rt) for rt in agents]
        with working(agents) as finished:
            for _ in range(20):
                watcher = faulty.start(*urls)
                wait_for(watcher.log, timeout=10, what="the watcher to start")  # imports done
                time.sleep(rng.uniform(0.0, 0.6))  # mid-snapshot, mid-fetch, mid-stream
                watcher.proc.send_signal(signal.SIGKILL)
                watcher.proc.wait(10)
        expected = {(f"agent-{i}", sid) for i, ids in enumerate(finished) for sid in ids}
        with open_store(faulty.records) as store:
            positions = {a: store.position(a) for a in ("agent-0", "agent-1")}
        assert 100 < len(expected) < 2 * 1000  # all still in the agents' rings
        assert len(recorded(faulty.records)) > 0  # the killed watchers did record
        final = faulty.start(*urls)
        try:
            wait_for(
                lambda: {(r[0], r[1]) for r in recorded(faulty.records)} >= expected,
                timeout=30,
                what="every finished session recorded",
            )
        except AssertionError:
            health = (faulty.tmp / "records.db.watch.json").read_text()
            raise AssertionError(
                f"{len(recorded(faulty.records))} of {len(expected)}; "
                f"{health}; {final.log()[-2000:]}"
            ) from None
        assert final.stop() == 0, final.log()
    rows = recorded(faulty.records)
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == len(set(keys)) == len(expected)  # exactly once each
    assert set(keys) == expected
    assert {r[2] for r in rows} == {"completed"} and {r[3] for r in rows} == {10}
    assert not [g for g in _gaps(faulty) if not g[3]]  # nothing lost: no unfilled gap
    for name, position in positions.items():  # the restart resumed where it had stored
        assert position is not None
        assert f"{name}: snapshot (first)" in final.log()
        assert f"streaming from {position.last_seq}" in final.log()
    print(f"kill -9 x20 and catch-up: {time.monotonic() - started:.1f} s")


def test_a_records_db_that_cannot_grow_keeps_streaming_retries_and_corrupts_nothing(
    faulty: Setup,
) -> None:
    with runtimes() as (rt,):
        watcher = faulty.start(url_of(rt), fsize_limit=400_000)
        wait_live(watcher)
        ids = [ordinary(rt, tools=9) for _ in range(300)]

        def failing() -> bool:
            code, report = _status(faulty)
            return code == 0 and report["write_errors"] > 0

        wait_for(failing, timeout=30, what="a failed write reported")
        stuck = len(recorded(faulty.records))
        assert stuck < len(ids)
        _, report = _status(faulty)
        assert "write failed, nothing stored" in report["last_write_error"], report
        assert report["agents"]["it-support"]["state"] == "live"  # still streaming
        more = [ordinary(rt, tools=9) for _ in range(20)]  # while it cannot write
        resource.prlimit(
            watcher.proc.pid,
            resource.RLIMIT_FSIZE,
            (resource.RLIM_INFINITY, resource.RLIM_INFINITY),
        )
        wait_for(
            lambda: len(recorded(faulty.records)) == len(ids) + len(more),
            timeout=60,
            what="every session recorded after the disk has room",
        )
        assert watcher.stop() == 0, watcher.log()
    assert {r[1] for r in recorded(faulty.records)} == set(ids) | set(more)
    conn = sqlite3.connect(faulty.records)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert "records write failed (will retry)" in watcher.log()
