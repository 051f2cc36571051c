"""A denial's argument fetch runs off the stream (watch/service.py `DeferredDenials`).

A real WatchService, in process on a thread of its own (as the demo runs it), follows a
real runtime on loopback over real HTTP, with a real records DB and governance DB. The
agent is made slow where it matters, on the watcher's own client: its reads of a session's
detail (`session_raw`, the argument fetch) are held until the test lets each one go. With
the fetch awaited inline, a held read held the agent's whole stream."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentops_console.governance.clock import parse_ts
from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.models import Budgets, Flag
from agentops_console.runtime import PolicyDenied, Runtime, RuntimeConfig, SessionKilled, ToolSpec
from agentops_console.watch import service as service_module
from agentops_console.watch.alerts import IncidentPolicy
from agentops_console.watch.config import WatchConfig
from agentops_console.watch.service import (
    DENIALS_IN_FLIGHT,
    AgentWatch,
    Source,
    WatchOptions,
    WatchService,
)
from tests.loopback import serving, url_of

from .test_watcher_process import TOKEN, export_policy, incidents, recorded, wait_for

#: Exports of another tenant's data are refused (a cross-tenant export only the call's
#: `tenant` argument tells apart); so is any `purge_*` call (plain denials, for bursts).
POLICY = (
    export_policy("no-foreign-export")
    + """\
