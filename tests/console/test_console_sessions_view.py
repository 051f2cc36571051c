"""The virtual sessions table: the cursor stays on its session through sorts, updates
and filters; only rows on screen are drawn, but every session is reachable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agentops_console.console.widgets.sessions_table import SessionsTable, row_key

from .agents import until
from .fleetdata import T0, event, summary
from .fleetview import build_app


async def test_cursor_stays_on_its_session_through_sorts_and_updates(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.press("2")
        await until(lambda: bool(app.screen.query(SessionsTable)), what="sessions view")
        table = app.screen.query_one(SessionsTable)
        await until(lambda: table.row_count == 8, what="eight rows")
        key = ("it-support", "s-0002")
        assert table.select_key(row_key(key))
        for _ in range(4):
            before = table.sort_by
            await pilot.press("s")
            await until(lambda: table.sort_by != before, what="next sort")  # noqa: B023
            assert table.selected() == key
            assert table.index.key_at(table.cursor_row) == key
        await pilot.press("S")
        await until(lambda: table.sort_reverse, what="reversed")
        assert table.selected() == key
        # a live update that moves the row (new sessions arrive, this one changes)
        store = app.store
        for n in range(30):
            store.apply_event(
                "it-support",
                event(100 + n, "session_started", session=summary(f"n-{n:03d}", minute=n % 5)),
            )
        moved = summary("s-0002", workflow="vpn-help", principal="user-2001", minute=1)
        moved = moved.model_copy(update={"tool_calls": 99, "last_event_at": T0 + timedelta(1)})
        store.apply_event("it-support", event(200, "session_updated", session=moved))
        await until(lambda: table.row_count == 38, what="new rows")
        assert table.selected() == key
        assert table.index.key_at(table.cursor_row) == key
        assert str(table.get_cell(row_key(key), "tools")) == "99"


async def test_keys_walk_every_row_and_filter_keeps_the_cursor(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(150, 20)) as pilot:  # fewer lines than rows + header
        await pilot.press("2")
        await until(lambda: bool(app.screen.query(SessionsTable)), what="sessions view")
        table = app.screen.query_one(SessionsTable)
        await until(lambda: table.row_count == 8, what="eight rows")
        seen = [table.selected()]
        for _ in range(table.row_count + 2):  # past the end the cursor stays on the last
            await pilot.press("j")
            seen.append(table.selected())
        assert len(set(seen)) == 8 and seen[-1] == table.index.key_at(7)
        await pilot.press("g")
        await until(lambda: table.cursor_row == 0, what="top")
        key = table.index.key_at(2)
        table.select_key(row_key(key))
        await pilot.press("slash", *key[1])
        await until(lambda: table.filter_text == key[1], what="filter typed")
        assert table.row_count == 1 and table.selected() == key
        await pilot.press("escape")
        await until(lambda: table.filter_text == "" and table.row_count == 8, what="cleared")
        assert table.selected() == key


@pytest.mark.parametrize("readonly", [False, True])
async def test_help_lists_enter_even_where_a_table_holds_the_key(
    tmp_path: Path, readonly: bool
) -> None:
    from agentops_console.console.screens.info import HelpModal

    app = build_app(tmp_path, readonly=readonly)
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.press("3")  # alerts: a DataTable with its own enter binding
        await until(lambda: bool(app.screen.query("#alerts")), what="the alerts view")
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpModal), what="help")
        ids = {row[2] for row in app.screen.rows}  # type: ignore[attr-defined]
        assert "alerts.open" in ids
        assert ("incident.open" in ids) is not readonly  # no action keys when read-only
