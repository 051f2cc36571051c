"""The sessions view's order: every column's sort kept by the store, the `/` filter on top.

Pure Python (no Textual). At 20,000 sessions a full sort took 25-170 ms per column and a
filter pass 50-70 ms, all of it between a key press and the screen. So:

- `SessionOrders` (one per store) keeps every session in every column's order, ascending,
  and re-places only the sessions that changed, only in the columns whose value changed
  (`bisect`: O(log n) comparisons and a C-level list shift; a large batch, such as a
  snapshot, is merged instead). Pressing `s` then picks another list: nothing is sorted.
- `SessionIndex` (one per sessions view) is the window the table reads: the current
  column's list itself, or, while a filter is set, the matching entries of it, in the same
  order: one pass of substring tests over filter texts the orders keep per session (a few
  ms at 20,000), no sort. `esc` drops the subsequence.

Reversing the order is free: positions are read from the other end.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any

from ..protocol.models import SessionSummary
from . import session_rows

SessionKey = tuple[str, str]
#: (sort value, tie, key): one session's place in one column's order. The tie is the
#: agent and the session id as one string (`_tie`), the key makes the order total. Flat,
#: and one string rather than a tuple of two: a bisect over 20,000 entries compares ~15 of
#: them, most with equal values (tokens, status), and each nested tuple compared was
#: another object to fetch from a heap of hundreds of MB: half the cost of a move.
Entry = tuple[Any, str, SessionKey]

_SORTS = tuple(column.sort for column in session_rows.COLUMNS)
_COLUMN = {column.key: n for n, column in enumerate(session_rows.COLUMNS)}
#: Above this many moves in one column, rebuilding the list by a merge beats bisecting.
_MERGE_ABOVE = 1500
#: Columns whose sort value comes only from what a session never changes (`_same_session`):
#: an update re-computes the other columns only, most events move one or two of them.
_FIXED = frozenset({"agent", "workflow", "id", "age", "principal", "tenant"})
_VOLATILE = tuple(n for n, column in enumerate(session_rows.COLUMNS) if column.key not in _FIXED)


def _same_session(a: SessionSummary, b: SessionSummary) -> bool:
    """The fields the `_FIXED` columns sort by are equal (the agent never changes them)."""
    return (
        a.agent == b.agent
        and a.workflow == b.workflow
        and a.principal == b.principal
        and a.tenant == b.tenant
        and a.started_at == b.started_at
    )


def _tie(summary: SessionSummary) -> str:
    """Orders as (agent, id) does: the separator sorts below every character of clean
    text (the store's summaries have no control characters left, `text.sanitized`)."""
    return f"{summary.agent}\x00{summary.id}"


def _words(needle: str) -> list[str]:
    return needle.lower().split()


class SessionOrders:
    """Every session in every column's order; `update` with the keys that changed."""

    def __init__(self) -> None:
        self._orders: list[list[Entry]] = [[] for _ in _SORTS]
        #: key -> its entry in each column's order (the exact tuples in the lists)
        self._entries: dict[SessionKey, tuple[Entry, ...]] = {}
        #: key -> what `/` searches, lowercase (`session_rows.haystack`)
        self._haystacks: dict[SessionKey, str] = {}
        #: key -> the summary the entries were computed from
        self._placed: dict[SessionKey, SessionSummary] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def order(self, column: str) -> list[Entry]:
        """The column's ascending order (the list itself: read, never change it)."""
        return self._orders[_COLUMN[column]]

    def entry(self, column: str, key: SessionKey) -> Entry | None:
        entries = self._entries.get(key)
        return None if entries is None else entries[_COLUMN[column]]

    def entries(self, key: SessionKey) -> tuple[Entry, ...] | None:
        """The session's entry in every column (in `session_rows.COLUMNS` order)."""
        return self._entries.get(key)

    def matching(self, candidates: Iterable[Entry], needle: str) -> list[Entry]:
        """The candidates whose session has every word of `needle`, in their order."""
        hay, words = self._haystacks, _words(needle)
        if len(words) == 1:  # the usual case, as one comprehension
            word = words[0]
            return [entry for entry in candidates if word in hay.get(entry[2], "")]
        return [e for e in candidates if all(w in hay.get(e[2], "") for w in words)]

    def matches(self, key: SessionKey, needle: str) -> bool:
        hay = self._haystacks.get(key, "")
        return all(word in hay for word in _words(needle))

    def update(
        self, sessions: Mapping[SessionKey, SessionSummary], keys: Iterable[SessionKey]
    ) -> None:
        """Re-place the given sessions (gone, moved or new) in every column they moved in."""
        moves: list[list[tuple[Entry | None, Entry | None]]] = [[] for _ in _SORTS]
        for key in keys:
            summary = sessions.get(key)
            old = self._entries.get(key)
            if summary is None:
                if old is not None:
                    del self._entries[key]
                    del self._haystacks[key], self._placed[key]
                    for column, entry in zip(moves, old, strict=True):
                        column.append((entry, None))
                continue
            prior = self._placed.get(key)
            if prior is summary:
                continue
            self._placed[key] = summary
            new: tuple[Entry, ...]
            if old is not None and prior is not None and _same_session(prior, summary):
                tie = old[0][1]  # one tie per session, shared by its columns
                changed = list(old)
                for n in _VOLATILE:
                    changed[n] = (_SORTS[n](summary), tie, key)
                new = tuple(changed)
                if prior.status != summary.status or len(prior.flags) != len(summary.flags):
                    self._haystacks[key] = session_rows.haystack(summary)
            else:
                tie = _tie(summary)
                new = tuple((by(summary), tie, key) for by in _SORTS)
                self._haystacks[key] = session_rows.haystack(summary)
            if new == old:
                continue
            self._entries[key] = new
            if old is None:
                for column, entry in zip(moves, new, strict=True):
                    column.append((None, entry))
            else:
                for column, before, after in zip(moves, old, new, strict=True):
                    if before != after:
                        column.append((before, after))
        for order, column_moves in zip(self._orders, moves, strict=True):
            if column_moves:
                _apply(order, column_moves)

    def rebuild(self, sessions: Mapping[SessionKey, SessionSummary]) -> None:
        self._entries.clear()
        self._haystacks.clear()
        self._placed.clear()
        for order in self._orders:
            order.clear()
        self.update(sessions, list(sessions))


def _apply(order: list[Entry], moves: list[tuple[Entry | None, Entry | None]]) -> None:
    """Take out the `before` entries and put in the `after` ones, keeping `order` sorted
    (in place: views hold the list)."""
    if len(moves) <= _MERGE_ABOVE:
        for before, after in moves:
            if before is not None:
                del order[bisect_left(order, before)]
            if after is not None:
                insort(order, after)
        return
    gone = {before[2] for before, _ in moves if before is not None}
    kept = [entry for entry in order if entry[2] not in gone] if gone else order[:]
    kept.extend(sorted(after for _, after in moves if after is not None))
    kept.sort()  # two sorted runs: timsort merges them in linear time
    order[:] = kept


class SessionIndex:
    """What the sessions view shows, in order: a column of `SessionOrders`, filtered."""

    def __init__(
        self,
        orders: SessionOrders | None = None,
        sort_by: str = "age",
        reverse: bool = False,
        needle: str = "",
    ) -> None:
        self.orders = orders if orders is not None else SessionOrders()
        self.sort_by = sort_by
        self.reverse = reverse
        self.needle = needle
        #: while filtered: the matching entries in the column's order, and by key
        self._shown: list[Entry] | None = None
        self._matched: dict[SessionKey, Entry] = {}

    def _list(self) -> list[Entry]:
        return self.orders.order(self.sort_by) if self._shown is None else self._shown

    def __len__(self) -> int:
        return len(self._list())

    def __contains__(self, key: object) -> bool:
        return key in self.orders if self._shown is None else key in self._matched

    # -- reading ---------------------------------------------------------------------
    def key_at(self, position: int) -> SessionKey:
        """The session shown at `position` (0 is the top row); IndexError past the end."""
        shown = self._list()
        if not 0 <= position < len(shown):
            raise IndexError(position)
        if self.reverse:
            position = len(shown) - 1 - position
        return shown[position][2]

    def keys(self, start: int, stop: int) -> list[SessionKey]:
        """The sessions shown at positions start..stop-1 (clipped to the index)."""
        shown = self._list()
        start, stop = max(0, start), min(stop, len(shown))
        if start >= stop:
            return []
        if self.reverse:
            last = len(shown) - 1
            return [shown[last - p][2] for p in range(start, stop)]
        return [entry[2] for entry in shown[start:stop]]

    def position(self, key: SessionKey) -> int | None:
        if self._shown is None:
            entry = self.orders.entry(self.sort_by, key)
        else:
            entry = self._matched.get(key)
        if entry is None:
            return None
        shown = self._list()
        at = bisect_left(shown, entry)
        return len(shown) - 1 - at if self.reverse else at

    # -- writing ---------------------------------------------------------------------
    def update(self, keys: Iterable[SessionKey]) -> None:
        """The orders re-placed these sessions: move them in the filtered list too."""
        if self._shown is None:
            return
        shown, matched, orders = self._shown, self._matched, self.orders
        for key in keys:
            new = orders.entry(self.sort_by, key)
            if new is not None and not orders.matches(key, self.needle):
                new = None
            old = matched.get(key)
            if new == old:
                continue
            if old is not None:
                del shown[bisect_left(shown, old)]
                del matched[key]
            if new is not None:
                insort(shown, new)
                matched[key] = new

    def set_sort(self, column: str, reverse: bool) -> None:
        self.reverse = reverse
        if column != self.sort_by:
            self.sort_by = column
            self.refilter()  # the same sessions, in the new column's order

    def set_filter(self, needle: str) -> None:
        if needle != self.needle:
            self.needle = needle
            self.refilter()

    def refilter(self) -> None:
        """The filtered list again from the column's order (one pass, no sort)."""
        if not _words(self.needle):
            self._shown, self._matched = None, {}
            return
        self._shown = self.orders.matching(self.orders.order(self.sort_by), self.needle)
        self._matched = {entry[2]: entry for entry in self._shown}
