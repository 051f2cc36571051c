"""Operator actions: send to the agent, show its answer, write the audit row.

The agent call comes first (the audit log records what happened, not what was meant);
a refused or failed call is audited too, with its outcome, because an attempt to kill
or disable is itself something a reviewer wants to see. If the audit write fails after
the agent acted, the result says so loudly instead of pretending all is well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from ..governance.evidence import RecordsLookup, collect
from ..protocol.client import AsyncAgentClient, EndpointError
from ..protocol.models import ApprovalDecision, BudgetUpdate
from .governance_port import AuditedAction, GovernancePort, IncidentRef
from .store import AlertEntry
from .text import clean, cut, error_line


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    message: str
    answer: Any = None


class ActionRunner:
    """One per console; `clients` maps an agent source to its endpoint client."""

    def __init__(
        self,
        clients: Mapping[str, AsyncAgentClient],
        governance: GovernancePort,
        operator: str,
        records: RecordsLookup | None = None,
    ) -> None:
        self.clients = clients
        self.governance = governance
        self.operator = operator
        #: Where an incident's evidence comes from when the agent no longer has the session.
        self.records = records

    async def kill(self, source: str, agent: str, session_id: str, reason: str) -> ActionResult:
        client = self.clients[source]
        return await self._run(
            lambda: client.kill(session_id, self.operator, reason),
            AuditedAction(self.operator, "session.kill", agent, f"session:{session_id}", reason),
            lambda answer: f"session {session_id} is {answer.status}",
        )

    async def disable(self, source: str, agent: str, workflow: str, reason: str) -> ActionResult:
        client = self.clients[source]
        return await self._run(
            lambda: client.disable(workflow, self.operator, reason),
            AuditedAction(self.operator, "workflow.disable", agent, f"workflow:{workflow}", reason),
            lambda a: f"workflow {workflow} disabled, {a.sessions_stopped} running session(s) stop",
        )

    async def enable(self, source: str, agent: str, workflow: str, reason: str) -> ActionResult:
        client = self.clients[source]
        return await self._run(
            lambda: client.enable(workflow, self.operator, reason),
            AuditedAction(self.operator, "workflow.enable", agent, f"workflow:{workflow}", reason),
            lambda _: f"workflow {workflow} enabled",
        )

    async def set_budget(self, source: str, agent: str, update: BudgetUpdate) -> ActionResult:
        client = self.clients[source]
        update = update.model_copy(update={"operator": self.operator})
        changes = update.changes()
        return await self._run(
            lambda: client.set_budgets(update),
            AuditedAction(
                self.operator,
                "budgets.set",
                agent,
                update.scope,
                update.reason,
                details={"changes": changes},
            ),
            lambda a: f"budgets for {update.scope} now {_limits(a.effective or a.budgets)}",
        )

    async def decide(
        self,
        source: str,
        agent: str,
        approval_id: str,
        decision: Literal["approve", "deny"],
        reason: str,
    ) -> ActionResult:
        client = self.clients[source]
        body = ApprovalDecision(decision=decision, operator=self.operator, reason=reason)
        verb = decision
        return await self._run(
            lambda: client.decide(approval_id, body),
            AuditedAction(
                self.operator, f"approval.{verb}", agent, f"approval:{approval_id}", reason
            ),
            lambda a: f"approval {approval_id} is {a.status}",
        )

    async def open_incident(self, alert: AlertEntry, reason: str) -> ActionResult:
        """Incidents live in the governance DB only (no agent call); the DB audits them."""
        title = cut(f"{alert.flag.kind} on {alert.agent}: {alert.flag.message}", 200)
        details: dict[str, Any] = {
            "flag_at": alert.flag.at.isoformat(),
            "message": alert.flag.message,
            "workflow": alert.workflow,
            "reason": reason,
        }
        evidence = None
        session_ref = alert.session_ref or alert.session_id
        if session_ref is not None:
            client = self.clients.get(alert.source)
            evidence, why = await collect(
                client,
                alert.agent,
                session_ref,
                origin=str(client.base_url) if client is not None else "",
                records=self.records,
            )
            if evidence is None:
                details["evidence"] = f"none: {why}"
        try:
            incident: IncidentRef = await asyncio.to_thread(
                self.governance.open_incident,
                agent=alert.agent,
                title=title,
                flag_kind=alert.flag.kind,
                session_id=alert.session_id,
                operator=self.operator,
                details=details,
                flag_severity=alert.flag.severity,
                flag_at=alert.flag.at,
                evidence=evidence,
            )
        except Exception as exc:
            return ActionResult(False, f"incident not opened: {error_line(exc)}")
        alert.incident = incident.id
        runbook = (
            f", runbook {incident.runbook.name}" if incident.runbook else ", no runbook matches"
        )
        return ActionResult(True, f"incident {incident.id} opened{runbook}", incident)

    async def _run(
        self,
        call: Callable[[], Awaitable[BaseModel]],
        action: AuditedAction,
        describe: Callable[[Any], str],
    ) -> ActionResult:
        try:
            answer = await call()
        except EndpointError as exc:
            failed = AuditedAction(
                action.operator,
                action.action,
                action.agent,
                action.target,
                action.reason,
                outcome="failed",
                details={**action.details, "error": error_line(exc), "status": exc.status},
            )
            audit_note = await self._audit(failed)
            return ActionResult(False, f"{action.action} failed: {error_line(exc)}{audit_note}")
        done = AuditedAction(
            action.operator,
            action.action,
            action.agent,
            action.target,
            action.reason,
            outcome="ok",
            details={**action.details, "answer": answer.model_dump(mode="json")},
        )
        audit_note = await self._audit(done)
        message = clean(describe(answer), 300) + audit_note
        return ActionResult(not audit_note, message, answer)

    async def _audit(self, action: AuditedAction) -> str:
        """'' when recorded, else a warning suffix for the operator."""
        try:
            await asyncio.to_thread(self.governance.record_action, action)
        except Exception as exc:
            return f" (NOT AUDITED: {error_line(exc)})"
        return ""


def _limits(budgets: BaseModel) -> str:
    values = budgets.model_dump(exclude_none=True)
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "unlimited"
