"""Snapshots of every view and modal: fixed clock, fixed data, explicit terminal size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from agentops_console.console.widgets.sessions_table import SessionsTable, row_key

from .agents import until
from .fleetview import build_app

SIZE = (150, 36)
Compare = Callable[..., bool]


def keys(*pressed: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        for key in pressed:
            await pilot.press(key)
            await pilot.pause()
        await pilot.pause(0.1)

    return run


def on_session(session: tuple[str, str], *pressed: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await pilot.press("2")

        def selected() -> bool:  # once the sessions view is up and holds the row
            tables = pilot.app.screen.query(SessionsTable)
            return bool(tables) and tables.first().select_key(row_key(session))

        await until(selected, what=f"session {session} selected")
        await keys(*pressed)(pilot)

    return run


@pytest.mark.parametrize(
    ("name", "run_before"),
    [
        ("fleet", keys()),
        ("sessions", keys("2")),
        ("sessions_filtered", keys("2", "slash", "v", "p", "n", "enter")),
        ("detail", on_session(("it-support", "s-0004"), "enter")),
        ("alerts", keys("3")),
        ("approvals", keys("4")),
        ("kill_modal", on_session(("evil", "e-0001"), "k")),
        ("disable_modal", on_session(("it-support", "s-0004"), "d")),
        ("budget_modal", on_session(("it-support", "s-0004"), "b")),
        ("approve_modal", keys("4", "a")),
        ("incident_modal", keys("3", "i")),
        ("runbook_modal", keys("3", "j", "j", "j", "r")),
        ("help_modal", keys("2", "question_mark")),
        ("jump_modal", keys("colon", "a")),
    ],
)
def test_console_snapshot(
    snap_compare: Compare,
    tmp_path: Path,
    name: str,
    run_before: Callable[[Pilot[Any]], Awaitable[None]],
) -> None:
    assert snap_compare(build_app(tmp_path), terminal_size=SIZE, run_before=run_before)


def test_console_snapshot_readonly(snap_compare: Compare, tmp_path: Path) -> None:
    app = build_app(tmp_path, readonly=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("2", "k"))
