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

from agentops_console.protocol.models import Budgets
from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime
from agentops_console.runtime.config import RuntimeConfig

from .test_watcher_process import (
    TOKEN,
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


#: Kill rounds; sessions each agent finishes per round (granted when the round's watcher is
#: spawned); the agents' finished-session rings hold them all, with room to spare.
ROUNDS = 20
PER_ROUND = 6
RING = (ROUNDS + 1) * PER_ROUND + 40
#: A round's watcher is killed after this long even if it has stored nothing new.
KILL_CAP_S = 8.0


@contextmanager
def ringed_runtimes(count: int, ring: int) -> Iterator[list[Runtime]]:
    """Runtimes whose finished-session ring holds `ring` sessions: sized from the work the
    test grants, so no start-up however slow can make an agent evict an unrecorded one."""
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000), finished_sessions=ring)
    started = [
        Runtime(agent=f"agent-{i}", version="1.4.0", tenant="acme", token=TOKEN, config=config)
        for i in range(count)
    ]
    for rt in started:
        rt.start(host="127.0.0.1", port=0)
    try:
        yield started
    finally:
        for rt in started:
            rt.stop()


class Workers:
    """Each agent runs sessions (an LLM call and 9 tool calls), `pause_s` apart, as many as
    granted so far: work is bounded by count, not by time, and spread over every round."""

    def __init__(self, agents: list[Runtime], pause_s: float = 0.05) -> None:
        self.finished: list[list[str]] = [[] for _ in agents]
        self._granted = 0
        self._cond = threading.Condition()
        self._closed = False
        self._pause_s = pause_s
        self._threads = [
            threading.Thread(target=self._run, args=(rt, ids), daemon=True)
            for rt, ids in zip(agents, self.finished, strict=True)
        ]
        for thread in self._threads:
            thread.start()

    def grant(self, sessions: int) -> None:
        with self._cond:
            self._granted += sessions
            self._cond.notify_all()

    def _run(self, rt: Runtime, ids: list[str]) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or len(ids) < self._granted)
                if len(ids) >= self._granted:
                    return
            ids.append(ordinary(rt, tools=9))
            time.sleep(self._pause_s)

    def finish(self, timeout: float = 60) -> None:
        """Wait until every granted session is finished, then stop the threads."""
        wait_for(
            lambda: all(len(ids) >= self._granted for ids in self.finished),
            timeout,
            "the agents to finish their sessions",
        )
        self.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(10)


def _gaps(faulty: Setup) -> list[tuple[str, int, int, int]]:
    conn = sqlite3.connect(f"file:{faulty.records}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT agent, from_seq, to_seq, filled FROM gaps"))
    finally:
        conn.close()


def _count(records: Path) -> int:
    """Sessions stored so far (read-only; 0 before the first watcher created the DB)."""
    if not records.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{records}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_kill_9_twenty_times_while_agents_work_loses_and_duplicates_nothing(
    faulty: Setup,
) -> None:
    """Twenty real `agentops watch` processes SIGKILLed mid-stream while two agents work.

    Each round grants each agent PER_ROUND sessions and spawns a watcher; it is killed as
    soon as it has stored something new (a batch just committed, the next fetches and
    events in flight), a random 0-0.2 s later, or after KILL_CAP_S whatever it did (start-up,
    snapshot). Conditions, not sleeps sized for a quiet box: a slow start-up only makes a
    round longer, and the rings hold every session granted."""
    rng = random.Random(9)
    started = time.monotonic()
    with ringed_runtimes(2, RING) as agents:
        urls = [url_of(rt) for rt in agents]
        workers = Workers(agents)
        try:
            stored = 0
            for _ in range(ROUNDS):
                workers.grant(PER_ROUND)
                watcher = faulty.start(*urls)
                deadline = time.monotonic() + KILL_CAP_S
                while time.monotonic() < deadline and _count(faulty.records) <= stored:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.2))
                watcher.proc.send_signal(signal.SIGKILL)
                assert watcher.proc.wait(10) == -signal.SIGKILL, watcher.log()
                stored = _count(faulty.records)
            workers.grant(PER_ROUND)  # finished while no watcher runs: for the restart
            workers.finish()
        finally:
            workers.close()
        expected = {(f"agent-{i}", sid) for i, ids in enumerate(workers.finished) for sid in ids}
        assert len(expected) == 2 * (ROUNDS + 1) * PER_ROUND
        assert all(rt.stats.sessions_evicted == 0 for rt in agents)
        with open_store(faulty.records) as store:
            positions = {a: store.position(a) for a in ("agent-0", "agent-1")}
        assert stored > 0  # the killed watchers did record
        final = faulty.start(*urls)
        try:
            wait_for(
                lambda: {(r[0], r[1]) for r in recorded(faulty.records)} >= expected,
                timeout=120,
                what="every finished session recorded",
            )
        except AssertionError:
            health = (faulty.tmp / "records.db.watch.json").read_text()
            raise AssertionError(
                f"{len(recorded(faulty.records))} of {len(expected)}; "
                f"{health}; {final.log()[-2000:]}"
            ) from None
        assert final.stop(timeout=60) == 0, final.log()
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
    print(f"kill -9 x{ROUNDS} and catch-up: {time.monotonic() - started:.1f} s")


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
