"""A DataTable whose rows are upserted by key and whose cursor follows its row.

Rows are only touched where a cell really changed (compared as plain strings before any
Text is built), and the cursor is put back on the same key after rows are added,
removed or re-sorted, so live updates never move an operator's selection.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from ..text import cut

if TYPE_CHECKING:
    from ..store import FleetStore, SessionKey

#: No cell grows wider than this, however long the agent's text.
MAX_CELL = 60


class Cell(Text):
    """A cell's Text that remembers the value it sorts by. Never parsed as markup; the
    agent text in it was cleaned by the store, so here it is only cut to width."""

    __slots__ = ("sort_value",)

    def __init__(self, text: str, style: str = "", sort_value: Any = None) -> None:
        super().__init__(cut(text, MAX_CELL), style=style, no_wrap=True, end="")
        self.sort_value = text if sort_value is None else sort_value


#: One row as given by a caller: per column (plain text, style, sort value).
RowSpec = Sequence[tuple[str, str, Any]]


class KeyedTable(DataTable[Cell]):
    """Subclasses declare COLUMNS as (key, label) pairs and TIEBREAK, a column whose sort
    value is unique per row, so every sort is total and two redraws agree."""

    COLUMNS: tuple[tuple[str, str], ...] = ()
    TIEBREAK = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._shown: dict[str, tuple[tuple[str, str], ...]] = {}
        self.sort_by: str | None = None
        self.sort_reverse = False
        self._needs_sort = False
        #: `/` in the view: every word must appear in one of the row's cells.
        self.filter_text = ""
        #: The styles the render caches were made with, and whether they may have changed.
        self._styles_drawn: object = None
        self._styles_to_check = True

    def sync(
        self, store: FleetStore, now: datetime, changed: Collection[SessionKey] | None = None
    ) -> None:
        """Bring the rows up to date with the store (every table widget takes these
        arguments; `changed` narrows the work where the widget can use it)."""
        raise NotImplementedError

    def matches(self, row: RowSpec) -> bool:
        """The `/` filter over the row as shown: every word, case-insensitive."""
        needle = self.filter_text.lower().split()
        if not needle:
            return True
        haystack = " ".join(text for text, _, _ in row).lower()
        return all(word in haystack for word in needle)

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    # -- render caches -----------------------------------------------------------------
    def notify_style_update(self) -> None:
        """Textual re-applies the CSS of every widget on a screen each time the screen is
        shown, and DataTable drops every rendered cell on each such update: every switch
        to a view re-rendered its whole table through Rich (the fleet table: 40-70 ms).
        The caches are dropped only when the styles really changed, checked at the next
        render, when the component styles (cursor, header) are up to date too."""
        Widget.notify_style_update(self)
        self._styles_to_check = True
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        if self._styles_to_check:
            self._styles_to_check = False
            styles = (
                self.styles.get_rules(),
                [self.get_component_styles(name).get_rules() for name in self.COMPONENT_CLASSES],
            )
            if styles != self._styles_drawn:
                self._styles_drawn = styles
                self._clear_caches()
        return super().render_lines(crop)

    # -- cursor ----------------------------------------------------------------------
    def current_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except (CellDoesNotExist, RowDoesNotExist):
            return None

    def select_key(self, key: str) -> bool:
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return False
        if index != self.cursor_row:
            self.move_cursor(row=index)
        return True

    # -- rows ------------------------------------------------------------------------
    def upsert(self, key: str, row: RowSpec) -> None:
        shown = tuple((text, style) for text, style, _ in row)
        old = self._shown.get(key)
        if old == shown:
            return
        if old is None:
            self.add_row(*(Cell(t, s, v) for t, s, v in row), key=key)
            self._needs_sort = True
        else:
            for (column, _), before, (text, style, value) in zip(
                self.COLUMNS, old, row, strict=True
            ):
                if before != (text, style):
                    if column == self.sort_by:
                        previous = self.get_cell(key, column).sort_value
                        self._needs_sort = self._needs_sort or previous != value
                    self.update_cell(key, column, Cell(text, style, value))
        self._shown[key] = shown

    def drop(self, key: str) -> None:
        if self._shown.pop(key, None) is not None:
            self.remove_row(key)

    def shown_keys(self) -> set[str]:
        return set(self._shown)

    def reset(self) -> None:
        self.clear()
        self._shown.clear()

    def finish(self, keep: str | None) -> None:
        """Sort if needed and put the cursor back on `keep` (the key it was on)."""
        if self._needs_sort and self.sort_by is not None:
            self._sort()
        self._needs_sort = False
        if keep is not None:
            self.select_key(keep)

    def set_sort(self, column: str | None, reverse: bool = False) -> None:
        keep = self.current_key()
        self.sort_by, self.sort_reverse = column, reverse
        self._needs_sort = True
        self.finish(keep)

    def _sort(self) -> None:
        assert self.sort_by is not None
        key: Callable[[Any], Any] = _sort_value
        self.sort(self.sort_by, self.TIEBREAK, key=key, reverse=self.sort_reverse)


def _sort_value(cells: tuple[Cell, Cell]) -> tuple[Any, Any]:
    return (cells[0].sort_value, cells[1].sort_value)
