"""A deterministic fleet for snapshot tests: four agents, one stale, hostile strings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agentops_console.console.app import AgentOpsConsole
from agentops_console.console.governance_adapter import GovernanceAdapter
from agentops_console.console.store import FleetStore, SessionKey
from agentops_console.governance.db import open_db
from agentops_console.protocol.models import Budgets, SessionDetail

from .fleetdata import (
    EVIL,
    NOW,
    agent_info,
    approval,
    disabled,
    event,
    fixed_clock,
    flag,
    spans,
    summary,
)

RUNBOOK = """+++
name = "runaway-loop"
title = "Runaway loop"
triggers = ["runaway_loop", "consecutive_tool_calls"]
severity = "high"
owner_role = "operations"
+++
# Runaway loop

1. Kill the session (`k`) if it is still spending.
2. Disable the workflow (`d`) when more than one session loops.
3. Open an incident and page the applied-ai owner.
"""


def build_store() -> FleetStore:
    store = FleetStore(clock=fixed_clock)
    it, billing, evil, hr = "it-support", "billing-bot", "evil", "hr-helper"
    store.add_agent(it, "http://10.0.0.11:7070")
    store.add_agent(billing, "http://10.0.0.12:7070")
    store.add_agent(evil, "http://10.0.0.13:7070")
    store.add_agent(hr, "http://10.0.0.14:7070")
    store.apply_snapshot(
        it,
        agent_info(it, seq=10),
        [
            summary("s-0001", it, minute=0),
            summary("s-0002", it, workflow="vpn-help", principal="user-2001", minute=1),
            summary("s-0003", it, minute=2, status="waiting_approval"),
            summary(
                "s-0004",
                it,
                minute=3,
                loops=9,
                tool_calls=31,
                consecutive_tool_calls=6,
                retries=4,
                cost_usd=1.42,
                flags=[flag("runaway_loop", 10)],
            ),
        ],
        [approval("ap-1", "s-0003", arguments={"user": "jdoe", "note": EVIL})],
    )
    store.apply_snapshot(
        billing,
        agent_info(
            billing,
            seq=4,
            workflows=["refunds", "invoices"],
            disabled_workflows=[disabled("refunds")],
        ),
        [
            summary("b-0001", billing, workflow="invoices", principal="acct-77", minute=1),
            summary(
                "b-0002",
                billing,
                workflow="refunds",
                principal="acct-12",
                minute=2,
                status="stopped",
                cost_usd=1.7,
                budget=Budgets(max_cost_usd_session=2.0),
                flags=[flag("budget_warning", 20), flag("workflow_disabled", 30)],
            ),
        ],
        [],
    )
    store.apply_snapshot(
        evil,
        agent_info(EVIL, seq=2),
        [summary("e-0001", EVIL, workflow=EVIL, principal="[link=http://x]me[/link]", minute=4)],
        [],
    )
    store.apply_snapshot(hr, agent_info(hr, seq=1), [summary("h-0001", hr, minute=0)], [])
    store.mark_stale(hr, "http://10.0.0.14:7070 unreachable: connection refused", 4)
    store.agents[hr].last_seen = NOW - timedelta(seconds=42)
    grown = summary(
        "s-0004",
        it,
        minute=3,
        loops=9,
        tool_calls=31,
        consecutive_tool_calls=6,
        retries=4,
        cost_usd=1.42,
        flags=[flag("runaway_loop", 10), flag("policy_denied", 50, message=EVIL)],
        last_event_at=NOW - timedelta(seconds=5),
    )
    store.apply_event(it, event(11, "flag", session=grown, flag=grown.flags[-1]))
    return store


async def load_detail(key: SessionKey) -> SessionDetail:
    base = summary(key[1], "it-support", minute=1, loops=2, tool_calls=2, cost_usd=0.00036)
    return SessionDetail(
        **base.model_dump(),
        spans=spans(key[1]),
        loop_costs=[
            {"loop": 1, "cost_usd": 0.00036, "tokens_in": 1200, "tokens_out": 300, "tool_calls": 1},
            {"loop": 2, "cost_usd": 0.0, "tokens_in": 0, "tokens_out": 0, "tool_calls": 1},
        ],
    )


def build_app(tmp: Path, *, readonly: bool = False) -> AgentOpsConsole:
    db = tmp / "gov.db"
    open_db(db, create=True).close()
    books = tmp / "runbooks"
    books.mkdir(exist_ok=True)
    (books / "runaway-loop.md").write_text(RUNBOOK)
    return AgentOpsConsole(
        governance=GovernanceAdapter(db, runbooks=books),
        operator="alice",
        readonly=readonly,
        clock=fixed_clock,
        store=build_store(),
        refresh_s=0.05,
        detail_loader=load_detail,
    )
