"""The modal every action goes through: exactly what will change, a reason, Cancel first.

The lines describing the change are built by the caller from agent data, so they are
Text objects shown literally. Cancel has focus when the modal opens: a stray Enter
cancels, it never kills. With nothing to confirm (`confirm` None: a session that already
ended) the modal only says so and offers Close.

The title, the reason and the buttons stay put; only the lines between scroll, so at
80x24 the operator still sees what the modal is and how to leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
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
        confirm: str | None,
        *,
        destructive: bool = True,
        ask_reason: bool = True,
    ) -> None:
        super().__init__(classes="action-modal")
        self.title_text = title
        self.changes = list(changes)
        self.confirm_label = confirm
        self.destructive = destructive
        self.ask_reason = ask_reason and confirm is not None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text), id="dialog-title")  # may hold an agent name
            with VerticalScroll(id="dialog-body"):
                heading = "This will change:" if self.confirm_label else "Nothing to do:"
                yield Static(heading, classes="dialog-heading")
                for line in self.changes:
                    yield Static(line, classes="change-line")
            if self.ask_reason:
                yield Input(
                    placeholder="reason (recorded in the audit log)", id="reason", compact=True
                )
            with Horizontal(id="dialog-buttons"):
                cancel = "Cancel" if self.confirm_label else "Close"
                yield Button(cancel, id="cancel", variant="primary", compact=True)
                if self.confirm_label:
                    yield Button(
                        self.confirm_label,
                        id="confirm",
                        variant="error" if self.destructive else "success",
                        compact=True,
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
