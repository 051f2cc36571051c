"""Issue 9 at the recorder: no session end is dropped. A real runtime on loopback, the real
recorder and a real records file; the flushes are driven by the test, so the windows the
watcher process hits by chance (~1 run in 20) are hit every time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.models import Budgets
from agentops_console.protocol.records import SessionRecord
from agentops_console.runtime import Runtime, SessionKilled
from agentops_console.runtime.config import RuntimeConfig
from agentops_console.watch.recorder import AgentTrack, Recorder, StoreThread
from tests.loopback import serving, url_of

from ..records.test_store_merge import turn

TOKEN = "recorder-conversation-token"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000))
    runtime = Runtime("it-support", "1.4.0", tenant="acme", token=TOKEN, config=config)
    with serving(runtime):
        yield runtime


async def _open(path: Path, rt: Runtime) -> tuple[Recorder, AgentTrack, AsyncAgentClient]:
    thread = StoreThread()
    await thread.open(path)
    recorder = Recorder(thread)
    client = AsyncAgentClient(url_of(rt), TOKEN)
    track = recorder.track("it-support", client)
    track.info = await client.agent()
    track.name = track.info.agent
    return recorder, track, client


async def _close(recorder: Recorder, client: AsyncAgentClient) -> None:
    recorder.cancel()
    await client.aclose()
    await recorder.store.close()


async def _flush_all(recorder: Recorder, track: AgentTrack) -> None:
    deadline = time.monotonic() + 20
    while track.ends and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        assert await recorder.flush()
    assert not track.ends


async def _stored(recorder: Recorder, session_id: str) -> SessionRecord:
    store = recorder.store.store
    assert store is not None
    return await recorder.store.call(store.get, session_id)


def test_an_end_after_the_queued_one_was_fetched_is_recorded(rt: Runtime, tmp_path: Path) -> None:
    """A kill makes the session's status final (`session_killed`): the recorder fetches it
    at once, before the session has ended. Its real `session_ended` comes while that end
    still waits for the flush; it was skipped, and the record stayed the mid-run copy."""

    async def scenario() -> None:
        recorder, track, client = await _open(tmp_path / "records.db", rt)
        try:
            with rt.session("password-reset", "user-1", session_id="s-1") as s:
                s.llm_call("gpt-4o", 500, 50)
                rt.kill("s-1", "otto.ops", "runaway")
                recorder.session_ended(track, 1, "s-1", None)  # the kill's event
                await asyncio.wait_for(asyncio.shield(track.ends[0].fetched), 10)
                with suppress(SessionKilled):
                    s.llm_call("gpt-4o", 500, 50)
            recorder.session_ended(track, 2, "s-1", None)  # the end, before a flush
            await _flush_all(recorder, track)
            got = await _stored(recorder, "s-1")
        finally:
            await _close(recorder, client)
        assert got.status == "killed"
        assert got.ended_at is not None  # the copy read after the end, not at the kill

    asyncio.run(scenario())


def test_a_repeat_end_before_the_fetch_is_asked_once(rt: Runtime, tmp_path: Path) -> None:
    """Ends of one session that all come before its fetch is asked share that fetch."""

    async def scenario() -> None:
        recorder, track, client = await _open(tmp_path / "records.db", rt)
        try:
            with rt.session("password-reset", "user-2", session_id="s-2") as s:
                s.llm_call("gpt-4o", 500, 50)
            for seq in (1, 2, 3):
                recorder.session_ended(track, seq, "s-2", None)
            assert len(track.ends) == 1
            await _flush_all(recorder, track)
        finally:
            await _close(recorder, client)

    asyncio.run(scenario())


def test_a_snapshot_refetches_a_conversation_that_ended_again_unseen(
    rt: Runtime, tmp_path: Path
) -> None:
    """The watcher stored a conversation's first run, then lost the events of its second
    (a stream gap): the snapshot shows it ended again later, so it is fetched again."""
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    tracer = provider.get_tracer("agent-framework")

    async def scenario() -> tuple[list[str], SessionRecord]:
        recorder, track, client = await _open(tmp_path / "records.db", rt)
        try:
            turn(tracer, "chat-1", "kb_search")
            turn(tracer, "chat-2", "kb_search")
            recorder.session_ended(track, 1, "chat-1", None)
            recorder.session_ended(track, 2, "chat-2", None)
            await _flush_all(recorder, track)
            assert await recorder.missing(track, await client.sessions()) == []
            turn(tracer, "chat-1", "reset_password")  # re-opened and ended: no event seen
            missing = await recorder.missing(track, await client.sessions())
            for session_id in missing:
                recorder.session_ended(track, 3, session_id, None)
            await _flush_all(recorder, track)
            return missing, await _stored(recorder, "chat-1")
        finally:
            await _close(recorder, client)

    try:
        missing, got = asyncio.run(scenario())
    finally:
        provider.shutdown()
    assert missing == ["chat-1"]
    assert [s.tool_name for s in got.spans if s.kind == "tool"] == ["kb_search", "reset_password"]
