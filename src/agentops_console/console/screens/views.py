"""The four top-level views: fleet, sessions, alerts, approvals."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from ..widgets.alerts_table import AlertsTable
from ..widgets.approvals_table import ApprovalsTable
from ..widgets.fleet_table import FleetTable
from ..widgets.footer import ConsoleFooter
from ..widgets.keyed_table import KeyedTable
from ..widgets.sessions_table import SessionsTable
from ..widgets.status_bar import StatusBar
from .base import ConsoleScreen


class TableScreen(ConsoleScreen):
    """A view of one `KeyedTable`: redrawn when the store says its part changed, and
    filtered by `/` over the row's cells."""

    FILTER_HINT = "filter: words to match"

    @property
    def rows(self) -> KeyedTable:
        return self.query_one(KeyedTable)

    def changed(self) -> bool:
        """Take the store's changes; True when this view's rows need a sync."""
        return self.changes is not None and self.changes.take().any()

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.changed():
            self.rows.sync(self.console.store, self.console.clock())

    def filter_changed(self, text: str) -> None:
        table = self.rows
        table.filter_text = text
        table.sync(self.console.store, self.console.clock())

    def action_cursor_up(self) -> None:
        self.rows.action_cursor_up()


class FleetScreen(TableScreen):
    VIEW = "fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Sessions", id="fleet.open"),
        Binding("b", "budget", "Budget", id="budget.set"),
        Binding("k", "cursor_up", "Up", show=False, id="fleet.up"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield self.compose_filter()
        yield FleetTable(id="fleet")
        yield ConsoleFooter()

    def action_open(self) -> None:
        source = self.query_one(FleetTable).selected()
        if source is not None:
            self.console.show_sessions(agent=self.console.store.agent_name(source))

    def action_budget(self) -> None:
        source = self.query_one(FleetTable).selected()
        if source is not None:
            self.flows.ask_budget(source)

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()


class SessionsScreen(ConsoleScreen):
    VIEW = "sessions"
    FILTER_HINT = "filter: words to match"
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
            table.sync(store, now, None if table.store is None else changed)
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
            self.flows.ask_kill(key)

    def _workflow(self, enable: bool) -> None:
        key = self._selected()
        store = self.console.store
        summary = store.sessions.get(key) if key else None
        workflow = store.workflow_ref(key) if key else None
        if key is not None and summary is not None and workflow is not None:
            self.flows.ask_workflow(key[0], workflow, summary.workflow, enable)

    def action_disable(self) -> None:
        self._workflow(enable=False)

    def action_enable(self) -> None:
        self._workflow(enable=True)

    def action_budget(self) -> None:
        key = self._selected()
        if key is not None:
            self.flows.ask_budget(key[0], key)


class AlertsScreen(TableScreen):
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

    def changed(self) -> bool:
        if self.changes is None or not (self.changes.alerts or self.changes.sessions):
            return False
        self.changes.take()  # alerts close when their session ends, so sessions count
        return True

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
            self.flows.ask_incident(alert)

    def action_runbook(self) -> None:
        alert = self.query_one(AlertsTable).selected()
        if alert is not None:
            self.flows.show_runbook(alert)

    def _workflow(self, enable: bool) -> None:
        alert = self.query_one(AlertsTable).selected()
        if alert is not None and alert.workflow_ref is not None and alert.workflow is not None:
            self.flows.ask_workflow(alert.source, alert.workflow_ref, alert.workflow, enable)

    def action_disable(self) -> None:
        self._workflow(enable=False)

    def action_enable(self) -> None:
        self._workflow(enable=True)


class ApprovalsScreen(TableScreen):
    VIEW = "approvals"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approval.approve"),
        Binding("x", "deny", "Deny", id="approval.deny"),
        Binding("enter", "open", "Session", id="approvals.open"),
        Binding("k", "cursor_up", "Up", show=False, id="approvals.up"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield self.compose_filter()
        yield ApprovalsTable(id="approvals")
        yield ConsoleFooter()

    def changed(self) -> bool:
        super().changed()
        return True  # expiry counts down, so the (small) table is redrawn every time

    def action_approve(self) -> None:
        entry = self.query_one(ApprovalsTable).selected()
        if entry is not None:
            self.flows.ask_decide(entry, approve=True)

    def action_deny(self) -> None:
        entry = self.query_one(ApprovalsTable).selected()
        if entry is not None:
            self.flows.ask_decide(entry, approve=False)

    def action_open(self) -> None:
        entry = self.query_one(ApprovalsTable).selected()
        if entry is not None:
            key = (entry.source, entry.session_ref)
            if key in self.console.store.sessions:
                self.console.show_detail(key)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_open()
