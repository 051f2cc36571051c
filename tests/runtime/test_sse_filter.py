"""Filtered event streams (`GET /v1/events?types=`): only the asked types are rendered and
sent, the client's position still moves past what was skipped, a loss is still only ever
the explicit `gap`, bad filters get a 400, and the filters kept are bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from agentops_console.runtime import Runtime, sse
from agentops_console.runtime.events import EventLog
from agentops_console.runtime.sse import MAX_FILTERS, Broadcast, Broadcasts, Gap

TOKEN = "filter-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(agent="it", version="1.0.0", token=TOKEN)
    runtime.start(host="127.0.0.1", port=0)
    try:
        yield runtime
    finally:
        runtime.stop()


def _url(rt: Runtime) -> str:
    assert rt._server is not None
    return rt._server.url


def _sessions(rt: Runtime, count: int, tools: int = 3) -> None:
    for n in range(count):
        with rt.session("wf", f"user-{n}") as s:
            for i in range(tools):
                with s.tool_call("t", {"q": i}) as call:
                    call.output = {"n": i}


def _messages(raw: bytes) -> list[dict[str, str]]:
    """Each SSE message as its fields (comments left out)."""
    out = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            out.append(fields)
    return out


def _read_until(url: str, params: dict[str, str], last_id: int, until: int) -> bytes:
    """The stream's bytes until its last event id reaches `until` (or 10 s pass)."""
    headers = {**HEADERS, "Last-Event-ID": str(last_id)}
    raw = b""
    deadline = time.monotonic() + 10
    with httpx.stream(
        "GET", url + "/v1/events", params=params, headers=headers, timeout=10
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            raw += chunk
            ids = [int(m["id"]) for m in _messages(raw) if "id" in m]
            if (ids and ids[-1] >= until) or time.monotonic() > deadline:
                break
    return raw


def test_a_filtered_stream_sends_only_the_asked_types_and_moves_past_the_rest(
    rt: Runtime,
) -> None:
    _sessions(rt, 4)
    rt.disable_workflow("other", "op")  # the last event is one the filter skips
    last = rt.events.last_seq
    raw = _read_until(_url(rt), {"types": "session_ended,flag"}, 0, last)
    messages = _messages(raw)
    events = [m for m in messages if "data" in m]
    assert [m["event"] for m in events] == ["session_ended"] * 4
    ended = [r.seq for r in rt.events.after(0) if r.type == "session_ended"]
    assert [int(m["id"]) for m in events] == ended
    # the position the client ends at is the agent's: a reconnect replays nothing skipped
    assert int(messages[-1]["id"]) == last
    assert "data" not in messages[-1] and "event" not in messages[-1]
    # skipped events cost a type check: nobody rendered them
    assert all(r.sse is None for r in rt.events.after(0) if r.type != "session_ended")


def test_a_filtered_stream_resumes_after_its_position_and_replays_nothing(rt: Runtime) -> None:
    _sessions(rt, 2)
    middle = rt.events.last_seq
    _sessions(rt, 2)
    raw = _read_until(_url(rt), {"types": "session_ended"}, middle, rt.events.last_seq)
    ids = [int(m["id"]) for m in _messages(raw) if "data" in m]
    assert ids == [r.seq for r in rt.events.after(middle) if r.type == "session_ended"]


def test_the_unfiltered_stream_has_no_position_messages(rt: Runtime) -> None:
    """The console's stream is unchanged: every message after the opening one is an event,
    byte for byte what the renderer made for it."""
    _sessions(rt, 3)
    rt.disable_workflow("other", "op")
    raw = _read_until(_url(rt), {}, 0, rt.events.last_seq)
    opening, _, rest = raw.partition(b"\n\n")
    assert opening.startswith(b"retry: 1000\nid: 0\n")
    assert rest == b"".join(r.sse or b"" for r in rt.events.after(0))


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("types=session_ended,nope", "unknown event type 'nope'"),
        ("types=", "types names no event type"),
        ("types=,gap", "types names no event type"),
    ],
)
def test_a_bad_filter_is_a_400_json_error(rt: Runtime, query: str, error: str) -> None:
    response = httpx.get(f"{_url(rt)}/v1/events?{query}", headers=HEADERS, timeout=5)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["error"].startswith(error)
    assert "\n" not in body["error"]


