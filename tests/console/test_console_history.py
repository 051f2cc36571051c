"""The console and the records DB (issue 9, section 4), against a real runtime on loopback,
a real records DB and the real app under Pilot: a session evicted from the agent's ring
opens from the records DB and says so; the console reads the records DB read-only (never
the writer lock); an incident opened with `i` keeps its session's record as evidence,
from the agent or from the records DB, and keeps it after the records are pruned."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.console.history import RecordsReader, records_path
from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.screens.detail import DetailScreen
from agentops_console.console.widgets.alerts_table import AlertsTable
from agentops_console.governance.db import open_db
from agentops_console.governance.incidents import get_evidence, list_incidents
from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.records import SessionRecord, build_record
from agentops_console.records.lock import WriterLock
from agentops_console.records.retention import prune
from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime

from .agents import TOKEN, console_app, modal_ready, running, until

SIZE = (160, 40)


pytestmark = pytest.mark.usefixtures("agent_token")  # conftest.py, with `gov`


@pytest.fixture
def rt() -> Iterator[Runtime]:
    with running(finished_sessions=1) as runtime:  # a ring of one finished session
        yield runtime


def _loop(rt: Runtime, session_id: str) -> None:
    with rt.session(workflow="password-reset", principal="u-7", session_id=session_id) as s:
        s.llm_call(model="gpt-4o-mini", input_tokens=100, output_tokens=20)
        for _ in range(5):  # the same step again and again: a runaway loop
            try:
                with s.tool_call("kb_search", {"query": "locked account"}):
                    pass
            except Exception:
                break


def _record(rt: Runtime, session_id: str) -> SessionRecord:
    assert rt.url is not None
    with AgentClient(rt.url, TOKEN) as client:
        return build_record(client.session(session_id), client.agent(), client.approvals())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _evict_old(app: Any, rt: Runtime) -> None:
    """`old` raised a runaway alert; a newer session pushes it out of the ring."""
    await until(
        lambda: any(
            a.session_id == "old" and a.flag.kind == "runaway_loop" for a in app.store.alerts
        ),
        what="the runaway alert of old",
    )
    with rt.session(workflow="vpn-help", principal="u-8", session_id="newer"):
        pass
    await until(lambda: ("it-support", "old") not in app.store.sessions, what="old evicted")


async def _open_alert(app: Any, pilot: Any, session_id: str, key: str) -> None:
    await pilot.press("3")
    table = app.screen.query_one(AlertsTable)
    alert = next(a for a in app.store.alerts if a.session_id == session_id)
    await until(lambda: table.select_key(alert.key), what="the alert row")
    await pilot.press(key)


async def test_an_evicted_session_opens_from_the_records_db_and_says_so(
    tmp_path: Path, rt: Runtime, gov: GovernanceAdapter
) -> None:
    records = tmp_path / "records.db"
    app = console_app(rt, gov, records=RecordsReader(records))
    async with app.run_test(size=SIZE) as pilot:
        _loop(rt, "old")
        with open_store(records, writer=True, create=True) as store:
            store.write([_record(rt, "old")])
        await _evict_old(app, rt)
        assert rt.get("old") is None  # the agent no longer has it
        writer = WriterLock(records)  # a watcher writing meanwhile: the console never waits
        writer.acquire()
        try:
            before = _digest(records)
            await _open_alert(app, pilot, "old", "enter")
            await until(lambda: isinstance(app.screen, DetailScreen), what="the detail view")
            screen = app.screen
            await until(lambda: screen.origin.startswith("from records"), what="records copy")
            assert screen.detail is not None and screen.detail.id == "old"
            assert screen.detail.tool_calls >= 1 and len(screen.detail.spans) >= 2
            shown = str(screen.query_one("#loops", Static).render())
            assert "from records (recorded 20" in shown
            assert "old" in str(screen.query_one("#summary", Static).render())
            assert _digest(records) == before  # opened read-only: not a byte changed
        finally:
            writer.release()
        await pilot.press("escape")
        app.show_detail(("it-support", "newer"))
        await until(lambda: getattr(app.screen, "origin", "") == "live from it-support")


async def test_incident_from_the_console_keeps_the_sessions_record(
    tmp_path: Path, rt: Runtime, gov: GovernanceAdapter
) -> None:
    app = console_app(rt, gov, records=RecordsReader(tmp_path / "absent.db"))
    async with app.run_test(size=SIZE) as pilot:
        _loop(rt, "loop")
        await until(lambda: any(a.session_id == "loop" for a in app.store.alerts))
        await _open_alert(app, pilot, "loop", "i")
        await until(modal_ready(app, ConfirmModal), what="the incident modal")
        await pilot.click("#confirm")
        await until(lambda: bool(app.results), what="action result")
        assert app.results[-1].ok, app.results[-1].message
    with open_db(gov.path) as gdb:
        [incident] = list_incidents(gdb)
        stored = get_evidence(gdb, incident.id)
    assert stored is not None and stored.source == "agent" and stored.origin == rt.url
    record = SessionRecord.model_validate(stored.record())
    assert record.session_id == "loop" and record.agent == "it-support"
    assert [f.kind for f in record.flags if f.kind == "runaway_loop"]
    assert len(record.spans) >= 2


async def test_incident_on_an_evicted_session_takes_the_records_copy_which_outlives_pruning(
    tmp_path: Path, rt: Runtime, gov: GovernanceAdapter
) -> None:
    records = tmp_path / "records.db"
    app = console_app(rt, gov, records=RecordsReader(records))
    async with app.run_test(size=SIZE) as pilot:
        _loop(rt, "old")
        recorded = _record(rt, "old")
        with open_store(records, writer=True, create=True) as store:
            store.write([recorded])
        await _evict_old(app, rt)
        await _open_alert(app, pilot, "old", "i")
        await until(modal_ready(app, ConfirmModal), what="the incident modal")
        await pilot.click("#confirm")
        await until(lambda: bool(app.results), what="action result")
        assert app.results[-1].ok, app.results[-1].message
    with open_store(records, writer=True) as store:
        prune(store, keep_days=0)
        assert store.count() == 0
    with open_db(gov.path) as gdb:
        [incident] = list_incidents(gdb)
        stored = get_evidence(gdb, incident.id)
    assert stored is not None and stored.source == "records"
    assert stored.origin == str(records)
    assert SessionRecord.model_validate(stored.record()) == recorded


def test_records_path_defaults_beside_the_governance_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOPS_RECORDS", raising=False)
    assert records_path(None, tmp_path / "gov.db") == tmp_path / "records.db"
    assert records_path(tmp_path / "r.db", tmp_path / "gov.db") == tmp_path / "r.db"
    monkeypatch.setenv("AGENTOPS_RECORDS", str(tmp_path / "env.db"))
    assert records_path(None, tmp_path / "gov.db") == tmp_path / "env.db"
