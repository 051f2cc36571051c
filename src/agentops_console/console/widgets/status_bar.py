"""The top line: fleet totals, connection trouble, PAUSED / READONLY badges, the clock."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from ..store import FleetStore
from ..text import cut


def status_text(
    store: FleetStore,
    now: datetime,
    *,
    view: str,
    operator: str,
    paused: bool,
    readonly: bool,
    note: str = "",
) -> Text:
    agents = store.agents.values()
    stale = sum(1 for a in agents if a.state == "stale")
    live = sum(1 for a in agents if a.state == "live")
    text = Text(no_wrap=True, end="")
    text.append(" agentops ", style="bold reverse")
    text.append(f" {view} ", style="bold")
    text.append(f"│ agents {live} live")
    if stale:
        text.append(f", {stale} stale", style="bold red")
    text.append(f" │ sessions {len(store.sessions)} │ alerts {len(store.alerts)}")
    text.append(f" │ approvals {len(store.approvals)} ")
    if paused:
        text.append(" PAUSED ", style="bold black on yellow")
        text.append(" ")
    if readonly:
        text.append(" READONLY ", style="bold white on blue")
        text.append(" ")
    text.append(f"│ {cut(operator, 24)} │ {now:%H:%M:%S}")
    if note:
        text.append(f" │ {cut(note, 80)}", style="italic")
    return text


class StatusBar(Static):
    DEFAULT_CSS = "StatusBar { height: 1; background: $panel; }"

    def __init__(self) -> None:
        super().__init__()
        self._shown: Text | None = None

    def show(self, text: Text) -> None:
        """Redraw only when the line changed, and never re-layout the screen for it: the
        bar is one line tall whatever it says (a layout costs a full-screen repaint)."""
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
