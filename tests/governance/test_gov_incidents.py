"""Incidents and their timelines, response times, the report's sign-off coverage,
governance as code (export/import) and the Python API the console uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentops_console.governance import (
    audit,
    open_governance,
    open_incident_for_flag,
    record_action,
    registered_agents,
    runbooks_for_trigger,
)
from agentops_console.governance.db import GovernanceDB
from agentops_console.governance.errors import BadInput, Conflict, NotFound
from agentops_console.governance.exchange import ImportResult, export_dir, import_dir
from agentops_console.governance.incidents import (
    acknowledge,
    add_note,
    get_incident,
    open_incident,
    resolve,
    timeline,
)
from agentops_console.governance.owners import list_owners
from agentops_console.governance.releases import list_releases, signoffs
from agentops_console.governance.report import build_report

from .gov_fixtures import (
    RUNBOOKS,
    live_fixture,
    new_db,
    propose_fixture,
    register,
    rubric,
    sign_all,
)


def test_incident_lifecycle_and_response_times(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    register(gdb)
    inc = open_incident(
        gdb,
        actor="ops",
        agent="it-support",
        summary="loop",
        runbook="runaway-loop",
        started_at="2025-05-01T10:00:00Z",
        detected_at="2025-05-01T10:10:00Z",
    )
    acknowledge(gdb, actor="ola", incident_id=inc.id, at="2025-05-01T10:15:00Z")
    add_note(gdb, actor="ola", incident_id=inc.id, text="killed session s-1")
    resolve(gdb, actor="ola", incident_id=inc.id, at="2025-05-01T11:10:00Z", note="fixed")
    assert get_incident(gdb, inc.id).status == "resolved"
    kinds = [e.kind for e in timeline(gdb, inc.id)]
    assert kinds[:4] == ["started", "opened", "acknowledged", "resolved"]
    assert kinds[-1] == "note"
    with pytest.raises(Conflict, match="already resolved"):
        acknowledge(gdb, actor="ola", incident_id=inc.id)
    report = build_report(gdb, rubric())
    overall = report["overall"]
    assert (overall["mttd_min"], overall["mtta_min"], overall["mttr_min"]) == (10.0, 5.0, 60.0)
    assert report["agents"]["it-support"]["incidents"] == 1


def test_incident_bad_inputs(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    register(gdb)
    with pytest.raises(NotFound, match="unknown agent"):
        open_incident(gdb, actor="ops", agent="ghost", summary="x")
    with pytest.raises(BadInput, match="started-at is after"):
        open_incident(
            gdb,
            actor="ops",
            agent="it-support",
            summary="x",
            started_at="2025-05-01T11:00:00Z",
            detected_at="2025-05-01T10:00:00Z",
        )
    with pytest.raises(BadInput, match="invalid time"):
        open_incident(gdb, actor="ops", agent="it-support", summary="x", started_at="yesterday")
    with pytest.raises(BadInput, match="in the future"):
        open_incident(
            gdb, actor="ops", agent="it-support", summary="x", detected_at="2999-01-01T00:00:00Z"
        )
    with pytest.raises(BadInput, match="check the year"):
        open_incident(
            gdb, actor="ops", agent="it-support", summary="x", started_at="0205-05-01T10:00:00Z"
        )
    with pytest.raises(NotFound, match="unknown incident"):
        acknowledge(gdb, actor="ops", incident_id=999)
    inc = open_incident(
        gdb, actor="ops", agent="it-support", summary="x", detected_at="2025-05-01T10:00:00Z"
    )
    acknowledge(gdb, actor="ops", incident_id=inc.id, at="2025-05-01T10:30:00Z")
    with pytest.raises(BadInput, match="before the incident was acknowledged"):
        resolve(gdb, actor="ops", incident_id=inc.id, at="2025-05-01T10:20:00Z")
    assert get_incident(gdb, inc.id).status == "acknowledged"


def test_report_signoff_coverage_of_live_releases(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    register(gdb)
    live_fixture(gdb, "it-support-1.3.2.toml", "1.3.2")
    report = build_report(gdb, rubric())
    assert report["signoff_coverage"] == 1.0
    assert report["live_releases"][0]["roles_signed"] == 5


def _import(gdb: GovernanceDB, directory: Path) -> ImportResult:
    return import_dir(
        gdb, directory, actor="importer", rubric_for=lambda _name: rubric(), runbooks=RUNBOOKS
    )


def test_export_import_round_trip_is_idempotent(tmp_path: Path) -> None:
    source = new_db(tmp_path)
    register(source)
    propose_fixture(source, "it-support-1.3.2.toml", "1.3.2")
    sign_all(source, "1.3.2")
    out = tmp_path / "gov-repo"
    written = export_dir(source, out)
    assert (out / "agents" / "it-support.toml") in written
    assert (out / "releases" / "it-support" / "1.3.2.toml") in written

    target_dir = tmp_path / "other"
    target_dir.mkdir()
    target = new_db(target_dir)
    changes = _import(target, out).changes
    assert "agent it-support added" in changes
    assert len(list_owners(target, "it-support")) == 5
    [release] = list_releases(target)
    assert release.content_hash == list_releases(source)[0].content_hash
    assert len(signoffs(target, release.id)) == 5
    rows = audit.verify(target.conn).rows
    assert _import(target, out) == ImportResult([], [])
    assert audit.verify(target.conn).rows == rows


def test_import_rejects_a_tampered_release_file(tmp_path: Path) -> None:
    source = new_db(tmp_path)
    register(source)
    propose_fixture(source, "it-support-1.3.2.toml", "1.3.2")
    out = tmp_path / "repo"
    export_dir(source, out)
    path = out / "releases" / "it-support" / "1.3.2.toml"
    path.write_text(path.read_text().replace("max_retries = 3", "max_retries = 30"))
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = new_db(fresh_dir)
    with pytest.raises(BadInput, match="content_hash does not match"):
        _import(fresh, out)
    assert list_releases(fresh) == []


def test_python_api_for_the_console(tmp_path: Path) -> None:
    gdb = open_governance(tmp_path / "api.db")
    register(gdb)
    assert [(a.name, a.token_env) for a in registered_agents(gdb)] == [("it-support", "IT_TOKEN")]
    row = record_action(
        gdb,
        actor="alice",
        action="session.kill",
        target="s-1",
        agent="it-support",
        details={"reason": "loop"},
    )
    assert row.action == "session.kill"
    incident, book = open_incident_for_flag(
        gdb, agent="not-registered", flag_kind="runaway_loop", summary="loop", actor="alice"
    )
    assert book is not None and book.name == "runaway-loop"
    assert incident.runbook == "runaway-loop" and incident.severity == book.severity
    assert [b.name for b in runbooks_for_trigger("unreachable", RUNBOOKS)] == ["unreachable-agent"]
    none, nobook = open_incident_for_flag(
        gdb, agent="x", flag_kind="no_such_flag", summary="?", actor="alice"
    )
    assert nobook is None and none.runbook is None
    assert audit.verify(gdb.conn).ok


def _exported_live(tmp_path: Path) -> Path:
    source = new_db(tmp_path)
    register(source)
    live_fixture(source, "it-support-1.3.2.toml", "1.3.2")
    propose_fixture(source, "it-support-1.4.0.toml", "1.4.0")  # proposed, nobody signed
    out = tmp_path / "repo"
    export_dir(source, out)
    source.close()
    return out


def _fresh(tmp_path: Path) -> GovernanceDB:
    directory = tmp_path / "fresh"
    directory.mkdir()
    return new_db(directory)


def test_import_keeps_a_live_release_that_passed_the_gate(tmp_path: Path) -> None:
    out = _exported_live(tmp_path)
    fresh = _fresh(tmp_path)
    changes = _import(fresh, out).changes
    assert "release it-support@1.3.2 added (live)" in changes
    assert {r.version: r.status for r in list_releases(fresh)} == {
        "1.3.2": "live",
        "1.4.0": "proposed",
    }


def test_import_cannot_make_an_unsigned_release_live(tmp_path: Path) -> None:
    out = _exported_live(tmp_path)
    path = out / "releases" / "it-support" / "1.4.0.toml"
    text = path.read_text().replace('status = "proposed"', 'status = "live"')
    path.write_text('gate_passed_at = "2026-01-01T00:00:00Z"\n' + text)  # top-level key
    fresh = _fresh(tmp_path)
    result = _import(fresh, out)
    assert result.held_back == ["it-support@1.4.0"]
    [note] = [c for c in result.changes if "1.4.0" in c]
    assert "added as proposed, not live" in note and "not signed" in note
    statuses = {r.version: (r.status, r.gate_passed_at) for r in list_releases(fresh)}
    assert statuses["1.4.0"] == ("proposed", None)
    assert statuses["1.3.2"][0] == "live"


@pytest.mark.parametrize(
    ("where", "old", "new", "message"),
    [
        ("releases/it-support/1.3.2.toml", "revision = 1", 'revision = "one"', "revision"),
        ("releases/it-support/1.3.2.toml", "revision = 1", "revision = 99999999999999", "revision"),
        ("agents/it-support.toml", 'token_env = "IT_TOKEN"', 'token_env = ["x"]', "token_env"),
        ("agents/it-support.toml", "workflows = [", "workflows = [5, ", "workflow name 5"),
        ("agents/it-support.toml", 'risk = "', 'risk = 3\nx = "', "invalid risk 3"),
    ],
)
def test_import_type_checks_every_field(
    tmp_path: Path, where: str, old: str, new: str, message: str
) -> None:
    out = _exported_live(tmp_path)
    path = out / where
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    fresh = _fresh(tmp_path)
    with pytest.raises(BadInput, match=message):
        _import(fresh, out)
    assert list_releases(fresh) == [] and audit.verify(fresh.conn).rows == 0


def _rewrite(path: Path, pattern: str, replacement: Any, count: int = 0) -> None:
    import re

    text, n = re.subn(pattern, replacement, path.read_text(), count=count, flags=re.M)
    assert n, pattern
    path.write_text(text)


def test_import_refuses_sign_offs_that_outlive_the_rubric(tmp_path: Path) -> None:
    out = _exported_live(tmp_path)
    _rewrite(
        out / "releases" / "it-support" / "1.3.2.toml",
        r'^expires_at = ".*"$',
        'expires_at = "9999-12-31T00:00:00Z"',
        count=1,
    )
    fresh = _fresh(tmp_path)
    with pytest.raises(BadInput, match=r"1\.3\.2\.toml: a sign-off by .* not within the rubric's"):
        _import(fresh, out)
    assert list_releases(fresh) == []


def test_import_does_not_count_sign_offs_made_after_the_gate_passed(tmp_path: Path) -> None:
    out = _exported_live(tmp_path)
    path = out / "releases" / "it-support" / "1.3.2.toml"
    _rewrite(path, r'^gate_passed_at = ".*"$', 'gate_passed_at = "2001-01-01T00:00:00Z"')
    changes = _import(_fresh(tmp_path), out).changes
    [note] = [c for c in changes if c.startswith("release it-support@1.3.2")]
    assert "added as proposed, not live" in note


def test_round_trip_keeps_the_live_release_after_an_owner_changed(tmp_path: Path) -> None:
    from agentops_console.governance.owners import set_owner

    source = new_db(tmp_path)
    register(source)
    live_fixture(source, "it-support-1.3.2.toml", "1.3.2")
    set_owner(source, actor="admin", agent="it-support", role="security", person="nora")
    propose_fixture(source, "it-support-1.4.0.toml", "1.4.0")
    from agentops_console.governance.lifecycle import retire

    retire(source, actor="rm", agent="it-support", version="1.4.0", reason="withdrawn")
    out = tmp_path / "repo"
    export_dir(source, out)
    fresh = _fresh(tmp_path)
    _import(fresh, out)
    assert {r.version: r.status for r in list_releases(fresh)} == {
        "1.3.2": "live",  # signed by the owners of the day
        "1.4.0": "retired",  # withdrawn stays withdrawn
    }
    before = {r.version: r.promoted_at for r in list_releases(source)}
    assert {r.version: r.promoted_at for r in list_releases(fresh)} == before


def test_import_checks_the_answers_and_the_tenant(tmp_path: Path) -> None:
    import tomli_w

    from agentops_console.governance.releases import content_hash
    from agentops_console.governance.tomlfile import load_toml

    out = _exported_live(tmp_path)
    path = out / "releases" / "it-support" / "1.3.2.toml"
    data = load_toml(path)
    data["answers"]["q3"]["max_retries"] = -1  # consistent hash: only the answer is wrong
    data["content_hash"] = content_hash("it-support", "1.3.2", data["answers"], data["policy"])
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(BadInput, match=r"1\.3\.2\.toml.*max_retries must be a whole number"):
        _import(_fresh(tmp_path), out)
    out = _exported_live(tmp_path / "again")
    _rewrite(
        out / "agents" / "it-support.toml",
        r'^tenant = ".*"$',
        lambda _m: 'tenant = "a\\u001b[31mb"',
    )
    with pytest.raises(BadInput, match=r"it-support\.toml: invalid tenant"):
        _import(_fresh(tmp_path / "again"), out)
