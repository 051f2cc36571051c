"""Issue 13, the console: 80x24, flags, the footer, modals, the read-only reason, refused
tokens, one open-alert rule, `/` everywhere, ended sessions, runbooks, incidents."""

from __future__ import annotations

import inspect
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from textual.app import App
from textual.coordinate import Coordinate
from textual.widgets import Button, Input
from typer.testing import CliRunner

from agentops_console.cli import console_cmds
from agentops_console.console.app import AgentOpsConsole
from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.screens.flows import ActionFlows
from agentops_console.console.screens.info import RunbookModal
from agentops_console.console.session_rows import flags_cell
from agentops_console.console.store import FleetStore
from agentops_console.console.widgets.alerts_table import AlertsTable
from agentops_console.console.widgets.approvals_table import ApprovalsTable
from agentops_console.console.widgets.fleet_table import FleetTable
from agentops_console.console.widgets.footer import ConsoleFooter
from agentops_console.console.widgets.sessions_table import SessionsTable, row_key
from agentops_console.console.widgets.span_timeline import SpanTimeline
from agentops_console.console.widgets.status_bar import StatusBar
from agentops_console.protocol.models import Budgets, BudgetUpdate
from agentops_console.runtime import Runtime

from .agents import TOKEN, TOKEN_ENV, console_app, modal_ready, until
from .fleetdata import NOW, agent_info, event, fixed_clock, flag, summary
from .fleetview import build_app
from .test_console_snapshots import keys, on_session
from .test_console_terminal import AGENTOPS, Terminal

SMALL = (80, 24)


def screen_text(app: App[Any]) -> str:
    """The terminal as plain text, as an operator reads it."""
    update = app.screen._compositor.render_update(full=True)
    console = Console(width=app.size.width, record=True, color_system=None, file=io.StringIO())
    console.print(update)
    return console.export_text()


pytestmark = pytest.mark.usefixtures("agent_token")  # conftest.py, with `gov`


# -- 1. 80x24 ------------------------------------------------------------------------
def test_flags_cell_shows_the_most_severe_first_and_counts_the_rest() -> None:
    s = summary(
        "s1",
        flags=[
            flag("approval_required", 1, severity="info"),
            flag("consecutive_tool_calls", 2),
            flag("runaway_loop", 3),
            flag("runaway_loop", 4),
            flag("unpriced", 5, severity="info"),
        ],
    )
    assert flags_cell(s) == "runaway_loop +2"
    assert flags_cell(summary("s2")) == ""
    assert flags_cell(summary("s3", flags=[flag("budget_warning")])) == "budget_warning"


