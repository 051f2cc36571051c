"""AgentFeed against a real runtime on loopback: snapshot and stream, an explicit gap, a
restarted agent, a refused token and an agent that is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.feed import AgentFeed, Backoff, SeqGap
from agentops_console.protocol.models import AgentInfo, Approval, Event, SessionSummary
from agentops_console.runtime import Runtime
from agentops_console.runtime.config import RuntimeConfig

TOKEN = "feed-token"
FAST = Backoff(initial_s=0.05, max_s=0.2)


class Calls:
    """A FeedListener that writes down what it is told."""

    def __init__(self, resume: int | None = None) -> None:
        self.log: list[tuple[str, Any]] = []
        self.events: list[Event] = []
        self.feed: AgentFeed | None = None
        self.resume = resume

    async def on_snapshot(
        self,
        info: AgentInfo,
        sessions: list[SessionSummary],
        approvals: list[Approval],
        why: str,
        gap: SeqGap | None,
    ) -> None:
        self.log.append(("snapshot", (why, info.last_event_seq, len(sessions), gap)))
        if why == "first" and self.resume is not None and self.feed is not None:
            self.feed.resume_from(self.resume)

    async def on_event(self, event: Event) -> None:
        self.events.append(event)

    async def on_live(self, info: AgentInfo, why: str) -> None:
        self.log.append(("live", why))

    async def on_stale(self, reason: str, error: str, retry: int, delay: float) -> None:
        self.log.append(("stale", reason))

    def kinds(self, kind: str) -> list[Any]:
        return [v for k, v in self.log if k == kind]


def runtime(**config: Any) -> Runtime:
    rt = Runtime(agent="a", version="1", token=TOKEN, config=RuntimeConfig(**config))
    rt.start(host="127.0.0.1", port=0)
    return rt


def url(rt: Runtime) -> str:
    assert rt._server is not None
    return rt._server.url


def work(rt: Runtime, sessions: int = 1) -> list[str]:
    ids = []
    for _ in range(sessions):
        with rt.session("w", "p") as s:
            s.llm_call("gpt-4o-mini", 10, 5)
            ids.append(s.id)
    return ids


async def until(check: Callable[[], Any], timeout: float = 10) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def follow(
    base: str, calls: Calls, token: str = TOKEN
) -> tuple[AgentFeed, asyncio.Task[None], AsyncAgentClient]:
    client = AsyncAgentClient(base, token)
    feed = AgentFeed(client, calls, backoff=FAST)
    calls.feed = feed
    return feed, asyncio.create_task(feed.run()), client


async def stop(task: asyncio.Task[None], client: AsyncAgentClient) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.aclose()


def test_snapshot_then_every_event_in_order() -> None:
    rt = runtime()

    async def main() -> None:
        before = work(rt)
        calls = Calls()
        feed, task, client = await follow(url(rt), calls)
        await until(lambda: calls.kinds("live"))
        after = work(rt, 3)
        await until(lambda: sum(e.type == "session_ended" for e in calls.events) == 3)
        await stop(task, client)
        (first,) = calls.kinds("snapshot")
        assert first[0] == "first" and first[2] == len(before)
        seqs = [e.seq for e in calls.events]
        assert seqs == list(range(first[1] + 1, first[1] + 1 + len(seqs)))
        ended = [e.session_id for e in calls.events if e.type == "session_ended"]
        assert ended == after
        assert feed.last_seq == seqs[-1]

    try:
        asyncio.run(main())
    finally:
        rt.stop()


def test_a_resume_older_than_the_ring_is_a_gap_and_a_new_snapshot() -> None:
    rt = runtime(event_log_size=20)

    async def main() -> None:
        work(rt, 10)  # ~40 events: the ring keeps the last 20
        calls = Calls(resume=1)
        _, task, client = await follow(url(rt), calls)
        await until(lambda: len(calls.kinds("snapshot")) == 2)
        await stop(task, client)
        first, second = calls.kinds("snapshot")
        assert first[0] == "first"
        why, seq, _, gap = second
        assert why == "gap" and seq == rt.events.last_seq
        assert gap.first == 2 and gap.last == rt.events.first_seq - 1

    try:
        asyncio.run(main())
    finally:
        rt.stop()


def test_a_resume_replays_the_events_after_the_given_position() -> None:
    rt = runtime()

    async def main() -> None:
        work(rt, 2)
        middle = rt.events.last_seq
        later = work(rt, 2)
        calls = Calls(resume=middle)
        _, task, client = await follow(url(rt), calls)
        await until(lambda: sum(e.type == "session_ended" for e in calls.events) == 2)
        await stop(task, client)
        assert calls.events[0].seq == middle + 1
        assert [e.session_id for e in calls.events if e.type == "session_ended"] == later

    try:
        asyncio.run(main())
    finally:
        rt.stop()


def test_a_restarted_agent_is_snapshotted_again() -> None:
    rt = runtime()
    base = url(rt)
    port = int(base.rsplit(":", 1)[1])

    async def main() -> None:
        nonlocal rt
        work(rt, 3)
        calls = Calls()
        _, task, client = await follow(base, calls)
        await until(lambda: calls.kinds("live"))
        rt.stop()
        await until(lambda: "unreachable" in calls.kinds("stale"))
        rt = Runtime(agent="a", version="2", token=TOKEN)
        rt.start(host="127.0.0.1", port=port)
        await until(lambda: len(calls.kinds("snapshot")) == 2)
        await stop(task, client)
        assert calls.kinds("snapshot")[1][0] == "restart"

    try:
        asyncio.run(main())
    finally:
        rt.stop()


def test_a_refused_token_is_unauthorized_not_unreachable() -> None:
    rt = runtime()

    async def main() -> None:
        calls = Calls()
        _, task, client = await follow(url(rt), calls, token="wrong-token")
        await until(lambda: len(calls.kinds("stale")) >= 2)
        await stop(task, client)
        assert set(calls.kinds("stale")) == {"unauthorized"}
        assert not calls.kinds("snapshot")

    try:
        asyncio.run(main())
    finally:
        rt.stop()
