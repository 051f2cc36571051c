"""The small Python surface the console and the demo use (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import vocabulary
from .audit import AuditRow
from .clock import parse_ts, utcnow
from .db import GovernanceDB, open_db
from .errors import BadInput
from .evidence import Evidence, bound
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
    source: str = "cli",
    outcome: str = "ok",
) -> AuditRow:
    """Append one audited operator action in its own transaction, in the one vocabulary
    (governance/vocabulary.py): `action` as every source names it ("session.kill", not
    "console.session.kill"), the target as `<agent>/<kind>/<id>` (a `session:<id>` or
    budget scope is turned into it), `source` and `outcome` in the details the chain
    covers. Raises BadInput for a source outside the vocabulary."""
    if source not in vocabulary.SOURCES:
        raise BadInput(f"audit source {source!r} is not one of {', '.join(vocabulary.SOURCES)}")
    name = vocabulary.action_name(action)
    shown = vocabulary.target_name(name, target, agent)
    with gdb.transaction(actor) as tx:
        return tx.audit(
            name,
            shown,
            agent=agent,
            details={**(details or {}), "source": source, "outcome": outcome},
        )


def runbooks_for_trigger(flag_kind: str, directory: Path | None = None) -> list[Runbook]:
    """Runbooks whose triggers include this flag kind, best match first."""
    return runbooks_for(directory or runbooks_dir(), flag_kind)


#: A flag's own severity as an incident's, for a flag no runbook covers.
FLAG_SEVERITY = {"critical": "critical", "warning": "medium", "info": "low"}


def incident_severity(book: Runbook | None, flag_severity: str | None) -> str:
    """The one severity rule (docs/governance.md, "Incidents"): the matching runbook's
    severity, since the team wrote it for this kind of trouble; else the flag's own
    (critical, warning → medium, info → low); else medium."""
    if book is not None:
        return book.severity
    return FLAG_SEVERITY.get(flag_severity or "", "medium")


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
    flag_severity: str | None = None,
    evidence: Evidence | None = None,
) -> tuple[Incident, Runbook | None]:
    """Open an incident for a flag or an alert: the one way the console and the watcher
    do it. The runbook is the best match for `triggers` (tried in order) then `flag_kind`
    (None if none matches, or no runbooks directory); the severity follows
    `incident_severity`. `detected_at` is the alert's own time (so MTTD is measured from
    it) and `started_at` when the problem began; both are capped at now, since an agent's
    clock may run ahead. `evidence`, the session's record, is stored with the incident
    (cut to `evidence.LIMIT_BYTES`), in the same transaction as the incident and its
    audit row. The agent need not be registered (the console takes --endpoint agents)."""
    book = best_runbook(flag_kind, triggers, runbooks)
    detected = _not_after_now(detected_at)
    started = _not_after_now(started_at)
    if started is not None and detected is not None and started > detected:
        started = detected
    incident = open_incident(
        gdb,
        actor=actor,
        agent=agent,
        summary=summary,
        severity=incident_severity(book, flag_severity),
        runbook=book.name if book else None,
        started_at=started,
        detected_at=detected,
        flag_kind=flag_kind,
        session_id=session_id,
        require_agent=False,
        details=details,
        evidence=None if evidence is None else bound(evidence),
    )
    return incident, book


def best_runbook(
    flag_kind: str, triggers: Sequence[str] = (), directory: Path | None = None
) -> Runbook | None:
    """The best runbook for `triggers` (in order), then `flag_kind`; None if none."""
    directory = directory or runbooks_dir()
    if not directory.is_dir():
        return None
    for trigger in (*triggers, flag_kind):
        matches = runbooks_for(directory, trigger)
        if matches:
            return matches[0]
    return None


def _not_after_now(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    moment = parse_ts(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return min(moment, utcnow())
