"""Agent-chosen strings reach the screen as literal text in every table and modal."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.widgets.sessions_table import SessionsTable, row_key

from .agents import modal_ready, until
from .fleetview import build_app


async def test_markup_and_escapes_in_agent_data_render_literally(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(150, 36)) as pilot:
        await pilot.press("2")
        table = app.screen.query_one(SessionsTable)
        await until(lambda: table.row_count == 8)
        key = row_key(("evil", "e-0001"))
        for column in ("agent", "workflow", "principal"):
            cell = table.get_cell(key, column)
            assert isinstance(cell, Text) and cell.spans == []
            assert "\x1b" not in cell.plain
        assert table.get_cell(key, "principal").plain == "[link=http://x]me[/link]"
        assert table.get_cell(key, "workflow").plain.startswith("[bold red]pwn[/]")
        table.select_key(key)
        await pilot.press("k")
        await until(modal_ready(app, ConfirmModal), what="the kill modal")
        lines = [str(s.render()) for s in app.screen.query(".change-line").results(Static)]
        assert any("\\x1b[31mred\\x1b[0m" in line for line in lines)
        assert not any("\x1b" in line for line in lines)
