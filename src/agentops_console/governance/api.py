"""The small Python surface the console and the demo use (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .audit import AuditRow
from .clock import parse_ts, utcnow
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
    triggers: Sequence[str] = (),
    started_at: datetime | str | None = None,
    detected_at: datetime | str | None = None,
) -> tuple[Incident, Runbook | None]:
    """Open an incident with the best-matching runbook for the flag (None if none matches,
    or no runbooks directory); its severity is the runbook's, else medium. `triggers` are
    runbook triggers tried in order before `flag_kind`. `detected_at` is the alert's own
    time (so MTTD is measured from it) and `started_at` when the problem began; both are
    capped at now, since an agent's clock may run ahead. The agent need not be registered."""
    directory = runbooks or runbooks_dir()
    book = None
    if directory.is_dir():
        for trigger in (*triggers, flag_kind):
            matches = runbooks_for(directory, trigger)
            if matches:
                book = matches[0]
                break
    detected = _not_after_now(detected_at)
    started = _not_after_now(started_at)
    if started is not None and detected is not None and started > detected:
        started = detected
    incident = open_incident(
        gdb,
        actor=actor,
        agent=agent,
        summary=summary,
        severity=book.severity if book else "medium",
        runbook=book.name if book else None,
        started_at=started,
        detected_at=detected,
        flag_kind=flag_kind,
        session_id=session_id,
        require_agent=False,
        details=details,
    )
    return incident, book


def _not_after_now(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    moment = parse_ts(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(moment, utcnow())
