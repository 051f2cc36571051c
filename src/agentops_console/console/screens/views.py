"""The four top-level views: fleet, sessions, alerts, approvals."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input

from ..widgets.alerts_table import AlertsTable
from ..widgets.approvals_table import ApprovalsTable
from ..widgets.fleet_table import FleetTable
from ..widgets.footer import ConsoleFooter
from ..widgets.sessions_table import SessionsTable
from ..widgets.status_bar import StatusBar
from .base import TABLES, ConsoleScreen


class FleetScreen(ConsoleScreen):
    VIEW = "fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Sessions", id="fleet.open"),
        Binding("b", "budget", "Budget", id="budget.set"),
        Binding("k", "cursor_up", "Up", show=False, id="fleet.up"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield FleetTable(id="fleet")
        yield ConsoleFooter()

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.changes is not None and self.changes.any():
            self.changes.take()
            self.query_one(FleetTable).sync(self.console.store, self.console.clock())

    def action_open(self) -> None:
        source = self.query_one(FleetTable).selected()
        if source is not None:
            self.console.show_sessions(agent=self.console.store.agent_name(source))

    def action_budget(self) -> None:
        source = self.query_one(FleetTable).selected()
        if source is not None:
            self.ask_budget(source)

    def action_cursor_up(self) -> None:
        self.query_one(FleetTable).action_cursor_up()

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()


class FilteredScreen(ConsoleScreen):
    """A view with a `/` filter line above its table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="filter"),
    ]

    def compose_filter(self) -> Input:
        field = Input(placeholder="/ filter: words to match", id="filter")
        field.display = False
        field.cursor_blink = False
        return field

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#filter")
    def _typed(self, event: Input.Changed) -> None:
        self.filter_changed(event.value)

    @on(Input.Submitted, "#filter")
    def _done(self, event: Input.Submitted) -> None:
        field = self.query_one("#filter", Input)
        if not field.value:
            field.display = False
        for table in self.query(TABLES):
            table.focus()

    def set_filter(self, text: str) -> None:
        field = self.query_one("#filter", Input)
        field.value = text
        field.display = bool(text)
        self.filter_changed(text)


class SessionsScreen(FilteredScreen):
    VIEW = "sessions"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Detail", id="sessions.open"),
        Binding("k", "kill", "Kill", id="session.kill"),
        Binding("d", "disable", "Disable wf", id="workflow.disable"),
        Binding("e", "enable", "Enable wf", id="workflow.enable"),
        Binding("b", "budget", "Budget", id="budget.set"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._age_second = -1

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield self.compose_filter()
        yield SessionsTable(id="sessions")
        yield ConsoleFooter()

    @property
    def table(self) -> SessionsTable:
        return self.query_one(SessionsTable)

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.changes is None:
            return
        store, now = self.console.store, self.console.clock()
        table = self.table
        if self.changes.agents:
            self.changes.agents.clear()
        if self.changes.sessions or table.store is None:
            # every change at once: re-placing one in the index costs microseconds and
            # only the rows on screen are drawn
            changed, self.changes.sessions = self.changes.sessions, set()
            table.sync(store, None if table.store is None else changed, now)
        second = int(now.timestamp())
        if second != self._age_second:
            self._age_second = second
            table.tick(now)

    def filter_changed(self, text: str) -> None:
        self.table.set_filter(self.console.store, text, self.console.clock())

    def _selected(self) -> tuple[str, str] | None:
        key = self.table.selected()
        if key is None:
            self.notify("no session selected", severity="warning")
        return key

    def action_open(self) -> None:
        key = self._selected()
        if key is not None:
            self.console.show_detail(key)

    @on(SessionsTable.RowChosen)
    def _row_selected(self) -> None:
        self.action_open()

    def action_kill(self) -> None:
        key = self._selected()
        if key is not None:
            self.ask_kill(key)

    def _workflow(self, enable: bool) -> None:
        key = self._selected()
        store = self.console.store
        summary = store.sessions.get(key) if key else None
        workflow = store.workflow_ref(key) if key else None
        if key is not None and summary is not None and workflow is not None:
            self.ask_workflow(key[0], workflow, summary.workflow, enable)

    def action_disable(self) -> None:
        self._workflow(enable=False)

    def action_enable(self) -> None:
        self._workflow(enable=True)

    def action_budget(self) -> None:
        key = self._selected()
        if key is not None:
            self.ask_budget(key[0], key)


class AlertsScreen(FilteredScreen):
    VIEW = "alerts"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Session", id="alerts.open"),
        Binding("i", "incident", "Incident", id="incident.open"),
        Binding("r", "runbook", "Runbook", id="runbook.show"),
        Binding("d", "disable", "Disable wf", id="workflow.disable"),
        Binding("e", "enable", "Enable wf", id="workflow.enable"),
        Binding("k", "cursor_up", "Up", show=False, id="alerts.up"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield self.compose_filter()
        yield AlertsTable(id="alerts")
        yield ConsoleFooter()

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.changes is not None and self.changes.alerts:
            self.changes.take()
            self.query_one(AlertsTable).sync(self.console.store, self.console.clock)

    def filter_changed(self, text: str) -> None:
        table = self.query_one(AlertsTable)
        table.filter_text = text
        table.sync(self.console.store, self.console.clock)

    def action_cursor_up(self) -> None:
        self.query_one(AlertsTable).action_cursor_up()

    def action_open(self) -> None:
        alert = self.query_one(AlertsTable).selected()
        if alert is not None and alert.session_ref is not None:
            key = (alert.source, alert.session_ref)
            # gone from the agent's ring: the records DB may still have it (history.py)
            if key in self.console.store.sessions or self.console.records is not None:
                self.console.show_detail(key)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()

    def action_incident(self) -> None:
        alert = self.query_one(AlertsTable).selected()
        if alert is not None:
            self.ask_incident(alert)

    def action_runbook(self) -> None:
        alert = self.query_one(AlertsTable).selected()
        if alert is not None:
            self.show_runbook(alert)

    def _workflow(self, enable: bool) -> None:
        alert = self.query_one(AlertsTable).selected()
        if alert is not None and alert.workflow_ref is not None and alert.workflow is not None:
            self.ask_workflow(alert.source, alert.workflow_ref, alert.workflow, enable)

    def action_disable(self) -> None:
        self._workflow(enable=False)

    def action_enable(self) -> None:
        self._workflow(enable=True)


class ApprovalsScreen(ConsoleScreen):
    VIEW = "approvals"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approval.approve"),
        Binding("x", "deny", "Deny", id="approval.deny"),
        Binding("enter", "open", "Session", id="approvals.open"),
        Binding("k", "cursor_up", "Up", show=False, id="approvals.up"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield ApprovalsTable(id="approvals")
        yield ConsoleFooter()

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.changes is not None and (self.changes.approvals or self.changes.agents):
            self.changes.take()
        # expiry counts down, so the (small) table is redrawn every time
        self.query_one(ApprovalsTable).sync(self.console.store, self.console.clock())

    def action_cursor_up(self) -> None:
        self.query_one(ApprovalsTable).action_cursor_up()

    def action_approve(self) -> None:
        entry = self.query_one(ApprovalsTable).selected()
        if entry is not None:
            self.ask_decide(entry, approve=True)

    def action_deny(self) -> None:
        entry = self.query_one(ApprovalsTable).selected()
        if entry is not None:
            self.ask_decide(entry, approve=False)

    def action_open(self) -> None:
        entry = self.query_one(ApprovalsTable).selected()
        if entry is not None:
            key = (entry.source, entry.session_ref)
            if key in self.console.store.sessions:
                self.console.show_detail(key)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()
