"""Every session across the fleet as a virtual table: only the rows on screen are drawn.

The order lives in the store's `SessionOrders` (every column's sort, kept per changed
session), read through a `SessionIndex` (the column, reversed or filtered); the data stays
in the store, and `render_line` builds just the visible lines from both. So an update costs
O(changed + visible rows), a sort or filter never sorts the fleet, and a key press never
waits behind a redraw of thousands of rows. The cursor follows its session (by key)
through updates, sorts and filters; `j`, paging, `g` and `G` move over every session.
Cells hold agent data, cleaned by the store: drawn as plain segments, never markup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...protocol.models import SessionSummary
from .. import session_rows
from ..session_index import SessionIndex
from ..store import FleetStore, SessionKey
from ..text import cut
from .keyed_table import MAX_CELL

STATUS_STYLE = {
    "running": "green",
    "waiting_approval": "yellow",
    "completed": "dim",
    "failed": "red",
    "killed": "bold red",
    "stopped": "magenta",
}
_PAD = 1  # blank cells either side of every cell, as DataTable draws them

#: One rendered cell: its literal text and its style name.
CellSpec = tuple[str, str]


def row_key(key: SessionKey) -> str:
    return f"{key[0]}\x00{key[1]}"


def session_key(row: str) -> SessionKey:
    source, _, session_id = row.partition("\x00")
    return source, session_id


def row_cells(summary: SessionSummary, now: datetime, stale: bool) -> tuple[CellSpec, ...]:
    """The row as (text, style) per column; agent text is clean already (the store)."""
    row: list[CellSpec] = []
    for column, text in zip(session_rows.COLUMNS, session_rows.cells(summary, now), strict=True):
        style, shown = "", text
        if column.key == "status":
            style = STATUS_STYLE.get(summary.status, "")
            if stale:
                shown = f"{text} (stale)"
        elif column.key == "flags" and text:
            style = "bold yellow"
        if stale:
            style = f"{style} dim italic".strip()
        row.append((cut(shown, MAX_CELL), style))
    return tuple(row)


class SessionsTable(ScrollView, can_focus=True):
    """Rows are positions in the index; line 0 is the header and never scrolls."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        (c.key, c.label) for c in session_rows.COLUMNS
    )
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "sessions-table--header",
        "sessions-table--cursor",
    }
    DEFAULT_CSS = """
    SessionsTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        & > .sessions-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .sessions-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .sessions-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .sessions-table--header {
                background-tint: $foreground 5%;
            }
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
        Binding("s", "next_sort", "Sort", id="sessions.sort"),
        Binding("S", "reverse_sort", "Reverse", show=False, id="sessions.reverse"),
    ]

    class RowChosen(Message):
        """A click on the row under the cursor: open it, as Enter does."""

        def __init__(self, key: SessionKey) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = SessionIndex()
        self.store: FleetStore | None = None
        self.now: datetime | None = None
        self.cursor_row = 0
        self._cursor_key: SessionKey | None = None
        self._widths = [cell_len(label) for _, label in self.COLUMNS]
        #: (column, width) shown, in order: what fits the widget (session_rows.fit).
        self._layout: list[tuple[int, int]] = list(enumerate(self._widths))
        #: key -> (summary drawn, stale, age second, cells): rebuilt only when one changes.
        self._cells: dict[SessionKey, tuple[SessionSummary, bool, int, tuple[CellSpec, ...]]] = {}
        #: the sessions on the lines last drawn, top first: what a sync compares with
        self._drawn: list[SessionKey] = []
        #: key -> (what was drawn: cells, widths, styles; the line): reused while equal.
        self._strips: dict[SessionKey, tuple[tuple[object, ...], Strip]] = {}
        self._base = Style()
        self._cursor_style = Style()
        self._header_style = Style()
        self._styles: dict[str, Style] = {}

    # -- the API the screen and tests use ---------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.index)

    @property
    def sort_by(self) -> str:
        return self.index.sort_by

    @property
    def sort_reverse(self) -> bool:
        return self.index.reverse

    @property
    def filter_text(self) -> str:
        return self.index.needle

    def selected(self) -> SessionKey | None:
        return self._cursor_key if self._cursor_key in self.index else None

    def current_key(self) -> str | None:
        key = self.selected()
        return None if key is None else row_key(key)

    def select_key(self, key: str) -> bool:
        position = self.index.position(session_key(key))
        if position is None:
            return False
        self._move_cursor(position)
        return True

    def get_cell(self, key: str, column: str) -> Text:
        """What the cell shows, as literal Text (for tests and the status line)."""
        if self.store is None or self.now is None:
            raise KeyError(key)
        skey = session_key(key)
        summary = self.store.sessions[skey]
        cells = self._row(skey, summary)
        text, style = cells[[c for c, _ in self.COLUMNS].index(column)]
        return Text(text, style=style, no_wrap=True, end="")

    def _read_orders(self, store: FleetStore) -> bool:
        """Read the store's orders (brought up to date first); True when newly attached."""
        self.store = store
        store.settle_orders()
        if self.index.orders is store.orders:
            return False
        self.index.orders = store.orders
        return True

    def sync(
        self, store: FleetStore, now: datetime, changed: Collection[SessionKey] | None = None
    ) -> None:
        """The `changed` sessions (all of them when None) moved or changed: re-place them
        in the filter and redraw the lines they are or were on."""
        self.now = now
        if self._read_orders(store) or changed is None:
            self.index.refilter()
            self._changed(moved=True)
            return
        changed = set(changed)
        self.index.update(changed)
        before = self._drawn
        self._changed(moved=False)
        after = self._visible()
        # Only lines whose session moved or changed are redrawn, one by one.
        top = int(self.scroll_y)
        for line, key in enumerate(after):
            if line >= len(before) or before[line] != key or key in changed:
                self.refresh_line(top + line + 1)
        for line in range(len(after), len(before)):
            self.refresh_line(top + line + 1)

    def _visible(self) -> list[SessionKey]:
        top = int(self.scroll_y)
        return self.index.keys(top, top + max(0, self.size.height - 1))

    def tick(self, now: datetime) -> None:
        """Ages change every second; only the visible rows are redrawn for it."""
        self.now = now
        self.refresh()

    def set_filter(self, store: FleetStore, text: str, now: datetime) -> None:
        self.now = now
        if self._read_orders(store):
            self.index.refilter()
        self.index.set_filter(text)
        self._changed(moved=True)

    def set_sort(self, column: str, reverse: bool = False) -> None:
        if self.store is None:
            self.index.sort_by, self.index.reverse = column, reverse
            return
        self.index.set_sort(column, reverse)
        self._changed(moved=True)

    # -- actions ---------------------------------------------------------------------
    def action_next_sort(self) -> None:
        keys = [key for key, _ in self.COLUMNS]
        current = keys.index(self.sort_by) if self.sort_by in keys else -1
        self.set_sort(keys[(current + 1) % len(keys)], self.sort_reverse)
        self.notify(f"sorted by {self.sort_by}", timeout=1.5)

    def action_reverse_sort(self) -> None:
        self.set_sort(self.sort_by, not self.sort_reverse)

    def action_cursor_up(self) -> None:
        self._move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move_cursor(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self._move_cursor(self.cursor_row + self._page())

    def action_scroll_top(self) -> None:
        self._move_cursor(0)

    def action_scroll_bottom(self) -> None:
        self._move_cursor(len(self.index) - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        position = int(self.scroll_y) + event.y - 1
        if 0 <= position < len(self.index):
            if position == self.cursor_row and self._cursor_key is not None:
                self.post_message(self.RowChosen(self._cursor_key))
            self._move_cursor(position)

    # -- cursor and scrolling ----------------------------------------------------------
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def _move_cursor(self, position: int) -> None:
        count = len(self.index)
        position = max(0, min(position, count - 1)) if count else 0
        if position != self.cursor_row:
            self.refresh_line(self.cursor_row + 1)
            self.refresh_line(position + 1)
            self.cursor_row = position
        self._cursor_key = self.index.key_at(position) if count else None
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        rows = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + rows:
            self.scroll_to(y=self.cursor_row - rows + 1, animate=False, immediate=True)

    def _changed(self, *, moved: bool) -> None:
        """The order changed: size the scroll area and put the cursor back on its key."""
        self._resize()
        position = None if self._cursor_key is None else self.index.position(self._cursor_key)
        self._move_cursor(self.cursor_row if position is None else position)
        if moved:
            self.refresh()

    def _fit(self) -> None:
        """Columns by priority into the width there is (no sideways scrolling)."""
        room = self.scrollable_content_region.width or self.size.width
        self._layout = session_rows.fit(self._widths, room, 2 * _PAD) if room else []

    def _resize(self) -> None:
        width = sum(w + 2 * _PAD for _, w in self._layout)
        size = Size(width, len(self.index) + 1)
        if size != self.virtual_size:
            self.virtual_size = size

    # -- drawing ---------------------------------------------------------------------
    def _row(self, key: SessionKey, summary: SessionSummary) -> tuple[CellSpec, ...]:
        assert self.store is not None and self.now is not None
        stale = self.store.is_stale(key[0])
        second = int(self.now.timestamp())
        cached = self._cells.get(key)
        if cached is not None and cached[:3] == (summary, stale, second) and cached[0] is summary:
            return cached[3]
        cells = row_cells(summary, self.now, stale)
        self._cells[key] = (summary, stale, second, cells)
        return cells

    def render_lines(self, crop: Region) -> list[Strip]:
        """Widen columns for the rows about to be drawn before any line is drawn, so
        every line of one frame agrees on the column widths."""
        if self.store is not None and self.now is not None:
            first = int(self.scroll_y)
            keys = self._drawn = self.index.keys(first, first + self.size.height)
            if len(self._cells) > 8 * max(self.size.height, 10):
                self._cells.clear()
                self._strips.clear()
            grew = False
            for key in keys:
                summary = self.store.sessions.get(key)
                if summary is None:
                    continue
                for n, (text, _) in enumerate(self._row(key, summary)):
                    width = cell_len(text)
                    if width > self._widths[n]:
                        self._widths[n] = width
                        grew = True
            if grew:
                self._fit()
                self._resize()
        self._base = self.rich_style
        self._cursor_style = self.get_component_rich_style("sessions-table--cursor")
        self._header_style = self.get_component_rich_style("sessions-table--header")
        return super().render_lines(crop)

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = Style.parse(name) if name else Style()
        return style

    def _strip(self, cells: Iterable[CellSpec], base: Style, over: Style | None = None) -> Strip:
        """One line of the columns that fit; `over` (the cursor) wins over cell styles."""
        segments = []
        pad = " " * _PAD
        row = tuple(cells)
        for n, width in self._layout:
            text, name = row[n]
            size = cell_len(text)
            if size > width:  # cut to fit a narrow terminal: say so with an ellipsis
                shown = set_cell_size(text, width - 1) + "…" if width > 1 else "…"[:width]
            else:
                shown = text if size == width else set_cell_size(text, width)
            style = base + self._style(name)
            segments.append(Segment(f"{pad}{shown}{pad}", style if over is None else style + over))
        return Strip(segments)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self._base
        if y == 0:
            header = base + self._header_style
            strip = self._strip(((label, "") for _, label in self.COLUMNS), header)
            return strip.crop_extend(scroll_x, scroll_x + width, header)
        position = scroll_y + y - 1
        if self.store is None or self.now is None or position >= len(self.index):
            return Strip.blank(width, base)
        key = self.index.key_at(position)
        summary = self.store.sessions.get(key)
        if summary is None:  # dropped since the last sync: the next one removes the row
            return Strip.blank(width, base)
        over = None
        if position == self.cursor_row:
            over = self._cursor_style
            base = base + over
        cells = self._row(key, summary)
        drawn = (cells, tuple(self._layout), base, over)
        cached = self._strips.get(key)
        if cached is not None and cached[0] == drawn:
            strip = cached[1]
        else:
            strip = self._strip(cells, base, over)
            self._strips[key] = (drawn, strip)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def on_resize(self) -> None:
        self._fit()
        self._resize()
        self._strips.clear()
        self.refresh()
        self._scroll_to_cursor()

    def shown_columns(self) -> list[str]:
        """The keys of the columns on screen now, in order (for tests and the help)."""
        return [self.COLUMNS[n][0] for n, _ in self._layout]
