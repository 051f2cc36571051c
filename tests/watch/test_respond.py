"""Rules acting on a real runtime over loopback HTTP, audited in a real governance DB."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentops_console.governance.api import open_governance
from agentops_console.governance.audit import verify
from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.models import Budgets
from agentops_console.runtime import Runtime, SessionKilled
from agentops_console.runtime.config import RuntimeConfig
from agentops_console.watch.config import parse_config
from agentops_console.watch.respond import ActionOutcome, Executor, GovernanceAudit, Responder
from agentops_console.watch.rules import KillSession

TOKEN = "t"
KILL = '[[rule]]\nname = "kill-runaways"\nwhen = { flag = "runaway_loop" }\nthen = "kill"\n'
CONTAIN = """\
[[rule]]
name = "stop-workflow"
when = { flag = "runaway_loop", agent = "it-support" }
then = "disable_workflow"

[[rule]]
name = "tighten"
when = { flag = "runaway_loop" }
then = { budget = { scope = "session", max_tool_calls = 6 } }
"""


@pytest.fixture
def rt() -> Iterator[Runtime]:
    config = RuntimeConfig(budgets=Budgets(max_consecutive_tool_calls=100))
    runtime = Runtime(agent="it-support", version="1.0", token=TOKEN, config=config)
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def gov_db(tmp_path: Path) -> Path:
    path = tmp_path / "governance.db"
    open_governance(path, create=True).close()  # what `agentops init` does
    return path


class RunawayAgent:
    """An agent thread that loops on one step (tripping runaway_loop), then waits for the
    test before trying one more call: killed or not, the agent itself tells."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.proceed = threading.Event()
        self.session_id: str | None = None
        self.outcome = ""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.rt.session(workflow="password-reset", principal="user-1") as s:
                self.session_id = s.id
                for _ in range(5):
                    with s.tool_call("kb_search", {"query": "same"}):
                        pass
                self.proceed.wait(10)
                with s.tool_call("kb_search", {"query": "next"}):
                    pass
            self.outcome = "finished"
        except SessionKilled as exc:
            self.outcome = f"killed: {exc}"

    async def finish(self) -> str:
        self.proceed.set()
        await asyncio.to_thread(self.thread.join, 10)
        return self.outcome


async def respond_until_acted(responder: Responder, client: AsyncAgentClient) -> list[Any]:
    async for event in client.events(0):
        outcomes = await responder.handle("it-support", event)
        if outcomes:
            return outcomes
    raise AssertionError("the stream ended before any rule fired")


def watch_rows(gov_db: Path) -> list[dict[str, Any]]:
    with open_governance(gov_db, create=False) as gdb:
        assert verify(gdb.conn).ok
        return gdb.query(
            "SELECT actor, action, agent, target, details FROM audit"
            " WHERE actor LIKE 'watch:%' ORDER BY seq"
        )


async def test_rule_kills_the_runaway_session_and_audits_it(rt: Runtime, gov_db: Path) -> None:
    assert rt.url is not None
    async with AsyncAgentClient(rt.url, TOKEN) as client:
        executor = Executor({"it-support": client}, GovernanceAudit(gov_db))
        responder = Responder(parse_config(KILL, "watch.toml").rulebook(), executor)
        agent = RunawayAgent(rt)
        (outcome,) = await asyncio.wait_for(respond_until_acted(responder, client), 10)
        finished = await agent.finish()
        summary = await client.session(agent.session_id or "")
    assert finished == f"killed: session {agent.session_id} was killed by watch:kill-runaways"
    assert outcome.ok and outcome.audited and not outcome.dry_run
    assert outcome.message.startswith(f"did kill session {agent.session_id} on it-support")
    assert summary.status == "killed"
    assert summary.killed is not None and summary.killed.operator == "watch:kill-runaways"
    (row,) = watch_rows(gov_db)
    assert row["actor"] == "watch:kill-runaways"
    assert row["action"] == "session.kill"  # one vocabulary; the source says who
    assert (row["agent"], row["target"]) == ("it-support", f"it-support/session/{agent.session_id}")
    assert '"outcome":"ok"' in row["details"] and '"source":"watch"' in row["details"]


