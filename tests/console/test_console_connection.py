"""AgentConnection against real runtimes on loopback: snapshot, stream, gaps, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from textual.message import Message

from agentops_console.console.connection import AgentConnection, AgentSource, Backoff
from agentops_console.console.messages import AgentLive, AgentStale
from agentops_console.console.store import FleetStore

from .agents import TOKEN, TOKEN_ENV, make_runtime, running, until

FAST = Backoff(initial_s=0.05, factor=2.0, max_s=0.2, jitter=0.0)


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def _connection(url: str, store: FleetStore, posted: list[Message]) -> AgentConnection:
    return AgentConnection(AgentSource("it", url, TOKEN_ENV), store, posted.append, backoff=FAST)


async def _stop(task: asyncio.Task[None], conn: AgentConnection) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await conn.aclose()


async def test_snapshot_then_stream_reflects_live_sessions() -> None:
    with running() as rt:
        assert rt.url is not None
        with rt.session(workflow="password-reset", principal="user-1", session_id="before"):
            pass
        store, posted = FleetStore(), list[Message]()
        conn = _connection(rt.url, store, posted)
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: ("it", "before") in store.sessions, what="snapshot")
            assert isinstance(posted[0], AgentLive) and posted[0].snapshot == "first"
            with rt.session(workflow="vpn-help", principal="user-2", session_id="after") as s:
                s.llm_call(model="gpt-4o-mini", input_tokens=100, output_tokens=10)
                with s.tool_call("kb_search", {"query": "vpn"}):
                    pass
                await until(lambda: store.sessions.get(("it", "after")) is not None)
                await until(lambda: store.sessions[("it", "after")].tool_calls == 1)
            await until(lambda: store.sessions[("it", "after")].status == "completed")
            assert store.agents["it"].last_seq == rt.events.last_seq
            assert conn.snapshots == 1
        finally:
            await _stop(task, conn)


async def test_lost_events_trigger_a_snapshot_refetch() -> None:
    with running(event_log_size=5) as rt:
        assert rt.url is not None
        store, posted = FleetStore(), list[Message]()
        conn = _connection(rt.url, store, posted)
        task = asyncio.create_task(conn.run())
        await until(lambda: store.agents["it"].state == "live")
        await _stop(task, conn)  # the console loses its stream for a while ...
        for n in range(4):  # ... and the agent's ring overflows meanwhile
            with rt.session(workflow="password-reset", principal="u", session_id=f"s{n}"):
                pass
        conn = _connection(rt.url, store, posted)
        conn.feed._started_at = store.agents["it"].info.started_at  # type: ignore[union-attr]
        task = asyncio.create_task(conn.run())
        try:
            await until(
                lambda: any(isinstance(m, AgentLive) and m.snapshot == "gap" for m in posted)
            )
            assert {f"s{n}" for n in range(4)} <= {sid for _, sid in store.sessions}
        finally:
            await _stop(task, conn)


async def test_a_gap_event_refetches_the_snapshot_quietly_and_resumes_the_stream() -> None:
    """The agent's `gap` event (asked to resume from before its ring, it says so and closes
    the stream) means a snapshot and a resume from its last_event_seq: never a stale
    agent, never a reconnect loop."""
    with running(event_log_size=5) as rt:
        assert rt.url is not None
        store, posted = FleetStore(), list[Message]()
        conn = _connection(rt.url, store, posted)
        task = asyncio.create_task(conn.run())
        await until(lambda: store.agents["it"].state == "live")
        await _stop(task, conn)
        for n in range(6):  # the ring (5 events) overflows while the console is away
            with rt.session(workflow="password-reset", principal="u", session_id=f"s{n}"):
                pass
        posted.clear()
        conn = _connection(rt.url, store, posted)
        conn.feed._started_at = store.agents["it"].info.started_at  # type: ignore[union-attr]
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: any(getattr(m, "snapshot", "") == "gap" for m in posted))
            assert {f"s{n}" for n in range(6)} <= {sid for _, sid in store.sessions}
            with rt.session(workflow="vpn-help", principal="u", session_id="after-gap"):
                pass
            await until(lambda: ("it", "after-gap") in store.sessions, what="the stream again")
            await until(lambda: store.sessions[("it", "after-gap")].status == "completed")
            assert not [m for m in posted if isinstance(m, AgentStale)], posted
            assert store.agents["it"].state == "live" and store.agents["it"].retries == 0
            assert [getattr(m, "snapshot", "") for m in posted] == ["resumed", "gap"]
        finally:
            await _stop(task, conn)


async def test_agent_restart_on_the_same_port_goes_stale_then_live() -> None:
    with running() as first:
        assert first.url is not None
        port = int(first.url.rsplit(":", 1)[1])
        with first.session(workflow="password-reset", principal="u", session_id="old"):
            pass
        store, posted = FleetStore(), list[Message]()
        conn = _connection(first.url, store, posted)
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: ("it", "old") in store.sessions)
            first.stop()
            await until(lambda: store.is_stale("it"), what="stale")
            await until(lambda: store.agents["it"].retries >= 2, what="retries")
            stale = [m for m in posted if isinstance(m, AgentStale)]
            assert stale and stale[-1].retries == store.agents["it"].retries
            assert ("it", "old") in store.sessions  # frozen, not dropped
            with running(port=port) as second:
                with second.session(workflow="vpn-help", principal="u", session_id="new"):
                    pass
                await until(lambda: store.agents["it"].state == "live", what="live again")
                assert any(isinstance(m, AgentLive) and m.snapshot == "restart" for m in posted)
                assert ("it", "new") in store.sessions and ("it", "old") not in store.sessions
        finally:
            await _stop(task, conn)


async def test_unreachable_agent_backs_off_and_reports_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store, posted = FleetStore(), list[Message]()
    conn = _connection(f"http://127.0.0.1:{port}", store, posted)
    task = asyncio.create_task(conn.run())
    try:
        await until(lambda: store.agents["it"].retries >= 3)
        delays = [m.retry_in_s for m in posted if isinstance(m, AgentStale)]
        assert delays[:3] == [0.05, 0.1, 0.2]
        assert "unreachable" in (store.agents["it"].error or "")
    finally:
        await _stop(task, conn)


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(initial_s=1, factor=2, max_s=8, jitter=0.5)
    assert [backoff.delay(n, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    assert backoff.delay(3, lambda: 0.0) == 2


def test_in_memory_token_wins_and_stays_out_of_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    source = AgentSource("it", "http://127.0.0.1:1", TOKEN_ENV, token="in-memory-secret")
    assert source.resolve_token() == "in-memory-secret"
    assert "in-memory-secret" not in repr(source)
    assert AgentSource("it", "http://127.0.0.1:1", TOKEN_ENV).resolve_token() == TOKEN
    monkeypatch.delenv(TOKEN_ENV)
    assert AgentSource("it", "http://127.0.0.1:1", TOKEN_ENV).resolve_token() is None
    assert AgentSource("it", "http://127.0.0.1:1").resolve_token() is None


async def test_in_memory_token_authenticates_against_a_real_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    with running() as rt:
        assert rt.url is not None
        rt.session(workflow="password-reset", principal="u", session_id="s1")
        store, posted = FleetStore(), list[Message]()
        source = AgentSource("it", rt.url, token=TOKEN)
        conn = AgentConnection(source, store, posted.append, backoff=FAST)
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: ("it", "s1") in store.sessions, what="snapshot with token")
        finally:
            await _stop(task, conn)


class _PausableProxy:
    """TCP in front of an agent that can stop forwarding while keeping its sockets open:
    an agent that hangs, not one that went away."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        # the endpoint checks Host against its own address: the proxy is transparent
        own = f"Host: 127.0.0.1:{writer.get_extra_info('sockname')[1]}\r\n".encode()
        real = f"Host: 127.0.0.1:{self.target_port}\r\n".encode()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    await self.flowing.wait()
                    dst.write(data.replace(own, real) if up else data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_keepalives_keep_a_quiet_agent_live_and_a_hung_one_goes_stale() -> None:
    rt = make_runtime()
    rt.start(host="127.0.0.1", port=0, keepalive_s=0.1)
    try:
        assert rt.url is not None
        proxy = _PausableProxy(int(rt.url.rsplit(":", 1)[1]))
        port = await proxy.start()
        store, posted = FleetStore(), list[Message]()
        conn = AgentConnection(
            AgentSource("it", f"http://127.0.0.1:{port}", TOKEN_ENV),
            store,
            posted.append,
            backoff=FAST,
            idle_s=0.5,
        )
        task = asyncio.create_task(conn.run())
        try:
            await until(lambda: bool(posted), what="the first snapshot")
            await asyncio.sleep(1.5)  # no events at all, only keep-alives
            assert [type(m).__name__ for m in posted] == ["AgentLive"], posted
            proxy.flowing.clear()  # the agent hangs with its sockets open
            await until(
                lambda: any(isinstance(m, AgentStale) for m in posted), what="stale", timeout=10
            )
            assert store.agents["it"].state != "live"
        finally:
            proxy.flowing.set()
            await _stop(task, conn)
            await proxy.close()
    finally:
        rt.stop()
