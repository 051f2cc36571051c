"""The hash-chained audit log: every mutation appends one row in its own transaction.

Row hash = sha256(previous row's hash + canonical JSON of the row's content). The meta
table keeps the head (last seq and hash) so a truncated tail is found too. Verification
streams rows through a cursor and calls hashlib directly: a million rows take seconds.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from .clock import now_iso

GENESIS = "0" * 64
_COLUMNS = "seq, at, actor, action, agent, target, details, prev_hash, hash"


def canonical(value: Any) -> str:
    """Stable JSON text: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_content(
    seq: int, at: str, actor: str, action: str, agent: str | None, target: str, details: str
) -> str:
    """What a row's hash covers; `details` is already canonical JSON text."""
    return json.dumps(
        [seq, at, actor, action, agent, target, details],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def row_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: str
    actor: str
    action: str
    agent: str | None
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "agent": self.agent,
            "target": self.target,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(last seq, last hash) as recorded in meta; (0, GENESIS) for an empty log."""
    rows = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('audit_head_seq', 'audit_head_hash')"
        ).fetchall()
    )
    return int(rows.get("audit_head_seq", 0)), str(rows.get("audit_head_hash", GENESIS))


def append(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    agent: str | None = None,
    details: dict[str, Any] | None = None,
    at: str | None = None,
) -> AuditRow:
    """Append one row. Call only inside a write transaction (db.transaction())."""
    if not conn.in_transaction:
        raise RuntimeError("audit.append outside a transaction")
    last_seq, last_hash = head(conn)
    seq = last_seq + 1
    stamp = at or now_iso()
    details_text = canonical(details or {})
    digest = row_hash(
        last_hash, row_content(seq, stamp, actor, action, agent, target, details_text)
    )
    conn.execute(
        f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, stamp, actor, action, agent, target, details_text, last_hash, digest),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        (("audit_head_seq", str(seq)), ("audit_head_hash", digest)),
    )
    return AuditRow(seq, stamp, actor, action, agent, target, details or {}, last_hash, digest)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    rows: int
    bad_seq: int | None = None
    reason: str = ""


def verify(conn: sqlite3.Connection) -> Verification:
    """Walk the chain in seq order; the first row that does not fit is named."""
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")
    cursor.arraysize = 4096
    sha256 = hashlib.sha256
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    expected_seq = 1
    prev = GENESIS
    count = 0
    while True:
        batch = cursor.fetchmany()
        if not batch:
            break
        for seq, at, actor, action, agent, target, details, prev_hash, digest in batch:
            if seq != expected_seq:
                if seq > expected_seq:
                    why = f"row {expected_seq} is missing (removed); the log jumps to row {seq}"
                    return Verification(False, count, expected_seq, why)
                return Verification(False, count, seq, f"row {seq} is out of order")
            if prev_hash != prev:
                why = f"row {seq} does not link to row {seq - 1} (an earlier row was changed)"
                return Verification(False, count, seq, why)
            content = dumps([seq, at, actor, action, agent, target, details])
            if sha256((prev + content).encode("utf-8")).hexdigest() != digest:
                why = f"row {seq} was edited or reordered: its content does not match its hash"
                return Verification(False, count, seq, why)
            prev = digest
            expected_seq += 1
            count += 1
    head_seq, head_hash = head(conn)
    if head_seq != count or head_hash != prev:
        if head_seq > count:
            why = f"rows {count + 1}..{head_seq} are missing (the log was truncated)"
            return Verification(False, count, count + 1, why)
        why = f"the recorded head (row {head_seq}) does not match the log's last row {count}"
        return Verification(False, count, head_seq, why)
    return Verification(True, count)


def _to_row(record: tuple[Any, ...]) -> AuditRow:
    seq, at, actor, action, agent, target, details, prev_hash, digest = record
    try:
        parsed = json.loads(details)
    except ValueError:
        parsed = {"_unparsable": details}
    return AuditRow(seq, at, actor, action, agent, target, parsed, prev_hash, digest)


def iter_rows(
    conn: sqlite3.Connection,
    *,
    agent: str | None = None,
    action: str | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> Iterator[AuditRow]:
    where: list[str] = []
    params: list[Any] = []
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if action is not None:
        where.append("(action = ? OR action LIKE ?)")
        params += [action, f"{action}.%"]
    sql = f"SELECT {_COLUMNS} FROM audit"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    for record in conn.execute(sql, params):
        yield _to_row(record)


def export_jsonl(conn: sqlite3.Connection, out: TextIO, *, agent: str | None = None) -> int:
    """One JSON object per line, in chain order; returns the number of rows written."""
    count = 0
    for row in iter_rows(conn, agent=agent):
        out.write(json.dumps(row.as_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count
