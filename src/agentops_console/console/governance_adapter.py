"""The real governance database behind the console's GovernancePort.

Each call opens its own connection (the console calls from worker threads and a
GovernanceDB is one-per-thread) and does its work in one transaction with its audit row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .governance_port import AuditedAction, IncidentRef, RegisteredAgent, RunbookRef

#: Flag severity → incident severity.
_SEVERITY = {"critical": "critical", "warning": "medium", "info": "low"}


class GovernanceAdapter:
    def __init__(self, path: Path | str, runbooks: Path | None = None) -> None:
        self.path = Path(path)
        self.runbooks = runbooks

    def check(self) -> None:
        """Fail early (DatabaseProblem, one line) when the DB is missing or foreign."""
        from ..governance.db import open_db

        open_db(self.path).close()

    def record_action(self, action: AuditedAction) -> None:
        from ..governance.db import open_db

        details: dict[str, Any] = {
            "reason": action.reason,
            "outcome": action.outcome,
            "source": "console",
            **action.details,
        }
        with open_db(self.path) as gdb, gdb.transaction(action.operator) as tx:
            tx.audit(f"console.{action.action}", action.target, agent=action.agent, details=details)

    def registered_agents(self) -> list[RegisteredAgent]:
        from ..governance.db import open_db
        from ..governance.registry import list_agents

        with open_db(self.path) as gdb:
            return [
                RegisteredAgent(a.name, a.endpoint, a.token_env, a.read_token_env)
                for a in list_agents(gdb)
            ]

    def runbook_for(self, flag_kind: str) -> RunbookRef | None:
        from ..governance.paths import runbooks_dir
        from ..governance.runbooks import runbooks_for

        directory = self.runbooks or runbooks_dir()
        if not directory.is_dir():
            return None
        found = runbooks_for(directory, flag_kind)
        if not found:
            return None
        book = found[0]
        return RunbookRef(book.name, book.title, book.body, book.triggers)

    def open_incident(
        self,
        *,
        agent: str,
        title: str,
        flag_kind: str,
        session_id: str | None,
        operator: str,
        details: dict[str, Any],
    ) -> IncidentRef:
        from ..governance.db import open_db
        from ..governance.incidents import open_incident

        runbook = self.runbook_for(flag_kind)
        severity = _SEVERITY.get(str(details.get("severity", "")), "medium")
        with open_db(self.path) as gdb:
            incident = open_incident(
                gdb,
                actor=operator,
                agent=agent,
                summary=title,
                severity=severity,
                runbook=runbook.name if runbook else None,
                started_at=_not_after_now(details.get("flag_at")),
                flag_kind=flag_kind,
                session_id=session_id,
                require_agent=False,  # agents given with --endpoint need not be registered
                details={**details, "source": "console"},
            )
        return IncidentRef(str(incident.id), title, runbook)


def _not_after_now(value: object) -> str | None:
    """The flag's time, unless the agent's clock runs ahead of ours (then: now)."""
    from datetime import UTC, datetime

    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return value if moment <= datetime.now(UTC) else None
