"""The modal every action goes through: exactly what will change, a reason, Cancel first.

The lines describing the change are built by the caller from agent data, so they are
Text objects shown literally. Cancel has focus when the modal opens: a stray Enter
cancels, it never kills.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmModal(ModalScreen[str | None]):
    """Dismisses with the reason typed (possibly empty) on confirm, None on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
    ]

    def __init__(
        self,
        title: str,
        changes: Sequence[Text],
        confirm: str,
        *,
        destructive: bool = True,
        ask_reason: bool = True,
    ) -> None:
        super().__init__(classes="action-modal")
        self.title_text = title
        self.changes = list(changes)
        self.confirm_label = confirm
        self.destructive = destructive
        self.ask_reason = ask_reason

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text), id="dialog-title")  # may hold an agent name
            yield Static("This will change:", classes="dialog-heading")
            for line in self.changes:
                yield Static(line, classes="change-line")
            if self.ask_reason:
                yield Input(placeholder="reason (recorded in the audit log)", id="reason")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(
                    self.confirm_label,
                    id="confirm",
                    variant="error" if self.destructive else "success",
                )

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            reasons = self.query("#reason")
            reason = reasons.first(Input).value.strip() if reasons else ""
            self.dismiss(reason)
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#cancel", Button).focus()  # Enter in the reason never confirms

    def action_cancel(self) -> None:
        self.dismiss(None)
