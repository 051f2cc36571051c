"""pydantic-ai needs no adapter: its instrumentation opens the `execute_tool` span before
the tool runs, so `rt.span_processor()` on a real OTel TracerProvider enforces there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent
from pydantic_ai.capabilities.instrumentation import Instrumentation
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.usage import RequestUsage

from agentops_console.runtime import PolicyDenied, SessionKilled

from .conftest import CACHED, INPUT, MODEL, OUTPUT, Served, expected_cost

Step = Callable[[], ModelResponse]


def _usage() -> RequestUsage:
    return RequestUsage(input_tokens=INPUT, output_tokens=OUTPUT, cache_read_tokens=CACHED)


def _call(name: str, args: dict[str, Any], call_id: str) -> Step:
    return lambda: ModelResponse(
        parts=[ToolCallPart(name, args, tool_call_id=call_id)], usage=_usage(), model_name=MODEL
    )


def _answer() -> Step:
    return lambda: ModelResponse(parts=[TextPart("done")], usage=_usage(), model_name=MODEL)


def _run(served: Served, steps: list[Step]) -> Any:
    provider = TracerProvider()
    provider.add_span_processor(served.rt.span_processor())
    script = iter(steps)

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return next(script)()

    settings = InstrumentationSettings(tracer_provider=provider)
    agent = Agent(
        FunctionModel(model, model_name=MODEL),
        name="helpdesk",
        capabilities=[Instrumentation(settings=settings)],
    )

    @agent.tool_plain
    def kb_search(query: str) -> str:
        """Search the IT knowledge base."""
        served.ran.append(f"kb_search:{query}")
        return "reset it at id.example.com"

    @agent.tool_plain
    def reset_password(user: str) -> str:
        """Reset a user's password."""
        served.ran.append(f"reset_password:{user}")
        return "reset"

    @agent.tool_plain
    def delete_account(user: str) -> str:
        """Delete a user's account."""
        served.ran.append(f"delete_account:{user}")
        return "deleted"

    try:
        return agent.run_sync("I am locked out")
    finally:
        provider.shutdown()


def test_the_session_has_the_tool_calls_tokens_and_cost(served: Served) -> None:
    result = _run(served, [_call("kb_search", {"query": "locked"}, "c1"), _answer()])
    assert result.output == "done"
    detail = served.client.session(served.only_session())
    assert (detail.workflow, detail.status) == ("helpdesk", "completed")
    assert [(s.kind, s.name) for s in detail.spans] == [
        ("llm", f"chat {MODEL}"),
        ("tool", "kb_search"),
        ("llm", f"chat {MODEL}"),
    ]
    assert (detail.tool_calls, detail.tokens_in, detail.tokens_out) == (1, 2 * INPUT, 2 * OUTPUT)
    # cached tokens reach the price once runtime/otel.py reads usage_attributes (part 1);
    # until then the GenAI path prices them as plain input
    assert detail.cost_usd in (
        pytest.approx(expected_cost(2)),
        pytest.approx(2 * (INPUT * 0.15e-6 + OUTPUT * 0.60e-6)),
    )


def test_a_kill_from_the_endpoint_stops_the_next_tool_before_its_body(served: Served) -> None:
    def kill_then_call() -> ModelResponse:
        served.kill_running()  # the operator, over HTTP, while the model answers
        return _call("kb_search", {"query": "still locked"}, "c2")()

    with pytest.raises(SessionKilled):
        _run(served, [_call("kb_search", {"query": "locked"}, "c1"), kill_then_call, _answer()])
    assert served.ran == ["kb_search:locked"]
    detail = served.client.session(served.only_session())
    assert [s.outcome for s in detail.spans if s.kind == "tool"] == ["ok", "killed"]


def test_a_cedar_deny_raises_in_the_caller(served: Served) -> None:
    with pytest.raises(PolicyDenied):
        _run(served, [_call("delete_account", {"user": "bob"}, "c1"), _answer()])
    assert served.ran == []


def test_an_approval_checkpoint_waits_and_resumes(served: Served) -> None:
    approver = served.approve_when_asked()
    result = _run(served, [_call("reset_password", {"user": "bob"}, "c1"), _answer()])
    approver.join(5)
    assert result.output == "done"
    assert served.ran == ["reset_password:bob"]
    detail = served.client.session(served.only_session())
    [call] = [s for s in detail.spans if s.kind == "tool"]
    assert call.policy is not None and call.policy.decision == "approved"
