"""Agent-chosen strings reach the screen as literal text in every table and modal."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Static

from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.widgets.sessions_table import row_key

from .agents import modal_ready, sessions_view, until
from .fleetview import build_app


async def test_markup_and_escapes_in_agent_data_render_literally(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(150, 36)) as pilot:
        table = await sessions_view(app, pilot, 8)
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


async def test_agent_markup_in_toasts_and_titles_cannot_break_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Toasts parse markup unless told not to: an unmatched `[/]` in an agent's name or
    workflow would raise MarkupError and close the console (notifications are on here)."""
    from textual.widgets import Label

    from agentops_console.console.governance_adapter import GovernanceAdapter
    from agentops_console.console.screens.budget import BudgetModal
    from agentops_console.governance.db import open_db

    from .agents import TOKEN, TOKEN_ENV, console_app, running

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    db = tmp_path / "gov.db"
    open_db(db, create=True).close()
    with running("evil [/] agent") as rt:
        rt.session(workflow="x[/]y [b]wf[/b]", principal="u", session_id="s1")
        app = console_app(rt, GovernanceAdapter(db), name="evil [/] agent")
        async with app.run_test(size=(150, 36), notifications=True) as pilot:
            await sessions_view(app, pilot, 1)
            await pilot.press("b")
            await until(modal_ready(app, BudgetModal), what="the budget modal")
            title = app.screen.query_one("#dialog-title", Label)
            assert "[/]" in str(title.render())  # literal, not parsed
            await pilot.press("escape")
            await until(lambda: not isinstance(app.screen, BudgetModal), what="closed")
            await pilot.press("d")
            await until(modal_ready(app, ConfirmModal), what="the disable modal")
            await pilot.click("#confirm")
            await until(lambda: bool(app.results), what="the result toast")
            assert app.results[-1].ok
            rt.stop()  # the agent goes away: the stale warning names it
            await until(lambda: app.store.agents["evil [/] agent"].state != "live", what="stale")
            await pilot.pause()
            assert app.is_running
            await pilot.press("k")  # on a stale agent the modal says it is not answering
            await until(modal_ready(app, ConfirmModal), what="the kill modal")
            lines = [str(s.render()) for s in app.screen.query(".change-line").results(Static)]
            assert any("not answering" in line for line in lines), lines


async def test_operator_typos_are_messages_not_crashes(tmp_path: Path) -> None:
    from textual.widgets import Input

    from agentops_console.console.screens.budget import BudgetModal
    from agentops_console.console.screens.info import JumpModal

    app = build_app(tmp_path)
    async with app.run_test(size=(150, 36), notifications=True) as pilot:
        await pilot.press("colon")
        await until(lambda: isinstance(app.screen, JumpModal), what="the jump line")
        await pilot.press("left_square_bracket", "slash", "right_square_bracket", "enter")
        await pilot.pause()
        assert app.is_running
        await pilot.press("escape")  # the jump line stays open on an unknown view
        await sessions_view(app, pilot, 8)
        await pilot.press("b")
        await until(modal_ready(app, BudgetModal), what="the budget modal")
        app.screen.query_one("#b-max_cost_usd_session", Input).value = "-5"
        await pilot.pause()
        await pilot.click("#confirm")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, BudgetModal)  # still open to fix


async def test_every_view_and_modal_renders_hostile_agent_text_as_visible_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rendered cells of every view and modal, against a real hostile agent (the
    terminal bytes themselves: test_console_terminal.py)."""
    import unicodedata

    from agentops_console.console.governance_adapter import GovernanceAdapter
    from agentops_console.console.screens.budget import BudgetModal
    from agentops_console.console.screens.detail import DetailScreen
    from agentops_console.console.screens.info import HelpModal, JumpModal, RunbookModal
    from agentops_console.console.screens.views import (
        AlertsScreen,
        ApprovalsScreen,
        FleetScreen,
        SessionsScreen,
    )
    from agentops_console.governance.db import open_db

    from .agents import TOKEN, TOKEN_ENV, console_app
    from .hostile import RUNBOOK, hostile_agent

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    db = tmp_path / "gov.db"
    open_db(db, create=True).close()
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "any-flag.md").write_text(RUNBOOK)
    steps: list[tuple[str, type[object]]] = [
        ("2", SessionsScreen),
        ("b", BudgetModal),
        ("escape", SessionsScreen),
        ("k", ConfirmModal),
        ("escape", SessionsScreen),
        ("d", ConfirmModal),
        ("escape", SessionsScreen),
        ("enter", DetailScreen),
        ("b", BudgetModal),
        ("escape", DetailScreen),
        ("3", AlertsScreen),
        ("i", ConfirmModal),
        ("escape", AlertsScreen),
        ("r", RunbookModal),
        ("escape", AlertsScreen),
        ("4", ApprovalsScreen),
        ("a", ConfirmModal),
        ("escape", ApprovalsScreen),
        ("question_mark", HelpModal),
        ("escape", ApprovalsScreen),
        ("colon", JumpModal),
        ("escape", ApprovalsScreen),
        ("1", FleetScreen),
        ("b", BudgetModal),
    ]
    with hostile_agent() as rt:
        app = console_app(rt, GovernanceAdapter(db, runbooks=books), name="evil")
        async with app.run_test(size=(160, 45), notifications=True) as pilot:
            await until(lambda: len(app.store.sessions) == 4, what="the hostile sessions")
            await until(lambda: len(app.store.approvals) == 1, what="the approval")
            for key, screen in steps:
                await pilot.press(key)
                await until(lambda: isinstance(app.screen, screen), what=f"{key} → {screen}")  # noqa: B023
                if isinstance(app.screen, DetailScreen):
                    await until(lambda: app.screen.detail is not None, what="the spans")
                await pilot.pause()
                drawn = app.export_screenshot()
                bad = {
                    hex(ord(ch))
                    for ch in drawn
                    if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")
                }
                assert not bad, (key, screen.__name__, bad)
                assert "HOSTILE" in drawn, (key, screen.__name__)


async def test_actions_on_hostile_ids_reach_the_agent_with_the_ids_it_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screen shows cleaned ids; kill and disable send the raw ones, so a hostile
    agent's session can still be killed and its workflow disabled."""
    from agentops_console.console.governance_adapter import GovernanceAdapter
    from agentops_console.governance.db import open_db

    from .agents import TOKEN, TOKEN_ENV, console_app
    from .hostile import PAYLOAD, hostile_agent

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    db = tmp_path / "gov.db"
    open_db(db, create=True).close()
    with hostile_agent() as rt:
        app = console_app(rt, GovernanceAdapter(db), name="evil")
        async with app.run_test(size=(160, 45)) as pilot:
            table = await sessions_view(app, pilot, 4)
            assert table.select_key(row_key(("evil", "loop" + PAYLOAD)))
            await pilot.press("k")
            await until(modal_ready(app, ConfirmModal), what="the kill modal")
            await pilot.click("#confirm")
            await until(lambda: len(app.results) == 1, what="the kill")
            assert app.results[-1].ok, app.results[-1].message
            assert rt.get("loop" + PAYLOAD).killed is not None  # type: ignore[union-attr]
            await pilot.press("d")
            await until(modal_ready(app, ConfirmModal), what="the disable modal")
            await pilot.click("#confirm")
            await until(lambda: len(app.results) == 2, what="the disable")
            assert app.results[-1].ok, app.results[-1].message
            assert "wf" + PAYLOAD in [w.workflow for w in rt.agent_info().disabled_workflows]
            assert "\x1b" not in app.results[-1].message
