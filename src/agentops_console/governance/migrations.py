"""Versioned schema: each step runs once, in order, in one transaction with its bookkeeping.

An old DB is upgraded in place by running the steps it has not seen. Never edit a shipped
step; add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from .clock import now_iso

APPLICATION = "agentops-governance"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run DDL statement by statement: executescript() would COMMIT the open transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1_registry_and_audit(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            agent TEXT,
            target TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_agent ON audit(agent, seq);
        CREATE TABLE agents (
            name TEXT PRIMARY KEY,
            endpoint TEXT NOT NULL,
            token_env TEXT,
            tenant TEXT,
            workflows TEXT NOT NULL DEFAULT '[]',
            risk TEXT NOT NULL DEFAULT 'medium',
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL
        );
        CREATE TABLE owners (
            agent TEXT NOT NULL,
            role TEXT NOT NULL,
            person TEXT NOT NULL,
            set_at TEXT NOT NULL,
            set_by TEXT NOT NULL,
            PRIMARY KEY (agent, role)
        );
        """,
    )


def _v2_releases(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE releases (
            id INTEGER PRIMARY KEY,
            agent TEXT NOT NULL,
            version TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 1,
            author TEXT NOT NULL,
            rubric TEXT NOT NULL,
            answers TEXT NOT NULL,
            policy TEXT NOT NULL,
            policy_sha256 TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'proposed',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (agent, version)
        );
        CREATE TABLE signoffs (
            id INTEGER PRIMARY KEY,
            release_id INTEGER NOT NULL REFERENCES releases(id),
            role TEXT NOT NULL,
            person TEXT NOT NULL,
            decision TEXT NOT NULL,
            comment TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL,
            signed_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE INDEX signoffs_release ON signoffs(release_id, role, id);
        """,
    )


def _v3_incidents_and_gate(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        ALTER TABLE releases ADD COLUMN gate_passed_at TEXT;
        ALTER TABLE releases ADD COLUMN promoted_at TEXT;
        CREATE TABLE incidents (
            id INTEGER PRIMARY KEY,
            agent TEXT NOT NULL,
            summary TEXT NOT NULL,
            severity TEXT NOT NULL,
            runbook TEXT,
            status TEXT NOT NULL DEFAULT 'open',
            flag_kind TEXT,
            session_id TEXT,
            opened_by TEXT NOT NULL,
            started_at TEXT NOT NULL,
            detected_at TEXT NOT NULL,
            acknowledged_at TEXT,
            resolved_at TEXT
        );
        CREATE INDEX incidents_agent ON incidents(agent, status);
        CREATE TABLE incident_events (
            id INTEGER PRIMARY KEY,
            incident_id INTEGER NOT NULL REFERENCES incidents(id),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX incident_events_incident ON incident_events(incident_id, id);
        """,
    )


def _v4_release_facts(conn: sqlite3.Connection) -> None:
    # Policy facts derived once at propose time, so the gate does not load Cedar.
    conn.execute("ALTER TABLE releases ADD COLUMN facts TEXT")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "registry, owners and the audit log", _v1_registry_and_audit),
    Migration(2, "releases and sign-offs", _v2_releases),
    Migration(3, "incidents; gate and promotion times on releases", _v3_incidents_and_gate),
    Migration(4, "policy facts stored with each release", _v4_release_facts),
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
    """Apply the missing steps up to `target`; returns the versions applied.

    The connection must be in autocommit mode (isolation_level=None): each step runs in
    its own BEGIN IMMEDIATE, so two processes upgrading at once apply each step once.
    """
    applied: list[int] = []
    for step in MIGRATIONS:
        if step.version > target:
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
                    "INSERT INTO meta (key, value) VALUES ('application', ?)", (APPLICATION,)
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
