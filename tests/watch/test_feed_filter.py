"""AgentFeed with `types` against a real runtime on loopback: only the asked events, the
sequence jumps taken as the filter's (not as losses), the position moved past skipped
events, an explicit gap still a gap; and agents that ignore or refuse the filter."""

from __future__ import annotations

import asyncio

import pytest

from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.feed import AgentFeed
from agentops_console.runtime import Runtime, server, sse
from agentops_console.runtime.server import _Handler

from .test_feed import FAST, TOKEN, Calls, runtime, stop, until, url, work

ENDS = frozenset({"session_ended"})


async def _follow(
    base: str, calls: Calls, types: frozenset[str]
) -> tuple[AgentFeed, asyncio.Task[None], AsyncAgentClient, list[int]]:
    positions: list[int] = []

    async def moved(seq: int) -> None:
        positions.append(seq)

    client = AsyncAgentClient(base, TOKEN)
    feed = AgentFeed(client, calls, backoff=FAST, types=types, on_position=moved)
    calls.feed = feed
    return feed, asyncio.create_task(feed.run()), client, positions


def _run_filtered(rt: Runtime, types: frozenset[str]) -> tuple[AgentFeed, Calls, list[int]]:
    """Follow with `types` while three sessions run and a skipped event comes last."""
    calls = Calls()

    async def main() -> tuple[AgentFeed, list[int]]:
        feed, task, client, positions = await _follow(url(rt), calls, types)
        await until(lambda: calls.kinds("live"))
        ids = work(rt, 3)
        rt.disable_workflow("other", "op")  # not asked for: the position must pass it
        await until(lambda: feed.last_seq == rt.events.last_seq)
        await stop(task, client)
        assert [e.session_id for e in calls.events] == ids
        return feed, positions

    try:
        feed, positions = asyncio.run(main())
    finally:
        rt.stop()
    return feed, calls, positions


def test_a_filtered_feed_takes_the_jumps_and_moves_past_what_was_skipped() -> None:
    rt = runtime()
    feed, calls, positions = _run_filtered(rt, ENDS)
    assert {e.type for e in calls.events} == {"session_ended"}
    assert [k for k, _ in calls.log] == ["snapshot", "live"]  # no gap, no new snapshot
    assert positions and positions[-1] == rt.events.last_seq
    assert feed.ask_filter


def test_an_agent_that_ignores_the_filter_is_filtered_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An older agent does not know `?types=` and sends every event."""
    monkeypatch.setattr(_Handler, "_stream_types", lambda self: None)
    rt = runtime()
    _, calls, positions = _run_filtered(rt, ENDS)
    assert {e.type for e in calls.events} == {"session_ended"}
    assert [k for k, _ in calls.log] == ["snapshot", "live"]
    assert positions[-1] == rt.events.last_seq


def test_an_agent_that_ignores_the_filter_still_has_its_jumps_taken_as_losses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Such an agent sends every event: a sequence number it skips (here: a record it cannot
    write) is a loss, as on an unfiltered stream, not the filter's doing."""
    monkeypatch.setattr(_Handler, "_stream_types", lambda self: None)
    rt = runtime()
    skipped = rt.events.last_seq + 5
    message = sse._message
    monkeypatch.setattr(
        sse, "_message", lambda r, data: b"" if r.seq == skipped else message(r, data)
    )

    async def main() -> None:
        calls = Calls()
        _, task, client, _ = await _follow(url(rt), calls, ENDS)
        await until(lambda: calls.kinds("live"))
        work(rt, 3)
        await until(lambda: len(calls.kinds("snapshot")) == 2)
        await stop(task, client)
        why, _, _, gap = calls.kinds("snapshot")[1]
        assert why == "gap" and (gap.first, gap.last) == (skipped, skipped)

    try:
        asyncio.run(main())
    finally:
        rt.stop()


def test_an_agent_that_refuses_the_filter_is_followed_unfiltered() -> None:
    """A type this agent does not know (a newer client): 400, then the whole stream."""
    rt = runtime()
    feed, calls, positions = _run_filtered(rt, ENDS | {"a_type_from_the_future"})
    assert {e.type for e in calls.events} == {"session_ended"}
    assert [k for k, _ in calls.log] == ["snapshot", "live"]  # no stale, no backoff
    assert not feed.ask_filter
    assert positions[-1] == rt.events.last_seq


def test_a_restarted_agent_is_asked_to_filter_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal holds for the agent that gave it: after a restart (maybe an upgrade) the
    feed asks again."""

    def refuse(values: list[str]) -> frozenset[str]:
        raise ValueError("unknown event type")

    monkeypatch.setattr(server, "parse_types", refuse)
    rt = runtime()
    base = url(rt)
    port = int(base.rsplit(":", 1)[1])

    async def main() -> None:
        nonlocal rt
        calls = Calls()
        feed, task, client, _ = await _follow(base, calls, ENDS)
        await until(lambda: calls.kinds("live") and not feed.ask_filter)
        rt.stop()
        monkeypatch.undo()
        await until(lambda: "unreachable" in calls.kinds("stale"))
        rt = Runtime(agent="a", version="2", token=TOKEN)
        rt.start(host="127.0.0.1", port=port)
        await until(lambda: len(calls.kinds("snapshot")) == 2)
        ids = work(rt, 2)
        await until(lambda: [e.session_id for e in calls.events] == ids)
        await stop(task, client)
        assert calls.kinds("snapshot")[1][0] == "restart"
        assert feed.ask_filter

    try:
        asyncio.run(main())
    finally:
        rt.stop()


def test_a_filtered_feed_still_hears_an_explicit_gap() -> None:
    rt = runtime(event_log_size=20)

    async def main() -> None:
        work(rt, 10)  # ~40 events: the ring keeps the last 20
        calls = Calls(resume=1)
        _, task, client, _ = await _follow(url(rt), calls, ENDS)
        await until(lambda: len(calls.kinds("snapshot")) == 2)
        await stop(task, client)
        why, seq, _, gap = calls.kinds("snapshot")[1]
        assert why == "gap" and seq == rt.events.last_seq
        assert gap.first == 2 and gap.last == rt.events.first_seq - 1

    try:
        asyncio.run(main())
    finally:
        rt.stop()
