"""Policy push, disable/enable and rollback against a real runtime endpoint on loopback;
failures (wrong token, nothing listening) are clear errors and recorded as failed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentops_console.governance import audit
from agentops_console.governance.db import GovernanceDB
from agentops_console.governance.errors import BadInput, Conflict, NotFound, Unreachable
from agentops_console.governance.incidents import open_incident, timeline
from agentops_console.governance.releases import get_release
from agentops_console.governance.remote import push_policy, set_workflow
from agentops_console.governance.rollback import execute, plan
from agentops_console.runtime import Runtime

from .gov_fixtures import (
    POLICY,
    RUNBOOKS,
    live_fixture,
    new_db,
    propose_fixture,
    register,
    sign_as,
)

TOKEN = "s3cret-token"


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime(
        agent="it-support",
        version="1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY.read_text(),
        policy_version="boot",
        workflows=["password-reset", "data-export"],
    )
    rt.start(host="127.0.0.1", port=0)
    yield rt
    rt.stop()


@pytest.fixture
def gdb(
    tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> Iterator[GovernanceDB]:
    monkeypatch.setenv("IT_TOKEN", TOKEN)
    db = new_db(tmp_path)
    assert runtime.url is not None
    register(db, endpoint=runtime.url)
    yield db
    db.close()


def _last(gdb: GovernanceDB) -> audit.AuditRow:
    return next(audit.iter_rows(gdb.conn, newest_first=True, limit=1))


def test_push_policy_of_the_live_release(gdb: GovernanceDB, runtime: Runtime) -> None:
    live_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    answer = push_policy(gdb, actor="ops", agent="it-support")
    assert answer["version"] == "1.3.2"
    assert runtime.policy_version() == "1.3.2"
    row = _last(gdb)
    assert row.action == "policy.push" and row.details["outcome"] == "ok"


def test_push_refuses_a_release_that_is_not_live(gdb: GovernanceDB, runtime: Runtime) -> None:
    live_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    propose_fixture(gdb, "it-support-1.4.0.toml", "1.4.0")  # proposed, never through the gate
    before = audit.head(gdb.conn)
    with pytest.raises(Conflict, match="not live"):
        push_policy(gdb, actor="ops", agent="it-support", version="1.4.0")
    assert runtime.policy_version() == "boot"
    assert audit.head(gdb.conn) == before  # refused before anything was sent or logged


def test_disable_and_enable_a_workflow(gdb: GovernanceDB, runtime: Runtime) -> None:
    state = set_workflow(
        gdb,
        actor="ops",
        agent="it-support",
        workflow="password-reset",
        enabled=False,
        reason="loop",
    )
    assert state["disabled"] is True
    info = runtime.agent_info()
    assert [w.workflow for w in info.disabled_workflows] == ["password-reset"]
    assert info.disabled_workflows[0].operator == "ops"
    set_workflow(gdb, actor="ops", agent="it-support", workflow="password-reset", enabled=True)
    assert runtime.agent_info().disabled_workflows == []
    before = audit.head(gdb.conn)
    with pytest.raises(NotFound, match=r"no workflow 'pasword-reset' \(registered: password-reset"):
        set_workflow(gdb, actor="ops", agent="it-support", workflow="pasword-reset", enabled=False)
    assert audit.head(gdb.conn) == before and runtime.agent_info().disabled_workflows == []
    actions = [r.action for r in audit.iter_rows(gdb.conn, action="workflow")]
    assert actions == ["workflow.disable", "workflow.enable"]


def test_wrong_token_is_refused_and_recorded(
    gdb: GovernanceDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IT_TOKEN", "wrong")
    with pytest.raises(Unreachable, match="403"):
        set_workflow(gdb, actor="ops", agent="it-support", workflow="data-export", enabled=False)
    row = _last(gdb)
    assert row.details["outcome"] == "failed" and row.details["status"] == 403


def test_missing_token_variable_is_bad_input(
    gdb: GovernanceDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IT_TOKEN")
    with pytest.raises(BadInput, match="IT_TOKEN"):
        set_workflow(gdb, actor="ops", agent="it-support", workflow="data-export", enabled=False)
    assert _last(gdb).details["outcome"] == "failed"


def test_unreachable_endpoint_is_clear_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IT_TOKEN", TOKEN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = new_db(tmp_path)
    register(db, endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(Unreachable, match="unreachable"):
        set_workflow(db, actor="ops", agent="it-support", workflow="data-export", enabled=False)
    assert _last(db).details["outcome"] == "failed"
    assert audit.verify(db.conn).ok


def test_rollback_plan_and_execution(gdb: GovernanceDB, runtime: Runtime) -> None:
    live_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    live_fixture(gdb, "it-support-1.4.0.toml", "1.4.0")
    incident = open_incident(gdb, actor="ops", agent="it-support", summary="drift after 1.4.0")
    the_plan = plan(gdb, agent="it-support", to="1.3.2", runbooks=RUNBOOKS)
    kinds = [s.kind for s in the_plan.steps]
    assert kinds[:5] == ["disable", "disable", "push_policy", "mark_live", "note_incident"]
    assert any("runbook bad-release" in s.text for s in the_plan.steps)
    filled = [s.text for s in the_plan.steps if "Confirm the timing" in s.text]
    assert filled and "agentops audit list --agent it-support" in filled[0]
    assert not any(" AGENT " in s.text or "PREVIOUS" in s.text for s in the_plan.steps)

    results = execute(gdb, actor="ops", the_plan=the_plan, reason="drift")
    assert all(r.outcome in ("ok", "manual") for r in results)
    assert {w.workflow for w in runtime.agent_info().disabled_workflows} == {
        "password-reset",
        "data-export",
    }
    assert runtime.policy_version() == "1.3.2"
    assert get_release(gdb, "it-support", "1.3.2").status == "live"
    assert get_release(gdb, "it-support", "1.4.0").status == "rolled_back"
    assert any("rolled back" in e.text for e in timeline(gdb, incident.id))
    assert audit.verify(gdb.conn).ok


def test_rollback_refuses_a_target_that_never_passed_the_gate(gdb: GovernanceDB) -> None:
    propose_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    with pytest.raises(Conflict, match="never passed the release gate"):
        plan(gdb, agent="it-support", to="1.3.2", runbooks=RUNBOOKS)


def test_rollback_goes_back_only_to_an_earlier_release_nobody_vetoed(
    gdb: GovernanceDB, runtime: Runtime
) -> None:
    live_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    live_fixture(gdb, "it-support-1.4.0.toml", "1.4.0")
    execute(
        gdb,
        actor="ops",
        the_plan=plan(gdb, agent="it-support", to="1.3.2", runbooks=RUNBOOKS),
        reason="drift",
    )
    with pytest.raises(Conflict, match=r"newer than the live 1\.3\.2"):
        plan(gdb, agent="it-support", to="1.4.0", runbooks=RUNBOOKS)
    # a newer live release (below 1.5.0, where the rubric starts asking for an evaluation)
    live_fixture(gdb, "it-support-1.5.0.toml", "1.4.1")
    sign_as(gdb, "sam", "1.3.2", decision="reject", comment="found a hole")
    with pytest.raises(Conflict, match=r"rejected since it passed the gate \(security by sam\)"):
        plan(gdb, agent="it-support", to="1.3.2", runbooks=RUNBOOKS)
    assert runtime.policy_version() == "1.3.2"  # nothing was pushed by the refusals
