"""LangGraph ReAct agent on a fake chat model: the handler guards every tool before its
body runs, refusals reach the caller of `invoke`, and the session has tools, tokens, cost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool
from langgraph.prebuilt import create_react_agent

from agentops_console.integrations.langchain import AgentOpsCallbackHandler
from agentops_console.runtime import PolicyDenied, SessionKilled

from .conftest import CACHED, INPUT, MODEL, OUTPUT, REASONING, Served, expected_cost

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

USAGE: Any = {
    "input_tokens": INPUT,
    "output_tokens": OUTPUT,
    "total_tokens": INPUT + OUTPUT,
    "input_token_details": {"cache_read": CACHED},
    "output_token_details": {"reasoning": REASONING},
}


class ToolCallingFake(GenericFakeChatModel):
    """The fake chat model, able to sit in a ReAct agent; `before` runs inside each call."""

    before: Callable[[int], None] | None = None
    calls: int = 0

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.before is not None:
            self.before(self.calls)
        return super()._generate(*args, **kwargs)


def _call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": call_id}],
        usage_metadata=USAGE,
        response_metadata={"model_name": MODEL, "model_provider": "openai"},
    )


def _answer() -> AIMessage:
    return AIMessage(content="done", usage_metadata=USAGE, response_metadata={"model_name": MODEL})


def _tools(served: Served) -> list[BaseTool]:
    @tool
    def kb_search(query: str) -> str:
        """Search the IT knowledge base."""
        served.ran.append(f"kb_search:{query}")
        return "reset it at id.example.com"

    @tool
    def reset_password(user: str) -> str:
        """Reset a user's password."""
        served.ran.append(f"reset_password:{user}")
        return "reset"

    @tool
    def delete_account(user: str) -> str:
        """Delete a user's account."""
        served.ran.append(f"delete_account:{user}")
        return "deleted"

    return [kb_search, reset_password, delete_account]


def _run(served: Served, messages: list[AIMessage], before: Any = None) -> Any:
    model = ToolCallingFake(messages=iter(messages), before=before)
    agent = create_react_agent(model, _tools(served))
    handler = AgentOpsCallbackHandler(
        runtime=served.rt, workflow="password-reset", principal="user-1"
    )
    return agent.invoke({"messages": [("user", "I am locked out")]}, {"callbacks": [handler]})


def test_the_session_has_the_tool_calls_tokens_and_cost(served: Served) -> None:
    result = _run(served, [_call("kb_search", {"query": "locked"}, "c1"), _answer()])
    assert result["messages"][-1].content == "done"
    detail = served.client.session(served.only_session())
    assert (detail.workflow, detail.principal, detail.status) == (
        "password-reset",
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


def test_a_kill_from_the_endpoint_stops_the_next_tool_before_its_body(served: Served) -> None:
    def kill_on_second_call(n: int) -> None:
        if n == 2:
            served.kill_running()

    messages = [
        _call("kb_search", {"query": "locked"}, "c1"),
        _call("kb_search", {"query": "still locked"}, "c2"),
        _answer(),
    ]
    with pytest.raises(SessionKilled):
        _run(served, messages, before=kill_on_second_call)
    assert served.ran == ["kb_search:locked"]
    detail = served.client.session(served.only_session())
    assert detail.status == "killed"
    assert [s.outcome for s in detail.spans if s.kind == "tool"] == ["ok", "killed"]


def test_a_cedar_deny_raises_in_the_caller(served: Served) -> None:
    with pytest.raises(PolicyDenied):
        _run(served, [_call("delete_account", {"user": "bob"}, "c1"), _answer()])
    assert served.ran == []
    detail = served.client.session(served.only_session())
    [refused] = [s for s in detail.spans if s.kind == "tool"]
    assert refused.outcome == "denied" and detail.unauthorized_attempts == 1


def test_an_approval_checkpoint_waits_and_resumes(served: Served) -> None:
    approver = served.approve_when_asked()
    result = _run(served, [_call("reset_password", {"user": "bob"}, "c1"), _answer()])
    approver.join(5)
    assert result["messages"][-1].content == "done"
    assert served.ran == ["reset_password:bob"]
    detail = served.client.session(served.only_session())
    [call] = [s for s in detail.spans if s.kind == "tool"]
    assert call.policy is not None and call.policy.decision == "approved"
