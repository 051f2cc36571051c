"""The governance commands through Typer's CliRunner on a real DB file: data on stdout,
one-line errors on stderr, documented exit codes, never a traceback."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli import gov_release
from agentops_console.cli.main import app
from agentops_console.governance.paths import PROJECT_ROOT

POLICY = str(PROJECT_ROOT / "fixtures" / "policies" / "it-support.cedar")
RELEASES = PROJECT_ROOT / "fixtures" / "releases"
OWNERS = {"product": "pat", "security": "sam", "platform": "pia", "applied-ai": "ali"}
OWNERS["operations"] = "ola"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gov.db"
    monkeypatch.setenv("AGENTOPS_DB", str(path))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    monkeypatch.setenv("AGENTOPS_RUNBOOKS", str(PROJECT_ROOT / "runbooks"))
    monkeypatch.setenv("AGENTOPS_RUBRICS", str(PROJECT_ROOT / "rubrics"))
    return path


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), input=input)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def agent(db: Path) -> str:
    ok("init")
    ok(
        "agent", "add", "it-support", "--endpoint", "http://127.0.0.1:9", "--token-env", "IT_TOKEN",
        "--workflow", "password-reset",
    )  # fmt: skip
    for role, person in OWNERS.items():
        ok("owner", "set", "it-support", role, person)
    return "it-support"


def propose(version: str, fixture: str = "it-support-1.3.2.toml") -> Result:
    return run(
        "release", "propose", "it-support", version,
        "--answers", str(RELEASES / fixture), "--policy", POLICY, "--author", "dev",
    )  # fmt: skip


def test_init_creates_and_reports_path(db: Path) -> None:
    result = ok("init")
    assert result.stdout.strip() == str(db)
    assert "created" in result.stderr
    assert "ready" in ok("init").stderr


def test_agent_show_names_missing_owner_roles(db: Path) -> None:
    ok("init")
    ok("agent", "add", "a1", "--endpoint", "http://127.0.0.1:9", "--workflow", "w1")
    ok("owner", "set", "a1", "security", "sam")
    data = json.loads(ok("agent", "show", "a1", "--json").stdout)
    assert data["missing_owner_roles"] == ["product", "platform", "applied-ai", "operations"]
    assert "missing owner roles: product, platform" in ok("agent", "show", "a1").stdout
    listing = json.loads(ok("agent", "list", "--json").stdout)
    assert [a["name"] for a in listing] == ["a1"] and listing[0]["workflows"] == ["w1"]


def test_owner_list_and_agent_remove(agent: str) -> None:
    owners = json.loads(ok("owner", "list", agent, "--json").stdout)
    assert [o["role"] for o in owners] == list(OWNERS)
    assert "sam" in ok("owner", "list").stdout
    assert run("agent", "remove", agent).exit_code == 2  # no --yes off a terminal
    ok("agent", "remove", agent, "--yes")
    assert json.loads(ok("agent", "list", "--json").stdout) == []
    assert json.loads(ok("owner", "list", "--json").stdout) == []
    assert run("agent", "remove", agent, "--yes").exit_code == 3
    actions = [r["action"] for r in json.loads(ok("audit", "list", "--json").stdout)]
    assert actions[-1] == "agent.remove"


def test_live_agent_cannot_be_removed(agent: str) -> None:
    assert propose("1.3.2").exit_code == 0
    for person in OWNERS.values():
        ok("signoff", agent, "1.3.2", "--approve", "--as", person)
    ok("release", "promote", agent, "1.3.2")
    result = run("agent", "remove", agent, "--yes")
    assert result.exit_code == 4 and "live release 1.3.2" in result.stderr
    assert run("release", "retire", agent, "1.3.2", "--yes").exit_code == 2  # no --reason
    assert run("release", "retire", agent, "1.3.2", "--reason", "sunset").exit_code == 2  # no TTY
    ok("release", "retire", agent, "1.3.2", "--reason", "sunset", "--yes")
    again = run("release", "retire", agent, "1.3.2", "--reason", "sunset", "--yes")
    assert again.exit_code == 4 and "already retired" in again.stderr
    ok("agent", "remove", agent, "--yes")
    actions = [r["action"] for r in json.loads(ok("audit", "list", "--json").stdout)]
    assert actions[-2:] == ["release.retire", "agent.remove"]


def test_agent_update_moves_the_endpoint(agent: str) -> None:
    changed = json.loads(
        ok("agent", "update", agent, "--endpoint", "http://10.0.0.5:7070/", "--json").stdout
    )
    assert changed["endpoint"] == "http://10.0.0.5:7070" and changed["changed"] == ["endpoint"]
    assert "nothing to change" in ok("agent", "update", agent, "--risk", "medium").stderr
    assert run("agent", "update", agent, "--risk", "extreme").exit_code == 2
    assert run("agent", "update", "ghost", "--risk", "low").exit_code == 3
    [row] = json.loads(ok("audit", "list", "--action", "agent.update", "--json").stdout)
    assert row["details"] == {"endpoint": {"from": "http://127.0.0.1:9", "to": changed["endpoint"]}}


def test_export_to_unwritable_place_is_one_line(agent: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("export", str(blocker / "sub"))
    assert result.exit_code == 2 and result.stderr.startswith("agentops: error: ")


def test_release_gate_flow(agent: str) -> None:
    assert propose("1.3.2").exit_code == 0
    check = run("release", "check", agent, "1.3.2")
    assert check.exit_code == 1
    assert "security: not signed (owner sam)" in check.stdout
    for person in OWNERS.values():
        ok("signoff", agent, "1.3.2", "--approve", "--as", person, "--comment", "lgtm")
    assert "ready" in ok("release", "check", agent, "1.3.2").stdout
    gate = json.loads(ok("release", "check", agent, "1.3.2", "--json").stdout)
    assert gate["ready"] is True and gate["reasons"] == []
    ok("release", "promote", agent, "1.3.2")
    listing = json.loads(ok("release", "list", "--json").stdout)
    assert listing[0]["status"] == "live"
    shown = json.loads(ok("release", "show", agent, "1.3.2", "--json").stdout)
    assert shown["policy_facts"]["budgets"]["max_tool_calls"] == 60
    assert "intact" in ok("audit", "verify").stdout
    rows = json.loads(ok("audit", "list", "--agent", agent, "--json").stdout)
    assert "release.promote" in [r["action"] for r in rows]


def test_bad_release_check_lists_reasons(agent: str) -> None:
    result = propose("1.5.0-bad", "it-support-bad.toml")
    assert result.exit_code == 0, result.stderr
    check = run("release", "check", agent, "1.5.0-bad")
    assert check.exit_code == 1
    assert "q3: max_cost_usd_session is 5.0 in the answer but 2.0" in check.stdout
    assert run("release", "promote", agent, "1.5.0-bad").exit_code == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("agent", "show", "ghost"), 3, "unknown agent 'ghost'"),
        (("owner", "set", "it-support", "janitor", "x"), 3, "unknown role 'janitor'"),
        (("release", "show", "it-support", "9.9"), 3, "unknown version '9.9'"),
        (("agent", "add", "it-support", "--endpoint", "http://h:1"), 4, "already registered"),
        (("agent", "add", "x y", "--endpoint", "http://h:1"), 2, "invalid agent name"),
        (("agent", "add", "z", "--endpoint", "ftp://h"), 2, "invalid endpoint"),
        (("incident", "ack", "42"), 3, "unknown incident 42"),
        (("runbook", "show", "nope"), 3, "unknown runbook 'nope'"),
        (("signoff", "it-support", "1.3.2", "--as", "sam"), 2, "not on a terminal"),
        (("signoff", "it-support", "1.3.2", "--reject", "--as", "sam"), 2, "needs a --comment"),
        (("signoff", "it-support", "1.3.2", "--approve", "--as", "dev"), 4, "separation of duties"),
        (("signoff", "it-support", "1.3.2", "--approve", "--as", "eve"), 4, "owns no role"),
        (("rollback", "it-support", "--to", "1.3.2"), 4, "never passed the release gate"),
        (("policy", "push", "it-support", "1.3.2"), 4, "not live"),
        (("incident", "show", str(2**70)), 2, "incident id must be a number from 1 to"),
        (("incident", "show", "abc"), 2, "incident id must be a number: 'abc'"),
        (("audit", "list", "--limit", str(2**70)), 2, "less than or equal"),
        (("agent", "add", "y", "--endpoint", "http://h:1", "--as", "a\x1bb"), 2, "invalid person"),
        (("agent", "add", "x" * 5000, "--endpoint", "http://h:1"), 2, "invalid agent name"),
        (
            (
                "release",
                "propose",
                "it-support",
                "1.0",
                "--answers",
                "none.toml",
                "--policy",
                POLICY,
                "--author",
                "dev",
            ),
            2,
            "none.toml: no such file",
        ),
        (("disable", "it-support", "nope", "--reason", "r"), 3, "has no workflow 'nope'"),
        (("incident", "list", "--status", "weird"), 2, "invalid status 'weird'"),
        (
            ("agent", "add", "t", "--endpoint", "http://h:1", "--tenant", "a\nb"),
            2,
            "invalid tenant",
        ),
        (("release", "check", "it-support", "1.3.2", "--rubric", "../x"), 2, "invalid rubric name"),
    ],
)
def test_bad_input_exit_codes(agent: str, args: tuple[str, ...], code: int, message: str) -> None:
    assert propose("1.3.2").exit_code == 0
    result = run(*args)
    assert result.exit_code == code, result.stderr
    assert len(result.stderr) < 400  # one line, never the whole bad value echoed back
    assert result.stderr.startswith("agentops: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_answers_toml_names_file_and_line(agent: str, tmp_path: Path) -> None:
    bad = tmp_path / "answers.toml"
    bad.write_text('[q1]\nsummary = "x"\ntools_without_approval = [\n')
    result = run(
        "release", "propose", agent, "1.0", "--answers", str(bad), "--policy", POLICY,
        "--author", "dev",
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{bad}:" in result.stderr and "invalid TOML" in result.stderr


def test_corrupt_and_foreign_db_files(db: Path, tmp_path: Path) -> None:
    db.write_bytes(b"\x00garbage" * 500)
    result = run("agent", "list")
    assert result.exit_code == 6 and "not a governance database" in result.stderr
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    result = run("audit", "verify", "--db", str(other))
    assert result.exit_code == 6 and "not a governance database" in result.stderr
    assert run("release", "list", "--db", str(tmp_path / "missing.db")).exit_code == 6


def test_tampered_audit_log_fails_verify(agent: str, db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert "row 2" in result.stdout
    assert json.loads(run("audit", "verify", "--json").stdout)["bad_row"] == 2


def test_audit_export_jsonl(agent: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    ok("audit", "export", "--output", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["action"] == "governance.init" and rows[-1]["action"] == "owner.set"
    streamed = ok("audit", "export").stdout.splitlines()
    assert len(streamed) == len(rows)


def test_incidents_and_report(agent: str) -> None:
    opened = ok(
        "incident", "open", agent, "--summary", "loop in password-reset", "--runbook",
        "runaway-loop", "--started-at", "2025-05-01T10:00:00Z", "--detected-at",
        "2025-05-01T10:04:00Z",
    )  # fmt: skip
    incident = opened.stdout.strip()
    ok("incident", "ack", incident, "--at", "2025-05-01T10:06:00Z")
    ok("incident", "note", incident, "killed the session")
    ok("incident", "resolve", incident, "--at", "2025-05-01T10:34:00Z")
    shown = json.loads(ok("incident", "show", incident, "--json").stdout)
    assert shown["severity"] == "high" and shown["runbook"] == "runaway-loop"
    assert [e["kind"] for e in shown["timeline"]][:2] == ["started", "opened"]
    listed = json.loads(ok("incident", "list", "--json").stdout)
    assert listed[0]["status"] == "resolved"
    report = json.loads(ok("report", "--json").stdout)
    assert report["overall"]["mttd_min"] == 4.0
    assert report["overall"]["mtta_min"] == 2.0
    assert report["overall"]["mttr_min"] == 30.0
    assert "MTTR" in ok("report").stdout


def test_rubric_and_runbook_listings(db: Path) -> None:
    rubrics = json.loads(ok("rubric", "list", "--json").stdout)
    assert rubrics[0]["name"] == "deployment"
    assert set(rubrics[0]["roles"]) == set(OWNERS)
    assert run("rubric", "show", "nope").exit_code == 3
    shown = json.loads(ok("rubric", "show", "deployment", "--json").stdout)
    assert [q["id"] for q in shown["questions"]] == ["q1", "q2", "q3", "q4"]
    books = json.loads(ok("runbook", "list", "--json").stdout)
    assert len(books) == 6
    assert "Press `k`" in ok("runbook", "show", "runaway-loop").stdout


def test_interactive_signoff_shows_answers_beside_policy_facts(
    agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert propose("1.3.2").exit_code == 0
    monkeypatch.setattr(gov_release, "is_interactive", lambda: True)
    result = run("signoff", agent, "1.3.2", "--as", "ali", input="approve\nbudgets match\n")
    assert result.exit_code == 0, result.stderr
    assert "review as applied-ai" in result.stdout
    assert "max_cost_usd_session = 2.0" in result.stdout
    assert "@max_cost_usd_session = 2" in result.stdout
    assert "stop: max_retries = 3" in result.stdout
    assert "! " not in result.stdout  # answers agree with the policy
    rows = json.loads(ok("release", "show", agent, "1.3.2", "--json").stdout)["signoffs"]
    assert (
        rows == [{**rows[0], "role": "applied-ai", "person": "ali", "decision": "approve"}]
        and rows[0]["comment"] == "budgets match"
    )


def test_interactive_review_flags_disagreements(
    agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert propose("1.5.0-bad", "it-support-bad.toml").exit_code == 0
    monkeypatch.setattr(gov_release, "is_interactive", lambda: True)
    result = run("signoff", agent, "1.5.0-bad", "--as", "sam", input="reject\nwrong\n")
    assert result.exit_code == 0, result.stderr
    assert "! q1: reset_password is listed without approval" in result.stdout
    assert "needs approval:   reset_password" in result.stdout
    assert "sam rejected it-support 1.5.0-bad as security" in result.stderr


def test_export_import_cli(agent: str, tmp_path: Path) -> None:
    ok("export", str(tmp_path / "repo"))
    other = tmp_path / "other.db"
    ok("init", "--db", str(other))
    first = json.loads(ok("import", str(tmp_path / "repo"), "--db", str(other), "--json").stdout)
    assert "agent it-support added" in first["changes"]
    again = ok("import", str(tmp_path / "repo"), "--db", str(other), "--json")
    assert json.loads(again.stdout)["changes"] == []


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from agentops_console.runtime import Runtime

    rt = Runtime(agent="it-support", version="1.3.2", token="tok", workflows=["password-reset"])
    url = rt.start(host="127.0.0.1", port=0)
    monkeypatch.setenv("IT_TOKEN", "tok")
    yield url
    rt.stop()


def test_disable_enable_and_push_through_a_real_endpoint(db: Path, endpoint: str) -> None:
    ok("init")
    ok("agent", "add", "it-support", "--endpoint", endpoint, "--token-env", "IT_TOKEN")
    unlisted = run("disable", "it-support", "password-reset", "--reason", "loop")
    assert unlisted.exit_code == 3 and "registered: none" in unlisted.stderr
    ok("agent", "update", "it-support", "--workflow", "password-reset")
    state = json.loads(
        ok("disable", "it-support", "password-reset", "--reason", "loop", "--json").stdout
    )
    assert state["disabled"] is True
    assert (
        json.loads(ok("enable", "it-support", "password-reset", "--json").stdout)["disabled"]
        is False
    )
    assert propose("1.3.2").exit_code == 0
    assert run("policy", "push", "it-support").exit_code == 3  # nothing live yet
    refused = run("policy", "push", "it-support", "1.3.2")  # proposed: nobody signed it off
    assert refused.exit_code == 4 and "not live" in refused.stderr
    for role, person in OWNERS.items():
        ok("owner", "set", "it-support", role, person)
        ok("signoff", "it-support", "1.3.2", "--approve", "--as", person)
    ok("release", "promote", "it-support", "1.3.2")
    pushed = json.loads(ok("policy", "push", "it-support", "--json").stdout)
    assert pushed["version"] == "1.3.2" and pushed["budgets"]["max_tool_calls"] == 60


def test_unreachable_endpoint_exit_5_and_recorded(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("IT_TOKEN", "tok")
    ok("init")
    ok(
        "agent", "add", "a1", "--endpoint", f"http://127.0.0.1:{port}", "--token-env", "IT_TOKEN",
        "--workflow", "w",
    )  # fmt: skip
    result = run("disable", "a1", "w", "--reason", "test")
    assert result.exit_code == 5 and "unreachable" in result.stderr
    rows = json.loads(ok("audit", "list", "--action", "workflow", "--json").stdout)
    assert rows[-1]["details"]["outcome"] == "failed"


def test_rollback_dry_run_then_yes(db: Path, endpoint: str) -> None:
    ok("init")
    ok(
        "agent", "add", "it-support", "--endpoint", endpoint, "--token-env", "IT_TOKEN",
        "--workflow", "password-reset", "--workflow", "data-export",
    )  # fmt: skip
    for role, person in OWNERS.items():
        ok("owner", "set", "it-support", role, person)
    for version, fixture in (
        ("1.3.2", "it-support-1.3.2.toml"),
        ("1.4.0", "it-support-1.4.0.toml"),
    ):
        assert propose(version, fixture).exit_code == 0
        for person in OWNERS.values():
            ok("signoff", "it-support", version, "--approve", "--as", person)
        ok("release", "promote", "it-support", version)
    dry = ok("rollback", "it-support", "--to", "1.3.2")
    assert "1.4.0 -> 1.3.2" in dry.stdout and "[auto] disable workflow password-reset" in dry.stdout
    assert "dry run" in dry.stderr
    assert json.loads(ok("release", "list", "--json").stdout)[1]["status"] == "live"
    done = json.loads(ok("rollback", "it-support", "--to", "1.3.2", "--yes", "--json").stdout)
    assert done["executed"] is True
    assert [r["outcome"] for r in done["results"]][:4] == ["ok", "ok", "ok", "ok"]
    statuses = {
        r["version"]: r["status"] for r in json.loads(ok("release", "list", "--json").stdout)
    }
    assert statuses == {"1.3.2": "live", "1.4.0": "rolled_back"}
    actions = [r["action"] for r in json.loads(ok("audit", "list", "--json").stdout)]
    assert actions[-1] == "rollback.done" and "rollback.mark_live" in actions


def test_untrusted_text_is_printed_literally(agent: str) -> None:
    summary = "evil \x1b[31mred\x1b[0m \x07 bell"
    ok("incident", "open", agent, "--summary", summary)
    listing = ok("incident", "list").stdout
    assert "\x1b" not in listing and "\x07" not in listing
    assert "\\x1b[31mred" in listing
    shown = json.loads(ok("incident", "list", "--json").stdout)
    assert shown[0]["summary"] == summary


def test_end_of_input_at_the_signoff_prompt_signs_nothing(
    agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    assert propose("1.3.2").exit_code == 0
    monkeypatch.setattr(gov_release, "is_interactive", lambda: True)
    result = run("signoff", agent, "1.3.2", "--as", "sam", input="")
    assert result.exit_code == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "agentops: error: no answer (end of input); nothing was changed"
    )
    assert "Aborted" not in result.stderr
    signed = json.loads(ok("release", "show", agent, "1.3.2", "--json").stdout)
    assert signed["signoffs"] == []
