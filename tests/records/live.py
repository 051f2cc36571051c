"""Records from a real Runtime on loopback: sessions with tool calls, a denial, a human
checkpoint answered over HTTP and a kill, fetched with the protocol client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import Approval, ApprovalDecision, SessionDetail
from agentops_console.protocol.records import SessionRecord, build_record
from agentops_console.runtime import PolicyDenied, Runtime, SessionKilled, ToolSpec

TOKEN = "records-test-token"
POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOOLS = (
    ToolSpec(
        name="kb_search", version="2.3.0", category="retrieval", read_only=True, corpus="it-kb"
    ),
    ToolSpec(name="crm_update", version="1.0.0", customer_facing=True),
    ToolSpec(name="reset_password", version="3.1.0", category="identity"),
)


@dataclass
class Live:
    rt: Runtime
    client: AgentClient
    approvals: list[Approval]

    def detail(self, session_id: str) -> SessionDetail:
        return self.client.session(session_id)

    def record(self, session_id: str) -> SessionRecord:
        return build_record(self.detail(session_id), self.client.agent(), self.approvals)


@contextmanager
def live_runtime(version: str = "1.4.0") -> Iterator[Live]:
    rt = Runtime(
        agent="it-support",
        version=version,
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=TOOLS,
    )
    url = rt.start(host="127.0.0.1", port=0)
    try:
        with AgentClient(url, TOKEN) as client:
            yield Live(rt, client, [])
    finally:
        rt.stop()


def ordinary(live: Live, session_id: str, principal: str = "user-1042") -> str:
    """An LLM call and a retrieval with an output: completed."""
    with live.rt.session("password-reset", principal, session_id=session_id) as s:
        s.llm_call("gpt-4o-mini", 1200, 300, latency_ms=120.0)
        with s.tool_call("kb_search", {"query": "locked account"}) as call:
            call.retrieved(0.91, 1200)
            call.output = {"hits": 3}
    return session_id


def denied(live: Live, session_id: str) -> str:
    """A customer-facing write without an approved change: denied, the agent goes on."""
    with live.rt.session("crm", "user-2231", session_id=session_id) as s:
        s.llm_call("gpt-4o-mini", 800, 100)
        try:
            with s.tool_call("crm_update", {"ticket": 7, "status": "closed"}):
                pass
        except PolicyDenied:
            pass
    return session_id


def approved(live: Live, session_id: str, operator: str = "lead") -> str:
    """An identity change held at a human checkpoint, approved over HTTP."""
    errors: list[BaseException] = []

    def agent() -> None:
        try:
            with (
                live.rt.session("password-reset", "user-3310", session_id=session_id) as s,
                s.tool_call("reset_password", {"user": "user-3310"}) as call,
            ):
                call.output = {"reset": True}
        except BaseException as exc:  # surfaced by the test thread below
            errors.append(exc)

    worker = threading.Thread(target=agent)
    worker.start()
    deadline = time.monotonic() + 5
    while not (pending := live.client.approvals()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pending, "no checkpoint"
    decision = ApprovalDecision(decision="approve", operator=operator, reason="ticket 42")
    live.approvals.append(live.client.decide(pending[0].id, decision))
    worker.join(5)
    assert not errors, errors
    return session_id


def killed(live: Live, session_id: str) -> str:
    """Killed by an operator between two calls."""
    with live.rt.session("password-reset", "user-4471", session_id=session_id) as s:
        s.llm_call("gpt-4o", 500, 50)
        live.client.kill(session_id, "otto.ops", "runaway")
        with suppress(SessionKilled):
            s.llm_call("gpt-4o", 500, 50)
    return session_id


def shifted(record: SessionRecord, days: float) -> SessionRecord:
    """The same record `days` earlier (for retention tests), under a new id."""
    delta = timedelta(days=days)
    return record.model_copy(
        update={
            "session_id": f"{record.session_id}-{days:g}d",
            "started_at": record.started_at - delta,
            "last_event_at": record.last_event_at - delta,
            "ended_at": None if record.ended_at is None else record.ended_at - delta,
        }
    )
