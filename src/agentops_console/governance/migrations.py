"""Versioned schema: each step runs once, in order, in one transaction with its bookkeeping.

An old DB is upgraded in place by running the steps it has not seen. Never edit a shipped
step; add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .clock import now_iso

APPLICATION = "agentops-governance"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _db(conn: sqlite3.Connection) -> Any:
    """sqlite-utils over the migration's own connection: its DDL helpers run inside our
    BEGIN IMMEDIATE. Imported here only, so commands on an up-to-date DB never load it."""
    import sqlite_utils

    return sqlite_utils.Database(conn, recursive_triggers=False)


def _v1_registry_and_audit(conn: sqlite3.Connection) -> None:
    db = _db(conn)
    db.create_table("meta", {"key": str, "value": str}, pk="key", not_null={"value"})
    db.create_table(
        "audit",
        {
            "seq": int,
            "at": str,
            "actor": str,
            "action": str,
            "agent": str,
            "target": str,
            "details": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
        not_null={"at", "actor", "action", "target", "details", "prev_hash", "hash"},
    )
    db["audit"].create_index(["agent", "seq"], index_name="audit_agent")
    db.create_table(
        "agents",
        {
            "name": str,
            "endpoint": str,
            "token_env": str,
            "tenant": str,
            "workflows": str,
            "risk": str,
            "created_at": str,
            "created_by": str,
        },
        pk="name",
        not_null={"endpoint", "workflows", "risk", "created_at", "created_by"},
        defaults={"workflows": "[]", "risk": "medium"},
    )
    db.create_table(
        "owners",
        {"agent": str, "role": str, "person": str, "set_at": str, "set_by": str},
        pk=("agent", "role"),
        not_null={"agent", "role", "person", "set_at", "set_by"},
    )


def _v2_releases(conn: sqlite3.Connection) -> None:
    db = _db(conn)
    db.create_table(
        "releases",
        {
            "id": int,
            "agent": str,
            "version": str,
            "revision": int,
            "author": str,
            "rubric": str,
            "answers": str,
            "policy": str,
            "policy_sha256": str,
            "content_hash": str,
            "status": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={
            "agent",
            "version",
            "revision",
            "author",
            "rubric",
            "answers",
            "policy",
            "policy_sha256",
            "content_hash",
            "status",
            "created_at",
            "updated_at",
        },
        defaults={"revision": 1, "status": "proposed"},
    )
    db["releases"].create_index(
        ["agent", "version"], index_name="releases_agent_version", unique=True
    )
    db.create_table(
        "signoffs",
        {
            "id": int,
            "release_id": int,
            "role": str,
            "person": str,
            "decision": str,
            "comment": str,
            "content_hash": str,
            "signed_at": str,
            "expires_at": str,
        },
        pk="id",
        not_null={
            "release_id",
            "role",
            "person",
            "decision",
            "comment",
            "content_hash",
            "signed_at",
            "expires_at",
        },
        defaults={"comment": ""},
        foreign_keys=[("release_id", "releases", "id")],
    )
    db["signoffs"].create_index(["release_id", "role", "id"], index_name="signoffs_release")


def _v3_incidents_and_gate(conn: sqlite3.Connection) -> None:
    db = _db(conn)
    db["releases"].add_column("gate_passed_at", str)
    db["releases"].add_column("promoted_at", str)
    db.create_table(
        "incidents",
        {
            "id": int,
            "agent": str,
            "summary": str,
            "severity": str,
            "runbook": str,
            "status": str,
            "flag_kind": str,
            "session_id": str,
            "opened_by": str,
            "started_at": str,
            "detected_at": str,
            "acknowledged_at": str,
            "resolved_at": str,
        },
        pk="id",
        not_null={
            "agent",
            "summary",
            "severity",
            "status",
            "opened_by",
            "started_at",
            "detected_at",
        },
        defaults={"status": "open"},
    )
    db["incidents"].create_index(["agent", "status"], index_name="incidents_agent")
    db.create_table(
        "incident_events",
        {"id": int, "incident_id": int, "at": str, "actor": str, "kind": str, "text": str},
        pk="id",
        not_null={"incident_id", "at", "actor", "kind", "text"},
        defaults={"text": ""},
        foreign_keys=[("incident_id", "incidents", "id")],
    )
    db["incident_events"].create_index(["incident_id", "id"], index_name="incident_events_incident")


def _v4_release_facts(conn: sqlite3.Connection) -> None:
    # Policy facts derived once at propose time, so the gate does not load Cedar.
    _db(conn)["releases"].add_column("facts", str)


def _v5_release_authors(conn: sqlite3.Connection) -> None:
    # Everyone who proposed or revised a release: none of them may sign it off.
    _db(conn)["releases"].add_column("authors", str)
    conn.execute("UPDATE releases SET authors = json_array(author)")


def _v6_read_token(conn: sqlite3.Connection) -> None:
    # The variable holding an agent's read-only token (snapshot, sessions, events,
    # metrics), beside the control token's: a read-only console needs no control token.
    _db(conn)["agents"].add_column("read_token_env", str)


def _v7_keyed_audit(conn: sqlite3.Connection) -> None:
    # From the next row on, the audit chain is keyed (HMAC with a key outside the DB).
    # Rows already there keep their plain hashes: rehashing them would make the key vouch
    # for rows written when anyone could recompute them, and would change hashes that
    # exports and copies elsewhere already quote. The first keyed row links to the last
    # plain one, so the chain stays one chain.
    start = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit").fetchone()[0]
    conn.execute("INSERT INTO meta (key, value) VALUES ('audit_keyed_from', ?)", (str(start),))


def _v8_evaluations(conn: sqlite3.Connection) -> None:
    # Behavioural evidence for the gate (docs/evaluation.md): one row per `agentops eval
    # run` (and, later, replay and canary), bound to the release's content hash and the
    # suite file's hash, so a changed policy, answers or suite makes it stale.
    db = _db(conn)
    db.create_table(
        "evaluations",
        {
            "id": int,
            "release_id": int,
            "agent": str,
            "version": str,
            "content_hash": str,
            "kind": str,
            "suite_name": str,
            "suite_path": str,
            "suite_sha256": str,
            "target": str,
            "cases": int,
            "passed": int,
            "metrics": str,
            "started_at": str,
            "finished_at": str,
            "recorded_at": str,
            "recorded_by": str,
        },
        pk="id",
        not_null={"release_id", "agent", "version", "content_hash", "kind", "metrics"},
        foreign_keys=[("release_id", "releases", "id")],
    )
    db["evaluations"].create_index(["agent", "version", "id"], index_name="evaluations_release")


def _v9_incident_evidence(conn: sqlite3.Connection) -> None:
    # The triggering session's agentops.record/1 record, kept with its incident so the
    # evidence outlives the records DB's retention (governance/evidence.py).
    db = _db(conn)
    db.create_table(
        "incident_evidence",
        {
            "incident_id": int,
            "agent": str,
            "session_id": str,
            "source": str,
            "origin": str,
            "captured_at": str,
            "record_bytes": int,
            "stored_bytes": int,
            "note": str,
            "record": str,
        },
        pk="incident_id",
        not_null={"agent", "session_id", "source", "captured_at", "record"},
        foreign_keys=[("incident_id", "incidents", "id")],
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "registry, owners and the audit log", _v1_registry_and_audit),
    Migration(2, "releases and sign-offs", _v2_releases),
    Migration(3, "incidents; gate and promotion times on releases", _v3_incidents_and_gate),
    Migration(4, "policy facts stored with each release", _v4_release_facts),
    Migration(5, "every author of a release, for separation of duties", _v5_release_authors),
    Migration(6, "a read-only token variable per agent", _v6_read_token),
    Migration(7, "the audit chain is keyed from here on", _v7_keyed_audit),
    Migration(8, "evaluation results bound to a release and a suite", _v8_evaluations),
    Migration(9, "a copy of the triggering session's record per incident", _v9_incident_evidence),
)
LATEST = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if row is None:
        return 0
    value = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    return int(value or 0)


def migrate(conn: sqlite3.Connection, target: int = LATEST) -> list[int]:
    """Apply the governance DB's missing steps up to `target`; returns the versions applied."""
    return run_migrations(conn, MIGRATIONS, APPLICATION, target)


def run_migrations(
    conn: sqlite3.Connection,
    steps: Sequence[Migration],
    application: str,
    target: int | None = None,
) -> list[int]:
    """Apply the missing `steps` (up to `target`) of the DB that `application` names in its
    meta table; the governance and records DBs share this one upgrade loop.

    The connection must be in autocommit mode (isolation_level=None): each step runs in
    its own BEGIN IMMEDIATE, so two processes upgrading at once apply each step once.
    """
    applied: list[int] = []
    for step in steps:
        if target is not None and step.version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            if step.version == 1 and current_version(conn) == 0:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
            if current_version(conn) >= step.version:
                conn.execute("COMMIT")
                continue
            step.apply(conn)
            if step.version == 1:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('application', ?)", (application,)
                )
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (step.version, step.name, now_iso()),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(step.version)
    return applied
