"""End to end: a live demo fleet, the real console driven with Pilot, an operator's kill.

The runaway session is found in the console, killed with `k` and a confirmation; the agent
itself reports the session killed, the governance DB holds the audited action, and
`agentops audit verify` passes on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from textual.widgets import Input

from agentops_console.console.connection import Backoff
from agentops_console.console.screens.confirm import ConfirmModal
from agentops_console.console.widgets.sessions_table import SessionsTable, row_key
from agentops_console.demo.headless import live_demo
from agentops_console.demo.launch import build_console
from agentops_console.demo.scenario import load_scenario
from agentops_console.demo.seed import seed_governance
from agentops_console.protocol.client import AgentClient

FAST = Backoff(initial_s=0.05, factor=2.0, max_s=0.3, jitter=0.0)


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_operator_kills_the_runaway_from_the_console(tmp_path: Path) -> None:
    db = tmp_path / "governance.db"
    scenario = load_scenario()
    with live_demo(scenario, seed=7, speed=4.0) as demo:
        seed_governance(db, demo.fleet)
        app = build_console(
            demo, db_path=db, operator="olivia.ops", readonly=False, backoff=FAST, refresh_s=0.05
        )
        async with app.run_test(size=(160, 40)) as pilot:
            await _until(
                lambda: any(n.trouble == "runaway_loop" for n in demo.fleet.notes), "runaway"
            )
            runaway = next(n for n in demo.fleet.notes if n.trouble == "runaway_loop")
            key = ("it-support", runaway.session_id or "")

            def flagged() -> bool:
                summary = app.store.sessions.get(key)
                return summary is not None and any(f.kind == "runaway_loop" for f in summary.flags)

            await _until(flagged, "the runaway flag in the console")
            await pilot.press("2")
            table = app.screen.query_one(SessionsTable)
            await _until(lambda: table.row_count > 0, "session rows")
            table.select_key(row_key(key))
            await pilot.press("k")
            await _until(lambda: isinstance(app.screen, ConfirmModal), "the kill modal")
            app.screen.query_one("#reason", Input).value = "runaway retry loop on kb_search"
            await pilot.click("#confirm")
            await _until(lambda: bool(app.results), "the action result")
            assert app.results[-1].ok, app.results[-1].message
            await _until(lambda: app.store.sessions[key].status == "killed", "killed in view")
        endpoint = next(e for e in demo.fleet.endpoints() if e.agent == "it-support")
        with AgentClient(endpoint.url, endpoint.token) as client:
            reported = client.session(key[1])
        assert reported.status == "killed"
        assert reported.killed is not None and reported.killed.operator == "olivia.ops"

    from agentops_console.governance.db import open_db

    with open_db(db) as gdb:
        rows = gdb.query("SELECT actor, action, agent, target, details FROM audit ORDER BY seq")
    kill = [r for r in rows if r["action"] == "session.kill"]
    assert len(kill) == 1
    assert (kill[0]["actor"], kill[0]["agent"], kill[0]["target"]) == (
        "olivia.ops",
        "it-support",
        f"it-support/session/{key[1]}",
    )
    details = json.loads(str(kill[0]["details"]))
    assert details["reason"] == "runaway retry loop on kb_search"
    assert details["source"] == "console"
    agentops = Path(sys.executable).with_name("agentops")
    verify = subprocess.run(
        [str(agentops), "audit", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert "intact" in verify.stdout


async def test_readonly_console_shows_the_fleet_and_ctrl_c_quits(tmp_path: Path) -> None:
    with live_demo(load_scenario(), seed=7, speed=10.0) as demo:
        app = build_console(
            demo, db_path=None, operator="viewer", readonly=True, backoff=FAST, refresh_s=0.05
        )
        async with app.run_test(size=(160, 40)) as pilot:
            await _until(lambda: len(app.store.sessions) > 0, "live sessions")
            assert app.readonly and app.actions is None
            # history: sessions the agents forget open from the demo watcher's records
            assert app.records is not None and app.records.path == demo.records
            assert {key[0] for key in app.store.sessions} <= {"it-support", "billing", "research"}
            await pilot.press("ctrl+c")
            await _until(lambda: not app.is_running, "the console to quit")
