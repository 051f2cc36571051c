"""An old DB keeps its plain chain and continues it keyed from a recorded boundary."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentops_console.governance import audit, auditkey, migrations
from agentops_console.governance.db import open_db


def _v6_db_with_rows(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, target=6)
    for i in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        audit.append(conn, actor="old", action="test.old", target=f"t{i}")
        conn.execute("COMMIT")
    conn.close()


def test_old_rows_stay_plain_and_new_rows_are_keyed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v6_db_with_rows(path, 3)
    plain = sqlite3.connect(path).execute("SELECT hash FROM audit ORDER BY seq").fetchall()
    with open_db(path) as gdb:
        assert gdb.schema_version() == migrations.LATEST
        result = audit.verify(gdb.conn)
        assert result.ok and result.keyed_from == 4 and "rows 1..3 predate" in result.note
        with gdb.transaction("new") as tx:
            row = tx.audit("test.new", "t3")
        key = auditkey.load(auditkey.default_key_path())
        assert key is not None  # made by the first keyed write
        content = audit.row_content(4, row.at, "new", "test.new", None, "t3", "{}")
        assert row.prev_hash == plain[-1][0]  # one chain across the boundary
        assert row.hash == auditkey.mac(key, row.prev_hash + content)
        after = audit.verify(gdb.conn)
        assert after.ok and after.rows == 4
        assert [r[0] for r in gdb.conn.execute("SELECT hash FROM audit WHERE seq <= 3")] == [
            h for (h,) in plain
        ]


def test_the_boundary_cannot_be_moved_back_over_plain_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _v6_db_with_rows(path, 3)
    with open_db(path) as gdb:
        with gdb.transaction("new") as tx:
            tx.audit("test.new", "t3")
        gdb.conn.execute("UPDATE meta SET value = '2' WHERE key = 'audit_keyed_from'")
        result = audit.verify(gdb.conn)
        assert not result.ok and result.bad_seq == 2
