"""The real app against real runtimes on loopback, driven with Pilot."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from textual.widgets import Button, Input, RadioButton

from agentops_console.console.app import AgentOpsConsole
from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.console.screens.budget import BudgetModal
from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.widgets.fleet_table import FleetTable
from agentops_console.console.widgets.sessions_table import SessionsTable, row_key
from agentops_console.governance.db import open_db
from agentops_console.runtime import Runtime, SessionKilled

from .agents import confirm_kill, console_app, modal_ready, running, sessions_view, until

SIZE = (160, 40)


pytestmark = pytest.mark.usefixtures("agent_token")  # conftest.py, with `gov`


def audit_rows(gov: GovernanceAdapter) -> list[dict[str, object]]:
    with open_db(gov.path) as gdb:
        return gdb.query("SELECT actor, action, agent, target, details FROM audit ORDER BY seq")


def console(rt: Runtime, gov: GovernanceAdapter | None, **kw: Any) -> AgentOpsConsole:
    app: AgentOpsConsole = console_app(rt, gov, **kw)
    return app


async def test_kill_from_sessions_view_reaches_the_agent_and_the_audit_log(
    rt: Runtime, gov: GovernanceAdapter
) -> None:
    session = rt.session(workflow="password-reset", principal="user-1042", session_id="s-kill")
    rt.session(workflow="vpn-help", principal="user-7", session_id="s-other")
    app = console(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        table = await sessions_view(app, pilot, 2)
        key = row_key(("it-support", "s-kill"))
        await confirm_kill(app, pilot, table, key, "runaway [bold]loop[/]")
        assert rt.get("s-kill").killed is not None  # type: ignore[union-attr]
        with pytest.raises(SessionKilled):
            session.llm_call(model="gpt-4o-mini", input_tokens=1)
        await until(lambda: app.store.sessions[("it-support", "s-kill")].status == "killed")
        assert table.selected() == ("it-support", "s-kill")  # cursor stayed on its row
    (row,) = audit_rows(gov)
    assert (row["actor"], row["action"], row["agent"], row["target"]) == (
        "alice",
        "session.kill",
        "it-support",
        "it-support/session/s-kill",
    )
    details = json.loads(str(row["details"]))
    assert details["reason"] == "runaway [bold]loop[/]" and details["outcome"] == "ok"


async def test_escape_on_the_kill_modal_cancels_and_audits_nothing(
    rt: Runtime, gov: GovernanceAdapter
) -> None:
    rt.session(workflow="password-reset", principal="u", session_id="s1")
    app = console(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        await sessions_view(app, pilot, 1)
        await pilot.press("k")
        await until(modal_ready(app, ConfirmModal), what="the confirm modal")
        await pilot.press("enter")  # Enter lands on the focused Cancel
        await until(lambda: not isinstance(app.screen, ConfirmModal))
    assert rt.get("s1").killed is None  # type: ignore[union-attr]
    assert audit_rows(gov) == []


async def test_agent_restart_marks_rows_stale_then_live(gov: GovernanceAdapter) -> None:
    with running() as first:
        assert first.url is not None
        port = int(first.url.rsplit(":", 1)[1])
        first.session(workflow="password-reset", principal="u", session_id="s1")
        app = console(first, gov)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            table = app.screen.query_one(SessionsTable)
            key = row_key(("it-support", "s1"))
            await until(lambda: table.row_count == 1)
            first.stop()
            await until(lambda: "stale" in str(table.get_cell(key, "status")), what="stale row")
            await until(lambda: app.store.agents["it-support"].retries >= 1)
            with running(port=port) as second:
                second.session(workflow="password-reset", principal="u", session_id="s1")
                await until(
                    lambda: app.store.agents["it-support"].state == "live", what="live again"
                )
                await until(lambda: "stale" not in str(table.get_cell(key, "status")))
                await pilot.press("1")
                fleet = app.screen.query_one("#fleet", FleetTable)
                await until(lambda: "live" in str(fleet.get_cell("it-support", "connection")))


async def test_approve_and_deny_pending_checkpoints(rt: Runtime, gov: GovernanceAdapter) -> None:
    outcomes: dict[str, str] = {}

    def agent(session_id: str) -> None:
        with rt.session(workflow="password-reset", principal="u", session_id=session_id) as s:
            try:
                with s.tool_call("reset_password", {"user": session_id}):
                    outcomes[session_id] = "ran"
            except Exception as exc:
                outcomes[session_id] = type(exc).__name__

    threads = [threading.Thread(target=agent, args=(n,)) for n in ("ap", "dn")]
    for thread in threads:
        thread.start()
    app = console(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(lambda: len(app.store.approvals) == 2, what="two approvals")
        for session_id, key in (("ap", "a"), ("dn", "x")):
            table = app.screen.query_one("#approvals")
            entry = next(
                e for e in app.store.approvals.values() if e.approval.session_id == session_id
            )
            row = f"{entry.source}\x00{entry.approval.id}"
            # the store can hold the approval a refresh before the table shows it
            await until(lambda: table.select_key(row), what="the approval row")  # type: ignore[attr-defined]  # noqa: B023
            await pilot.press(key)
            await until(modal_ready(app, ConfirmModal), what="the confirm modal")
            await pilot.click("#confirm")
            decided = session_id
            await until(lambda: decided in outcomes, what=f"{decided} decided")  # noqa: B023
            await until(lambda: not isinstance(app.screen, ConfirmModal), what="modal closed")
        await until(lambda: len(app.store.approvals) == 0)
    for thread in threads:
        thread.join(5)
    assert outcomes == {"ap": "ran", "dn": "PolicyDenied"}
    actions = [r["action"] for r in audit_rows(gov)]
    assert actions == ["approval.approve", "approval.deny"]


async def test_budget_change_at_workflow_scope(rt: Runtime, gov: GovernanceAdapter) -> None:
    rt.session(workflow="password-reset", principal="u", session_id="s1")
    app = console(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        await sessions_view(app, pilot, 1)
        await pilot.press("b")
        await until(modal_ready(app, BudgetModal), what="the budget modal")
        modal = app.screen
        assert isinstance(modal, BudgetModal)
        assert modal.focused is modal.query_one("#cancel", Button)
        await pilot.click(modal.query(RadioButton)[1])
        await until(lambda: modal.scope == "workflow:password-reset", what="workflow scope")
        modal.query_one("#b-max_cost_usd_session", Input).value = "5"
        change = "max_cost_usd_session: unlimited → $5.00"
        await until(lambda: change in str(modal.query_one("#diff").render()), what="the diff")
        await pilot.pause()  # until idle: the taller diff has moved the buttons
        await pilot.click("#confirm")
        await until(lambda: bool(app.results))
        assert app.results[-1].ok, app.results[-1].message
    limits = rt.get("s1").limits()  # type: ignore[union-attr]
    assert limits.max_cost_usd_session == 5.0
    (row,) = audit_rows(gov)
    assert row["action"] == "budget.set"
    assert row["target"] == "it-support/workflow/password-reset"


async def test_readonly_offers_no_action(rt: Runtime, gov: GovernanceAdapter) -> None:
    rt.session(workflow="password-reset", principal="u", session_id="s1")
    app = console(rt, gov, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await sessions_view(app, pilot, 1)
        for key in ("k", "d", "e", "b"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, (ConfirmModal, BudgetModal))
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert not shown & {"kill", "disable", "enable", "budget"}
        assert app.actions is None
        assert "READONLY" in str(app.screen.query_one("StatusBar").render())
    assert rt.get("s1").killed is None  # type: ignore[union-attr]
    assert audit_rows(gov) == []


async def test_ctrl_c_quits_even_from_the_filter_line(rt: Runtime) -> None:
    app = console(rt, None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "slash")
        await until(lambda: app.screen.query_one("#filter", Input).has_focus, what="filter")
        await pilot.press("ctrl+c")
        await until(lambda: not app.is_running, what="app exit")


async def test_disable_then_enable_the_sessions_workflow(
    rt: Runtime, gov: GovernanceAdapter
) -> None:
    rt.session(workflow="password-reset", principal="u", session_id="s1")
    app = console(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        await sessions_view(app, pilot, 1)
        for key, disabled in (("d", ["password-reset"]), ("e", [])):
            await pilot.press(key)
            await until(modal_ready(app, ConfirmModal), what=f"the {key} modal")
            await pilot.click("#confirm")
            await until(lambda: not isinstance(app.screen, ConfirmModal), what="modal closed")
            want = disabled
            await until(
                lambda: [w.workflow for w in rt.agent_info().disabled_workflows] == want,  # noqa: B023
                what=f"workflow state after {key}",
            )
        await until(lambda: len(app.results) == 2, what="two results")
        assert all(r.ok for r in app.results), [r.message for r in app.results]
    actions = [r["action"] for r in audit_rows(gov)]
    assert actions == ["workflow.disable", "workflow.enable"]


async def test_incident_from_an_alert_with_its_runbook(rt: Runtime, gov: GovernanceAdapter) -> None:
    from agentops_console.console.screens.info import RunbookModal
    from agentops_console.console.widgets.alerts_table import AlertsTable
    from agentops_console.governance.incidents import list_incidents

    with rt.session(workflow="password-reset", principal="u", session_id="loop") as s:
        for _ in range(5):  # the same step again and again: a runaway loop
            try:
                with s.tool_call("kb_search", {"query": "locked account"}):
                    pass
            except Exception:
                break
    app = console(rt, gov)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one(AlertsTable)
        await until(
            lambda: (
                any(a.flag.kind == "runaway_loop" for a in app.store.alerts)
                and table.row_count >= 1
            ),
            what="the runaway alert",
        )
        key = next(a.key for a in app.store.alerts if a.flag.kind == "runaway_loop")
        await until(lambda: table.select_key(key), what="the alert row")
        await pilot.press("r")
        await until(lambda: isinstance(app.screen, RunbookModal), what="the runbook")
        await pilot.press("escape")
        await until(lambda: not isinstance(app.screen, RunbookModal), what="runbook closed")
        await pilot.press("i")
        await until(modal_ready(app, ConfirmModal), what="the incident modal")
        await pilot.click("#confirm")
        await until(lambda: bool(app.results), what="action result")
        assert app.results[-1].ok, app.results[-1].message
    with open_db(gov.path) as gdb:
        [incident] = list_incidents(gdb)
    assert (incident.agent, incident.runbook, incident.status) == (
        "it-support",
        "runaway-loop",
        "open",
    )
    assert incident.session_id == "loop"
