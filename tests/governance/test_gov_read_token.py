"""Two kinds of token: the registry names a read-only token's variable beside the control
token's (schema v6), through add/update/show/list, export/import, and an upgrade."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.governance import audit, migrations
from agentops_console.governance.db import open_db
from agentops_console.governance.registry import get_agent


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gov.db"
    monkeypatch.setenv("AGENTOPS_DB", str(path))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def _add(*extra: str) -> None:
    ok("init")
    ok("agent", "add", "a1", "--endpoint", "http://127.0.0.1:9", "--token-env", "CTL", *extra)


def test_add_show_list_carry_the_read_token_variable(db: Path) -> None:
    _add("--read-token-env", "A1_READ")
    shown = json.loads(ok("agent", "show", "a1", "--json").stdout)
    assert shown["token_env"] == "CTL" and shown["read_token_env"] == "A1_READ"
    listed = json.loads(ok("agent", "list", "--json").stdout)
    assert listed[0]["read_token_env"] == "A1_READ"
    assert "read token env A1_READ" in ok("agent", "show", "a1").stdout
    assert "A1_READ" in ok("agent", "list").stdout
    with open_db(db) as gdb:
        assert get_agent(gdb, "a1").read_token_env == "A1_READ"  # what the console reads


def test_read_token_variable_is_optional_and_updatable(db: Path) -> None:
    _add()
    assert json.loads(ok("agent", "show", "a1", "--json").stdout)["read_token_env"] is None
    changed = json.loads(
        ok("agent", "update", "a1", "--read-token-env", "A1_READ", "--json").stdout
    )
    assert changed["read_token_env"] == "A1_READ" and changed["changed"] == ["read_token_env"]
    rows = json.loads(ok("audit", "list", "--json").stdout)
    assert rows[-1]["details"] == {"read_token_env": {"from": None, "to": "A1_READ"}}
    cleared = json.loads(ok("agent", "update", "a1", "--read-token-env", "", "--json").stdout)
    assert cleared["read_token_env"] is None and cleared["token_env"] == "CTL"


def test_a_token_value_is_refused_as_a_variable_name(db: Path) -> None:
    _add()
    result = run("agent", "update", "a1", "--read-token-env", "s3cr3t token!")
    assert result.exit_code == 2 and "invalid environment variable name" in result.stderr
    bad = run("agent", "add", "a2", "--endpoint", "http://h:1", "--read-token-env", "x y")
    assert bad.exit_code == 2


def test_export_import_round_trip_keeps_the_read_token_variable(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add("--read-token-env", "A1_READ")
    out = tmp_path / "export"
    ok("export", str(out))
    assert 'read_token_env = "A1_READ"' in (out / "agents" / "a1.toml").read_text()
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "other.db"))
    ok("init")
    ok("import", str(out))
    assert json.loads(ok("agent", "show", "a1", "--json").stdout)["read_token_env"] == "A1_READ"
    assert "up to date" in ok("import", str(out)).stderr  # a second import changes nothing


def test_v5_db_gains_the_column_with_its_chain_intact(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, target=5)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO agents (name, endpoint, token_env, tenant, workflows, risk, created_at,"
        " created_by) VALUES ('old', 'http://127.0.0.1:1', 'CTL', NULL, '[]', 'low', 't', 'x')"
    )
    audit.append(conn, actor="x", action="agent.add", target="old", agent="old")
    conn.execute("COMMIT")
    conn.close()
    with open_db(path) as gdb:
        assert gdb.schema_version() >= 6
        agent = get_agent(gdb, "old")
        assert agent.token_env == "CTL" and agent.read_token_env is None
