"""Alerts become incidents in the governance DB, one per cause, and pages through the sinks.

A cause (agent + cause + session or workflow) opens one incident, then nothing more for the
cool-down. A restarted watcher reloads the causes of the incidents it opened within the
cool-down, so events it replays after a crash open nothing twice (for workflow-wide causes
it cannot tell workflows apart from the stored row, so it holds back the whole cause for
that agent: the safe side). Each opened incident is published as a `trigger` Notice; when
it is resolved (an unreachable agent answering again, or a person with `agentops incident
resolve`) a `resolve` Notice follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..governance.clock import parse_ts, utcnow
from ..protocol.text import error_line
from .alerts import RUNBOOK_TRIGGERS, Alert, IncidentPolicy
from .sinks import Notice, Notifier

if TYPE_CHECKING:
    from ..governance.evidence import Evidence
    from ..protocol.client import AsyncAgentClient
    from ..protocol.records import SessionRecord
    from .recorder import Recorder, StoreThread

log = logging.getLogger("agentops.watch")

ACTOR = "watch"
#: How long fetching an incident's evidence may hold up opening it.
EVIDENCE_TIMEOUT_S = 5.0
_SEVERITY_RANK = {"critical": 3, "high": 2, "medium": 1, "low": 0}


@dataclass(slots=True)
class _Opened:
    incident_id: int
    notice: Notice
    at: float  # monotonic


class IncidentDesk:
    """Opens incidents (in a worker thread: SQLite) and publishes their notices."""

    def __init__(
        self,
        db_path: Path | None,
        notifier: Notifier,
        policy: IncidentPolicy,
        runbooks: Path | None = None,
        evidence: WatchEvidence | None = None,
    ) -> None:
        self.db_path = db_path
        self.evidence = evidence
        self.notifier = notifier
        self.policy = policy
        self.runbooks = runbooks
        self.opened = 0
        self.resolved = 0
        self.failed = 0
        self.last_error: str | None = None
        self._recent: dict[tuple[str, str, str], float] = {}
        self._open: dict[int, _Opened] = {}
        self._by_key: dict[tuple[str, str, str], int] = {}
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.db_path is not None

    async def load(self) -> None:
        """Causes of this watcher's incidents opened within the cool-down (see module doc)."""
        if self.db_path is None:
            return
        rows = await asyncio.to_thread(self._recent_rows, self.db_path)
        now = time.monotonic()
        for agent, cause, session_id, age_s in rows:
            remaining = self.policy.cooldown_s - age_s
            if remaining <= 0:
                continue
            opened_at = now - age_s
            scopes = ["agent"] if cause == "agent_unreachable" else [f"session:{session_id}"]
            if cause in ("cross_tenant_export", "policy_denied"):
                scopes.append("workflow:*")
            for scope in scopes:
                self._recent[(agent, cause, scope)] = opened_at

    def _recent_rows(self, path: Path) -> list[tuple[str, str, str | None, float]]:
        from ..governance.api import open_governance

        since = utcnow() - timedelta(seconds=self.policy.cooldown_s)
        with open_governance(path, create=False) as gdb:
            rows = gdb.query(
                "SELECT agent, flag_kind, session_id, detected_at FROM incidents"
                " WHERE opened_by = ? AND flag_kind IS NOT NULL",
                (ACTOR,),
            )
        found = []
        for row in rows:
            detected = parse_ts(row["detected_at"])
            if detected >= since:
                age = (utcnow() - detected).total_seconds()
                found.append((row["agent"], row["flag_kind"], row["session_id"], max(age, 0.0)))
        return found

    def _cooling(self, alert: Alert) -> bool:
        now = time.monotonic()
        agent, cause, scope = alert.key
        for key in (alert.key, (agent, cause, "workflow:*")):
            at = self._recent.get(key)
            if at is not None and now - at < self.policy.cooldown_s:
                return True
        if alert.key in self._by_key:  # still open (an unreachable agent stays one incident)
            return True
        del scope
        return False

    async def raise_alert(self, alert: Alert) -> int | None:
        """Open an incident for the alert unless its cause is cooling down; its id or None."""
        if self.db_path is None:
            return None
        async with self._lock:  # two events for one cause at once: one incident
            if self._cooling(alert):
                return None
            self._recent[alert.key] = time.monotonic()
            evidence, why = await self._evidence_for(alert)
            try:
                incident, runbook = await asyncio.to_thread(
                    self._open_incident, alert, evidence, why
                )
            except Exception as exc:
                self.failed += 1
                self.last_error = _one_line(exc)
                log.error(
                    "could not open an incident for %s on %s: %s",
                    alert.cause,
                    alert.agent,
                    self.last_error,
                )
                return None
            self.opened += 1
            notice = Notice(
                state="trigger",
                incident_id=str(incident.id),
                agent=alert.agent,
                cause=alert.cause,
                severity=_severity(incident.severity),
                summary=alert.summary[:1000],
                detected_at=parse_ts(incident.detected_at),
                runbook=runbook,
                session_id=alert.session_id,
                workflow=alert.workflow,
                details={"scope": alert.scope, "event_seq": alert.event_seq},
            )
            self._open[incident.id] = _Opened(incident.id, notice, time.monotonic())
            self._by_key[alert.key] = incident.id
        self.notifier.publish(notice)
        log.info(
            "incident %s opened: %s on %s (%s)", incident.id, alert.cause, alert.agent, alert.scope
        )
        return int(incident.id)

    async def _evidence_for(self, alert: Alert) -> tuple[Evidence | None, str]:
        """The alert's session's record (see governance/evidence.py), or None and why."""
        if alert.session_id is None or self.evidence is None:
            return None, ""
        try:
            return await asyncio.wait_for(
                self.evidence.collect(alert.agent, alert.session_id), EVIDENCE_TIMEOUT_S
            )
        except TimeoutError:
            return None, f"no answer within {EVIDENCE_TIMEOUT_S:g} s"

    def _open_incident(
        self, alert: Alert, evidence: Evidence | None = None, why: str = ""
    ) -> tuple[Any, str | None]:
        from ..governance.api import open_governance, open_incident_for_flag

        assert self.db_path is not None
        extra = {"evidence": f"none: {why}"} if evidence is None and why else {}
        with open_governance(self.db_path, create=False) as gdb:
            incident, book = open_incident_for_flag(
                gdb,
                agent=alert.agent,
                flag_kind=alert.cause,
                summary=alert.summary[:1000],
                actor=ACTOR,
                session_id=alert.session_id,
                details={
                    "source": "watch",
                    "scope": alert.scope,
                    "workflow": alert.workflow,
                    "event_seq": alert.event_seq,
                    **extra,
                },
                runbooks=self.runbooks,
                triggers=RUNBOOK_TRIGGERS.get(alert.cause, ()),
                started_at=alert.started_at,
                detected_at=alert.detected_at,
                evidence=evidence,
            )
        return incident, (book.name if book else None)

    async def resolve_cause(self, key: tuple[str, str, str], note: str) -> None:
        """Resolve the open incident of this cause (an unreachable agent is back)."""
        incident_id = self._by_key.get(key)
        if incident_id is None or self.db_path is None:
            return
        try:
            await asyncio.to_thread(self._resolve, incident_id, note)
        except Exception as exc:
            self.last_error = _one_line(exc)
            log.error("could not resolve incident %s: %s", incident_id, self.last_error)
        self._closed(incident_id)

    def _resolve(self, incident_id: int, note: str) -> None:
        from ..governance.api import open_governance
        from ..governance.errors import Conflict
        from ..governance.incidents import resolve

        assert self.db_path is not None
        # resolved by someone first: the notice goes out all the same
        with open_governance(self.db_path, create=False) as gdb, contextlib.suppress(Conflict):
            resolve(gdb, actor=ACTOR, incident_id=incident_id, note=note)

    async def sweep_resolved(self) -> None:
        """Publish a resolve for every incident of ours a person resolved meanwhile."""
        if not self._open or self.db_path is None:
            return
        ids = list(self._open)
        try:
            done = await asyncio.to_thread(self._resolved_among, ids)
        except Exception as exc:
            self.last_error = _one_line(exc)
            return
        for incident_id in done:
            self._closed(incident_id)

    def _resolved_among(self, ids: list[int]) -> list[int]:
        from ..governance.api import open_governance

        assert self.db_path is not None
        marks = ", ".join("?" * len(ids))
        with open_governance(self.db_path, create=False) as gdb:
            rows = gdb.query(
                f"SELECT id FROM incidents WHERE status = 'resolved' AND id IN ({marks})", ids
            )
        return [int(r["id"]) for r in rows]

    def _closed(self, incident_id: int) -> None:
        opened = self._open.pop(incident_id, None)
        for key, value in list(self._by_key.items()):
            if value == incident_id:
                del self._by_key[key]
        if opened is None:
            return
        self.resolved += 1
        notice = opened.notice.model_copy(update={"state": "resolve", "resolved_at": utcnow()})
        self.notifier.publish(notice)

    def counters(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "resolved": self.resolved,
            "open": len(self._open),
            "failed": self.failed,
            "last_error": self.last_error,
        }


