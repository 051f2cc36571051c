"""Every session across the fleet, one row per (agent, session id), sorted and filtered."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import ClassVar

from textual.binding import Binding, BindingType

from ...protocol.models import SessionSummary
from .. import session_rows
from ..store import FleetStore, SessionKey
from .keyed_table import KeyedTable, RowSpec

STATUS_STYLE = {
    "running": "green",
    "waiting_approval": "yellow",
    "completed": "dim",
    "failed": "red",
    "killed": "bold red",
    "stopped": "magenta",
}


def row_key(key: SessionKey) -> str:
    return f"{key[0]}\x00{key[1]}"


def session_key(row: str) -> SessionKey:
    source, _, session_id = row.partition("\x00")
    return source, session_id


def session_row(summary: SessionSummary, now: datetime, stale: bool) -> RowSpec:
    row: list[tuple[str, str, object]] = []
    for column, text in zip(session_rows.COLUMNS, session_rows.cells(summary, now), strict=True):
        style = ""
        shown = text
        if column.key == "status":
            style = STATUS_STYLE.get(summary.status, "")
            if stale:
                shown = f"{text} (stale)"
        elif column.key == "flags" and text:
            style = "bold yellow"
        if stale:
            style = f"{style} dim italic".strip()
        value = column.sort(summary)
        if column.key == "id":
            value = (summary.agent, summary.id)
        row.append((shown, style, value))
    return row


class SessionsTable(KeyedTable):
    COLUMNS = tuple((c.key, c.label) for c in session_rows.COLUMNS)
    TIEBREAK = "id"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "next_sort", "Sort", id="sessions.sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="sessions.reverse"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter_text = ""
        self.sort_by = "age"

    def sync(self, store: FleetStore, keys: Iterable[SessionKey] | None, now: datetime) -> None:
        """Upsert the given sessions (all of them when `keys` is None) inside one batch."""
        keep = self.current_key()
        if keys is None:
            keys = list(store.sessions)
            for stale_key in self.shown_keys() - {row_key(k) for k in keys}:
                self.drop(stale_key)
        needle = self.filter_text
        for key in keys:
            summary = store.sessions.get(key)
            rk = row_key(key)
            if summary is None or not session_rows.matches(summary, needle):
                self.drop(rk)
                continue
            self.upsert(rk, session_row(summary, now, store.is_stale(key[0])))
        self.finish(keep)

    def refresh_ages(self, store: FleetStore, now: datetime) -> None:
        """Ages tick every second; only the rows on screen are worth redrawing for it."""
        top = int(self.scroll_y)
        visible = range(max(0, top - 1), min(self.row_count, top + self.size.height + 1))
        keys = []
        for index in visible:
            try:
                keys.append(session_key(self.ordered_rows[index].key.value or ""))
            except IndexError:
                break
        keep = self.current_key()
        for key in keys:
            summary = store.sessions.get(key)
            if summary is not None:
                self.upsert(row_key(key), session_row(summary, now, store.is_stale(key[0])))
        self._needs_sort = False  # ages do not change the order (it sorts by start time)
        self.finish(keep)

    def selected(self) -> SessionKey | None:
        key = self.current_key()
        return None if key is None else session_key(key)

    def action_next_sort(self) -> None:
        keys = [c.key for c in session_rows.COLUMNS]
        current = keys.index(self.sort_by) if self.sort_by in keys else -1
        self.set_sort(keys[(current + 1) % len(keys)], self.sort_reverse)
        self.notify(f"sorted by {self.sort_by}", timeout=1.5)

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort_by, not self.sort_reverse)
