"""Incidents and their timelines: open, acknowledge, note, resolve.

MTTD = detected - started, MTTA = acknowledged - detected, MTTR = resolved - detected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import registry
from .clock import iso, parse_ts, utcnow
from .db import GovernanceDB, Tx
from .errors import BadInput, Conflict, NotFound
from .evidence import BoundedEvidence, StoredEvidence

SEVERITIES = ("critical", "high", "medium", "low")
#: What `incident list --status` takes: "open" means not yet resolved.
STATUSES = ("open", "acknowledged", "resolved")


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    agent: str
    summary: str
    severity: str
    runbook: str | None
    status: str
    flag_kind: str | None
    session_id: str | None
    opened_by: str
    started_at: str
    detected_at: str
    acknowledged_at: str | None
    resolved_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: str
    actor: str
    kind: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "actor": self.actor, "kind": self.kind, "text": self.text}


#: Clock skew allowed for a time given as "now-ish" from another machine.
FUTURE_SLACK = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _moment(value: datetime | str | None) -> datetime:
    """A given time must be plausible: MTTD/MTTR computed from a typo'd year would
    quietly poison every report that follows."""
    now = utcnow()
    if value is None:
        return now
    moment = parse_ts(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > now + FUTURE_SLACK:
        raise BadInput(f"time {iso(moment)} is in the future")
    if moment < EARLIEST:
        raise BadInput(f"time {iso(moment)} is before {EARLIEST.year}; check the year")
    return moment


def open_incident(
    gdb: GovernanceDB,
    *,
    actor: str,
    agent: str,
    summary: str,
    severity: str = "medium",
    runbook: str | None = None,
    started_at: datetime | str | None = None,
    detected_at: datetime | str | None = None,
    flag_kind: str | None = None,
    session_id: str | None = None,
    require_agent: bool = True,
    details: dict[str, Any] | None = None,
    evidence: BoundedEvidence | None = None,
) -> Incident:
    """The incident, its timeline's first entries, its evidence (the session's record, if
    given) and its audit row, in one transaction."""
    if not summary.strip():
        raise BadInput("an incident needs a --summary")
    if severity not in SEVERITIES:
        raise BadInput(f"invalid severity {severity!r}; use {', '.join(SEVERITIES)}")
    detected = _moment(detected_at)
    started = _moment(started_at) if started_at is not None else detected
    if started > detected:
        raise BadInput("started-at is after detected-at")
    with gdb.transaction(actor) as tx:
        if require_agent:
            registry.require_agent(tx, agent)
        cursor = tx.execute(
            "INSERT INTO incidents (agent, summary, severity, runbook, status, flag_kind,"
            " session_id, opened_by, started_at, detected_at)"
            " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
            (
                agent,
                summary.strip(),
                severity,
                runbook,
                flag_kind,
                session_id,
                actor,
                iso(started),
                iso(detected),
            ),
        )
        incident_id = int(cursor.lastrowid or 0)
        text = summary.strip() + (f" (runbook {runbook})" if runbook else "")
        if started < detected:
            _event(tx, incident_id, actor, "started", "the problem began", iso(started))
        _event(tx, incident_id, actor, "opened", text, iso(detected))
        audited: dict[str, Any] = {
            "summary": summary.strip(),
            "severity": severity,
            "runbook": runbook,
            "flag_kind": flag_kind,
            "session_id": session_id,
            **(details or {}),
        }
        if evidence is not None:
            _store_evidence(tx, incident_id, evidence)
            audited["evidence"] = evidence.audit_details()
        tx.audit("incident.open", f"incident:{incident_id}", agent=agent, details=audited)
    return get_incident(gdb, incident_id)


def _store_evidence(tx: Tx, incident_id: int, evidence: BoundedEvidence) -> None:
    tx.insert(
        "incident_evidence",
        {
            "incident_id": incident_id,
            "agent": evidence.agent,
            "session_id": evidence.session_id,
            "source": evidence.source,
            "origin": evidence.origin,
            "captured_at": iso(utcnow()),
            "record_bytes": evidence.record_bytes,
            "stored_bytes": len(evidence.record_json.encode()),
            "note": evidence.note,
            "record": evidence.record_json,
        },
    )


def get_evidence(gdb: GovernanceDB, incident_id: int) -> StoredEvidence | None:
    """The incident's stored evidence (NotFound for an unknown incident; None if it has
    none: no session, or the record could not be had when it was opened)."""
    get_incident(gdb, incident_id)
    row = gdb.query_one(
        "SELECT incident_id, agent, session_id, source, origin, captured_at, record_bytes,"
        " stored_bytes, note, record AS record_json FROM incident_evidence"
        " WHERE incident_id = ?",
        (incident_id,),
    )
    return None if row is None else StoredEvidence(**row)


def _event(tx: Tx, incident_id: int, actor: str, kind: str, text: str, at: str = "") -> None:
    tx.execute(
        "INSERT INTO incident_events (incident_id, at, actor, kind, text) VALUES (?, ?, ?, ?, ?)",
        (incident_id, at or iso(utcnow()), actor, kind, text),
    )


def get_incident(gdb: GovernanceDB, incident_id: int) -> Incident:
    row = gdb.query_one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    if row is None:
        raise NotFound(f"unknown incident {incident_id}")
    return Incident(**row)


def list_incidents(
    gdb: GovernanceDB, *, agent: str | None = None, status: str | None = None
) -> list[Incident]:
    if status not in (None, *STATUSES):
        raise BadInput(f"invalid status {status!r}; use {', '.join(STATUSES)}")
    where, params = [], []
    if agent is not None:
        where.append("agent = ?")
        params.append(agent)
    if status == "open":
        where.append("status != 'resolved'")
    elif status is not None:
        where.append("status = ?")
        params.append(status)
    sql = "SELECT * FROM incidents" + (" WHERE " + " AND ".join(where) if where else "")
    return [Incident(**r) for r in gdb.query(sql + " ORDER BY id", params)]


def timeline(gdb: GovernanceDB, incident_id: int) -> list[TimelineEntry]:
    get_incident(gdb, incident_id)
    rows = gdb.query(
        "SELECT at, actor, kind, text FROM incident_events WHERE incident_id = ? ORDER BY at, id",
        (incident_id,),
    )
    return [TimelineEntry(**r) for r in rows]


def _transition(
    gdb: GovernanceDB,
    actor: str,
    incident_id: int,
    kind: str,
    text: str,
    at: datetime | str | None,
) -> Incident:
    moment = _moment(at)
    with gdb.transaction(actor) as tx:
        row = tx.execute(
            "SELECT agent, status, detected_at, acknowledged_at FROM incidents WHERE id = ?",
            (incident_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"unknown incident {incident_id}")
        agent, status, detected, acked = row
        if status == "resolved" and kind != "note":
            raise Conflict(f"incident {incident_id} is already resolved")
        if kind in ("acknowledged", "resolved") and iso(moment) < detected:
            raise BadInput(f"{kind} time is before the incident was detected ({detected})")
        if kind == "resolved" and acked and iso(moment) < acked:
            raise BadInput(f"resolved time is before the incident was acknowledged ({acked})")
        if kind == "acknowledged":
            if acked:
                raise Conflict(f"incident {incident_id} was already acknowledged at {acked}")
            tx.execute(
                "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ? WHERE id = ?",
                (iso(moment), incident_id),
            )
        elif kind == "resolved":
            tx.execute(
                "UPDATE incidents SET status = 'resolved', resolved_at = ?,"
                " acknowledged_at = COALESCE(acknowledged_at, ?) WHERE id = ?",
                (iso(moment), iso(moment), incident_id),
            )
        elif not text.strip():
            raise BadInput("a note needs text")
        _event(tx, incident_id, actor, kind, text, iso(moment))
        verb = {"acknowledged": "ack", "resolved": "resolve"}.get(kind, kind)
        tx.audit(
            f"incident.{verb}",
            f"incident:{incident_id}",
            agent=agent,
            details={"text": text, "at": iso(moment)},
        )
    return get_incident(gdb, incident_id)


def acknowledge(
    gdb: GovernanceDB, *, actor: str, incident_id: int, note: str = "", at: Any = None
) -> Incident:
    return _transition(gdb, actor, incident_id, "acknowledged", note, at)


def add_note(gdb: GovernanceDB, *, actor: str, incident_id: int, text: str) -> Incident:
    return _transition(gdb, actor, incident_id, "note", text, None)


def resolve(
    gdb: GovernanceDB, *, actor: str, incident_id: int, note: str = "", at: Any = None
) -> Incident:
    return _transition(gdb, actor, incident_id, "resolved", note, at)
