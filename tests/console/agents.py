"""Real runtimes on loopback for console tests, and a helper to wait for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textual.app import App
from textual.screen import Screen

from agentops_console.runtime import Runtime, RuntimeConfig, ToolSpec

TOKEN = "console-test-token"
TOKEN_ENV = "AGENTOPS_TEST_TOKEN"
POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOOLS = (
    ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb"),
    ToolSpec("reset_password", category="identity"),
)


def make_runtime(name: str = "it-support", **config: object) -> Runtime:
    return Runtime(
        agent=name,
        version="1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=TOOLS,
        config=RuntimeConfig(**config),  # type: ignore[arg-type]
    )


@contextmanager
def running(name: str = "it-support", port: int = 0, **config: object) -> Iterator[Runtime]:
    rt = make_runtime(name, **config)
    rt.start(host="127.0.0.1", port=port)
    try:
        yield rt
    finally:
        rt.stop()


async def until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait for a condition, never for a fixed time: generous enough for a loaded 2-core CI
    box, and returns as soon as the condition holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def modal_ready(app: App[Any], kind: type[Screen[Any]]) -> Callable[[], bool]:
    """The modal is on top and mounted with Cancel focused: a key pressed earlier could
    land on the screen underneath, or on a modal that has not focused Cancel yet."""

    def ready() -> bool:
        screen = app.screen
        focused = screen.focused
        return isinstance(screen, kind) and focused is not None and focused.id == "cancel"

    return ready


def console_app(
    rt: Runtime, governance: object | None, name: str = "it-support", **kw: object
) -> Any:
    """The real console on one real runtime, reconnecting fast, as the Pilot tests use it."""
    from agentops_console.console.app import AgentOpsConsole
    from agentops_console.console.connection import AgentSource, Backoff

    assert rt.url is not None
    return AgentOpsConsole(
        [AgentSource(name, rt.url, TOKEN_ENV)],
        governance=governance,  # type: ignore[arg-type]
        operator="alice",
        backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.3, jitter=0.0),
        refresh_s=0.05,
        **kw,  # type: ignore[arg-type]
    )


async def sessions_view(app: Any, pilot: Any, rows: int) -> Any:
    """Switch to the sessions view and wait until it shows `rows` sessions."""
    from agentops_console.console.widgets.sessions_table import SessionsTable

    await pilot.press("2")
    table = app.screen.query_one(SessionsTable)
    await until(lambda: table.row_count == rows, what=f"{rows} session rows")
    return table


async def confirm_kill(app: Any, pilot: Any, table: Any, key: Any, reason: str) -> None:
    """Kill the session at `key` the way an operator does: select its row, `k`, the modal
    (Cancel focused by default), a reason, Confirm; the action must succeed."""
    from textual.widgets import Button, Input

    from agentops_console.console.screens.confirm import ConfirmModal

    table.select_key(key)
    await pilot.press("k")
    await until(modal_ready(app, ConfirmModal), what="the confirm modal")
    modal = app.screen
    assert modal.focused is modal.query_one("#cancel", Button)  # Cancel by default
    modal.query_one("#reason", Input).value = reason
    await pilot.click("#confirm")
    await until(lambda: bool(app.results), what="action result")
    assert app.results[-1].ok, app.results[-1].message