@pytest.mark.parametrize("size", [SMALL, (200, 50)])
async def test_sessions_view_keeps_what_an_operator_acts_on(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await keys("2")(pilot)
        table = app.screen.query_one(SessionsTable)
        assert {"status", "flags", "cost", "workflow", "id"} <= set(table.shown_columns())
        lines = screen_text(app).splitlines()
        (row,) = [line for line in lines if "s-0004" in line]
        assert "runaway_loop +1" in row and "$1.42/$2.00" in row and "running" in row
        assert max(len(line.rstrip()) for line in lines) <= size[0]


async def test_footer_keeps_help_and_quit_at_80_columns(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        for view in ("1", "2", "3", "4"):
            await keys(view)(pilot)
            footer = screen_text(app).splitlines()[-1]
            assert footer.rstrip().endswith("? Help  q Quit"), footer
        await keys("2")(pilot)
        footer = screen_text(app).splitlines()[-1]
        assert "k Kill" in footer and "b Budget" in footer
        shown = [ident for ident, _, _ in app.screen.query_one(ConsoleFooter).shown()]
        assert shown[-2:] == ["app.help", "app.quit"]


@pytest.mark.parametrize(
    ("run_before", "title", "button"),
    [
        (on_session(("evil", "e-0001"), "k"), "Kill session", "Kill session"),
        (on_session(("it-support", "s-0004"), "b"), "Change budget on it-support", "Apply"),
        (keys("4", "a"), "Approve tool call", "Approve"),
        (keys("3", "i"), "Open incident", "Open incident"),
    ],
)
async def test_modals_fit_80x24_title_and_buttons_on_screen(
    tmp_path: Path, run_before: Any, title: str, button: str
) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await run_before(pilot)
        text = screen_text(app)
        lines = text.splitlines()
        assert any(line.strip(" █") == title for line in lines), text
        buttons = [line for line in lines if "Cancel" in line]
        assert buttons and button in buttons[0], text
        dialog = app.screen.query_one("#dialog")
        assert dialog.region.height <= SMALL[1] and dialog.region.y >= 0


# -- 2. why actions are off ------------------------------------------------------------
async def test_header_says_why_actions_are_off(rt: Runtime) -> None:
    reason = "actions off, no audit log: no governance database at /x/g.db; run `agentops init`"
    app = console_app(rt, None, readonly_reason=reason)
    async with app.run_test(size=SMALL) as pilot:
        await keys("2")(pilot)
        await until(lambda: "read-only: actions off" in screen_text(app), what="the reason")
        bar = app.screen.query_one(StatusBar)
        assert bar.size.height == 2
        assert "READONLY" in screen_text(app).splitlines()[0]


def test_console_without_a_db_says_why_in_its_header(rt: Runtime, tmp_path: Path) -> None:
    """The real `agentops console` in a pseudo-terminal: printed before the screen took
    over, the reason was only seen after quitting; now the header holds it."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "AGENTOPS_DB": str(tmp_path / "absent.db"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        TOKEN_ENV: TOKEN,
    }
    argv = [str(AGENTOPS), "console", "--endpoint", str(rt.url), "--token-env", TOKEN_ENV]
    terminal = Terminal(argv, env)
    try:
        terminal.wait_for(rb"read-only: actions off, no audit log: no governance database", 0)
    finally:
        terminal.close()


# -- 3. a refused token is not "unreachable" -----------------------------------------
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.setenv("AGENTOPS_DB", str(tmp_path / "absent.db"))
    app = typer.Typer()
    console_cmds.register(app)
    return app


@pytest.mark.parametrize(
    ("value", "said"),
    [(None, f"unauthorized: token variable {TOKEN_ENV} not set"), ("nope", "wrong token")],
)
def test_status_says_unauthorized_not_unreachable(
    cli: typer.Typer,
    rt: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    said: str,
) -> None:
    if value is None:
        monkeypatch.delenv(TOKEN_ENV)
    else:
        monkeypatch.setenv(TOKEN_ENV, value)
    args = ["status", "--endpoint", str(rt.url), "--token-env", TOKEN_ENV]
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 5
    assert said in text.stdout and "unreachable" not in text.stdout
    assert said in text.stderr
    doc = CliRunner().invoke(cli, [*args, "--json"])
    (agent,) = json.loads(doc.stdout)["agents"]
    assert agent["unauthorized"] and said in agent["error"]


async def test_console_says_unauthorized_not_unreachable(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    app = console_app(rt, None)
    async with app.run_test(size=(160, 40)):
        await until(lambda: "unauthorized: wrong token" in app.last_note, what="the note")
        assert "unreachable" not in app.last_note


# -- 4. one definition of an open alert ----------------------------------------------
def test_open_alerts_agree_between_header_fleet_and_alerts_view() -> None:
    store = FleetStore(clock=fixed_clock)
    store.add_agent("a", "http://a")
    store.apply_snapshot(
        "a",
        agent_info("a", seq=1),
        [
            summary("running", "a", flags=[flag("runaway_loop"), flag("approval_required")]),
            summary("info", "a", flags=[flag("approval_required", severity="info")]),
            summary("done", "a", status="completed", flags=[flag("budget_warning")]),
        ],
        [],
    )
    counts = store.open_alerts()
    (row,) = store.fleet()
    shown_open = [a for a in store.alerts if store.alert_open(a)]
    assert counts == {"a": 2} and row.open_alerts == 2 and len(shown_open) == 2
    # the session ends: its alerts close everywhere at once
    ended = summary(
        "running",
        "a",
        status="completed",
        flags=[flag("runaway_loop"), flag("approval_required")],
        last_event_at=NOW,
    )
    store.apply_event("a", event(2, "session_ended", session=ended))
    assert store.open_alerts() == {"a": 0} and store.fleet()[0].open_alerts == 0


async def test_alerts_view_rows_marked_open_match_the_header(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        await keys("3")(pilot)
        table = app.screen.query_one(AlertsTable)
        states = [str(table.get_cell_at(Coordinate(n, 1))) for n in range(table.row_count)]
        header = screen_text(app).splitlines()[0]
        assert f"alerts {states.count('open')} open" in header
        (fleet_alerts,) = {sum(app.store.open_alerts().values())}
        assert states.count("open") == fleet_alerts == 2 and "closed" in states


# -- 5. `/` in every view --------------------------------------------------------------
@pytest.mark.parametrize(
    ("run_before", "table", "typed", "rows"),
    [
        (keys(), FleetTable, "billing", 1),
        (keys("4"), ApprovalsTable, "nomatch", 0),
        (keys("3"), AlertsTable, "runaway", 1),
        (on_session(("it-support", "s-0004"), "enter"), SpanTimeline, "reset", 1),
    ],
)
async def test_slash_filters_in_every_view_and_letters_never_act_as_keys(
    tmp_path: Path, run_before: Any, table: type[Any], typed: str, rows: int
) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await run_before(pilot)
        grid = app.screen.query_one(table)
        await until(lambda: grid.row_count > rows, what="rows before filtering")
        await keys("slash", "p", *typed)(pilot)  # `p` would pause the display
        assert not app.paused
        field = app.screen.query_one("#filter", Input)
        assert field.value == "p" + typed
        await keys(*["backspace"] * (len(typed) + 1), *typed)(pilot)
        await until(lambda: grid.row_count == rows, what=f"{rows} row(s) after /{typed}")
        await keys("escape")(pilot)
        await until(lambda: grid.row_count > rows, what="every row after esc")


# -- 6. ended sessions --------------------------------------------------------------
async def test_kill_on_an_ended_session_says_so_and_offers_nothing(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await on_session(("billing-bot", "b-0002"), "k")(pilot)
        await until(lambda: isinstance(app.screen, ConfirmModal), what="the modal")
        modal = app.screen
        text = screen_text(app)
        assert "the session has ended" in text and "→ killed" not in text
        assert not modal.query("#confirm") and not modal.query("#reason")
        assert str(modal.query_one("#cancel", Button).label) == "Close"
        await pilot.click("#cancel")
        await until(lambda: not isinstance(app.screen, ConfirmModal))
    assert app.results == []


def test_a_kill_answer_updates_a_row_the_stream_left_behind() -> None:
    store = FleetStore(clock=fixed_clock)
    store.add_agent("a", "http://a")
    store.apply_snapshot("a", agent_info("a", seq=1), [summary("s1", "a")], [])
    answer = summary("s1", "a", status="completed", last_event_at=NOW)
    store.apply_answer("a", answer)
    assert store.sessions[("a", "s1")].status == "completed"


async def test_budget_change_on_a_completed_session_shows_in_its_row(
    rt: Runtime, gov: GovernanceAdapter
) -> None:
    rt.session(workflow="password-reset", principal="u", session_id="s-done").end()
    app: AgentOpsConsole = console_app(rt, gov)
    async with app.run_test(size=(160, 40)) as pilot:
        await keys("2")(pilot)
        table = app.screen.query_one(SessionsTable)
        key = row_key(("it-support", "s-done"))
        await until(lambda: table.row_count == 1, what="the ended session")
        assert "completed" in str(table.get_cell(key, "status"))
        assert app.actions is not None
        update = BudgetUpdate(scope="session:s-done", max_cost_usd_session=5.0, reason="r")
        ActionFlows(app)._run("it-support", app.actions.set_budget("it-support", "x", update))
        await until(lambda: bool(app.results), what="the answer")
        assert app.results[-1].ok, app.results[-1].message
        await until(lambda: "/$5.00" in str(table.get_cell(key, "cost")), what="the new limit")


def test_a_session_budget_event_reaches_the_row() -> None:
    from agentops_console.protocol.models import BudgetState

    store = FleetStore(clock=fixed_clock)
    store.add_agent("a", "http://a")
    store.apply_snapshot("a", agent_info("a", seq=1), [summary("s1", "a", status="completed")], [])
    state = BudgetState(
        scope="session:s1",
        budgets=Budgets(max_cost_usd_session=9.0),
        effective=Budgets(max_cost_usd_session=9.0, max_tool_calls=60),
    )
    store.apply_event("a", event(2, "budgets_changed", budgets=state, session_id="s1"))
    assert store.sessions[("a", "s1")].budget.max_cost_usd_session == 9.0


# -- 7. runbooks literally -----------------------------------------------------------
async def test_runbook_text_is_shown_literally(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    book = tmp_path / "runbooks" / "runaway-loop.md"
    book.write_text(
        book.read_text() + "4. Check `runaway loop: <tool> repeated` and <b>this</b> & [bold]x[/]\n"
    )
    async with app.run_test(size=(160, 40)) as pilot:
        await keys("3", "j", "j", "j", "r")(pilot)
        await until(lambda: isinstance(app.screen, RunbookModal), what="the runbook")
        text = screen_text(app)
        assert "runaway loop: <tool> repeated" in text
        assert "<b>this</b> & [bold]x[/]" in text


# -- 8. incidents under a filter -------------------------------------------------------
async def test_incident_column_fills_while_a_filter_is_active(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        await keys("3", "slash", *"runaway", "enter")(pilot)
        table = app.screen.query_one(AlertsTable)
        await until(lambda: table.row_count == 1, what="the filtered alert")
        await pilot.press("i")
        await until(modal_ready(app, ConfirmModal), what="the incident modal")
        await pilot.click("#confirm")
        await until(lambda: bool(app.results), what="the incident")
        assert app.results[-1].ok, app.results[-1].message
        await until(lambda: str(table.get_cell_at(Coordinate(0, 8))) != "-", what="the incident id")
        assert str(table.get_cell_at(Coordinate(0, 8))).startswith(app.results[-1].answer.id[:8])


# -- 21. one sync signature ----------------------------------------------------------
def test_table_widgets_share_one_sync_signature() -> None:
    signatures = {
        str(inspect.signature(widget.sync))
        for widget in (SessionsTable, FleetTable, AlertsTable, ApprovalsTable)
    }
    assert len(signatures) == 1, signatures
    (signature,) = signatures
    assert signature.startswith("(self, store: 'FleetStore', now: 'datetime', ")


def test_action_flows_are_out_of_the_screen_base_class() -> None:
    from agentops_console.console.screens.base import ConsoleScreen

    assert not [name for name in vars(ConsoleScreen) if name.startswith(("ask_", "show_run"))]
    assert {"ask_kill", "ask_budget", "ask_workflow", "ask_decide", "ask_incident"} <= set(
        vars(ActionFlows)
    )
