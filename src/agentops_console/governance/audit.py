"""The hash-chained audit log: every mutation appends one row in its own transaction.

Row hash = HMAC-SHA256(audit key, previous row's hash + canonical JSON of the row's
content); the key lives outside the DB (auditkey), so whoever has only the DB file cannot
recompute the chain after an edit. The meta table keeps the head (last seq and hash) with
its own MAC, so a tail cut off together with a head moved back is found too; a signed
checkpoint kept elsewhere (checkpoint.py) catches what an attacker who rewrites the head
markers themselves could still hide.

A DB from before schema v7 keeps its rows as they were (plain SHA-256): the keyed chain
starts at `audit_keyed_from`, linked to the last plain row (see docs/governance.md for
why the old rows are not rehashed). Verification streams rows through a cursor and calls
hashlib/hmac directly: a million rows take seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from . import auditkey, vocabulary
from .clock import now_iso
from .errors import DatabaseProblem, KeyProblem

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

    def view(self) -> dict[str, Any]:
        """The row in the one vocabulary (vocabulary.py): action and target as every
        source now writes them, with source and outcome; the stored text, which the hash
        covers, under `recorded_action`/`recorded_target` where it differs."""
        action = vocabulary.action_name(self.action)
        target = vocabulary.target_name(self.action, self.target, self.agent)
        shown = {
            **self.as_dict(),
            "action": action,
            "target": target,
            "source": vocabulary.source_of(self.action, self.actor, self.details),
            "outcome": vocabulary.outcome_of(self.action, self.details),
        }
        if action != self.action:
            shown["recorded_action"] = self.action
        if target != self.target:
            shown["recorded_target"] = self.target
        return shown


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's state as meta records it. `keyed_from` is None on a DB from before
    schema v7 (every row plain SHA-256); `mac` signs the head with the audit key."""

    seq: int
    hash: str
    keyed_from: int | None
    key_id: str | None
    mac: str | None


class CorruptHead(Exception):
    """A meta value of the chain that is not what it must be (say, a non-integer seq)."""


def _meta_int(meta: dict[str, Any], name: str, default: int | None) -> int | None:
    value = meta.get(name)
    if value is None:
        return default
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise CorruptHead(f"the recorded {name} is {str(value)[:40]!r}, not a row number")


def _meta_text(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    if value is None or isinstance(value, str):
        return value
    raise CorruptHead(f"the recorded {name} is not text")


def read_head(conn: sqlite3.Connection) -> Head:
    """Raises CorruptHead when meta holds something no append could have written."""
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'audit%'").fetchall())
    seq = _meta_int(meta, "audit_head_seq", 0)
    keyed_from = _meta_int(meta, "audit_keyed_from", None)
    assert seq is not None
    return Head(
        seq,
        _meta_text(meta, "audit_head_hash") or GENESIS,
        keyed_from,
        _meta_text(meta, "audit_key_id"),
        _meta_text(meta, "audit_head_mac"),
    )


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """(last seq, last hash) as recorded in meta; (0, GENESIS) for an empty log."""
    state = read_head(conn)
    return state.seq, state.hash


def head_text(seq: int, digest: str, keyed_from: int) -> str:
    """What the head's MAC covers: moving the head back or the keyed chain's start
    forward needs a new MAC, which only the key can make."""
    return f"agentops-audit-head\n{seq}\n{digest}\n{keyed_from}"


def _append_key(state: Head, key_file: Path | None) -> tuple[bytes, str]:
    """The key for the next keyed row: it must be the one the log is keyed with; the
    first keyed write of a log whose key was never created makes it."""
    path = key_file or auditkey.default_key_path()
    if state.key_id is None:
        key, _ = auditkey.load_or_create(path)
    else:
        loaded = auditkey.load(path)
        if loaded is None:
            raise KeyProblem(
                f"the audit key {path} is missing: this DB's audit log is keyed (key id "
                f"{state.key_id}), so no change can be recorded; restore the key file or "
                f"point {auditkey.ENV} at it"
            )
        key = loaded
    kid = auditkey.key_id(key)
    if state.key_id is not None and kid != state.key_id:
        raise KeyProblem(
            f"the audit key {path} (key id {kid}) is not the one this DB's audit log is "
            f"keyed with (key id {state.key_id}); point {auditkey.ENV} at the right key"
        )
    return key, kid


def append(
    conn: sqlite3.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    agent: str | None = None,
    details: dict[str, Any] | None = None,
    at: str | None = None,
    key_file: Path | None = None,
) -> AuditRow:
    """Append one row. Call only inside a write transaction (db.transaction()).

    Rows from `audit_keyed_from` on are keyed (HMAC-SHA256 with the audit key in
    `key_file`, default: auditkey.default_key_path()) and the head gets a MAC too.
    """
    if not conn.in_transaction:
        raise RuntimeError("audit.append outside a transaction")
    try:
        state = read_head(conn)
    except CorruptHead as exc:
        raise DatabaseProblem(
            f"the audit log's head is corrupt ({exc}); `agentops audit verify` shows the damage"
        ) from None
    seq = state.seq + 1
    stamp = at or now_iso()
    details_text = canonical(details or {})
    content = row_content(seq, stamp, actor, action, agent, target, details_text)
    meta = [("audit_head_seq", str(seq))]
    if state.keyed_from is not None and seq >= state.keyed_from:
        key, kid = _append_key(state, key_file)
        digest = auditkey.mac(key, state.hash + content)
        head_mac = auditkey.mac(key, head_text(seq, digest, state.keyed_from))
        meta += [("audit_head_mac", head_mac), ("audit_key_id", kid)]
    else:
        digest = row_hash(state.hash, content)
    meta.append(("audit_head_hash", digest))
    conn.execute(
        f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, stamp, actor, action, agent, target, details_text, state.hash, digest),
    )
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
    return AuditRow(seq, stamp, actor, action, agent, target, details or {}, state.hash, digest)


