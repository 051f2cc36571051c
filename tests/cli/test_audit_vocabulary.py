"""One audit vocabulary: the console, the CLI and the watcher name the same act the same
way, each with its own source; old rows are found under the new names; the chain holds.

A real runtime on loopback, real HTTP clients, a real governance DB file, the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.console.actions import ActionRunner
from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.governance import audit, migrations
from agentops_console.governance.api import open_governance, record_action
from agentops_console.governance.errors import BadInput
from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.runtime import Runtime
from agentops_console.watch.respond import Executor, GovernanceAudit
from agentops_console.watch.rules import KillSession

TOKEN = "s3cret-token"


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        agent="it-support", version="1.0", token=TOKEN, workflows=["password-reset", "data-export"]
    )
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gov.db"
    monkeypatch.setenv("AGENTOPS_DB", str(path))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    monkeypatch.setenv("IT_TOKEN", TOKEN)
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def listed(*args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ok("audit", "list", *args, "--json").stdout)
    return rows


def register(endpoint: str) -> None:
    ok("init")
    ok(
        "agent", "add", "it-support", "--endpoint", endpoint, "--token-env", "IT_TOKEN",
        "--workflow", "password-reset", "--workflow", "data-export",
    )  # fmt: skip


async def console_and_watch_act(rt: Runtime, db: Path, sessions: list[str]) -> None:
    assert rt.url is not None
    async with AsyncAgentClient(rt.url, TOKEN) as client:
        console = ActionRunner({"it-support": client}, GovernanceAdapter(db), "alice")
        killed = await console.kill("it-support", "it-support", sessions[0], "runaway")
        assert killed.ok, killed.message
        disabled = await console.disable("it-support", "it-support", "password-reset", "leak")
        assert disabled.ok, disabled.message
        watch = Executor({"it-support": client}, GovernanceAudit(db))
        rule = KillSession("kill-runaways", "it-support", "loop", "runaway_loop", 7, sessions[1])
        outcome = await watch.execute(rule)
        assert outcome.ok and outcome.audited, outcome.message


def test_console_cli_and_watcher_write_one_vocabulary(rt: Runtime, db: Path) -> None:
    assert rt.url is not None
    register(rt.url)
    with (
        rt.session(workflow="data-export", principal="u1") as first,
        rt.session(workflow="data-export", principal="u2") as second,
    ):
        asyncio.run(console_and_watch_act(rt, db, [first.id, second.id]))
        ok("disable", "it-support", "data-export", "--reason", "export leak")

    kills = listed("--action", "session.kill")
    assert [(r["action"], r["source"], r["actor"]) for r in kills] == [
        ("session.kill", "console", "alice"),
        ("session.kill", "watch", "watch:kill-runaways"),
    ]
    assert [r["target"] for r in kills] == [
        f"it-support/session/{first.id}",
        f"it-support/session/{second.id}",
    ]
    assert all(r["outcome"] == "ok" for r in kills)
    assert not any("recorded_action" in r or "recorded_target" in r for r in kills)

    workflows = listed("--agent", "it-support", "--action", "workflow")  # the README's tour
    assert [(r["action"], r["source"], r["target"]) for r in workflows] == [
        ("workflow.disable", "console", "it-support/workflow/password-reset"),
        ("workflow.disable", "cli", "it-support/workflow/data-export"),
    ]
    # every source writes through the one writer: its source is stored, not guessed later
    with open_governance(db, create=False) as gdb:
        stored = gdb.query("SELECT target, details FROM audit WHERE action = 'workflow.disable'")
    assert [(r["target"], json.loads(str(r["details"]))["source"]) for r in stored] == [
        ("it-support/workflow/password-reset", "console"),
        ("it-support/workflow/data-export", "cli"),
    ]
    assert [r["seq"] for r in listed("--source", "watch")] == [kills[1]["seq"]]
    assert "audit log intact" in ok("audit", "verify").stdout


def test_a_failed_remote_call_shows_its_outcome(db: Path) -> None:
    register("http://127.0.0.1:9")  # nothing listens there
    failed = run("disable", "it-support", "data-export", "--reason", "leak")
    assert failed.exit_code != 0
    (row,) = listed("--action", "workflow.disable")
    assert row["source"] == "cli" and row["outcome"].startswith("failed: ")
    table = ok("audit", "list", "--action", "workflow").stdout
    assert "OUTCOME" in table and "SOURCE" in table and "failed:" in table


def test_a_refused_call_is_not_an_ordinary_row(rt: Runtime, db: Path, monkeypatch: Any) -> None:
    assert rt.url is not None
    register(rt.url)
    monkeypatch.setenv("IT_TOKEN", "wrong")
    assert run("disable", "it-support", "data-export", "--reason", "leak").exit_code != 0
    (row,) = listed("--action", "workflow")
    assert row["outcome"].startswith("refused: ")


def _old_style_db(path: Path) -> None:
    """A v6 DB (before the keyed chain) holding rows as the old code wrote them."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, target=6)
    old = [
        ("alice", "console.session.kill", "session:s-0", {"source": "console", "outcome": "ok"}),
        ("watch:kill", "watch.session.kill", "session:s-1", {"outcome": "ok"}),
        ("bob", "workflow.disable", "it-support/data-export", {"outcome": "failed", "error": "x"}),
        ("alice", "console.budgets.set", "session:s-2", {"outcome": "ok"}),
        ("watch:tighten", "watch.budgets.set", "agent", {"outcome": "ok"}),
    ]
    for actor, action, target, details in old:
        conn.execute("BEGIN IMMEDIATE")
        audit.append(
            conn, actor=actor, action=action, target=target, agent="it-support", details=details
        )
        conn.execute("COMMIT")
    conn.close()