class WatchEvidence:
    """Where the watcher finds an incident's evidence: the agent (with the approvals the
    stream showed for the session), else its own records DB, read on the store's thread."""

    def __init__(
        self, clients: dict[str, AsyncAgentClient], store: StoreThread, recorder: Recorder
    ) -> None:
        self.clients = clients
        self.store = store
        self.recorder = recorder

    async def collect(self, agent: str, session_id: str) -> tuple[Evidence | None, str]:
        from ..governance.evidence import collect

        client = self.clients.get(agent)
        approvals = [
            a
            for track in self.recorder.tracks
            if track.name == agent
            for a in track.approvals.get(session_id, [])
        ]
        return await collect(
            client,
            agent,
            session_id,
            origin=str(client.base_url) if client is not None else "",
            approvals=approvals,
            records=self._recorded,
        )

    async def _recorded(self, agent: str, session_id: str) -> tuple[SessionRecord, str] | None:
        from ..records.errors import SessionNotFound

        store = self.store.store
        if store is None:
            return None
        try:
            record = await self.store.call(store.get, session_id, agent)
        except SessionNotFound:
            return None
        return record, str(store.path)


def _severity(value: str) -> Any:
    return value if value in _SEVERITY_RANK else "medium"


#: Longest error kept as an incident step's last error.
_ERROR_CHARS = 300


def _one_line(exc: BaseException) -> str:
    return error_line(exc, _ERROR_CHARS)