async def test_dry_run_calls_nothing_and_audits_nothing(rt: Runtime, gov_db: Path) -> None:
    assert rt.url is not None
    async with AsyncAgentClient(rt.url, TOKEN) as client:
        executor = Executor({"it-support": client}, GovernanceAudit(gov_db), dry_run=True)
        responder = Responder(parse_config(KILL, "watch.toml").rulebook(), executor)
        agent = RunawayAgent(rt)
        (outcome,) = await asyncio.wait_for(respond_until_acted(responder, client), 10)
        assert await agent.finish() == "finished"
        summary = await client.session(agent.session_id or "")
    assert outcome.dry_run and outcome.ok and not outcome.audited
    assert outcome.message == (
        f"dry run: would kill session {agent.session_id} on it-support (rule kill-runaways)"
    )
    assert summary.killed is None and summary.status == "completed"
    assert watch_rows(gov_db) == []


async def test_disable_and_budget_rules_act_through_the_endpoint(rt: Runtime, gov_db: Path) -> None:
    assert rt.url is not None
    async with AsyncAgentClient(rt.url, TOKEN) as client:
        executor = Executor({"it-support": client}, GovernanceAudit(gov_db))
        responder = Responder(parse_config(CONTAIN, "watch.toml").rulebook(), executor)
        agent = RunawayAgent(rt)
        outcomes: list[ActionOutcome] = await asyncio.wait_for(
            respond_until_acted(responder, client), 10
        )
        session = await client.session(agent.session_id or "")
        info = await client.agent()
        assert (await agent.finish()).startswith("killed")
    assert [o.ok for o in outcomes] == [True, True]
    assert [w.workflow for w in info.disabled_workflows] == ["password-reset"]
    assert info.disabled_workflows[0].operator == "watch:stop-workflow"
    assert session.budget.max_tool_calls == 6
    rows = watch_rows(gov_db)
    assert sorted((r["actor"], r["action"], r["target"]) for r in rows) == [
        ("watch:stop-workflow", "workflow.disable", "it-support/workflow/password-reset"),
        ("watch:tighten", "budget.set", f"it-support/session/{agent.session_id}"),
    ]


async def test_a_refused_action_is_audited_as_failed(rt: Runtime, gov_db: Path) -> None:
    assert rt.url is not None
    action = KillSession("kill-runaways", "it-support", "r", "flag runaway_loop", 3, "nope")
    async with AsyncAgentClient(rt.url, TOKEN) as client:
        executor = Executor({"it-support": client}, GovernanceAudit(gov_db))
        outcome = await executor.execute(action)
        unknown = await executor.execute(
            KillSession("kill-runaways", "billing", "r", "flag runaway_loop", 4, "s-1")
        )
    assert not outcome.ok and outcome.audited and "404" in outcome.message
    assert not unknown.ok and "no endpoint known for agent 'billing'" in unknown.message
    rows = watch_rows(gov_db)
    assert [r["target"] for r in rows] == ["it-support/session/nope", "billing/session/s-1"]
    assert all('"outcome":"failed' in r["details"] for r in rows)


async def test_an_action_the_log_could_not_take_says_so(rt: Runtime, tmp_path: Path) -> None:
    assert rt.url is not None
    with rt.session(workflow="w", principal="u") as s:
        action = KillSession("k", "it-support", "r", "c", 1, s.id)
        async with AsyncAgentClient(rt.url, TOKEN) as client:
            executor = Executor({"it-support": client}, GovernanceAudit(tmp_path / "none.db"))
            outcome = await executor.execute(action)
            assert (await client.session(s.id)).status == "killed"  # it did act
    assert not outcome.ok and not outcome.audited
    assert "(NOT AUDITED: no governance database at" in outcome.message


def test_an_executor_that_acts_must_audit() -> None:
    with pytest.raises(ValueError, match="must audit"):
        Executor({}, None)
