"""The operator's action flows: a modal that shows exactly what will change, then the
action in the app's `actions` worker group, then its answer folded back into the store.

Kept apart from the screens so a view only picks the row and calls a flow; the flows hold
no state of their own. Agent text here is already clean (the store cleaned it on the way
in); it is still put in `Text`, never parsed as markup. Actions send the raw ids the store
kept (`*_ref`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Literal

from rich.text import Text

from ...protocol.models import Budgets, BudgetState, BudgetUpdate, SessionSummary
from ..actions import ActionResult
from ..governance_port import IncidentRef
from ..store import ACTIVE_STATUSES, AlertEntry, ApprovalEntry, SessionKey
from ..text import json_text, shown
from .budget import BudgetModal, Scopes
from .confirm import ConfirmModal
from .info import RunbookModal

if TYPE_CHECKING:
    from ..app import AgentOpsConsole

#: Actions that change something; --readonly removes every one of them.
MUTATING_ACTIONS = frozenset({"kill", "disable", "enable", "budget", "approve", "deny", "incident"})


def change_line(label: str, *parts: Text | str) -> Text:
    """`label  part part`: str parts are ours, Text parts clean agent text."""
    line = Text(f"{label:<10}", style="bold", no_wrap=False, end="")
    for part in parts:
        line.append_text(part if isinstance(part, Text) else Text(part))
    return line


class ActionFlows:
    """Holds only the app (a view makes one where it needs a flow); every `ask_*` does
    nothing when actions are off (read-only)."""

    def __init__(self, app: AgentOpsConsole) -> None:
        self.app = app

    def _agent_line(self, source: str) -> Text:
        agent = self.app.store.agents[source]
        line = change_line("agent", shown(agent.name), f"  ({agent.url})")
        if agent.state != "live":  # say so before the operator relies on the action
            line.append(
                f"\n{'':<10}not answering ({agent.state}, retry {agent.retries}):"
                " the action will probably fail",
                style="bold yellow",
            )
        return line

    def _run(self, source: str, work: Awaitable[ActionResult]) -> None:
        """Run it; an answer that says how things now are goes into the store at once, so
        a row the agent will send no more events for (an ended session) shows it too."""

        async def then_store() -> ActionResult:
            result = await work
            answer = result.answer
            if isinstance(answer, SessionSummary):
                self.app.store.apply_answer(source, answer)
            elif isinstance(answer, BudgetState):
                self.app.store.apply_budgets(source, answer)
            return result

        self.app.perform(then_store())

    def ask_kill(self, key: SessionKey) -> None:
        app = self.app
        summary = app.store.sessions.get(key)
        if summary is None or app.actions is None:
            return
        source, session_id = key
        lines = [
            self._agent_line(source),
            change_line("session", shown(summary.id)),
            change_line(
                "workflow", shown(summary.workflow), "  principal ", shown(summary.principal)
            ),
        ]
        # an OTel conversation between two runs has ended its run, not the conversation:
        # killed now, its next run is refused (docs/runtime.md)
        between_runs = summary.source == "otel" and summary.status in ("completed", "failed")
        if summary.status not in ACTIVE_STATUSES and not between_runs:
            lines.append(change_line("status", f"{summary.status}: the session has ended"))
            lines.append(change_line("effect", "none: there is nothing left to kill"))
            app.push_screen(ConfirmModal("Session already ended", lines, None))
            return
        effect = (
            "the conversation's next run is refused"
            if between_runs
            else "its next tool or LLM call is refused; pending approvals end"
        )
        lines += [
            change_line("status", f"{summary.status} → killed"),
            change_line("effect", effect),
            change_line("audit", "session.kill by ", shown(app.operator)),
        ]
        modal = ConfirmModal("Kill session", lines, "Kill session")

        def done(reason: str | None) -> None:
            if reason is not None and app.actions is not None:
                self._run(source, app.actions.kill(source, summary.agent, session_id, reason))

        app.push_screen(modal, done)

    def ask_workflow(self, source: str, workflow: str, label: str, enable: bool) -> None:
        """`workflow` as the agent named it (sent back), `label` as shown (clean)."""
        app = self.app
        if app.actions is None or source not in app.store.agents:
            return
        agent = app.store.agents[source]
        running = sum(
            1
            for s in app.store.sessions_of(source)
            if s.workflow == label and s.status in ACTIVE_STATUSES
        )
        verb = "enable" if enable else "disable"
        effect = (
            "new sessions of this workflow are accepted again"
            if enable
            else f"new sessions are refused; {running} running session(s) stop at their next call"
        )
        lines = [
            self._agent_line(source),
            change_line("workflow", shown(label)),
            change_line("state", "disabled → enabled" if enable else "enabled → disabled"),
            change_line("effect", effect),
            change_line("audit", f"workflow.{verb} by ", shown(app.operator)),
        ]
        title = "Enable workflow" if enable else "Disable workflow"
        modal = ConfirmModal(title, lines, title, destructive=not enable)

        def done(reason: str | None) -> None:
            if reason is None or app.actions is None:
                return
            call = app.actions.enable if enable else app.actions.disable
            self._run(source, call(source, agent.name, workflow, reason))

        app.push_screen(modal, done)

    def ask_budget(self, source: str, key: SessionKey | None = None) -> None:
        """At agent scope, or also the session's and its workflow's when `key` is given."""
        app = self.app
        agent = app.store.agents.get(source)
        if app.actions is None or agent is None:
            return
        info = agent.info
        agent_budgets = info.budgets if info is not None else Budgets()
        scopes: Scopes = []
        current: dict[str, Budgets] = {}
        summary = app.store.sessions.get(key) if key is not None else None
        workflow = app.store.workflow_ref(key) if key is not None else None
        if key is not None and summary is not None and workflow is not None:
            scopes.append((f"session:{key[1]}", f"session {summary.id}"))
            current[f"session:{key[1]}"] = summary.budget
            scopes.append((f"workflow:{workflow}", f"workflow {summary.workflow}"))
            wf = info.workflow_budgets.get(summary.workflow) if info is not None else None
            current[f"workflow:{workflow}"] = wf or Budgets()
        scopes.append(("agent", f"agent {agent.name}"))
        current["agent"] = agent_budgets
        modal = BudgetModal(f"Change budget on {agent.name}", scopes, current)

        def done(update: BudgetUpdate | None) -> None:
            if update is not None and app.actions is not None:
                self._run(source, app.actions.set_budget(source, agent.name, update))

        app.push_screen(modal, done)

    def ask_decide(self, entry: ApprovalEntry, approve: bool) -> None:
        app = self.app
        if app.actions is None:
            return
        a = entry.approval
        verb: Literal["approve", "deny"] = "approve" if approve else "deny"
        lines = [
            self._agent_line(entry.source),
            change_line("session", shown(a.session_id), "  workflow ", shown(a.workflow)),
            change_line("tool", shown(a.tool)),
            change_line("arguments", shown(json_text(a.arguments, 300))),
            change_line("principal", shown(a.principal)),
            change_line(
                "effect",
                "the tool call runs" if approve else "the tool call is refused (policy deny)",
            ),
            change_line("audit", f"approval.{verb} by ", shown(app.operator)),
        ]
        title = "Approve tool call" if approve else "Deny tool call"
        modal = ConfirmModal(title, lines, "Approve" if approve else "Deny", destructive=approve)

        def done(reason: str | None) -> None:
            if reason is not None and app.actions is not None:
                ref = entry.approval_ref
                work = app.actions.decide(entry.source, entry.agent, ref, verb, reason)
                self._run(entry.source, work)

        app.push_screen(modal, done)

    def ask_incident(self, alert: AlertEntry) -> None:
        app = self.app
        if app.actions is None or app.governance is None:
            return
        runbook = app.governance.runbook_for(alert.flag.kind)
        lines = [
            self._agent_line(alert.source),
            change_line("alert", shown(alert.flag.kind), "  ", shown(alert.flag.message)),
            change_line("session", shown(alert.session_id or "-")),
            change_line(
                "runbook",
                shown(runbook.name) if runbook else Text("none matches", style="dim"),
            ),
            change_line("effect", "a new open incident in the governance DB"),
            change_line("audit", "incident.open by ", shown(app.operator)),
        ]
        modal = ConfirmModal("Open incident", lines, "Open incident", destructive=False)

        async def opened(reason: str) -> ActionResult:
            assert app.actions is not None
            result = await app.actions.open_incident(alert, reason)
            if isinstance(result.answer, IncidentRef):
                # through the store, so every view (a filtered one too) redraws the row
                app.store.incident_opened(alert, result.answer.id)
            return result

        def done(reason: str | None) -> None:
            if reason is not None and app.actions is not None:
                app.perform(opened(reason))

        app.push_screen(modal, done)

    def show_runbook(self, alert: AlertEntry) -> None:
        app = self.app
        runbook = app.governance.runbook_for(alert.flag.kind) if app.governance else None
        if runbook is None:
            app.notify(f"no runbook matches {alert.flag.kind}", severity="warning")
            return
        app.push_screen(RunbookModal(f"Runbook: {runbook.title}", runbook.body))
