"""The recorder reads session ends in batches (GET /v1/session-details) from a real runtime
on loopback into a real records DB, and falls back to one read per session against an agent
without that route; gap rows for sessions the agent no longer has, either way."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from agentops_console.protocol.client import AgentClient, AsyncAgentClient
from agentops_console.protocol.models import Budgets
from agentops_console.protocol.records import SessionRecord, build_record
from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime, server
from agentops_console.runtime.config import RuntimeConfig
from agentops_console.watch.recorder import AgentTrack, Recorder, StoreThread
from tests.loopback import serving, url_of

TOKEN = "recorder-batch-token"
RING = 6


@pytest.fixture
def rt() -> Iterator[Runtime]:
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000), finished_sessions=RING)
    runtime = Runtime(
        agent="it-support", version="1.4.0", tenant="acme", token=TOKEN, config=config
    )
    with serving(runtime):
        yield runtime


def finish(rt: Runtime, n: int) -> str:
    with rt.session("password-reset", f"user-{n}", session_id=f"s-{n:02d}") as s:
        s.llm_call("gpt-4o-mini", 100, 20)
        for i in range(3):
            with s.tool_call("kb_search", {"query": f"q{n}-{i}"}) as call:
                call.output = {"hits": i, "nested": [1, {"a": None}]}
        return s.id


async def record(
    path: Path, rt: Runtime, ids: list[str], url: str | None = None
) -> tuple[AgentTrack, dict[str, SessionRecord]]:
    """Tell a recorder that `ids` ended (events 1..n) and flush until each is stored; the
    agent is `rt`, or the endpoint at `url`."""
    thread = StoreThread()
    await thread.open(path)
    recorder = Recorder(thread)
    client = AsyncAgentClient(url or url_of(rt), TOKEN)
    try:
        track = recorder.track("it-support", client)
        track.info = await client.agent()
        track.name = track.info.agent
        for seq, session_id in enumerate(ids, 1):
            recorder.event_seen(track, seq, track.info.started_at)
            recorder.session_ended(track, seq, session_id, None)
        deadline = time.monotonic() + 20
        while track.ends and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            assert await recorder.flush()
        assert not track.ends
        assert thread.store is not None
        store = thread.store
        found = await thread.call(lambda: list(store.query(spans=True)))
        stored = {r.session_id: r for r in found}
        return track, stored
    finally:
        recorder.cancel()
        await client.aclose()
        await thread.close()


def gaps(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute("SELECT from_seq, to_seq FROM gaps ORDER BY from_seq"))
    finally:
        conn.close()


def test_batch_reads_store_each_session_once_as_the_single_read_builds_it(
    rt: Runtime, tmp_path: Path
) -> None:
    ids = [finish(rt, n) for n in range(RING)]
    path = tmp_path / "records.db"
    track, stored = asyncio.run(record(path, rt, ids))
    assert track.batch_route is True and track.recorded == RING and not gaps(path)
    with AgentClient(url_of(rt), TOKEN) as client:
        info = client.agent()
        for session_id in ids:  # the record built once from JSON == the model path's
            expected = build_record(client.session(session_id), info)
            got = stored[session_id]
            assert got.model_dump() == expected.model_dump()
            assert got.spans[1].arguments == {"query": f"q{int(session_id[2:])}-0"}
    _, again = asyncio.run(record(path, rt, ids))  # a restarted watcher told the same again
    with open_store(path) as store:
        assert store.count() == RING and set(again) == set(ids)
    with open_store(path) as store:
        position = store.position("it-support")
    assert position is not None and position.last_seq == RING


def test_sessions_the_agent_evicted_are_gap_rows(rt: Runtime, tmp_path: Path) -> None:
    ids = [finish(rt, n) for n in range(RING + 3)]  # the first three are evicted
    path = tmp_path / "records.db"
    track, stored = asyncio.run(record(path, rt, ids))
    assert sorted(stored) == ids[3:] and track.lost == 3
    assert gaps(path) == [(1, 1), (2, 2), (3, 3)]


def test_an_agent_without_the_batch_route_is_read_one_session_at_a_time(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older runtime answers 404 (no route): the recorder falls back, loses nothing."""
    monkeypatch.setattr(
        server, "ROUTES", tuple(r for r in server.ROUTES if r[2] != "get_session_details")
    )
    ids = [finish(rt, n) for n in range(RING + 2)]
    path = tmp_path / "records.db"
    track, stored = asyncio.run(record(path, rt, ids))
    assert track.batch_route is False
    assert sorted(stored) == ids[2:] and gaps(path) == [(1, 1), (2, 2)]
    with AgentClient(url_of(rt), TOKEN) as client:
        info = client.agent()
        expected = build_record(client.session(ids[-1]), info)
    assert stored[ids[-1]].model_dump() == expected.model_dump()


def test_answers_cut_at_the_byte_bound_are_asked_again_until_all_is_stored(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent whose answers hold one session each (the rest in `more`): nothing is lost,
    nothing is a gap."""
    monkeypatch.setattr(server, "SESSION_DETAILS_MAX_BYTES", 10)
    ids = [finish(rt, n) for n in range(RING)]
    path = tmp_path / "records.db"
    track, stored = asyncio.run(record(path, rt, ids))
    assert sorted(stored) == ids and track.lost == 0 and not gaps(path)


class _Agent(BaseHTTPRequestHandler):
    """An agent endpoint that serves what the test put in `answers` (path -> JSON body)."""

    answers: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.answers.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        payload = body if body is not None else b'{"error": "no route", "status": 404}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_a_session_that_is_not_a_valid_record_is_a_gap_row_and_holds_back_nothing(
    rt: Runtime, tmp_path: Path
) -> None:
    """An agent serving a detail with a time without a zone: logged, a gap row for its
    event, and the sessions after it are stored."""
    ids = [finish(rt, n) for n in range(3)]
    with AgentClient(url_of(rt), TOKEN) as client:
        details = [json.loads(client.session(i).model_dump_json()) for i in ids]
        info = client.agent()
    details[1]["started_at"] = "2025-06-02T09:00:00"  # naive: not a valid record
    _Agent.answers = {
        "/v1/agent": info.model_dump_json().encode(),
        "/v1/session-details": json.dumps({"sessions": details, "missing": []}).encode(),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        path = tmp_path / "records.db"
        track, stored = asyncio.run(record(path, rt, ids, url=url))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert sorted(stored) == [ids[0], ids[2]] and track.lost == 1
    assert gaps(path) == [(2, 2)]
