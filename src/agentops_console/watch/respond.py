"""Carrying out a rule's action through the agent's endpoint, and auditing it.

The agent call comes first and the audit row records what happened (`outcome` ok or
failed, with the agent's answer or the error), the same order the console keeps; the
actor is `watch:<rule>`, the source `watch` and the action the one every source uses
(`session.kill`, `workflow.disable`, `budget.set`: governance/vocabulary.py).
A dry run calls nothing and writes nothing: it only says what it would do, so a team can
try rules on live traffic without a trace in the tamper-evident log of acts never done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ..protocol.client import AsyncAgentClient, EndpointError
from ..protocol.models import Event
from ..protocol.text import error_line
from .rules import Action, DisableWorkflow, KillSession, RuleBook, SetBudget


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    action: Action
    ok: bool
    message: str
    dry_run: bool = False
    audited: bool = False


class ActionAudit(Protocol):
    """Where executed actions are recorded (called from a worker thread)."""

    def record(self, action: Action, outcome: str, details: dict[str, Any]) -> None: ...


class GovernanceAudit:
    """The governance DB's audit log; a connection per call (calls come from threads)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def record(self, action: Action, outcome: str, details: dict[str, Any]) -> None:
        from ..governance.api import open_governance, record_action

        with open_governance(self.path, create=False) as gdb:
            record_action(
                gdb,
                actor=action.operator,
                action=action.audit_action,
                target=action.target,
                agent=action.agent,
                details={
                    "rule": action.rule,
                    "reason": action.reason,
                    "cause": action.cause,
                    "event_seq": action.event_seq,
                    **details,
                },
                source="watch",
                outcome=outcome,
            )


class Executor:
    """Runs actions against the agents in `clients` (keyed by agent name)."""

    def __init__(
        self,
        clients: Mapping[str, AsyncAgentClient],
        audit: ActionAudit | None,
        *,
        dry_run: bool = False,
    ) -> None:
        if audit is None and not dry_run:
            raise ValueError("an executor that acts must audit: give it an ActionAudit")
        self.clients = clients
        self.audit = audit
        self.dry_run = dry_run

    async def execute(self, action: Action) -> ActionOutcome:
        what = f"{action.describe()} (rule {action.rule})"
        if self.dry_run:
            return ActionOutcome(action, True, f"dry run: would {what}", dry_run=True)
        client = self.clients.get(action.agent)
        try:
            if client is None:
                raise EndpointError(f"no endpoint known for agent {action.agent!r}")
            answer = await _call(client, action)
        except EndpointError as exc:
            error = _one_line(exc)
            details = {"error": error, "status": exc.status}
            note = await self._audit(action, "failed", details)
            return ActionOutcome(
                action, False, f"failed to {what}: {error}{note}", audited=not note
            )
        note = await self._audit(action, "ok", {"answer": answer.model_dump(mode="json")})
        return ActionOutcome(action, not note, f"did {what}{note}", audited=not note)

    async def _audit(self, action: Action, outcome: str, details: dict[str, Any]) -> str:
        """'' when recorded, else a loud suffix: the act happened but is not on record."""
        assert self.audit is not None
        try:
            await asyncio.to_thread(self.audit.record, action, outcome, details)
        except Exception as exc:
            return f" (NOT AUDITED: {_one_line(exc)})"
        return ""


async def _call(client: AsyncAgentClient, action: Action) -> BaseModel:
    if isinstance(action, KillSession):
        return await client.kill(action.session_id, action.operator, action.reason)
    if isinstance(action, DisableWorkflow):
        return await client.disable(action.workflow, action.operator, action.reason)
    if isinstance(action, SetBudget):
        return await client.set_budgets(action.update)
    raise TypeError(f"unknown action {action!r}")


class Responder:
    """Rules plus executor: what the watcher calls for each event from each agent."""

    def __init__(self, rules: RuleBook, executor: Executor) -> None:
        self.rules = rules
        self.executor = executor

    async def handle(self, agent: str, event: Event) -> list[ActionOutcome]:
        """Act on every rule this event sets off (concurrently; each once per target)."""
        actions = self.rules.actions_for(agent, event)
        if not actions:
            return []
        return list(await asyncio.gather(*(self.executor.execute(a) for a in actions)))


#: Longest error quoted in an action's result.
_ERROR_CHARS = 300


def _one_line(exc: BaseException) -> str:
    return error_line(exc, _ERROR_CHARS)
