"""Read-only modals: help (every key, as currently mapped), runbook text, jump to a view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, OptionList, Static

VIEWS = ("fleet", "sessions", "alerts", "approvals")


class HelpModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="modal.close"),
    ]

    def __init__(self, rows: Sequence[tuple[str, str, str]]) -> None:
        super().__init__(classes="info-modal")
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Keys", id="dialog-title")
            table: DataTable[str] = DataTable(id="help-keys", cursor_type="none")
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#help-keys", DataTable)
        table.add_columns("key", "does", "binding id")
        for key, description, binding_id in self.rows:
            table.add_row(Text(key), Text(description), Text(binding_id, style="dim"))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class RunbookModal(ModalScreen[None]):
    """The runbook's text exactly as written: rendered as Markdown, `<tool>` in a step
    was taken for HTML and vanished, and a runbook step must never lose words."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="modal.close"),
    ]

    def __init__(self, title: str, body: str) -> None:
        super().__init__(classes="info-modal")
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text(self.title_text), id="dialog-title")
            with VerticalScroll():
                yield Static(Text(self.body, no_wrap=False, end=""), id="runbook-body")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class JumpModal(ModalScreen[str | None]):
    """`:` then a view name (a prefix is enough), like k9s."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="modal.cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="jump"):
            yield Input(placeholder=":view", id="jump-input")
            yield OptionList(*VIEWS, id="jump-views")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = False
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([v for v in VIEWS if v.startswith(event.value.strip().lower())])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        typed = event.value.strip().lower().lstrip(":")
        matches = [v for v in VIEWS if v.startswith(typed)] if typed else []
        if matches:
            self.dismiss(matches[0])
        else:
            self.notify(f"no view {typed or '(empty)'}", severity="warning")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.prompt))

    def action_cancel(self) -> None:
        self.dismiss(None)
