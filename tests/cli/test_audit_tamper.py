"""Every tampering of the review, done to a real DB file with sqlite3 by someone who has
the file but not the audit key, then `agentops audit verify` through the real CLI: each
one is found (with a checkpoint where docs/governance.md says that is the only way), in
one line, exit 1, never a traceback or exit 70."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentops_console.cli.main import app
from agentops_console.governance import audit

_COLS = "seq, at, actor, action, agent, target, details"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gov.db"
    monkeypatch.setenv("AGENTOPS_DB", str(path))
    monkeypatch.setenv("AGENTOPS_OPERATOR", "admin")
    ok("init")
    for i in range(4):
        ok("agent", "add", f"a{i}", "--endpoint", f"http://127.0.0.1:{9000 + i}")
    ok("owner", "set", "a0", "security", "sam")
    ok("owner", "set", "a1", "security", "sam")  # 7 rows: init, 4 adds, 2 owners
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code != 70, result.stderr
    return result


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def sql(db: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(db)
    for statement in statements:
        conn.execute(statement, params if "?" in statement else ())
    conn.commit()
    conn.close()


def set_head(conn: sqlite3.Connection, seq: int, digest: str) -> None:
    conn.executemany(
        "UPDATE meta SET value = ? WHERE key = ?",
        ((str(seq), "audit_head_seq"), (digest, "audit_head_hash")),
    )


def recompute(db: Path, sign: Callable[[str], str], *, edit: bool = False) -> None:
    """Rehash every row from the first on (after an optional edit of row 3), and the
    head: what someone with the file and the published algorithm can do."""
    conn = sqlite3.connect(db)
    if edit:
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    prev = audit.GENESIS
    for row in conn.execute(f"SELECT {_COLS} FROM audit ORDER BY seq").fetchall():
        digest = sign(prev + audit.row_content(*row))
        conn.execute(
            "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, row[0])
        )
        prev = digest
    count = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    set_head(conn, count, prev)
    conn.commit()
    conn.close()


def plain(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mallory_key(text: str) -> str:
    return hmac.digest(b"m" * 32, text.encode(), "sha256").hex()


def last_rows_gone_head_back(db: Path) -> None:
    conn = sqlite3.connect(db)
    digest = conn.execute("SELECT hash FROM audit WHERE seq = 5").fetchone()[0]
    conn.execute("DELETE FROM audit WHERE seq > 5")
    set_head(conn, 5, digest)
    conn.commit()
    conn.close()


def everything_gone(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit")
    set_head(conn, 0, audit.GENESIS)
    conn.commit()
    conn.close()


def swap_rows(db: Path) -> None:
    cols = "at, actor, action, agent, target, details, prev_hash, hash"
    conn = sqlite3.connect(db)
    two = conn.execute(f"SELECT {cols} FROM audit WHERE seq = 2").fetchone()
    three = conn.execute(f"SELECT {cols} FROM audit WHERE seq = 3").fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = 2", three)
    conn.execute(f"UPDATE audit SET {sets} WHERE seq = 3", two)
    conn.commit()
    conn.close()


def forged_append(db: Path, sign: Callable[[str], str]) -> None:
    conn = sqlite3.connect(db)
    seq, prev = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    row = (seq + 1, "2030-01-01T00:00:00+00:00", "mallory", "agent.add", "evil", "evil", "{}")
    digest = sign(prev + audit.row_content(*row))
    conn.execute(
        "INSERT INTO audit (seq, at, actor, action, agent, target, details, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*row, prev, digest),
    )
    set_head(conn, seq + 1, digest)
    conn.commit()
    conn.close()


def rekeyed_by_mallory(db: Path) -> None:
    recompute(db, mallory_key)
    kid = hmac.digest(b"m" * 32, b"agentops-audit-key-id", "sha256").hex()[:16]
    sql(db, "UPDATE meta SET value = ? WHERE key = 'audit_key_id'", params=(kid,))


#: (name, tampering) found by `audit verify` alone, with the key.
FOUND_WITHOUT_CHECKPOINT: list[tuple[str, Callable[[Path], None]]] = [
    ("edit a row", lambda db: sql(db, "UPDATE audit SET actor = 'mallory' WHERE seq = 3")),
    ("edit details", lambda db: sql(db, "UPDATE audit SET details = '{}' WHERE seq = 2")),
    ("delete a middle row", lambda db: sql(db, "DELETE FROM audit WHERE seq = 4")),
    ("delete the first row", lambda db: sql(db, "DELETE FROM audit WHERE seq = 1")),
    ("delete the last row", lambda db: sql(db, "DELETE FROM audit WHERE seq = 7")),
    ("delete the last rows and move the head back", last_rows_gone_head_back),
    ("delete everything and reset the head", everything_gone),
    ("reorder two rows", swap_rows),
    ("append a forged row (plain hash)", lambda db: forged_append(db, plain)),
    ("append a forged row (guessed key)", lambda db: forged_append(db, mallory_key)),
    ("recompute the whole chain unkeyed", lambda db: recompute(db, plain)),
    ("edit a row and recompute unkeyed", lambda db: recompute(db, plain, edit=True)),
    ("recompute under another key", rekeyed_by_mallory),
    (
        "move the keyed chain's start past the end",
        lambda db: sql(db, "UPDATE meta SET value = '100' WHERE key = 'audit_keyed_from'"),
    ),
    (
        "corrupt the head to a non-integer",
        lambda db: sql(db, "UPDATE meta SET value = 'x7' WHERE key = 'audit_head_seq'"),
    ),
    (
        "corrupt a row (a blob where text belongs)",
        lambda db: sql(db, "UPDATE audit SET details = x'00ff' WHERE seq = 2"),
    ),
]


@pytest.mark.parametrize(
    "tamper", [t for _, t in FOUND_WITHOUT_CHECKPOINT], ids=[n for n, _ in FOUND_WITHOUT_CHECKPOINT]
)
def test_tampering_is_found(db: Path, tamper: Callable[[Path], None]) -> None:
    assert "intact: 7 rows" in ok("audit", "verify").stdout
    tamper(db)
    result = run("audit", "verify")
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stdout.startswith("audit log tampered") and result.stdout.count("\n") == 1
    assert json.loads(run("audit", "verify", "--json").stdout)["status"] == "tampered"


def downgraded(db: Path) -> None:
    """Rows recomputed unkeyed and every keyed-chain marker in meta rewritten to say the
    log was never keyed: the DB file alone cannot tell this from an old DB."""
    recompute(db, plain)
    sql(
        db,
        "UPDATE meta SET value = '100' WHERE key = 'audit_keyed_from'",
        "DELETE FROM meta WHERE key IN ('audit_key_id', 'audit_head_mac')",
    )


def emptied_entirely(db: Path) -> None:
    sql(
        db,
        "DELETE FROM audit",
        "DELETE FROM owners",
        "DELETE FROM agents",
        "DELETE FROM meta WHERE key IN ('audit_key_id', 'audit_head_mac', 'audit_head_hash')",
        "UPDATE meta SET value = '0' WHERE key = 'audit_head_seq'",
    )


@pytest.mark.parametrize("tamper", [downgraded, emptied_entirely])
def test_what_only_a_checkpoint_finds(
    db: Path, tmp_path: Path, tamper: Callable[[Path], None]
) -> None:
    checkpoint = tmp_path / "audit.checkpoint.json"
    ok("audit", "checkpoint", "--out", str(checkpoint))
    tamper(db)
    assert ok("audit", "verify").stdout.startswith("audit log intact")  # documented limit
    result = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert result.exit_code == 1 and result.stdout.startswith("audit log tampered")


def test_rollback_to_an_older_copy_needs_a_checkpoint(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "backup.db"
    sql(db, f"VACUUM INTO '{copy}'")
    ok("agent", "add", "late", "--endpoint", "http://127.0.0.1:1")
    checkpoint = tmp_path / "cp.json"
    ok("audit", "checkpoint", "--out", str(checkpoint))
    db.unlink()
    Path(str(db) + "-wal").unlink(missing_ok=True)
    Path(str(db) + "-shm").unlink(missing_ok=True)
    db.write_bytes(copy.read_bytes())
    assert ok("audit", "verify").stdout.startswith("audit log intact: 7 rows")
    result = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert result.exit_code == 1 and "saw 8: rows 8..8 were removed" in result.stdout


def test_checkpoint_finds_truncation_even_without_the_key(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "cp.json"
    ok("audit", "checkpoint", "--out", str(checkpoint))
    last_rows_gone_head_back(db)
    monkeypatch.setenv("AGENTOPS_AUDIT_KEY_FILE", str(tmp_path / "nowhere.key"))
    unchecked = run("audit", "verify")
    assert unchecked.exit_code == 7 and unchecked.stdout.startswith("audit log not verified")
    result = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert result.exit_code == 1 and "rows 6..7 were removed" in result.stdout


def test_a_swapped_key_is_not_taken_for_the_log_s_key(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.key"
    other.write_text("ab" * 32 + "\n")
    monkeypatch.setenv("AGENTOPS_AUDIT_KEY_FILE", str(other))
    result = run("audit", "verify")
    assert result.exit_code == 1 and "key id" in result.stdout
    write = run("agent", "add", "x", "--endpoint", "http://127.0.0.1:1")
    assert (
        write.exit_code == 7 and "is not the one this DB's audit log is keyed with" in write.stderr
    )


def test_forged_checkpoint_is_refused(db: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp.json"
    ok("audit", "checkpoint", "--out", str(checkpoint))
    data = json.loads(checkpoint.read_text())
    data["rows"] = data["last_seq"] = 5
    checkpoint.write_text(json.dumps(data))
    result = run("audit", "verify", "--checkpoint", str(checkpoint))
    assert result.exit_code == 1 and "signature does not match" in result.stdout
