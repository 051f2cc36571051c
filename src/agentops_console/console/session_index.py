"""The sessions view's order: which sessions pass the `/` filter, sorted, kept incrementally.

Pure Python (no Textual). Thousands of sessions change every second, but a change only
moves its own entry: the entry leaves the sorted list and is put back with `bisect`, so an
update costs O(log n) comparisons (plus a C-level list shift), never a re-sort of every
row. Reversing the order is free: positions are read from the other end.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any

from ..protocol.models import SessionSummary
from . import session_rows

SessionKey = tuple[str, str]
#: (sort value, agent, session id, source) then the key: unique per session, so total.
Entry = tuple[Any, SessionKey]


class SessionIndex:
    def __init__(self, sort_by: str = "age", reverse: bool = False, needle: str = "") -> None:
        self.sort_by = sort_by
        self.reverse = reverse
        self.needle = needle
        self._order: list[Entry] = []  # ascending
        self._entries: dict[SessionKey, Entry] = {}
        self._by = session_rows.BY_KEY[sort_by].sort

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def _entry(self, key: SessionKey, summary: SessionSummary) -> Entry:
        return ((self._by(summary), summary.agent, summary.id, key[0]), key)

    # -- reading ---------------------------------------------------------------------
    def key_at(self, position: int) -> SessionKey:
        """The session shown at `position` (0 is the top row); IndexError past the end."""
        if not 0 <= position < len(self._order):
            raise IndexError(position)
        if self.reverse:
            position = len(self._order) - 1 - position
        return self._order[position][1]

    def keys(self, start: int, stop: int) -> list[SessionKey]:
        """The sessions shown at positions start..stop-1 (clipped to the index)."""
        return [self.key_at(p) for p in range(max(0, start), min(stop, len(self._order)))]

    def position(self, key: SessionKey) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        at = bisect_left(self._order, entry)
        return len(self._order) - 1 - at if self.reverse else at

    # -- writing ---------------------------------------------------------------------
    def update(
        self, sessions: Mapping[SessionKey, SessionSummary], keys: Iterable[SessionKey]
    ) -> bool:
        """Re-place the given sessions (gone, filtered out, moved or new); True if the
        order or membership changed."""
        moved = False
        needle = self.needle
        for key in keys:
            summary = sessions.get(key)
            old = self._entries.get(key)
            if summary is None or (needle and not session_rows.matches(summary, needle)):
                new = None
            else:
                new = self._entry(key, summary)
            if new == old:
                continue
            moved = True
            if old is not None:
                del self._order[bisect_left(self._order, old)]
            if new is None:
                del self._entries[key]
            else:
                self._entries[key] = new
                insort(self._order, new)
        return moved

    def rebuild(self, sessions: Mapping[SessionKey, SessionSummary]) -> None:
        """Every session again: after the sort column or the filter changed."""
        needle = self.needle
        self._entries = {
            key: self._entry(key, summary)
            for key, summary in sessions.items()
            if not needle or session_rows.matches(summary, needle)
        }
        self._order = sorted(self._entries.values())

    def set_sort(
        self, column: str, reverse: bool, sessions: Mapping[SessionKey, SessionSummary]
    ) -> None:
        self.reverse = reverse
        if column != self.sort_by:
            self.sort_by = column
            self._by = session_rows.BY_KEY[column].sort
            self.rebuild(sessions)

    def set_filter(self, needle: str, sessions: Mapping[SessionKey, SessionSummary]) -> None:
        if needle != self.needle:
            self.needle = needle
            self.rebuild(sessions)
