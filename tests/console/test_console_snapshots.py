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

#: The default terminal, and a large one: every view and modal is taken at both.
SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
#: The README's picture (docs/console.svg) is the sessions view at this size.
README_SIZE = (150, 36)
SNAPSHOTS = Path(__file__).parent / "__snapshots__" / "test_console_snapshots"
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


VIEWS = [
    ("fleet", keys()),
    ("sessions", keys("2")),
    ("sessions_filtered", keys("2", "slash", "v", "p", "n", "enter")),
    ("detail", on_session(("it-support", "s-0004"), "enter")),
    ("alerts", keys("3")),
    ("approvals", keys("4")),
    ("kill_modal", on_session(("evil", "e-0001"), "k")),
    ("kill_ended_modal", on_session(("billing-bot", "b-0002"), "k")),
    ("disable_modal", on_session(("it-support", "s-0004"), "d")),
    ("budget_modal", on_session(("it-support", "s-0004"), "b")),
    ("approve_modal", keys("4", "a")),
    ("incident_modal", keys("3", "i")),
    ("runbook_modal", keys("3", "j", "j", "j", "r")),
    ("help_modal", keys("2", "question_mark")),
    ("jump_modal", keys("colon", "a")),
]


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize(("name", "run_before"), VIEWS, ids=[name for name, _ in VIEWS])
def test_console_snapshot(
    snap_compare: Compare,
    tmp_path: Path,
    name: str,
    run_before: Callable[[Pilot[Any]], Awaitable[None]],
    size: str,
) -> None:
    assert snap_compare(build_app(tmp_path), terminal_size=SIZES[size], run_before=run_before)


@pytest.mark.parametrize("size", list(SIZES))
def test_console_snapshot_readonly(snap_compare: Compare, tmp_path: Path, size: str) -> None:
    app = build_app(tmp_path, readonly=True)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=keys("2", "k"))


def test_console_snapshot_readme(snap_compare: Compare, tmp_path: Path) -> None:
    """The README's picture: docs/console.svg is this snapshot, copied (see below)."""
    assert snap_compare(build_app(tmp_path), terminal_size=README_SIZE, run_before=keys("2"))


def test_readme_picture_is_the_sessions_snapshot() -> None:
    """After `--snapshot-update`, copy the snapshot over docs/console.svg:
    cp 'tests/console/__snapshots__/test_console_snapshots/test_console_snapshot_readme.svg'
    docs/console.svg"""
    snapshot = SNAPSHOTS / "test_console_snapshot_readme.svg"
    picture = Path(__file__).parents[2] / "docs" / "console.svg"
    assert picture.read_text() == snapshot.read_text(), "docs/console.svg is out of date"
