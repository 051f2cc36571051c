"""OpenAI Agents SDK agent on the SDK's own scripted model: the run hooks guard every tool
before its body runs, refusals reach the caller of `Runner.run`, and each trace is a
session with its tool calls, tokens and cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, Runner, Tool, function_tool, set_trace_processors
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentops_console.integrations.openai_agents import AgentOpsHooks, AgentOpsTracing
from agentops_console.runtime import PolicyDenied, SessionKilled

from .conftest import CACHED, INPUT, MODEL, OUTPUT, REASONING, Served, expected_cost

USAGE = Usage(
    requests=1,
    input_tokens=INPUT,
    output_tokens=OUTPUT,
    total_tokens=INPUT + OUTPUT,
    input_tokens_details=InputTokensDetails(cached_tokens=CACHED, cache_write_tokens=0),
    output_tokens_details=OutputTokensDetails(reasoning_tokens=REASONING),
)


@pytest.fixture
def tracing(served: Served) -> Iterator[AgentOpsTracing]:
    processor = AgentOpsTracing(served.rt, principal="user-1")
    set_trace_processors([processor])  # offline: no exporter to OpenAI
    yield processor
    set_trace_processors([])


def _call(name: str, args: dict[str, Any], call_id: str) -> ModelStep:
    return ModelStep(output=[function_call(name, args, call_id=call_id)], usage=USAGE)


def _answer() -> ModelStep:
    return ModelStep(output=[assistant_message("done")], usage=USAGE)


def _tools(served: Served) -> list[Tool]:
    @function_tool
    def kb_search(query: str) -> str:
        """Search the IT knowledge base."""
        served.ran.append(f"kb_search:{query}")
        return "reset it at id.example.com"

    @function_tool
    def reset_password(user: str) -> str:
        """Reset a user's password."""
        served.ran.append(f"reset_password:{user}")
        return "reset"

    @function_tool
    def delete_account(user: str) -> str:
        """Delete a user's account."""
        served.ran.append(f"delete_account:{user}")
        return "deleted"

    return [kb_search, reset_password, delete_account]


async def _run(served: Served, tracing: AgentOpsTracing, steps: list[Any]) -> Any:
    agent = Agent(name="helpdesk", model=ScriptedModel(steps), tools=_tools(served))
    hooks = AgentOpsHooks(tracing, model=MODEL)
    return await Runner.run(agent, "I am locked out", hooks=hooks)


async def test_the_trace_is_a_session_with_tool_calls_tokens_and_cost(
    served: Served, tracing: AgentOpsTracing
) -> None:
    result = await _run(served, tracing, [_call("kb_search", {"query": "locked"}, "c1"), _answer()])
    assert result.final_output == "done"
    detail = served.client.session(served.only_session())
    assert (detail.workflow, detail.principal, detail.status) == (
        "Agent workflow",
        "user-1",
        "completed",
    )
    assert [(s.kind, s.name) for s in detail.spans] == [
        ("llm", f"chat {MODEL}"),
        ("tool", "kb_search"),
        ("llm", f"chat {MODEL}"),
    ]
    assert detail.spans[1].arguments == {"query": "locked"}
    assert (detail.tool_calls, detail.tokens_in, detail.tokens_out) == (1, 2 * INPUT, 2 * OUTPUT)
    assert (detail.tokens_cache_read, detail.tokens_reasoning) == (2 * CACHED, 2 * REASONING)
    assert detail.cost_usd == pytest.approx(expected_cost(2))


async def test_a_kill_from_the_endpoint_stops_the_next_tool_before_its_body(
    served: Served, tracing: AgentOpsTracing
) -> None:
    def kill_then_call(call: ModelCall) -> ModelStep:
        served.kill_running()  # the operator, over HTTP, while the model answers
        return _call("kb_search", {"query": "still locked"}, "c2")

    steps = [_call("kb_search", {"query": "locked"}, "c1"), ModelStep.respond(kill_then_call)]
    with pytest.raises(SessionKilled):
        await _run(served, tracing, steps)
    assert served.ran == ["kb_search:locked"]
    detail = served.client.session(served.only_session())
    assert detail.status == "killed"
    assert [s.outcome for s in detail.spans if s.kind == "tool"] == ["ok", "killed"]


async def test_a_cedar_deny_raises_in_the_caller(served: Served, tracing: AgentOpsTracing) -> None:
    with pytest.raises(PolicyDenied):
        await _run(served, tracing, [_call("delete_account", {"user": "bob"}, "c1"), _answer()])
    assert served.ran == []
    detail = served.client.session(served.only_session())
    assert detail.outcome == "refused" and detail.unauthorized_attempts == 1


async def test_an_approval_checkpoint_waits_and_resumes(
    served: Served, tracing: AgentOpsTracing
) -> None:
    approver = served.approve_when_asked()
    steps = [_call("reset_password", {"user": "bob"}, "c1"), _answer()]
    result = await _run(served, tracing, steps)
    approver.join(5)
    assert result.final_output == "done"
    assert served.ran == ["reset_password:bob"]
    detail = served.client.session(served.only_session())
    [call] = [s for s in detail.spans if s.kind == "tool"]
    assert call.policy is not None and call.policy.decision == "approved"
