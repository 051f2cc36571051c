"""Incident evidence (issue 9, section 4) and the one incident API (issue 13, item 16):
the triggering session's record stored with the incident, bounded, in the incident's own
transaction, surviving the records DB's retention; one severity rule for console and watch."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.governance import migrations
from agentops_console.governance.api import incident_severity, open_incident_for_flag
from agentops_console.governance.db import open_db
from agentops_console.governance.evidence import LIMIT_BYTES, Evidence, bound, collect
from agentops_console.governance.incidents import get_evidence, list_incidents
from agentops_console.protocol.client import AgentClient, AsyncAgentClient
from agentops_console.protocol.records import SessionRecord, build_record
from agentops_console.records.retention import prune
from agentops_console.records.store import open_store
from agentops_console.runtime import Runtime

from ..console.agents import TOKEN, running
from .gov_fixtures import RUNBOOKS


def _looping_session(rt: Runtime, session_id: str = "loop", steps: int = 5) -> None:
    with rt.session(workflow="password-reset", principal="u-7", session_id=session_id) as s:
        s.llm_call(model="gpt-4o-mini", input_tokens=120, output_tokens=30)
        for _ in range(steps):
            try:
                with s.tool_call("kb_search", {"query": "locked account"}) as call:
                    call.output({"hits": ["kb-1"]})
            except Exception:
                break


def _record_from(rt: Runtime, session_id: str) -> SessionRecord:
    assert rt.url is not None
    with AgentClient(rt.url, TOKEN) as client:
        return build_record(client.session(session_id), client.agent(), client.approvals())


def test_an_incident_keeps_the_sessions_record_and_its_audit_row_vouches_for_it(
    tmp_path: Path,
) -> None:
    with running() as rt:
        _looping_session(rt)
        record = _record_from(rt, "loop")
        assert rt.url is not None
        evidence = Evidence(record, "agent", rt.url)
    with open_db(tmp_path / "gov.db", create=True) as gdb:
        incident, _ = open_incident_for_flag(
            gdb,
            agent="it-support",
            flag_kind="runaway_loop",
            summary="runaway loop on it-support",
            actor="alice",
            session_id="loop",
            evidence=evidence,
        )
        stored = get_evidence(gdb, incident.id)
        [row] = gdb.query("SELECT details FROM audit WHERE action = 'incident.open'")
    assert stored is not None
    assert SessionRecord.model_validate(stored.record()) == record
    assert (stored.source, stored.session_id, stored.agent, stored.note) == (
        "agent",
        "loop",
        "it-support",
        None,
    )
    assert stored.stored_bytes == stored.record_bytes == len(stored.record_json.encode())
    audited = json.loads(row["details"])["evidence"]
    assert audited["sha256"] == hashlib.sha256(stored.record_json.encode()).hexdigest()
    assert audited["session_id"] == "loop" and audited["cut"] is False


def test_the_evidence_row_is_in_the_incidents_transaction(tmp_path: Path) -> None:
    """Evidence that cannot be stored leaves no incident and no audit row behind."""
    record = SessionRecord.model_validate(
        {
            "agent": "it-support",
            "agent_version": "1.4.0",
            "workflow": "w",
            "principal": "p",
            "session_id": "s-1",
            "started_at": "2025-06-02T09:00:00Z",
            "last_event_at": "2025-06-02T09:00:01Z",
            "status": "completed",
        }
    )
    path = tmp_path / "gov.db"
    open_db(path, create=True).close()
    raw = sqlite3.connect(path)
    raw.execute(  # a row the new evidence will collide with: the INSERT fails mid-way
        "INSERT INTO incident_evidence (incident_id, agent, session_id, source, captured_at,"
        " record) VALUES (1, 'x', 'x', 'agent', 'now', '{}')"
    )
    raw.commit()
    raw.close()
    with open_db(path) as gdb:
        with pytest.raises(sqlite3.IntegrityError):
            open_incident_for_flag(
                gdb,
                agent="it-support",
                flag_kind="runaway_loop",
                summary="loop",
                actor="alice",
                session_id="s-1",
                evidence=Evidence(record, "records", "records.db"),
            )
        assert list_incidents(gdb) == []
        assert gdb.query("SELECT * FROM audit") == []


def test_a_huge_record_is_cut_to_the_limit_with_a_note_and_stays_a_record() -> None:
    spans = [
        {
            "span_id": f"sp{n}",
            "kind": "tool",
            "name": "kb_search",
            "started_at": "2025-06-02T09:00:00Z",
            "tool_name": "kb_search",
            "arguments": {"query": "q" * 3_000},
            "tool_output": {"hits": ["x" * 300] * 30},
        }
        for n in range(3000)
    ]
    record = SessionRecord.model_validate(
        {
            "agent": "it-support",
            "agent_version": "1.4.0",
            "workflow": "password-reset",
            "principal": "u",
            "session_id": "big",
            "started_at": "2025-06-02T09:00:00Z",
            "last_event_at": "2025-06-02T09:10:00Z",
            "status": "completed",
            "input": "i" * 100_000,
            "spans": spans,
        }
    )
    kept = bound(Evidence(record, "agent", "http://127.0.0.1:1"))
    assert len(kept.record_json.encode()) <= LIMIT_BYTES
    assert kept.record_bytes > 30 * 1024 * 1024
    assert kept.note is not None and "spans kept" in kept.note
    back = SessionRecord.model_validate_json(kept.record_json)
    assert back.session_id == "big" and 0 < len(back.spans) < 3000
    assert [s.span_id for s in back.spans] == [f"sp{n}" for n in range(len(back.spans))]
    small = bound(
        Evidence(record.model_copy(update={"spans": record.spans[:2]}), "agent", ""), 64_000
    )
    assert small.note is not None and "spans kept" not in small.note  # texts cut sufficed


def test_evidence_from_the_records_db_survives_its_pruning(tmp_path: Path) -> None:
    """The agent no longer has the session: the record comes from the records DB, and the
    incident keeps it after retention deletes it there."""
    with running(finished_sessions=1) as rt:
        _looping_session(rt, "old")
        record = _record_from(rt, "old")
        _looping_session(rt, "newer")  # evicts "old" from the agent's ring
        records_path = tmp_path / "records.db"
        with open_store(records_path, writer=True, create=True) as store:
            store.write([record])

        async def from_records(agent: str, session_id: str) -> tuple[SessionRecord, str] | None:
            with open_store(records_path) as reader:
                return reader.get(session_id, agent), str(records_path)

        async def gather() -> tuple[Evidence | None, str]:
            assert rt.url is not None
            async with AsyncAgentClient(rt.url, TOKEN) as client:
                return await collect(client, "it-support", "old", records=from_records)

        evidence, why = asyncio.run(gather())
    assert evidence is not None, why
    assert evidence.source == "records" and evidence.origin == str(records_path)
    with open_db(tmp_path / "gov.db", create=True) as gdb:
        incident, _ = open_incident_for_flag(
            gdb,
            agent="it-support",
            flag_kind="runaway_loop",
            summary="loop",
            actor="watch",
            session_id="old",
            evidence=evidence,
        )
    with open_store(records_path, writer=True) as store:
        prune(store, keep_days=0)
        assert store.count() == 0
    with open_db(tmp_path / "gov.db") as gdb:
        stored = get_evidence(gdb, incident.id)
    assert stored is not None and stored.source == "records"
    assert SessionRecord.model_validate(stored.record()) == record


def test_no_evidence_says_why_and_the_incident_opens_anyway(tmp_path: Path) -> None:
    async def gather() -> tuple[Evidence | None, str]:
        async with AsyncAgentClient("http://127.0.0.1:9", TOKEN) as client:
            return await collect(client, "it-support", "gone")

    evidence, why = asyncio.run(gather())
    assert evidence is None and "unreachable" in why
    with open_db(tmp_path / "gov.db", create=True) as gdb:
        incident, _ = open_incident_for_flag(
            gdb,
            agent="it-support",
            flag_kind="runaway_loop",
            summary="loop",
            actor="watch",
            session_id="gone",
            evidence=evidence,
        )
        assert [i.id for i in list_incidents(gdb)] == [incident.id]
        assert get_evidence(gdb, incident.id) is None
        [row] = gdb.query("SELECT details FROM audit WHERE action = 'incident.open'")
    assert "evidence" not in json.loads(row["details"])


def test_console_and_watch_open_incidents_by_one_severity_rule(tmp_path: Path) -> None:
    """The console's adapter used the flag's severity where the API used the runbook's:
    one flag, two severities. Now both go through the API: runbook, else flag, else
    medium."""
    path = tmp_path / "gov.db"
    open_db(path, create=True).close()
    adapter = GovernanceAdapter(path, runbooks=RUNBOOKS)
    adapter.open_incident(
        agent="it-support",
        title="runaway loop",
        flag_kind="runaway_loop",
        session_id="s-1",
        operator="alice",
        details={},
        flag_severity="critical",
    )
    with open_db(path) as gdb:
        open_incident_for_flag(
            gdb,
            agent="it-support",
            flag_kind="runaway_loop",
            summary="runaway loop",
            actor="watch",
            session_id="s-2",
            runbooks=RUNBOOKS,
            flag_severity="critical",
        )
        severities = [i.severity for i in list_incidents(gdb)]
    assert severities == ["high", "high"]  # runaway-loop.md says high
    assert incident_severity(None, "critical") == "critical"
    assert incident_severity(None, "info") == "low"
    assert incident_severity(None, None) == "medium"


def test_a_v8_db_gains_the_evidence_table_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, target=8)
    conn.close()
    with open_db(path) as gdb:
        assert gdb.schema_version() == migrations.LATEST
        assert gdb.query("SELECT * FROM incident_evidence") == []


def test_incident_show_gives_the_evidence_summary_json_and_the_record(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentops_console.cli.main import app

    with running() as rt:
        _looping_session(rt)
        record = _record_from(rt, "loop")
        assert rt.url is not None
        url = rt.url
    path = tmp_path / "gov.db"
    with open_db(path, create=True) as gdb:
        with_evidence, _ = open_incident_for_flag(
            gdb,
            agent="it-support",
            flag_kind="runaway_loop",
            summary="loop",
            actor="alice",
            session_id="loop",
            evidence=Evidence(record, "agent", url),
        )
        without, _ = open_incident_for_flag(
            gdb, agent="it-support", flag_kind="agent_unreachable", summary="down", actor="watch"
        )
    runner = CliRunner()
    shown = runner.invoke(app, ["incident", "show", str(with_evidence.id), "--db", str(path)])
    assert shown.exit_code == 0, shown.output
    assert f"evidence: session loop (completed, {len(record.spans)} spans" in shown.output
    assert f"from the agent {url}" in shown.output
    assert f"agentops incident show {with_evidence.id} --evidence" in shown.output
    as_json = runner.invoke(
        app, ["incident", "show", str(with_evidence.id), "--db", str(path), "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    kept = json.loads(as_json.stdout)["evidence"]
    assert kept["source"] == "agent" and kept["note"] is None
    assert SessionRecord.model_validate(kept["record"]) == record
    raw = runner.invoke(
        app, ["incident", "show", str(with_evidence.id), "--db", str(path), "--evidence"]
    )
    assert raw.exit_code == 0, raw.output
    assert SessionRecord.model_validate_json(raw.stdout) == record
    none = runner.invoke(app, ["incident", "show", str(without.id), "--db", str(path)])
    assert none.exit_code == 0 and "evidence: none stored" in none.output
    missing = runner.invoke(
        app, ["incident", "show", str(without.id), "--db", str(path), "--evidence"]
    )
    assert missing.exit_code == 3
    assert f"incident {without.id} has no stored evidence" in missing.output
    assert "Traceback" not in missing.output
