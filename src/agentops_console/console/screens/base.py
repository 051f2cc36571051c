"""What every view shares: its change accumulator, the status bar, readonly gating and
the `/` filter line. The action flows live in `flows.py`; a view only picks the row.

Every view has the filter line, so `/` never falls through to the keys behind it (`p`
would pause the display): a view that cannot filter says so in the line and swallows
what is typed there until `esc`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input

from ..store import Changes
from ..widgets.status_bar import StatusBar, status_text
from .flows import MUTATING_ACTIONS, ActionFlows, change_line

if TYPE_CHECKING:
    from ..app import AgentOpsConsole

__all__ = ["MUTATING_ACTIONS", "TABLES", "ConsoleScreen", "change_line"]

#: The widgets that hold a view's rows (the one focused after the filter line closes).
TABLES = "KeyedTable, SessionsTable, SpanTimeline"


class ConsoleScreen(Screen[None]):
    VIEW: ClassVar[str] = ""
    #: What `/` matches in this view; '' when the view cannot filter (the line says so).
    FILTER_HINT: ClassVar[str] = ""
    AUTO_FOCUS = TABLES
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="back"),
        Binding("slash", "filter", "Filter", id="filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.changes: Changes | None = None

    @property
    def console(self) -> AgentOpsConsole:
        return cast("AgentOpsConsole", self.app)

    @property
    def flows(self) -> ActionFlows:
        return ActionFlows(self.console)

    def on_mount(self) -> None:
        self.changes = self.console.store.watch()
        self.refresh_view()

    def on_unmount(self) -> None:
        if self.changes is not None:
            self.console.store.unwatch(self.changes)

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in MUTATING_ACTIONS and self.console.readonly)

    def refresh_view(self) -> None:
        """Redraw what changed since the last call (the app calls this on a timer)."""
        self.refresh_status()

    def refresh_status(self) -> None:
        app = self.console
        bars = self.query(StatusBar)
        if bars:
            bar = bars.first()
            bar.show(
                status_text(
                    app.store,
                    app.clock(),
                    view=self.VIEW,
                    operator=app.operator,
                    paused=app.paused,
                    readonly=app.readonly,
                    note=app.last_note,
                    width=bar.size.width or app.size.width,
                    reason=app.readonly_reason,
                    behind=app.ingest.behind,
                    backlog=app.ingest.backlog,
                )
            )

    # -- the filter line ---------------------------------------------------------------
    def compose_filter(self) -> Input:
        hint = self.FILTER_HINT or "no filter in this view: esc closes"
        field = Input(placeholder=f"/ {hint}", id="filter", compact=True)
        field.display = False
        field.cursor_blink = False
        return field

    def action_filter(self) -> None:
        fields = self.query("#filter")
        if fields:
            field = fields.first(Input)
            field.display = True
            field.focus()

    @on(Input.Changed, "#filter")
    def _typed(self, event: Input.Changed) -> None:
        if self.FILTER_HINT:
            self.filter_changed(event.value)
        elif event.value:  # nothing to filter: keep swallowing, show nothing typed
            event.input.value = ""

    @on(Input.Submitted, "#filter")
    def _done(self, event: Input.Submitted) -> None:
        field = event.input
        if not field.value:
            field.display = False
        self._focus_rows()

    def _focus_rows(self) -> None:
        for table in self.query(TABLES):
            table.focus()
            return

    def set_filter(self, text: str) -> None:
        field = self.query_one("#filter", Input)
        field.value = text
        field.display = bool(text)
        self.filter_changed(text)

    def action_back(self) -> None:
        for field in self.query(Input):
            if field.id == "filter" and field.display and (field.value or field.has_focus):
                field.value = ""
                field.display = False
                self.filter_changed("")
                self._focus_rows()
                return
        self.console.go_back()

    def filter_changed(self, text: str) -> None:
        """Views with a `/` filter override this."""