Status = Literal["intact", "tampered", "no-key"]


@dataclass(frozen=True, slots=True)
class Verification:
    """`ok` only when every row and the head were checked and fit. "no-key": nothing
    wrong was found, but keyed rows exist and the key to check them is missing."""

    ok: bool
    rows: int
    bad_seq: int | None = None
    reason: str = ""
    status: Status = "intact"
    keyed_from: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "rows": self.rows,
            "bad_row": self.bad_seq,
            "reason": self.reason,
            "keyed_from": self.keyed_from,
            "note": self.note,
        }


def _tampered(rows: int, bad_seq: int | None, why: str, keyed_from: int | None) -> Verification:
    return Verification(False, rows, bad_seq, why, "tampered", keyed_from)


def verify(conn: sqlite3.Connection, key_file: Path | None = None) -> Verification:
    """Walk the chain in seq order; the first row that does not fit is named.

    Rows before `audit_keyed_from` are plain SHA-256; from there on HMAC-SHA256 with
    the audit key (`key_file`, default: auditkey.default_key_path()). Without the key
    the links are still checked, and a clean walk ends in "no-key", never "intact".
    """
    path = key_file or auditkey.default_key_path()
    try:
        state = read_head(conn)
    except CorruptHead as exc:
        return _tampered(0, None, f"the audit log's head is corrupt: {exc}", None)
    keyed_from = state.keyed_from
    first_keyed = keyed_from if keyed_from is not None else 1 << 62
    key = auditkey.load(path) if keyed_from is not None else None
    if key is not None and state.key_id is not None and auditkey.key_id(key) != state.key_id:
        why = (
            f"the log records audit key id {state.key_id}, but the key {path} has key id "
            f"{auditkey.key_id(key)}: the log was rewritten under another key, or "
            f"{auditkey.ENV} names the wrong key"
        )
        return _tampered(0, None, why, keyed_from)
    cursor = conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")
    cursor.arraysize = 4096
    sha256 = hashlib.sha256
    hmac_digest = hmac.digest
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    expected_seq = 1
    prev = GENESIS
    count = 0
    seq: Any = 0
    try:
        while batch := cursor.fetchmany():
            for seq, at, actor, action, agent, target, details, prev_hash, digest in batch:
                if seq != expected_seq:
                    if isinstance(seq, int) and seq > expected_seq:
                        why = f"row {expected_seq} is missing (removed); the log jumps to row {seq}"
                        return _tampered(count, expected_seq, why, keyed_from)
                    why = f"row {seq} is out of order"
                    return _tampered(count, expected_seq, why, keyed_from)
                if prev_hash != prev:
                    why = f"row {seq} does not link to row {seq - 1} (an earlier row was changed)"
                    return _tampered(count, seq, why, keyed_from)
                message = (prev + dumps([seq, at, actor, action, agent, target, details])).encode()
                if seq < first_keyed:
                    if sha256(message).hexdigest() != digest:
                        return _tampered(count, seq, _mismatch(seq, keyed=False), keyed_from)
                elif key is not None and hmac_digest(key, message, "sha256").hex() != digest:
                    plain = sha256(message).hexdigest() == digest
                    return _tampered(count, seq, _mismatch(seq, True, plain), keyed_from)
                prev = digest
                expected_seq += 1
                count += 1
    except (TypeError, ValueError, UnicodeError) as exc:
        why = (
            f"row {seq} is corrupt ({type(exc).__name__}: a field holds something no append writes)"
        )
        return _tampered(count, expected_seq, why, keyed_from)
    return _check_head(conn, state, count, prev, key, path)


