"""The stream position is stored in the same transaction as the records it covers.

The kill -9 test cannot see this on its own: a restarted watcher's snapshot records what
the agent still holds, which hides a position stored ahead of its records. Here the write
of the records fails for real inside SQLite (a trigger aborts every session insert, as a
full disk or an I/O error would fail it), and the position must not move; once the fault
is gone, the same flush stores records and position together.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.records import SessionRecord, load_jsonl
from agentops_console.records.store import open_store
from agentops_console.watch.recorder import AgentTrack, Built, Recorder, StoreThread, _End

SAMPLE = Path(__file__).parents[2] / "fixtures" / "records" / "demo-fleet.jsonl"
FAULT = (
    "CREATE TRIGGER fault BEFORE INSERT ON sessions"
    " BEGIN SELECT RAISE(ABORT, 'injected write fault'); END"
)


async def _done(record: SessionRecord) -> Built:
    return record


def _positions(path: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT agent, last_seq FROM stream_positions"))
    finally:
        conn.close()


async def _scenario(path: Path) -> None:
    records = [r for r in load_jsonl(SAMPLE) if r.agent == "it-support"][:20]
    thread = StoreThread()
    await thread.open(path)
    recorder = Recorder(thread, batch=500)
    client = AsyncAgentClient("http://127.0.0.1:9", None)  # never called: fetches are done
    try:
        track: AgentTrack = recorder.track("it-support", client)
        track.name = "it-support"
        for seq, record in enumerate(records, 1):
            task = asyncio.create_task(_done(record))
            track.ends.append(_End(seq, record.session_id, None, task))
        track.last_seq = len(records) + 5  # later events without a session end
        await asyncio.sleep(0)

        assert not await recorder.flush()  # the records could not be written ...
        assert recorder.write_errors == 1
        assert "injected write fault" in (recorder.last_write_error or "")
        assert _positions(path) == []  # ... so no position claims them
        assert track.stored_seq is None and len(track.ends) == len(records)

        assert thread.store is not None
        await thread.call(thread.store.conn.execute, "DROP TRIGGER fault")
        assert await recorder.flush()
        assert _positions(path) == [("it-support", len(records) + 5)]
        assert track.recorded == len(records) and not track.ends
    finally:
        await client.aclose()
        await thread.close()


def test_a_failed_records_write_moves_no_stream_position(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    with open_store(path, writer=True, create=True) as store:
        store.conn.execute(FAULT)
    asyncio.run(_scenario(path))
    with open_store(path) as store:
        assert store.count() == 20
