"""A view key draws its view on the next frame (issue 12): no 50 ms hold after the mode
switch, and the view's table is not re-rendered cell by cell through Rich because Textual
re-applied its (unchanged) CSS on the switch. A real style change still re-renders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rich.console import Console, ConsoleOptions, RenderResult
from textual import events
from textual.geometry import Region

from agentops_console.console.app import AgentOpsConsole
from agentops_console.console.store import FleetStore
from agentops_console.console.widgets.fleet_table import FleetTable
from agentops_console.console.widgets.keyed_table import Cell

from .agents import until
from .fleetdata import agent_info, fixed_clock, summary

AGENTS = 12


def _store() -> FleetStore:
    store = FleetStore(clock=fixed_clock)
    for n in range(AGENTS):
        source = f"agent-{n:02d}"
        store.add_agent(source, f"http://10.0.0.{n}:7070")
        sessions = [summary(f"s-{m:03d}", source, minute=m % 60) for m in range(20)]
        store.apply_snapshot(source, agent_info(source), sessions, [])
    return store


@pytest.fixture
def cells_rendered(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many table cells were rendered through Rich (a count, the rendering is real)."""
    count = [0]
    render = Cell.__rich_console__

    def counted(self: Cell, console: Console, options: ConsoleOptions) -> RenderResult:
        count[0] += 1
        return render(self, console, options)

    monkeypatch.setattr(Cell, "__rich_console__", counted)
    yield count


def _frames(app: AgentOpsConsole) -> list[float]:
    """When each frame went out (the app's own display step, wrapped; a frame composed
    while the app holds updates in a batch is not written, so it does not count)."""
    at: list[float] = []
    display = app._display

    def timed(screen: Any, update: Any) -> None:
        held = app._batch_count > 0
        display(screen, update)
        if update is not None and not held:
            at.append(time.perf_counter())

    app._display = timed  # type: ignore[method-assign,assignment]
    return at


async def _switch(app: AgentOpsConsole, key: str, mode: str, frames: list[float]) -> float:
    """Press a view key; seconds until the first frame composed in the new view."""
    await asyncio.sleep(0.05)  # let the last frame settle
    frames.clear()
    start = time.perf_counter()
    app.post_message(events.Key(key, key))
    shown: Callable[[], bool] = lambda: app.current_mode == mode and bool(frames)  # noqa: E731
    await until(shown, timeout=10, what=f"a frame of {mode}")
    return frames[0] - start


async def test_switching_back_to_a_view_does_not_render_its_cells_again(
    cells_rendered: list[int],
) -> None:
    """Every screen switch re-applied the view's CSS, and DataTable dropped every
    rendered cell on it: each `1` re-rendered the whole fleet table (40-70 ms at 20
    agents, most of a view key)."""
    app = AgentOpsConsole(store=_store(), clock=fixed_clock, pace_gc=False)
    async with app.run_test(size=(160, 40)) as pilot:
        frames = _frames(app)
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        assert table.row_count == AGENTS
        assert cells_rendered[0] > 0, "the fleet table was never drawn"
        # the first round may redraw once (the table's size settles after the first frame)
        await _switch(app, "2", "sessions", frames)
        await _switch(app, "1", "fleet", frames)
        for _ in range(3):
            await _switch(app, "2", "sessions", frames)
            before = cells_rendered[0]
            await _switch(app, "1", "fleet", frames)
            await pilot.pause()
            assert cells_rendered[0] == before, "the fleet table was rendered again"


async def test_a_real_style_change_still_renders_the_cells_again(
    cells_rendered: list[int],
) -> None:
    app = AgentOpsConsole(store=_store(), clock=fixed_clock, pace_gc=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        before = cells_rendered[0]
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        await until(lambda: cells_rendered[0] >= before + AGENTS, what="cells re-rendered")


async def test_a_view_key_is_on_screen_without_textuals_50_ms_hold() -> None:
    """Textual holds every frame 50 ms after a mode switch (to hide a view composing);
    the views are composed at mount, so the console draws the next frame at once."""
    app = AgentOpsConsole(store=_store(), clock=fixed_clock, pace_gc=False)
    async with app.run_test(size=(160, 40)) as pilot:
        frames = _frames(app)
        await pilot.pause()
        waits = []
        for _ in range(10):
            waits.append(await _switch(app, "2", "sessions", frames))
            waits.append(await _switch(app, "1", "fleet", frames))
            if min(waits) < 0.049:
                break  # one is enough: with the hold, no switch is ever drawn under 50 ms
        # (a busy box slows some switches, not every one of twenty)
        assert min(waits) < 0.049, [f"{w * 1000:.0f} ms" for w in waits]


def _lines(table: FleetTable) -> list[str]:
    """The table's lines as it would draw them now: text and style of every segment."""
    strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
    return ["".join(f"{seg.text}|{seg.style}" for seg in strip) for strip in strips]


def _assert_not_stale(table: FleetTable, what: str) -> None:
    """What the kept caches draw is what a table with no caches at all draws."""
    kept = _lines(table)
    table._clear_caches()
    table._styles_cache.clear()
    table._rich_style_cache.clear()
    assert kept == _lines(table), what


async def test_kept_render_caches_never_draw_stale_cells() -> None:
    """The table keeps its rendered cells across screen switches (see above): a theme
    changed, a row updated, the terminal resized while its view was hidden, a cursor
    move, a blur: each still draws exactly what a fresh table draws."""
    store = _store()
    app = AgentOpsConsole(store=store, clock=fixed_clock, pace_gc=False)
    async with app.run_test(size=(160, 40)) as pilot:
        frames = _frames(app)
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        _assert_not_stale(table, "first drawn")

        await _switch(app, "2", "sessions", frames)
        app.theme = "textual-light" if app.theme != "textual-light" else "textual-dark"
        await pilot.pause()
        await _switch(app, "1", "fleet", frames)
        await pilot.pause()
        _assert_not_stale(table, "theme changed while hidden")

        await _switch(app, "2", "sessions", frames)
        await pilot.resize_terminal(120, 30)
        ended = summary("s-000", "agent-03", status="completed", minute=50)
        store.apply_snapshot("agent-03", agent_info("agent-03"), [ended], [])
        await _switch(app, "1", "fleet", frames)
        await until(lambda: "0" in str(table.get_cell("agent-03", "active")), what="sync")
        await pilot.pause()
        _assert_not_stale(table, "row updated and terminal resized while hidden")

        await pilot.press("j")
        await pilot.pause()
        _assert_not_stale(table, "cursor moved")

        app.theme = "nord"
        await pilot.pause()
        _assert_not_stale(table, "theme changed while shown")

        table.blur()
        await pilot.pause()
        _assert_not_stale(table, "blurred")
