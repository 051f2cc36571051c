"""Outcome, task input and final answer: reported by the agent (or OTel), derived when not,
served over real HTTP (summary, detail, SSE) and carried into agentops.record/1."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import ApprovalDecision
from agentops_console.protocol.records import build_record
from agentops_console.runtime import (
    BudgetExceeded,
    PolicyDenied,
    Runtime,
    SessionEnded,
    SessionKilled,
    ToolSpec,
)

TOKEN = "outcome-test-token"
POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        "it-support",
        "1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=[
            ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb"),
            ToolSpec("crm_update", customer_facing=True),
            ToolSpec("reset_password", category="identity"),
        ],
    )
    runtime.start(host="127.0.0.1", port=0)
    yield runtime
    runtime.stop()


@pytest.fixture
def client(rt: Runtime) -> Iterator[AgentClient]:
    assert rt.url is not None
    with AgentClient(rt.url, TOKEN) as c:
        yield c


def test_reported_outcome_input_and_output_over_http(rt: Runtime, client: AgentClient) -> None:
    with rt.session("password-reset", "user-1042", session_id="s-ok") as s:
        s.input("my account is locked")
        s.llm_call("gpt-4o-mini", 100, 20)
        s.outcome("resolved", reason="  password reset\n link sent ")
        s.output({"answer": "done"})  # not text: kept as its JSON
    detail = client.session("s-ok")
    assert detail.outcome == "resolved" and detail.outcome_reason == "password reset link sent"
    assert detail.input == "my account is locked" and detail.output == '{"answer":"done"}'
    # the list stays small: the outcome is on the summary, input and output are not
    raw = httpx.get(f"{rt.url}/v1/sessions", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    [row] = [r for r in raw if r["id"] == "s-ok"]
    assert row["outcome"] == "resolved" and "input" not in row and "output" not in row


def test_the_session_ended_event_carries_the_outcome(rt: Runtime) -> None:
    with rt.session("password-reset", "user-1042", session_id="s-ev") as s:
        s.outcome("escalated", "handed to the service desk")
    events: list[dict[str, object]] = []
    with httpx.stream(
        "GET",
        f"{rt.url}/v1/events",
        headers={"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": "0"},
        timeout=5,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == "session_ended":
                    break
    updated = [e for e in events if e["type"] == "session_updated"]
    ended = events[-1]
    assert updated and updated[0]["session"]["outcome"] == "escalated"  # type: ignore[index]
    assert ended["session"]["outcome"] == "escalated"  # type: ignore[index]


def test_bad_reports_raise_at_the_agents_call(rt: Runtime) -> None:
    with rt.session("w", "p") as s:
        for bad in ("great", "unknown", "", None, 3):
            with pytest.raises(ValueError, match="outcome must be one of"):
                s.outcome(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="reason must be text"):
            s.outcome("resolved", reason=42)  # type: ignore[arg-type]
        s.outcome("partial")
    with pytest.raises(SessionEnded):
        s.outcome("resolved")
    assert s.summary().outcome == "partial"


def test_derived_outcomes(rt: Runtime, client: AgentClient) -> None:
    """No report: unknown; a crash: failed; an unhandled policy refusal: refused; a kill
    or a budget: failed, whether the exception left the block or the agent caught it."""
    with rt.session("w", "p", session_id="plain"):
        pass
    with pytest.raises(RuntimeError), rt.session("w", "p", session_id="crash"):
        raise RuntimeError("boom")
    with (
        pytest.raises(PolicyDenied),
        rt.session("crm", "p", session_id="denied") as s,
        s.tool_call("crm_update", {"ticket": 1}),
    ):
        pass
    with pytest.raises(SessionKilled), rt.session("w", "p", session_id="killed") as s:
        rt.kill(s.id, "otto.ops", "runaway")
        s.llm_call("gpt-4o-mini", 1, 1)
    with rt.session("w", "p", session_id="killed-caught") as s:
        rt.kill(s.id, "otto.ops", "runaway")
        with pytest.raises(SessionKilled):
            s.llm_call("gpt-4o-mini", 1, 1)
    with pytest.raises(BudgetExceeded), rt.session("w", "p", session_id="budget") as s:
        s.llm_call("gpt-4o", 2_000_000, 0)  # far over $2.00
        s.llm_call("gpt-4o", 1, 1)
    with pytest.raises(RuntimeError), rt.session("w", "p", session_id="reported-then-crash") as s:
        s.outcome("resolved")
        raise RuntimeError("cleanup failed")
    got = {
        sid: client.session(sid)
        for sid in (
            "plain",
            "crash",
            "denied",
            "killed",
            "killed-caught",
            "budget",
            "reported-then-crash",
        )
    }
    assert {k: v.outcome for k, v in got.items()} == {
        "plain": "unknown",
        "crash": "failed",
        "denied": "refused",
        "killed": "failed",
        "killed-caught": "failed",
        "budget": "failed",
        "reported-then-crash": "resolved",  # the agent's own report wins
    }
    assert got["crash"].outcome_reason == "RuntimeError: boom"
    assert "killed by otto.ops" in (got["killed-caught"].outcome_reason or "")
    assert "SessionKilled" in (got["killed"].outcome_reason or "")


def test_async_sessions_report_too(rt: Runtime, client: AgentClient) -> None:
    async def agent() -> None:
        async with rt.session("w", "p", session_id="async") as s:
            s.input("task")
            async with s.tool_call("kb_search", {"query": "x"}) as call:
                call.output = "hit"
            s.outcome("resolved")
            s.output("answer")

    asyncio.run(agent())
    detail = client.session("async")
    assert (detail.outcome, detail.input, detail.output) == ("resolved", "task", "answer")


def test_an_approved_call_keeps_its_approval_id(rt: Runtime, client: AgentClient) -> None:
    """After an approval the call is evaluated again; its span keeps the approval's id, so a
    record names who approved without matching tool and arguments."""
    errors: list[BaseException] = []

    def agent() -> None:
        try:
            with (
                rt.session("password-reset", "user-3310", session_id="s-appr") as s,
                s.tool_call("reset_password", {"user": "user-3310"}),
            ):
                pass
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=agent)
    worker.start()
    deadline = time.monotonic() + 5
    while not (pending := client.approvals()) and time.monotonic() < deadline:
        time.sleep(0.01)
    decided = client.decide(pending[0].id, ApprovalDecision(decision="approve", operator="lead"))
    worker.join(5)
    assert not errors
    [span] = client.session("s-appr").spans
    assert span.policy is not None and span.policy.decision == "approved"
    assert span.policy.approval_id == decided.id
    # the record finds the approval by id even when its arguments differ from the span's
    other = decided.model_copy(update={"arguments": {"user": "someone-else"}})
    record = build_record(client.session("s-appr"), client.agent(), [other])
    override = record.spans[0].human_override
    assert override is not None and override.by == "lead" and override.approval_id == decided.id


def test_records_carry_what_the_agent_reported(rt: Runtime, client: AgentClient) -> None:
    with rt.session("password-reset", "user-1042", session_id="s-rec") as s:
        s.input("reset my password")
        s.outcome("resolved", "link sent")
        s.output("sent")
    record = build_record(client.session("s-rec"), client.agent())
    assert (record.final_outcome, record.outcome_reason) == ("resolved", "link sent")
    assert (record.input, record.output) == ("reset my password", "sent")


# -- OpenTelemetry -----------------------------------------------------------------------
@pytest.fixture
def provider(rt: Runtime) -> Iterator[TracerProvider]:
    tp = TracerProvider()
    tp.add_span_processor(rt.span_processor())
    yield tp
    tp.shutdown()


def _agent(provider: TracerProvider, conversation: str, **attributes: object) -> None:
    tracer = provider.get_tracer("framework")
    attrs = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": conversation,
        "gen_ai.agent.name": "helper",
        **attributes,
    }
    with (
        tracer.start_as_current_span("invoke_agent helper", attributes=attrs),  # type: ignore[arg-type]
        tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
        ),
    ):
        pass


def test_otel_outcome_attribute_on_the_agent_span(
    rt: Runtime, provider: TracerProvider, client: AgentClient
) -> None:
    _agent(
        provider,
        "c-1",
        **{
            "agentops.outcome": "escalated",
            "agentops.outcome.reason": "needs a human",
            "agentops.input": "task",
            "agentops.output": "answer",
        },
    )
    _agent(provider, "c-2", **{"agentops.outcome": "splendid"})  # unknown value: ignored
    _agent(provider, "c-3")
    one = client.session("c-1")
    assert (one.outcome, one.outcome_reason, one.input, one.output) == (
        "escalated",
        "needs a human",
        "task",
        "answer",
    )
    assert one.trace_id is not None and len(one.trace_id) == 32
    assert client.session("c-2").outcome == "unknown"
    assert client.session("c-3").outcome == "unknown"
    assert build_record(one, client.agent()).trace_id == one.trace_id


def test_otel_outcome_on_a_root_span_that_is_no_genai_span(
    rt: Runtime, provider: TracerProvider, client: AgentClient
) -> None:
    """OpenInference-style frameworks wrap the agent in a chain span of their own: the
    outcome on that root counts for the session its trace made, even after it ended."""
    tracer = provider.get_tracer("framework")
    with tracer.start_as_current_span(
        "AgentRun", attributes={"agentops.outcome": "unsafe", "agentops.outcome.reason": "pii"}
    ):
        _agent(provider, "c-oi")
    detail = client.session("c-oi")
    assert detail.status == "completed"
    assert (detail.outcome, detail.outcome_reason) == ("unsafe", "pii")
