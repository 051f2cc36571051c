"""Opening, migrating and writing the governance DB: transactions with their audit row,
in-place upgrades, foreign files, concurrent writers and a process killed mid-command."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentops_console.governance import audit, migrations
from agentops_console.governance.db import open_db
from agentops_console.governance.errors import DatabaseProblem
from agentops_console.governance.registry import list_agents

from .gov_fixtures import POLICY, RELEASES, new_db, register

AGENTOPS = str(Path(sys.executable).parent / "agentops")


def test_missing_db_needs_init(tmp_path: Path) -> None:
    with pytest.raises(DatabaseProblem, match="agentops init"):
        open_db(tmp_path / "none.db")


def test_empty_file_is_not_a_db_unless_created(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(DatabaseProblem, match="is empty, not a governance database"):
        open_db(empty)
    assert empty.stat().st_size == 0  # a read command wrote nothing into it
    with open_db(empty, create=True) as gdb:
        assert gdb.schema_version() == migrations.LATEST


def test_new_db_is_wal_and_latest(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    assert gdb.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert gdb.schema_version() == migrations.LATEST


def test_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseProblem, match="not a governance database"):
        open_db(junk)


def test_foreign_sqlite_db_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseProblem, match="not a governance database"):
        open_db(other)
    assert sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall() == [
        ("photos",)
    ]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    new_db(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "gov.db")
    conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseProblem, match="newer"):
        open_db(tmp_path / "gov.db")


def test_old_db_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, target=1)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO agents (name, endpoint, token_env, tenant, workflows, risk, created_at,"
        " created_by) VALUES ('legacy', 'http://127.0.0.1:1', NULL, NULL, '[]', 'low', 't', 'x')"
    )
    audit.append(conn, actor="x", action="agent.add", target="legacy", agent="legacy")
    conn.execute("COMMIT")
    conn.close()

    gdb = open_db(path)
    assert gdb.schema_version() == migrations.LATEST
    assert [a.name for a in list_agents(gdb)] == ["legacy"]
    columns = {r[1] for r in gdb.conn.execute("PRAGMA table_info(releases)")}
    assert {"gate_passed_at", "promoted_at", "facts"} <= columns
    assert audit.verify(gdb.conn).ok


def test_transaction_without_audit_row_rolls_back(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    with pytest.raises(RuntimeError, match="audit"), gdb.transaction("x") as tx:
        tx.execute(
            "INSERT INTO agents (name, endpoint, workflows, risk, created_at, created_by)"
            " VALUES ('sneaky', 'http://h', '[]', 'low', 't', 'x')"
        )
    assert list_agents(gdb) == []


def test_failed_mutation_leaves_no_rows(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    with pytest.raises(ValueError), gdb.transaction("x") as tx:
        tx.audit("agent.add", "half")
        raise ValueError("boom")
    assert audit.verify(gdb.conn).rows == 0


_KILL_SCRIPT = """
import sys, time
from agentops_console.governance import audit
from agentops_console.cli.main import app

real = audit.append

def slow_append(*args, **kwargs):
    print("inside", flush=True)
    time.sleep(60)
    return real(*args, **kwargs)

audit.append = slow_append
app(["agent", "add", "victim", "--endpoint", "http://127.0.0.1:1", "--db", sys.argv[1]])
"""


def test_process_killed_mid_command_leaves_no_partial_rows(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    register(gdb)
    before = audit.verify(gdb.conn).rows
    gdb.close()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(tmp_path / "gov.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "inside"  # agent row inserted, not committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    gdb = open_db(tmp_path / "gov.db")
    assert [a.name for a in list_agents(gdb)] == ["it-support"]
    result = audit.verify(gdb.conn)
    assert result.ok and result.rows == before
    # The lock died with the process: the next writer goes straight through.
    done = subprocess.run(
        [AGENTOPS, "agent", "add", "victim", "--endpoint", "http://127.0.0.1:1"],
        env={**os.environ, "AGENTOPS_DB": str(tmp_path / "gov.db")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_ten_concurrent_signers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "gov.db"
    gdb = new_db(tmp_path)
    register(gdb)
    gdb.close()
    env = {**os.environ, "AGENTOPS_DB": str(db)}
    answers = tmp_path / "answers.toml"
    text = (RELEASES / "it-support-1.4.0.toml").read_text()
    answers.write_text(text.replace('version = "1.4.0"\n', ""))
    for i in range(10):
        subprocess.run(
            [
                *(AGENTOPS, "release", "propose", "it-support", f"2.0.{i}"),
                *("--answers", str(answers), "--policy", str(POLICY), "--author", "dev"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
    procs = [
        subprocess.Popen(
            [AGENTOPS, "signoff", "it-support", f"2.0.{i}", "--approve", "--as", "sam"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(10)
    ]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    for code, err in results:
        assert code == 0, err
        assert "locked" not in err
    gdb = open_db(db)
    rows = gdb.conn.execute("SELECT COUNT(*) FROM signoffs WHERE person = 'sam'").fetchone()[0]
    assert rows == 10
    assert audit.verify(gdb.conn).ok