def test_filtered_segments_hand_each_position_the_asked_events_after_it() -> None:
    """As the unfiltered segments do: each position gets the events after it that the
    filter keeps, and its position reaches the log's end; a gap once those left the ring."""
    log = EventLog(capacity=300)
    broadcast = Broadcast(log, 50, 2_000, 20_000, frozenset({"workflow_disabled"}))

    def drain(position: int) -> tuple[list[int], int, Gap | None]:
        got: list[int] = []
        while position < log.last_seq:
            taken = broadcast.take(position)
            if isinstance(taken, Gap):
                return got, position, taken
            chunks, position = taken
            got += [int(m["id"]) for c in chunks for m in _messages(c) if "data" in m]
        return got, position, None

    for n in range(120):
        log.publish("workflow_disabled" if n % 7 == 0 else "workflow_enabled", workflow=f"w{n}")
    kept = [r.seq for r in log.after(0) if r.type == "workflow_disabled"]
    assert drain(0) == (kept, 120, None)
    assert drain(37) == ([s for s in kept if s > 37], 120, None)
    for n in range(500):
        log.publish("workflow_enabled", workflow=f"y{n}")
    got, position, gap = drain(120)
    assert got == [] and gap == Gap(121, log.first_seq - 1) and position == 120
    assert all(r.sse is None for r in log.after(0))  # none of those was rendered


def test_the_filters_kept_are_bounded() -> None:
    log = EventLog(capacity=100)
    broadcasts = Broadcasts(log, 50, 2_000, 80_000)
    kinds = sorted(sse.STREAM_TYPES)
    held = [broadcasts.acquire(frozenset({kind})) for kind in kinds[: MAX_FILTERS + 2]]
    assert len(broadcasts) == MAX_FILTERS  # the two over the bound got one of their own
    assert broadcasts.acquire(frozenset({kinds[0]})) is held[0]  # shared by filter
    broadcasts.release(held[0])
    broadcasts.release(held[0])
    for extra in held[MAX_FILTERS:]:
        broadcasts.release(extra)  # not kept: nothing to release
    newcomer = broadcasts.acquire(frozenset({kinds[-1]}))
    assert len(broadcasts) == MAX_FILTERS and newcomer.types == frozenset({kinds[-1]})
    assert broadcasts.acquire(frozenset({kinds[0]})) is not held[0]  # the idle one went
    assert broadcasts.acquire(None) is broadcasts.all


def test_the_render_budget_is_one_for_all_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream waits for the budget only when it has something to render, and the budget
    another broadcast spent is spent for it too."""
    log = EventLog(capacity=100)
    one = Broadcast(log, 50, 2_000, 20_000, frozenset({"workflow_enabled"}))
    other = Broadcast(log, 50, 2_000, 20_000, frozenset({"workflow_disabled"}))
    log.publish("workflow_enabled", workflow="a")
    log.publish("workflow_disabled", workflow="b")
    monkeypatch.setattr(sse._PACE, "free_at", time.monotonic() + 60)  # spent, for a while
    started = time.monotonic()
    chunks, position = _taken(one.take(0))
    assert chunks == [] and position == 0  # waits (and gives up after _MAX_PACE_S)
    sse._PACE.free_at = 0.0
    monkeypatch.setattr(sse, "RENDER_SHARE", 1e-7)  # any render then spends seconds of budget
    chunks, position = _taken(one.take(0))
    assert position == 2 and b"workflow_enabled" in b"".join(chunks)
    assert sse._PACE.free_at > time.monotonic()  # that render spent the process's budget
    chunks, position = _taken(other.take(0))
    assert chunks == [] and position == 0  # ... so the other filter's render waits
    sse.render_batch(log.after(0))  # another stream rendered them meanwhile
    chunks, position = _taken(other.take(0))
    assert position == 2 and b"workflow_disabled" in b"".join(chunks)  # no wait: no render
    assert time.monotonic() - started < 5


def _taken(taken: tuple[list[bytes], int] | Gap) -> tuple[list[bytes], int]:
    assert not isinstance(taken, Gap)
    return taken