def _mismatch(seq: int, keyed: bool, plain: bool = False) -> str:
    if not keyed:
        return f"row {seq} was edited or reordered: its content does not match its hash"
    if plain:
        return (
            f"row {seq} has a plain SHA-256 hash where the chain is keyed: the chain was"
            " recomputed without the audit key"
        )
    return (
        f"row {seq} was edited, reordered or recomputed: its content does not match its keyed hash"
    )


def _check_head(
    conn: sqlite3.Connection,
    state: Head,
    count: int,
    last_hash: str,
    key: bytes | None,
    path: Path,
) -> Verification:
    """The rows fit together; now the head must be theirs (and signed, once keyed)."""
    keyed_from = state.keyed_from
    if state.seq != count or state.hash != last_hash:
        if state.seq > count:
            why = f"rows {count + 1}..{state.seq} are missing (the log was truncated)"
            return _tampered(count, count + 1, why, keyed_from)
        why = f"the recorded head (row {state.seq}) does not match the log's last row {count}"
        return _tampered(count, state.seq, why, keyed_from)
    if count == 0 and _holds_data(conn):
        why = "the audit log is empty, but the DB holds agents, releases or incidents: rows"
        why += " were deleted"
        return _tampered(0, 1, why, keyed_from)
    if keyed_from is None:
        return Verification(True, count, note="a DB from before the keyed chain")
    keyed = count >= keyed_from
    if not keyed and state.key_id is None:
        return Verification(True, count, keyed_from=keyed_from, note=_unkeyed_note(count))
    if not keyed:
        why = (
            f"keyed rows were written (key id {state.key_id}), but the log ends at row {count},"
            f" before its keyed part starts (row {keyed_from}): rows were removed"
        )
        return _tampered(count, keyed_from, why, keyed_from)
    if key is None:
        why = (
            f"the audit key {path} is missing: rows {keyed_from}..{count} are keyed and cannot"
            f" be checked without it (set {auditkey.ENV} to the key file)"
        )
        return Verification(False, count, None, why, "no-key", keyed_from)
    expected = auditkey.mac(key, head_text(count, last_hash, keyed_from))
    if state.mac is None or not auditkey.same(state.mac, expected):
        why = (
            f"the recorded head (row {count}) is not signed by the audit key: rows were removed"
            " from the end, or the keyed chain's start was moved"
        )
        return _tampered(count, count, why, keyed_from)
    note = _unkeyed_note(keyed_from - 1) if keyed_from > 1 else ""
    return Verification(True, count, keyed_from=keyed_from, note=note)


def _unkeyed_note(rows: int) -> str:
    if rows == 0:
        return ""
    return f"rows 1..{rows} predate the keyed chain (plain SHA-256)"


def _holds_data(conn: sqlite3.Connection) -> bool:
    """Every change to these tables comes with an audit row."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return any(
        conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]
        for t in ("agents", "owners", "releases", "incidents")
        if t in tables
    )


def _to_row(record: tuple[Any, ...]) -> AuditRow:
    seq, at, actor, action, agent, target, details, prev_hash, digest = record
    try:
        parsed = json.loads(details)
    except ValueError:
        parsed = {"_unparsable": details}
    return AuditRow(seq, at, actor, action, agent, target, parsed, prev_hash, digest)


#: vocabulary.source_of in SQL, so `--source` filters before LIMIT; built from the
#: vocabulary's own tables so the two cannot drift apart.
_SOURCE_SQL = (
    "COALESCE(CASE WHEN json_valid(details) THEN"
    " (SELECT value FROM json_each(details) WHERE key = 'source' AND value IN"
    f" ({', '.join(repr(s) for s in vocabulary.SOURCES)})) END,"
    " CASE"
    + "".join(
        f" WHEN action LIKE '{prefix}%' THEN '{source}'"
        for prefix, source in vocabulary.LEGACY_PREFIXES.items()
    )
    + " WHEN actor LIKE 'watch:%' THEN 'watch'"
    f" WHEN actor = '{vocabulary.DEMO_ACTOR}' THEN 'demo' ELSE 'cli' END)"
)


def iter_rows(
    conn: sqlite3.Connection,
    *,
    agent: str | None = None,
    action: str | None = None,
    source: str | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> Iterator[AuditRow]:
    where: list[str] = []
    params: list[Any] = []
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if action is not None:
        patterns = vocabulary.stored_forms(action)
        where.append("(" + " OR ".join(["action LIKE ? ESCAPE '\\'"] * len(patterns)) + ")")
        params += patterns
    if source is not None:
        where.append(f"{_SOURCE_SQL} = ?")
        params.append(source)
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
