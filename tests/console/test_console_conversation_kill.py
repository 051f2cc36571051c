"""Killing an OpenTelemetry conversation between two of its runs from the console: the
session has ended its run, not the conversation, so the kill is offered and sticks."""

from __future__ import annotations

import pytest

from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.widgets.sessions_table import row_key
from agentops_console.runtime import Runtime

from .agents import confirm_kill, console_app, modal_ready, sessions_view, until

SIZE = (160, 40)

pytestmark = pytest.mark.usefixtures("agent_token")  # conftest.py, with `gov`


async def test_a_conversation_between_runs_can_be_killed(
    rt: Runtime, gov: GovernanceAdapter
) -> None:
    rt.session("chat", "user-1", session_id="conv-1", source="otel").end("completed")
    app = console_app(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        table = await sessions_view(app, pilot, 1)
        # offered (a Confirm button), not "already ended"
        await confirm_kill(app, pilot, table, row_key(("it-support", "conv-1")), "abusive thread")
        await until(lambda: app.store.sessions[("it-support", "conv-1")].status == "killed")
    killed = rt.get("conv-1")
    assert killed is not None and killed.killed is not None


async def test_a_finished_api_session_still_has_nothing_left_to_kill(
    rt: Runtime, gov: GovernanceAdapter
) -> None:
    rt.session("password-reset", "user-2", session_id="api-1").end("completed")
    app = console_app(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        await sessions_view(app, pilot, 1)
        await pilot.press("k")
        await until(modal_ready(app, ConfirmModal), what="the modal")
        assert not app.screen.query("#confirm")
    session = rt.get("api-1")
    assert session is not None and session.killed is None
