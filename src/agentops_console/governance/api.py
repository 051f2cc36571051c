"""The small Python surface the console and the demo use (see the package docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .audit import AuditRow
from .db import GovernanceDB, open_db
from .incidents import Incident, open_incident
from .paths import default_db_path, runbooks_dir
from .registry import Agent, list_agents
from .runbooks import Runbook, runbooks_for


def open_governance(path: Path | str | None = None, *, create: bool = True) -> GovernanceDB:
    """The DB at `path` (default: AGENTOPS_DB, else the per-user data dir), created and
    upgraded as needed. Raises errors.DatabaseProblem with a one-line reason."""
    return open_db(path or default_db_path(), create=create)


def registered_agents(gdb: GovernanceDB) -> list[Agent]:
    """Agents with `.name`, `.endpoint` and `.token_env` (the env var holding the token)."""
    return list_agents(gdb)


def record_action(
    gdb: GovernanceDB,
    *,
    actor: str,
    action: str,
    target: str,
    agent: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRow:
    """Append one audited operator action (e.g. "session.kill") in its own transaction."""
    with gdb.transaction(actor) as tx:
        return tx.audit(action, target, agent=agent, details=details)


def runbooks_for_trigger(flag_kind: str, directory: Path | None = None) -> list[Runbook]:
    """Runbooks whose triggers include this flag kind, best match first."""
    return runbooks_for(directory or runbooks_dir(), flag_kind)


def open_incident_for_flag(
    gdb: GovernanceDB,
    *,
    agent: str,
    flag_kind: str,
    summary: str,
    actor: str,
    session_id: str | None = None,
    details: dict[str, Any] | None = None,
    runbooks: Path | None = None,
) -> tuple[Incident, Runbook | None]:
    """Open an incident with the best-matching runbook for the flag (None if none matches);
    its severity is the runbook's. The agent need not be in the registry."""
    matches = runbooks_for_trigger(flag_kind, runbooks)
    book = matches[0] if matches else None
    incident = open_incident(
        gdb,
        actor=actor,
        agent=agent,
        summary=summary,
        severity=book.severity if book else "medium",
        runbook=book.name if book else None,
        flag_kind=flag_kind,
        session_id=session_id,
        require_agent=False,
        details=details,
    )
    return incident, book
