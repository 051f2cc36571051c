"""Signed checkpoints of the audit log's head, kept outside the DB (in git, in another
system): what anchors the log against whoever can rewrite the whole DB file.

A checkpoint names the row count, the last row and its hash, where the keyed chain
starts and when it was taken, with an HMAC over all of it made with the audit key.
`compare()` then finds a log that is shorter than the checkpoint saw (truncated, or
emptied), whose row at the checkpoint differs (rewritten or recomputed), or whose keyed
chain starts elsewhere (the start moved to pass keyed rows off as plain ones).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import auditkey
from .audit import Verification, canonical, verify
from .clock import now_iso
from .errors import BadInput, KeyProblem, NotReady

FORMAT = "agentops-audit-checkpoint/1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    rows: int
    last_seq: int
    last_hash: str
    keyed_from: int | None
    key_id: str
    at: str
    hmac: str = ""

    def signed_text(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k != "hmac"}
        return "agentops-audit-checkpoint\n" + canonical({"format": FORMAT, **body})

    def as_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


def take(conn: sqlite3.Connection, key_file: Path | None = None) -> Checkpoint:
    """A signed checkpoint of a log that verifies; never one of a broken log."""
    path = key_file or auditkey.default_key_path()
    key = auditkey.load(path)
    if key is None:
        raise KeyProblem(f"the audit key {path} is missing: a checkpoint cannot be signed")
    result = verify(conn, path)
    if not result.ok:
        raise NotReady(f"not signing a checkpoint of a log that fails verify: {result.reason}")
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, digest = last if last is not None else (0, "0" * 64)
    unsigned = Checkpoint(
        result.rows, seq, digest, result.keyed_from, auditkey.key_id(key), now_iso()
    )
    return replace(unsigned, hmac=auditkey.mac(key, unsigned.signed_text()))


def parse(text: str, origin: str) -> Checkpoint:
    """A checkpoint file, every field type-checked; BadInput naming the file otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        raise BadInput(f"{origin}: not a checkpoint (invalid JSON)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInput(f"{origin}: not an audit checkpoint (format {FORMAT!r} expected)")

    def number(name: str, optional: bool = False) -> Any:
        value = data.get(name)
        if value is None and optional:
            return None
        if type(value) is not int or value < 0:
            raise BadInput(f"{origin}: `{name}` must be a non-negative integer")
        return value

    def text_(name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise BadInput(f"{origin}: `{name}` must be a non-empty string")
        return value

    cp = Checkpoint(
        rows=number("rows"),
        last_seq=number("last_seq"),
        last_hash=text_("last_hash"),
        keyed_from=number("keyed_from", optional=True),
        key_id=text_("key_id"),
        at=text_("at"),
        hmac=text_("hmac"),
    )
    if cp.rows != cp.last_seq:
        raise BadInput(f"{origin}: `rows` and `last_seq` disagree")
    return cp


def compare(
    conn: sqlite3.Connection,
    result: Verification,
    cp: Checkpoint,
    key_file: Path | None = None,
) -> Verification:
    """The verify result, judged against a checkpoint taken earlier.

    With the key, a checkpoint whose HMAC does not match is refused (forged, or made with
    another key). Without it the checkpoint is taken on trust (it came from git or another
    system) and can still show a truncation; the result stays "no-key" at best.
    """
    path = key_file or auditkey.default_key_path()
    key = auditkey.load(path)
    if key is not None and not auditkey.same(cp.hmac, auditkey.mac(key, cp.signed_text())):
        why = (
            f"the checkpoint's signature does not match the audit key {path}: a forged"
            " checkpoint, or one made with another key"
        )
        return replace(result, ok=False, status="tampered", bad_seq=None, reason=why)
    if result.status == "tampered":
        return result
    seen = f"the checkpoint of {cp.at}"
    why = ""
    bad: int | None = None
    if result.rows < cp.rows:
        bad = result.rows + 1
        why = (
            f"the log has {result.rows} rows but {seen} saw {cp.rows}: rows"
            f" {result.rows + 1}..{cp.rows} were removed"
        )
    elif cp.last_seq and _hash_at(conn, cp.last_seq) != cp.last_hash:
        bad = cp.last_seq
        why = f"row {cp.last_seq} is not the row {seen} saw: the chain was rewritten"
    elif cp.keyed_from != result.keyed_from:
        bad = result.keyed_from
        why = (
            f"the keyed chain starts at row {result.keyed_from}, but {seen} says row"
            f" {cp.keyed_from}: its start was moved"
        )
    if why:
        return replace(result, ok=False, status="tampered", bad_seq=bad, reason=why)
    note = f"matches {seen} (row {cp.last_seq})"
    return replace(result, note="; ".join(n for n in (result.note, note) if n))


def _hash_at(conn: sqlite3.Connection, seq: int) -> Any:
    row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else row[0]
