"""The top line: fleet totals, connection trouble, PAUSED / READONLY badges, the clock.

It fits the terminal's width: the parts an operator needs least go first (the note, the
operator, the clock, the session count), so at 80 columns the badges and the open-alert
count are still there. Why actions are off, when that was not asked for (no governance
DB), is a second line: printed before the screen took over, it was only seen on quitting.
"""

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
    width: int | None = None,
    reason: str = "",
    behind: bool = False,
    backlog: int = 0,
) -> Text:
    agents = store.agents.values()
    stale = sum(1 for a in agents if a.state == "stale")
    live = sum(1 for a in agents if a.state == "live")
    fleet = Text(f"│ agents {live} live")
    if stale:
        fleet.append(f", {stale} stale", style="bold red")
    fleet.append(" ")
    open_alerts = sum(store.open_alerts().values())
    # (priority: the lowest is dropped last, text) in the order shown
    parts: list[tuple[int, Text]] = [
        (4, Text(" agentops ", style="bold reverse")),
        (0, Text(f" {view} ", style="bold")),
        (1, fleet),
        (5, Text(f"│ sessions {len(store.sessions)} ")),
        (2, Text(f"│ alerts {open_alerts} open ")),
        (3, Text(f"│ approvals {len(store.approvals)} ")),
    ]
    if behind:  # the rows lag the agents; most of the backlog waits in their streams
        queued = f"({backlog} queued) " if backlog else ""
        parts.append((2, Text(f"│ catching up {queued}", style="bold yellow")))
    if paused:
        parts.append((0, Text(" PAUSED ", style="bold black on yellow")))
    if readonly:
        parts.append((0, Text(" READONLY ", style="bold white on blue")))
    parts += [(7, Text(f"│ {cut(operator, 24)} ")), (6, Text(f"│ {now:%H:%M:%S}"))]
    if width is not None:
        while sum(p.cell_len for _, p in parts) > width and len(parts) > 1:
            parts.remove(max(parts, key=lambda part: part[0]))
    text = Text(no_wrap=True, end="")
    for _, part in parts:
        text.append_text(part)
    if note:
        room = 80 if width is None else width - text.cell_len - 3
        if room >= 12:
            text.append(f" │ {cut(note, room)}", style="italic")
    if reason:
        text.append("\n")
        line = f" read-only: {reason}"
        text.append(line if width is None else cut(line, width), style="bold yellow")
    return text


class StatusBar(Static):
    DEFAULT_CSS = "StatusBar { height: 1; background: $panel; }"

    def __init__(self) -> None:
        super().__init__()
        self._shown: Text | None = None

    def show(self, text: Text) -> None:
        """Redraw only when the line changed, and never re-layout the screen for it (a
        layout costs a full-screen repaint) unless it gains or loses its second line."""
        if text != self._shown:
            lines = text.plain.count("\n") + 1
            relayout = self._shown is None or self._shown.plain.count("\n") + 1 != lines
            self._shown = text
            if relayout:
                self.styles.height = lines
            self.update(text, layout=relayout)
