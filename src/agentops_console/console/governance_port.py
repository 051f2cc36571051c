"""What the console needs from the governance database, as a narrow interface.

The console records every operator action in the audit log, reads the registry to find
agents, and opens incidents with a matching runbook. Keeping those needs in one Protocol
lets the console depend on this shape only; `governance_adapter` fits the real
`agentops_console.governance` package to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..governance.evidence import Evidence


@dataclass(frozen=True, slots=True)
class RegisteredAgent:
    """An agent from the registry; its tokens live in the named environment variables:
    the control token (everything) and, optionally, the read-only one (reads only)."""

    name: str
    endpoint: str
    token_env: str | None = None
    read_token_env: str | None = None


@dataclass(frozen=True, slots=True)
class RunbookRef:
    name: str
    title: str
    body: str
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentRef:
    id: str
    title: str
    runbook: RunbookRef | None = None


@dataclass(frozen=True, slots=True)
class AuditedAction:
    """One operator action as the audit log stores it."""

    operator: str
    action: str  # e.g. "session.kill", "workflow.disable", "budgets.set", "approval.approve"
    agent: str
    target: str
    reason: str = ""
    outcome: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)


class GovernancePort(Protocol):
    """Methods are called from a worker thread (never the UI loop), one call at a time
    per action, so an implementation opens its own connection per call."""

    def record_action(self, action: AuditedAction) -> None:
        """Append the action to the audit log (one transaction)."""

    def registered_agents(self) -> list[RegisteredAgent]: ...

    def runbook_for(self, flag_kind: str) -> RunbookRef | None:
        """The runbook whose triggers match this flag kind, if any."""

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
        """Open it through `governance.api.open_incident_for_flag` (the watcher's way too):
        `flag_at` is when the flag was raised (the detection time), `evidence` the
        session's record, stored with the incident."""
