"""A kill, disable, end or budget change that lands after an approval, but before the
approved call's thread or task runs again, must stop the call: the body never runs.

On an idle machine the woken agent usually reaches its body before the operator's next
request arrives, which hides the defect. These tests make the agent late, as a busy
machine would, without touching the runtime: the sync agent's thread is held right after
its checkpoint wait returns (a trace hook, the way a debugger holds a thread), and the
asyncio agent's event loop is busy with blocking work (the operator's own blocking HTTP
calls) when the approval wakes it. Everything else is real: the runtime's endpoint on
loopback, the operator's `AgentClient` over HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import ApprovalDecision, BudgetUpdate
from agentops_console.runtime import (
    BudgetExceeded,
    GuardError,
    ModelPrice,
    Runtime,
    RuntimeConfig,
    SessionEnded,
    SessionKilled,
    ToolSpec,
)
from agentops_console.runtime.approvals import PendingApproval
from agentops_console.runtime.session import Session

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOKEN = "kill-after-approval-token"
APPROVE = ApprovalDecision(decision="approve", operator="lead", reason="looks fine")


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        agent="it-support",
        version="1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=[ToolSpec("reset_password", category="identity")],  # always a checkpoint
        config=RuntimeConfig(approval_timeout_s=10, prices={"priced-model": ModelPrice(1.0, 0.0)}),
    )
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def operator(rt: Runtime) -> Iterator[AgentClient]:
    assert rt.url is not None
    with AgentClient(rt.url, TOKEN) as client:
        yield client


def _wait_for_approval(rt: Runtime, session_id: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        for approval in rt.pending_approvals():
            if approval.session_id == session_id:
                return approval.id
        assert time.monotonic() < deadline, "the call never reached its checkpoint"
        time.sleep(0.001)


class _LateWake:
    """Holds a thread right after its checkpoint wait returns, until `release()`."""

    def __init__(self) -> None:
        self._go = threading.Event()

    def install(self) -> None:
        sys.settrace(self._on_call)  # this thread only

    def release(self) -> None:
        self._go.set()

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code is PendingApproval.wait.__code__:
            return self._on_return
        return None

    def _on_return(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return":
            assert self._go.wait(5), "the test never released the agent"
        return self._on_return


def _sync_agent(
    rt: Runtime, session_id: str, workflow: str = "password-reset", spend: bool = False
) -> tuple[threading.Thread, _LateWake, list[str]]:
    """An agent thread calling reset_password (a checkpoint), held after it wakes."""
    late = _LateWake()
    outcome: list[str] = []

    def agent() -> None:
        late.install()
        try:
            with rt.session(workflow=workflow, principal="u", session_id=session_id) as s:
                if spend:
                    s.llm_call(model="priced-model", input_tokens=150_000)  # $0.15
                with s.tool_call("reset_password", {"user": "u"}):
                    outcome.append("ran")
        except GuardError as exc:
            outcome.append(type(exc).__name__)
        finally:
            sys.settrace(None)

    worker = threading.Thread(target=agent)
    worker.start()
    return worker, late, outcome


def _approve_then(
    rt: Runtime, operator: AgentClient, session_id: str, then: Callable[[], object], **kw: Any
) -> list[str]:
    worker, late, outcome = _sync_agent(rt, session_id, **kw)
    try:
        operator.decide(_wait_for_approval(rt, session_id), APPROVE)
        then()
    finally:
        late.release()
        worker.join(5)
    assert not worker.is_alive()
    return outcome


def _session(rt: Runtime, session_id: str) -> Session:
    session = rt.get(session_id)
    assert session is not None
    return session


def test_approve_then_kill_over_http_never_runs_the_body(
    rt: Runtime, operator: AgentClient
) -> None:
    for n in range(50):
        sid = f"sync-{n}"
        outcome = _approve_then(rt, operator, sid, functools.partial(operator.kill, sid, "oncall"))
        assert outcome == ["SessionKilled"], f"iteration {n}: {outcome}"
        [span] = [sp for sp in _session(rt, sid).spans if sp.name == "reset_password"]
        assert span.outcome == "killed"


def test_approve_then_disable_over_http_never_runs_the_body(
    rt: Runtime, operator: AgentClient
) -> None:
    for n in range(50):
        outcome = _approve_then(
            rt, operator, f"dis-{n}", lambda: operator.disable("password-reset", "oncall")
        )
        assert outcome == ["SessionKilled"], f"iteration {n}: {outcome}"
        operator.enable("password-reset", "oncall")


def test_approve_then_a_lower_budget_stops_the_call(rt: Runtime, operator: AgentClient) -> None:
    lower = BudgetUpdate(scope="session:spender", max_cost_usd_session=0.10, operator="oncall")
    outcome = _approve_then(
        rt, operator, "spender", lambda: operator.set_budgets(lower), spend=True
    )
    assert outcome == [BudgetExceeded.__name__]


def test_approve_then_the_session_ends_refuses_the_call(rt: Runtime, operator: AgentClient) -> None:
    outcome = _approve_then(rt, operator, "ends", lambda: _session(rt, "ends").end("failed"))
    assert outcome == [SessionEnded.__name__]


def test_approve_then_kill_on_a_busy_event_loop_never_runs_the_body(
    rt: Runtime, operator: AgentClient
) -> None:
    """The operator's blocking calls run on the agent's own loop, so the approval's wake-up
    waits behind them, as it would behind any blocking work an asyncio agent does."""

    async def one(n: int) -> list[str]:
        sid = f"async-{n}"
        outcome: list[str] = []

        async def agent() -> None:
            try:
                async with rt.session(workflow="password-reset", principal="u", session_id=sid):
                    session = _session(rt, sid)
                    async with session.tool_call("reset_password", {"user": "u"}):
                        outcome.append("ran")
            except GuardError as exc:
                outcome.append(type(exc).__name__)

        task = asyncio.create_task(agent())
        while not any(a.session_id == sid for a in rt.pending_approvals()):
            await asyncio.sleep(0.001)
        operator.decide(_wait_for_approval(rt, sid), APPROVE)  # blocks the loop
        time.sleep(0.05)  # the kill comes 50 ms later; the loop is still busy
        operator.kill(sid, "oncall")
        await task
        return outcome

    for n in range(10):
        assert asyncio.run(one(n)) == [SessionKilled.__name__], f"iteration {n}"
