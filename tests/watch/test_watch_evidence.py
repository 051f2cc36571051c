"""A real `agentops watch` process keeps the evidence of the incidents it opens (issue 9,
section 4): the triggering session's `agentops.record/1` record, fetched from the agent,
stored with the incident in the governance DB, and still there after the records DB has
been pruned."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentops_console.governance.api import open_governance
from agentops_console.governance.incidents import get_evidence
from agentops_console.protocol.records import SessionRecord
from agentops_console.records.retention import prune
from agentops_console.records.store import open_store

from .test_watcher_process import (
    Setup,
    runaway,
    runtimes,
    url_of,
    wait_for,
    wait_live,
    watch_setup,
)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with watch_setup(tmp_path) as made:
        yield made


def _evidence_of(gov: Path) -> list[dict[str, Any]]:
    with open_governance(gov, create=False) as gdb:
        return gdb.query("SELECT incident_id, session_id, source FROM incident_evidence")


def test_the_watchers_incident_keeps_the_sessions_record_past_pruning(setup: Setup) -> None:
    with runtimes() as (rt,):
        url = url_of(rt)
        watcher = setup.start(url)
        wait_live(watcher)
        sid = runaway(rt, steps=8)
        [row] = wait_for(lambda: _evidence_of(setup.gov), what="the incident's evidence")
        wait_for(lambda: _recorded(setup.records, sid), what="the session recorded")
        assert watcher.stop() == 0, watcher.log()
    assert (row["session_id"], row["source"]) == (sid, "agent")
    with open_store(setup.records, writer=True) as store:
        prune(store, keep_days=0)
        assert store.count() == 0
    with open_governance(setup.gov, create=False) as gdb:
        stored = get_evidence(gdb, row["incident_id"])
        [audit] = gdb.query("SELECT details FROM audit WHERE action = 'incident.open'")
    assert stored is not None and stored.origin == url
    record = SessionRecord.model_validate(stored.record())
    assert record.session_id == sid and record.agent == "it-support"
    assert any(f.kind == "runaway_loop" for f in record.flags)
    assert any(s.tool_name == "kb_search" for s in record.spans)
    assert json.loads(audit["details"])["evidence"]["session_id"] == sid


def _recorded(records: Path, sid: str) -> bool:
    if not records.exists():
        return False
    with open_store(records) as store:
        return any(r.session_id == sid for r in store.query())
