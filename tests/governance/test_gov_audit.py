"""The hash-chained audit log finds edited, removed, reordered and truncated rows."""

from __future__ import annotations

import io
import json
from pathlib import Path

from agentops_console.governance import audit
from agentops_console.governance.db import GovernanceDB

from .gov_fixtures import new_db


def _fill(gdb: GovernanceDB, n: int) -> None:
    for i in range(n):
        with gdb.transaction("alice") as tx:
            tx.audit("test.action", f"target-{i}", agent="a1", details={"i": i, "ü": "ß"})


def test_intact_chain_verifies(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 5)
    result = audit.verify(gdb.conn)
    assert result.ok and result.rows == 5


def test_edited_row_is_named(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 5)
    gdb.conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    result = audit.verify(gdb.conn)
    assert not result.ok and result.bad_seq == 3
    assert "edited" in result.reason


def test_edit_with_recomputed_plain_hash_is_found_at_that_row(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 5)
    row = gdb.conn.execute(
        "SELECT seq, at, actor, action, agent, target, details, prev_hash FROM audit WHERE seq = 2"
    ).fetchone()
    content = audit.row_content(row[0], row[1], "mallory", *row[3:7])
    forged = audit.row_hash(row[7], content)
    gdb.conn.execute("UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = 2", (forged,))
    result = audit.verify(gdb.conn)
    assert not result.ok and result.bad_seq == 2
    assert "recomputed without the audit key" in result.reason


def test_removed_row_is_named(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 5)
    gdb.conn.execute("DELETE FROM audit WHERE seq = 4")
    result = audit.verify(gdb.conn)
    assert not result.ok and result.bad_seq == 4
    assert "removed" in result.reason


def test_reordered_rows_are_named(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 5)
    cols = "at, actor, action, agent, target, details, prev_hash, hash"
    two = gdb.conn.execute(f"SELECT {cols} FROM audit WHERE seq = 2").fetchone()
    three = gdb.conn.execute(f"SELECT {cols} FROM audit WHERE seq = 3").fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    gdb.conn.execute(f"UPDATE audit SET {sets} WHERE seq = 2", three)
    gdb.conn.execute(f"UPDATE audit SET {sets} WHERE seq = 3", two)
    result = audit.verify(gdb.conn)
    assert not result.ok and result.bad_seq == 2


def test_truncated_tail_is_found(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 5)
    gdb.conn.execute("DELETE FROM audit WHERE seq >= 4")
    result = audit.verify(gdb.conn)
    assert not result.ok and result.bad_seq == 4
    assert "truncated" in result.reason


def test_export_jsonl_round_trips(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 3)
    buffer = io.StringIO()
    assert audit.export_jsonl(gdb.conn, buffer) == 3
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [r["seq"] for r in lines] == [1, 2, 3]
    assert lines[0]["details"] == {"i": 0, "ü": "ß"}
    assert lines[1]["prev_hash"] == lines[0]["hash"]


def test_filters_by_agent_and_action_prefix(tmp_path: Path) -> None:
    gdb = new_db(tmp_path)
    _fill(gdb, 2)
    with gdb.transaction("bob") as tx:
        tx.audit("other.thing", "x", agent="a2")
    assert [r.seq for r in audit.iter_rows(gdb.conn, agent="a2")] == [3]
    assert len(list(audit.iter_rows(gdb.conn, action="test"))) == 2
