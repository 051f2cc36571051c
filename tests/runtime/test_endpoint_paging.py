"""GET /v1/sessions in pages (issue 8 item 13, issue 12 target 5), and the SSE `gap` that
replaces silent loss (issue 8 item 5): over real HTTP on loopback."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import TypeAdapter

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import SessionSummary
from agentops_console.runtime import Runtime, RuntimeConfig
from agentops_console.runtime.server import PAGE_SLICE, page_json

TOKEN = "paging-token"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(agent="a", version="1", token=TOKEN, config=RuntimeConfig(event_log_size=50))
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


def _get(rt: Runtime, path: str) -> httpx.Response:
    return httpx.get(f"{rt.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)


def test_pages_cover_running_then_finished_sessions_once(rt: Runtime) -> None:
    finished = []
    for n in range(4):
        with rt.session(workflow="w", principal=f"f{n}") as s:
            finished.append(s.id)
    running = [rt.session(workflow="w", principal=f"r{n}") for n in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = _get(rt, "/v1/sessions?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200
        seen += [s["id"] for s in response.json()]
        pages += 1
        cursor = response.headers.get("X-Next-Cursor")
        if cursor is None:
            break
    assert pages == 3
    assert seen == [s.id for s in running] + finished
    active = _get(rt, "/v1/sessions?status=active&limit=500").json()
    assert [s["id"] for s in active] == [s.id for s in running]
    done = _get(rt, "/v1/sessions?status=finished")
    assert [s["id"] for s in done.json()] == finished and "X-Next-Cursor" not in done.headers
    with AgentClient(rt.url or "", TOKEN) as client:
        assert [s.id for s in client.sessions(page_size=2)] == seen
        first = client.sessions_page(status="active", limit=2)
        assert len(first.sessions) == 2 and first.next_cursor is not None
        assert len(client.sessions(status="finished")) == 4
    for session in running:
        session.end()


def test_a_session_ending_between_pages_is_not_lost(rt: Runtime) -> None:
    running = [rt.session(workflow="w", principal=f"r{n}") for n in range(4)]
    first = _get(rt, "/v1/sessions?limit=2")
    cursor = first.headers["X-Next-Cursor"]
    running[3].end()  # not listed yet: moves to the finished ones
    running[0].end()  # listed already: listed again, as finished
    rest = _get(rt, f"/v1/sessions?limit=10&cursor={cursor}").json()
    ids = [s["id"] for s in first.json()] + [s["id"] for s in rest]
    assert set(ids) == {s.id for s in running}
    assert [s["status"] for s in rest][-2:] == ["completed", "completed"]
    running[1].end()
    running[2].end()


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=5001",
        "limit=ten",
        "limit=-1",
        "status=running",
        "cursor=nope",
        "cursor=" + "Zm9vOjE",  # base64 of "foo:1"
        "limit=1&limit=2",
        "page=2",
    ],
)
def test_bad_paging_parameters_are_400(rt: Runtime, query: str) -> None:
    response = _get(rt, f"/v1/sessions?{query}")
    assert response.status_code == 400, query
    assert response.json()["status"] == 400 and "\n" not in response.json()["error"]


def test_a_cursor_must_match_the_status_filter(rt: Runtime) -> None:
    for n in range(3):
        rt.session(workflow="w", principal=f"r{n}")
    cursor = _get(rt, "/v1/sessions?status=active&limit=1").headers["X-Next-Cursor"]
    response = _get(rt, f"/v1/sessions?status=finished&cursor={cursor}")
    assert response.status_code == 400 and "cursor" in response.json()["error"]


def test_the_default_page_is_bounded(rt: Runtime) -> None:
    for n in range(501):
        rt.session(workflow="w", principal=f"r{n}")
    response = _get(rt, "/v1/sessions")
    assert len(response.json()) == 500 and "X-Next-Cursor" in response.headers


# -- gap --------------------------------------------------------------------------------------
def _stream_messages(rt: Runtime, last_event_id: int) -> list[dict[str, str]]:
    """Every SSE message until the server closes the stream."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": str(last_event_id)}
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with httpx.stream("GET", f"{rt.url}/v1/events", headers=headers, timeout=5) as response:
        for line in response.iter_lines():
            if not line:
                if current:
                    messages.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    return messages


def test_resuming_older_than_the_ring_gets_a_gap_then_the_stream_ends(rt: Runtime) -> None:
    session = rt.session(workflow="w", principal="p")
    for n in range(80):
        session.flag("budget_warning", f"warning {n}")
    oldest = rt.events.first_seq
    assert oldest > 10
    messages = _stream_messages(rt, last_event_id=5)
    gap = messages[-1]
    assert gap["event"] == "gap" and "id" not in gap
    data = json.loads(gap["data"])
    assert data["type"] == "gap" and data["gap_from"] == 6 and data["gap_to"] == oldest - 1
    assert data["seq"] == 5
    assert not any(m.get("event") not in (None, "gap") for m in messages)  # nothing else
    session.end()


def test_a_reader_that_falls_behind_gets_a_gap_and_is_dropped(rt: Runtime) -> None:
    """A reader that stops reading while events flow: the writer neither buffers without
    bound nor skips silently. Everything sent is contiguous, then one gap, then the end."""
    assert rt.url is not None
    port = int(rt.url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n\r\n"
        % (port, TOKEN.encode())
    )
    first = sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    session = rt.session(workflow="w", principal="p")
    big = "x" * 8_000

    def produce() -> None:
        for n in range(600):
            session.flag("budget_warning", f"{n} {big}")

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(30)
    received = bytearray(first)  # the stream's opening (its position) may come with the head
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    text = received.decode()
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no silent jump
    assert "event: gap" in text
    gap = json.loads(text.split("event: gap\ndata: ", 1)[1].split("\n", 1)[0])
    assert gap["gap_from"] == ids[-1] + 1 and gap["gap_to"] >= gap["gap_from"]
    assert text.rstrip().endswith("}")  # the gap is the last thing the stream says
    session.end()


@pytest.mark.parametrize("count", [0, 1, PAGE_SLICE, PAGE_SLICE + 1, 3 * PAGE_SLICE + 5])
def test_a_page_made_in_slices_is_the_bytes_of_one_serialisation(rt: Runtime, count: int) -> None:
    running = [rt.session(workflow="w", principal=f"p{n}") for n in range(count)]
    response = _get(rt, "/v1/sessions?status=active&limit=5000")
    one_call = TypeAdapter(list[SessionSummary]).dump_json([s.summary() for s in running])
    assert response.content == one_call
    for session in running:
        session.end()


def test_a_page_lets_the_agents_thread_run_between_slices(rt: Runtime) -> None:
    """With the interpreter's switch interval at 10 s, another thread runs during a page
    only if the page lets go of the lock itself; the agent's thread is such a thread (a
    guarded call waited ~2 ms per page when a page was one serialiser call)."""
    sessions = [rt.session(workflow="w", principal=f"p{n}") for n in range(16 * PAGE_SLICE)]
    ticks: list[float] = []
    done = threading.Event()

    def other() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0)

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=other, daemon=True)
    sys.setswitchinterval(10.0)
    try:
        thread.start()
        time.sleep(0.01)
        started = time.perf_counter()
        page_json(sessions)
        ended = time.perf_counter()
    finally:
        done.set()
        sys.setswitchinterval(interval)
        thread.join(timeout=5)
    # 15 hand-overs offered; a loaded box may not run the other thread at each of them,
    # but without them it never runs at all
    assert sum(started < tick < ended for tick in ticks) >= 1
    for session in sessions:
        session.end()