def test_old_rows_are_found_under_new_names_and_the_chain_still_verifies(db: Path) -> None:
    _old_style_db(db)
    stored = sqlite3.connect(db).execute("SELECT hash FROM audit ORDER BY seq").fetchall()
    with open_governance(db, create=False) as gdb:  # upgrades to the latest schema
        record_action(
            gdb,
            actor="carol",
            action="session.kill",
            target="session:s-9",
            agent="it-support",
            source="console",
        )
    kills = listed("--action", "session.kill")
    assert [(r["source"], r["target"]) for r in kills] == [
        ("console", "it-support/session/s-0"),
        ("watch", "it-support/session/s-1"),
        ("console", "it-support/session/s-9"),
    ]
    assert kills[0]["recorded_action"] == "console.session.kill"
    assert kills[0]["recorded_target"] == "session:s-0"
    (cli,) = listed("--action", "workflow")
    assert (cli["source"], cli["target"], cli["outcome"]) == (
        "cli",
        "it-support/workflow/data-export",
        "failed: x",
    )
    budgets = listed("--action", "budget")
    assert [(r["action"], r["target"]) for r in budgets] == [
        ("budget.set", "it-support/session/s-2"),
        ("budget.set", "it-support"),
    ]
    assert [r["seq"] for r in listed("--source", "console")] == [1, 4, 6]
    verified = json.loads(ok("audit", "verify", "--json").stdout)
    assert verified["ok"] and verified["rows"] == 6 and verified["keyed_from"] == 6
    after = sqlite3.connect(db).execute("SELECT hash FROM audit WHERE seq <= 5 ORDER BY seq")
    assert after.fetchall() == stored  # old rows keep their text and hashes


def test_an_unknown_source_is_refused(db: Path) -> None:
    ok("init")
    result = run("audit", "list", "--source", "martians")
    assert result.exit_code != 0 and "--source must be one of" in result.stderr
    with open_governance(db, create=False) as gdb, pytest.raises(BadInput):
        record_action(gdb, actor="a", action="session.kill", target="t", source="martians")
