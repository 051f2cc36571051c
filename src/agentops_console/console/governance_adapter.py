"""The real governance database behind the console's GovernancePort.

Each call opens its own connection (the console calls from worker threads and a
GovernanceDB is one-per-thread). Incidents and audit rows go through
`governance.api`, the one API the watcher uses too, so both open incidents by the same
rules (runbook, severity, times, evidence).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .governance_port import AuditedAction, IncidentRef, RegisteredAgent, RunbookRef

if TYPE_CHECKING:
    from ..governance.evidence import Evidence
    from ..governance.runbooks import Runbook


class GovernanceAdapter:
    def __init__(self, path: Path | str, runbooks: Path | None = None) -> None:
        self.path = Path(path)
        self.runbooks = runbooks

    def check(self) -> None:
        """Fail early (DatabaseProblem, one line) when the DB is missing or foreign."""
        from ..governance.db import open_db

        open_db(self.path).close()

    def record_action(self, action: AuditedAction) -> None:
        from ..governance.api import open_governance, record_action

        details: dict[str, Any] = {"reason": action.reason, **action.details}
        with open_governance(self.path, create=False) as gdb:
            record_action(
                gdb,
                actor=action.operator,
                action=action.action,
                target=action.target,
                agent=action.agent,
                details=details,
                source="console",
                outcome=action.outcome,
            )

    def registered_agents(self) -> list[RegisteredAgent]:
        from ..governance.api import open_governance, registered_agents

        with open_governance(self.path, create=False) as gdb:
            return [
                RegisteredAgent(a.name, a.endpoint, a.token_env, a.read_token_env)
                for a in registered_agents(gdb)
            ]

    def runbook_for(self, flag_kind: str) -> RunbookRef | None:
        from ..governance.api import best_runbook

        return _ref(best_runbook(flag_kind, directory=self.runbooks))

    def open_incident(
        self,
        *,
        agent: str,
        title: str,
        flag_kind: str,
        session_id: str | None,
        operator: str,
        details: dict[str, Any],
        flag_severity: str | None = None,
        flag_at: datetime | None = None,
        evidence: Evidence | None = None,
    ) -> IncidentRef:
        from ..governance.api import open_governance, open_incident_for_flag

        with open_governance(self.path, create=False) as gdb:
            incident, book = open_incident_for_flag(
                gdb,
                agent=agent,
                flag_kind=flag_kind,
                summary=title,
                actor=operator,
                session_id=session_id,
                details={**details, "source": "console"},
                runbooks=self.runbooks,
                detected_at=flag_at,
                flag_severity=flag_severity,
                evidence=evidence,
            )
        return IncidentRef(str(incident.id), title, _ref(book))


def _ref(book: Runbook | None) -> RunbookRef | None:
    return None if book is None else RunbookRef(book.name, book.title, book.body, book.triggers)
