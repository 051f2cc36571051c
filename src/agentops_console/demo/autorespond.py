"""Play the operator: answer trouble the way the runbooks say, through the endpoint.

Used by `agentops demo --auto-respond` so the whole loop (detect, decide, act, confirmed
by the agent) runs unattended in CI. It only uses the public protocol client, exactly the
calls a person makes from the console:

- a runaway loop: kill the session;
- a denied export: disable the workflow that attempted it;
- an identity change waiting for approval: approve a self-service change, deny one that
  targets another account (a privilege escalation).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..protocol.client import AgentClient, EndpointError
from ..protocol.models import Approval, ApprovalDecision, Event
from .fleet import Endpoint
from .scenario import Scenario
from .watch import Seen

OPERATOR = "demo-autoresponder"


@dataclass(frozen=True, slots=True)
class Action:
    """One operator action and what the agent answered."""

    kind: str  # kill_session, disable_workflow, approve, deny
    agent: str
    target: str  # session id, workflow name or approval id
    reason: str
    trigger: str  # the event that prompted it
    event_at: float  # when the agent raised that event (epoch seconds)
    seen_at: float  # when the watcher received it
    done_at: float  # when the agent answered the action
    ok: bool
    result: str  # the state the agent reports after the action, or the error
    session_id: str | None = None
    workflow: str | None = None


class AutoResponder:
    """A watcher listener; acts at most once per session, workflow and approval.

    Events are handed to its own thread, so the calls it makes never delay the watcher
    (and with it the detection times the report measures).
    """

    def __init__(
        self, scenario: Scenario, endpoints: Sequence[Endpoint], operator: str = OPERATOR
    ) -> None:
        self.operator = operator
        self.actions: list[Action] = []
        self._endpoints = {e.agent: e for e in endpoints}
        self._clients: dict[str, AgentClient] = {}
        self._done: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._export_tools = _tools_of(scenario, "export")
        self._identity_tools = _tools_of(scenario, "identity")
        self._inbox: queue.SimpleQueue[Seen | None] = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=self._work, name="agentops-demo-autorespond", daemon=True
        )
        self._worker.start()

    def __call__(self, seen: Seen) -> None:
        self._inbox.put(seen)

    def _work(self) -> None:
        while (seen := self._inbox.get()) is not None:
            self.handle(seen)

    def handle(self, seen: Seen) -> None:
        """Decide and act on one event (on the responder's thread)."""
        event = seen.event
        if event.type == "flag" and event.flag is not None and event.session_id:
            if event.flag.kind == "runaway_loop":
                self._kill(seen, event.session_id, event.flag.message)
        elif event.type == "span_ended" and event.span is not None:
            span = event.span
            denied_export = span.outcome == "denied" and span.tool is not None
            if denied_export and (seen.agent, span.tool) in self._export_tools:
                workflow = event.workflow or (event.session.workflow if event.session else None)
                if workflow:
                    self._disable(seen, workflow, span.error or "export denied by policy")
        elif event.type == "approval_requested" and event.approval is not None:
            approval = event.approval
            if (seen.agent, approval.tool) in self._identity_tools:
                self._decide(seen, approval)

    def close(self, timeout: float = 5.0) -> None:
        """Finish the events already received, then stop the thread and close clients."""
        self._inbox.put(None)
        self._worker.join(timeout)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # -- the three responses -----------------------------------------------------------
    def _kill(self, seen: Seen, session_id: str, why: str) -> None:
        if not self._once(seen.agent, "kill", session_id):
            return
        reason = f"auto-respond: runaway loop ({why})"
        try:
            summary = self._client(seen.agent).kill(session_id, self.operator, reason)
            self._record(
                "kill_session",
                seen,
                session_id,
                reason,
                True,
                summary.status,
                session_id=session_id,
                workflow=summary.workflow,
            )
        except EndpointError as exc:
            self._record(
                "kill_session", seen, session_id, reason, False, str(exc), session_id=session_id
            )

    def _disable(self, seen: Seen, workflow: str, why: str) -> None:
        if not self._once(seen.agent, "disable", workflow):
            return
        reason = f"auto-respond: data export denied ({why})"
        try:
            state = self._client(seen.agent).disable(workflow, self.operator, reason)
            result = "disabled" if state.disabled else "not disabled"
            self._record(
                "disable_workflow",
                seen,
                workflow,
                reason,
                state.disabled,
                result,
                session_id=seen.event.session_id,
                workflow=workflow,
            )
        except EndpointError as exc:
            self._record(
                "disable_workflow",
                seen,
                workflow,
                reason,
                False,
                str(exc),
                session_id=seen.event.session_id,
                workflow=workflow,
            )

    def _decide(self, seen: Seen, approval: Approval) -> None:
        if not self._once(seen.agent, "approval", approval.id):
            return
        target = approval.arguments.get("user") if isinstance(approval.arguments, dict) else None
        if target == approval.principal:
            verdict, kind = "approve", "approve"
            reason = "auto-respond: self-service identity change"
        else:
            verdict, kind = "deny", "deny"
            reason = (
                f"auto-respond: privilege escalation: {approval.principal} asked for "
                f"{approval.tool} on {target!r}"
            )
        decision = ApprovalDecision(decision=verdict, operator=self.operator, reason=reason)
        try:
            answer = self._client(seen.agent).decide(approval.id, decision)
            self._record(
                kind,
                seen,
                approval.id,
                reason,
                True,
                answer.status,
                session_id=approval.session_id,
                workflow=approval.workflow,
            )
        except EndpointError as exc:
            self._record(
                kind,
                seen,
                approval.id,
                reason,
                False,
                str(exc),
                session_id=approval.session_id,
                workflow=approval.workflow,
            )

    # -- plumbing ----------------------------------------------------------------------
    def _once(self, agent: str, kind: str, target: str) -> bool:
        with self._lock:
            key = (agent, kind, target)
            if key in self._done:
                return False
            self._done.add(key)
            return True

    def _client(self, agent: str) -> AgentClient:
        with self._lock:
            client = self._clients.get(agent)
            if client is None:
                endpoint = self._endpoints[agent]
                client = self._clients[agent] = AgentClient(endpoint.url, endpoint.token)
            return client

    def _record(
        self,
        kind: str,
        seen: Seen,
        target: str,
        reason: str,
        ok: bool,
        result: str,
        *,
        session_id: str | None = None,
        workflow: str | None = None,
    ) -> None:
        event: Event = seen.event
        action = Action(
            kind=kind,
            agent=seen.agent,
            target=target,
            reason=reason,
            trigger=_describe(event),
            event_at=event.at.timestamp(),
            seen_at=seen.seen_at,
            done_at=time.time(),
            ok=ok,
            result=result,
            session_id=session_id,
            workflow=workflow,
        )
        with self._lock:
            self.actions.append(action)


def _tools_of(scenario: Scenario, category: str) -> frozenset[tuple[str, str]]:
    return frozenset(
        (agent.name, tool.name)
        for agent in scenario.agents
        for tool in agent.tools
        if tool.category == category
    )


def _describe(event: Event) -> str:
    if event.flag is not None:
        return f"flag {event.flag.kind}"
    if event.span is not None:
        return f"{event.span.name} {event.span.outcome}"
    if event.approval is not None:
        return f"approval requested for {event.approval.tool}"
    return event.type