@id("no-purge")
forbid (principal, action == Action::"call_tool", resource)
when { resource.category == "purge" };
"""
)
PURGES = [f"purge_{i}" for i in range(DENIALS_IN_FLIGHT + 2)]
#: A held read gives up waiting after this long (a failing test must still end).
HOLD_LIMIT_S = 20.0


class HeldReads:
    """The watcher's reads of a session's detail, each held until released: a slow agent
    (a span not yet visible, a busy endpoint), staged on our own client."""

    def __init__(self, client: AsyncAgentClient) -> None:
        self._read = client.session_raw
        self._released: set[int] = set()
        self._all = False
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.finished = 0

    async def session_raw(self, session_id: str) -> dict[str, Any]:
        n = self.calls
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            deadline = time.monotonic() + HOLD_LIMIT_S
            while not (self._all or n in self._released) and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            return await self._read(session_id)
        finally:
            self.in_flight -= 1
            self.finished += 1

    def release(self, n: int) -> None:
        self._released.add(n)

    def release_all(self) -> None:
        self._all = True


@dataclass
class Watching:
    service: WatchService
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    held: HeldReads
    gov: Path
    records: Path
    errors: list[BaseException]

    @property
    def watch(self) -> AgentWatch:
        return self.service.watches[0]

    def stored(self) -> set[str]:
        """The ids of the sessions in the records DB."""
        return {row[1] for row in recorded(self.records)}

    def stop(self, timeout: float = 15) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.service.stop)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the watcher did not stop"


@contextmanager
def watching(rt: Runtime, tmp_path: Path, policy: IncidentPolicy) -> Iterator[Watching]:
    """The watch service following `rt`, live, its argument reads held."""
    from agentops_console.governance.api import open_governance

    gov = tmp_path / "governance.db"
    open_governance(gov, create=True).close()
    options = WatchOptions(
        records=tmp_path / "records.db",
        config=WatchConfig("test", incidents=policy),
        sources=(Source("billing", url_of(rt), TOKEN),),
        governance_db=gov,
    )
    service = WatchService(options)
    loops: list[asyncio.AbstractEventLoop] = []
    errors: list[BaseException] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await service.run()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-watch", daemon=True)
    thread.start()
    wait_for(lambda: service.watches and service.watches[0].state == "live", what="live")
    watch = service.watches[0]
    held = HeldReads(watch.client)
    watch.client.session_raw = held.session_raw  # type: ignore[method-assign]
    running = Watching(service, loops[0], thread, held, gov, options.records, errors)
    try:
        yield running
    finally:
        held.release_all()
        running.stop()
    assert not errors, errors


def billing() -> Runtime:
    """The billing agent of the denial tests (and test_service_filter's): cross-tenant
    exports refused by a policy whose id does not say so, `purge_*` calls refused."""
    tools = [ToolSpec(name="export_data", version="0.9", category="export")]
    tools += [ToolSpec(name=name, version="1.0", category="purge") for name in PURGES]
    return Runtime(
        agent="billing",
        version="2.0",
        tenant="acme",
        token=TOKEN,
        config=RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=1000)),
        policy=POLICY,
        tools=tools,
    )


def foreign_export(rt: Runtime) -> str:
    """A session that tries to export another tenant's data (refused), then ends."""
    with rt.session("data-export", "user-9") as s:
        with pytest.raises(PolicyDenied), s.tool_call("export_data", {"tenant": "globex"}):
            pass
        return s.id


def denials(rt: Runtime, tools: list[str]) -> str:
    """A session refused once per tool (own-tenant arguments: no cross-tenant export)."""
    with rt.session("cleanup", "user-3") as s:
        for name in tools:
            with pytest.raises(PolicyDenied), s.tool_call(name, {"tenant": "acme"}):
                pass
        return s.id


def ordinary(rt: Runtime) -> str:
    with rt.session("lookup", "user-1") as s:
        with s.tool_call("kb_search", {"q": 1}):
            pass
        return s.id


def runaway(rt: Runtime) -> str:
    """The same call retried: a runaway_loop flag (the agent may kill the session)."""
    with contextlib.suppress(SessionKilled), rt.session("password-reset", "user-2") as s:
        sid = s.id
        for _ in range(6):
            with s.tool_call("kb_search", {"query": "same"}):
                pass
    return sid


def flags_of(rt: Runtime, sid: str, kind: str) -> list[Flag]:
    detail = rt.session_detail(sid)
    assert detail is not None
    return [f for f in detail.flags if f.kind == kind]


def opened(gov: Path, cause: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [r for r in incidents(gov) if r["flag_kind"] == cause]


def _at(text: str) -> float:
    return parse_ts(text).timestamp()


def test_the_stream_flows_while_a_denials_arguments_are_being_read(tmp_path: Path) -> None:
    with serving(billing()) as rt, watching(rt, tmp_path, IncidentPolicy()) as w:
        export = foreign_export(rt)
        wait_for(lambda: w.held.calls == 1, what="the argument read")
        ended = {export, runaway(rt), ordinary(rt)}
        # every end recorded and the runaway's incident opened, the read still held
        wait_for(lambda: ended <= w.stored(), timeout=10, what="the sessions recorded")
        wait_for(opened(w.gov, "runaway_loop"), timeout=10, what="the runaway's incident")
        assert w.held.in_flight == 1 and not opened(w.gov, "cross_tenant_export")()
        w.held.release(0)
        (row,) = wait_for(opened(w.gov, "cross_tenant_export"), what="the export's incident")
    assert row["session_id"] == export


def test_a_cross_tenant_export_keeps_its_text_and_the_flags_time(tmp_path: Path) -> None:
    with serving(billing()) as rt, watching(rt, tmp_path, IncidentPolicy()) as w:
        export = foreign_export(rt)
        wait_for(lambda: w.held.calls == 1, what="the argument read")
        ended = {export, ordinary(rt)}
        wait_for(lambda: ended <= w.stored(), timeout=10, what="the sessions recorded")
        time.sleep(0.5)  # the read ends well after the flag
        w.held.release(0)
        (row,) = wait_for(opened(w.gov, "cross_tenant_export"), what="the export's incident")
        (flag,) = flags_of(rt, export, "policy_denied")
        time.sleep(0.3)  # anything more would have arrived by now
        assert len(incidents(w.gov)) == 1
    assert row["summary"] == (
        "cross-tenant export attempt: export_data denied by policy: no-foreign-export"
    )
    assert row["session_id"] == export
    assert _at(row["detected_at"]) == pytest.approx(flag.at.timestamp(), abs=1e-3)


def test_a_burst_of_denials_read_out_of_order_is_one_alert_on_its_third(tmp_path: Path) -> None:
    policy = IncidentPolicy(denials=3, denial_window_s=60)
    with serving(billing()) as rt, watching(rt, tmp_path, policy) as w:
        sid = denials(rt, PURGES[:4])
        # the four reads are in flight together; the first answered last
        wait_for(lambda: w.held.in_flight == 4, timeout=10, what="4 reads in flight")
        for n in (3, 2, 1, 0):
            w.held.release(n)
            time.sleep(0.1)
        (row,) = wait_for(opened(w.gov, "policy_denied"), what="the burst's incident")
        wait_for(lambda: w.held.finished == 4, what="every read done")
        time.sleep(0.3)  # the fourth denial's alert (same key) would have arrived by now
        assert len(incidents(w.gov)) == 1
        third = flags_of(rt, sid, "policy_denied")[2]
    assert row["summary"] == (
        f"3 policy denials within 60 s in session {sid}; last: {third.message}"
    )
    assert third.message == "purge_2 denied by policy: no-purge"
    assert _at(row["detected_at"]) == pytest.approx(third.at.timestamp(), abs=1e-3)


def test_denials_in_flight_are_bounded_and_then_hold_the_stream(tmp_path: Path) -> None:
    policy = IncidentPolicy(denials=3, denial_window_s=60)
    with serving(billing()) as rt, watching(rt, tmp_path, policy) as w:
        many = DENIALS_IN_FLIGHT + 2
        denials(rt, PURGES[:many])
        wait_for(lambda: w.held.in_flight == DENIALS_IN_FLIGHT, timeout=10, what="a full house")
        last = ordinary(rt)
        time.sleep(0.5)
        # no more reads, and the stream waits for a slot: the end behind the ninth denial
        # is not recorded yet
        assert w.held.calls == DENIALS_IN_FLIGHT and last not in w.stored()
        w.held.release_all()
        wait_for(lambda: last in w.stored(), timeout=10, what="the last session recorded")
        wait_for(lambda: w.held.finished == many, what="every read done")
        wait_for(opened(w.gov, "policy_denied"), what="the burst's incident")
        time.sleep(0.3)
        assert len(incidents(w.gov)) == 1


def test_a_stop_waits_for_the_alert_of_a_denial_judged_while_draining(tmp_path: Path) -> None:
    with serving(billing()) as rt, watching(rt, tmp_path, IncidentPolicy()) as w:
        export = foreign_export(rt)
        wait_for(lambda: w.held.in_flight == 1, what="the argument read")
        w.loop.call_soon_threadsafe(w.service.stop)
        time.sleep(0.3)
        w.held.release(0)  # answered while the watcher drains: the incident it raises
        w.stop()  # is a task started after the drain began, and still opened
        (row,) = opened(w.gov, "cross_tenant_export")()
    assert row["session_id"] == export


def test_a_stop_cancels_a_read_never_answered_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "DRAIN_TASKS_S", 1.0)
    with serving(billing()) as rt, watching(rt, tmp_path, IncidentPolicy()) as w:
        denials(rt, PURGES[:2])
        wait_for(lambda: w.held.in_flight == 2, what="2 reads in flight")
        started = time.monotonic()
        w.stop()
        assert time.monotonic() - started < 5
        assert w.held.in_flight == 0 and w.held.finished == 2  # cancelled, not left pending
        gc.collect()
    assert "Task was destroyed" not in caplog.text
    assert "Traceback" not in caplog.text
