"""Change a budget at session, workflow or agent scope, seeing each limit's before → after."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from ...protocol.models import BUDGET_FIELDS, Budgets, BudgetUpdate
from ...protocol.text import one_line

#: A refused budget value, as the toast shows it.
NOTICE_CHARS = 200

#: (scope as sent on the wire, label) in the order shown.
Scopes = list[tuple[str, str]]


def _shown(field: str, value: float | int | None) -> str:
    if value is None:
        return "unlimited"
    return f"${value:.2f}" if "usd" in field else str(value)


def _parse(field: str, raw: str) -> float | int | None:
    raw = raw.strip().lstrip("$")
    if raw in ("", "-", "none", "unlimited"):
        return None
    return float(raw) if "usd" in field else int(raw)


class BudgetModal(ModalScreen[BudgetUpdate | None]):
    """Fields start at the scope's current limits; only fields that differ are sent."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
    ]

    def __init__(self, title: str, scopes: Scopes, current: dict[str, Budgets]) -> None:
        """`title` and scope labels are shown (clean text); scopes are sent as given."""
        super().__init__(classes="action-modal")
        self.title_text = title
        self.scopes = scopes
        self.current = current
        self.scope = scopes[0][0]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text), id="dialog-title")  # may hold an agent name
            with VerticalScroll(id="dialog-body"):
                with RadioSet(id="scope", compact=True):
                    for index, (scope, label) in enumerate(self.scopes):
                        yield RadioButton(Text(label), value=index == 0, name=scope)
                for field in BUDGET_FIELDS:
                    with Horizontal(classes="budget-row"):
                        yield Label(field, classes="budget-label")
                        yield Input(id=f"b-{field}", classes="budget-input", compact=True)
                yield Static("This will change:", classes="dialog-heading")
                yield Static(id="diff", classes="change-line")
            yield Input(placeholder="reason (recorded in the audit log)", id="reason", compact=True)
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary", compact=True)
                yield Button("Apply budget", id="confirm", variant="warning", compact=True)

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self._load_scope()
        self.query_one("#cancel", Button).focus()

    def _load_scope(self) -> None:
        budgets = self.current.get(self.scope, Budgets())
        for field in BUDGET_FIELDS:
            value = getattr(budgets, field)
            self.query_one(f"#b-{field}", Input).value = "" if value is None else str(value)
        self._show_diff()

    def changes(self) -> dict[str, float | int | None]:
        """Fields whose typed value differs from the current one; ValueError if unparsable."""
        budgets = self.current.get(self.scope, Budgets())
        changed: dict[str, float | int | None] = {}
        for field in BUDGET_FIELDS:
            value = _parse(field, self.query_one(f"#b-{field}", Input).value)
            if value != getattr(budgets, field):
                changed[field] = value
        return changed

    def _show_diff(self) -> None:
        diff = self.query_one("#diff", Static)
        try:
            changed = self.changes()
        except ValueError:
            diff.update(Text("not a number", style="bold red"))
            return
        budgets = self.current.get(self.scope, Budgets())
        # the label, not the scope: the scope holds the raw name sent to the agent
        label = dict(self.scopes).get(self.scope, "")
        lines = Text(f"scope {label}\n", style="bold")
        if not changed:
            lines.append("nothing yet: edit a limit above", style="dim")
        for field, value in changed.items():
            before = _shown(field, getattr(budgets, field))
            lines.append(f"{field}: {before} → {_shown(field, value)}\n")
        diff.update(lines)

    @on(RadioSet.Changed, "#scope")
    def _scope_changed(self, event: RadioSet.Changed) -> None:
        self.scope = self.scopes[event.index][0]
        self._load_scope()

    @on(Input.Changed, ".budget-input")
    def _field_changed(self) -> None:
        self._show_diff()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id != "confirm":
            self.dismiss(None)
            return
        try:
            changed = self.changes()
            reason = self.query_one("#reason", Input).value.strip()
            update = BudgetUpdate.model_validate({"scope": self.scope, "reason": reason, **changed})
        except ValueError as exc:
            self.notify(one_line(exc, NOTICE_CHARS), severity="error")
            return
        if not changed:
            self.notify("nothing to change", severity="warning")
            return
        self.dismiss(update)

    def action_cancel(self) -> None:
        self.dismiss(None)
