"""A LangGraph ReAct agent governed by agentops, offline (a fake chat model).

    python examples/langgraph_agent.py

The agent searches the knowledge base, then tries to reset a password: the policy sends
identity changes to a human, so the run waits for an approval (approved here from another
thread over HTTP, as an operator would from `agentops console`), then tries to delete an
account, which the policy forbids: `PolicyDenied` reaches the caller of `invoke`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent

from agentops_console.integrations.langchain import AgentOpsCallbackHandler
from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.models import ApprovalDecision
from agentops_console.runtime import PolicyDenied, Runtime, ToolSpec

POLICY = """
permit (principal, action == Action::"call_tool", resource is Tool);
forbid (principal, action == Action::"call_tool", resource == Tool::"delete_account");
@approval("required")
forbid (principal, action == Action::"call_tool", resource)
when { resource.category == "identity" } unless { context.human_approved };
"""
USAGE: Any = {
    "input_tokens": 1_200,
    "output_tokens": 60,
    "total_tokens": 1_260,
    "input_token_details": {"cache_read": 1_000},
}


class FakeModel(GenericFakeChatModel):
    """Stands in for ChatOpenAI & co.: replays tool calls with their usage."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def step(name: str, **args: Any) -> AIMessage:
    call = {"name": name, "args": args, "id": f"call-{name}"}
    meta = {"model_name": "gpt-4o-mini", "model_provider": "openai"}
    return AIMessage(content="", tool_calls=[call], usage_metadata=USAGE, response_metadata=meta)


@tool
def kb_search(query: str) -> str:
    """Search the IT knowledge base."""
    return "Accounts unlock after a password reset."


@tool
def reset_password(user: str) -> str:
    """Reset a user's password."""
    return f"password of {user} reset"


@tool
def delete_account(user: str) -> str:
    """Delete a user's account."""
    raise AssertionError("never runs: the policy forbids it")


def approve_first_checkpoint(client: AgentClient) -> None:
    while not (pending := client.approvals()):
        time.sleep(0.05)
    client.decide(pending[0].id, ApprovalDecision(decision="approve", operator="ops"))


def main() -> None:
    rt = Runtime(
        "helpdesk",
        "1.0",
        token="example-token",
        policy=POLICY,
        tools=[ToolSpec("reset_password", category="identity")],
    )
    url = rt.start()
    client = AgentClient(url, "example-token")
    threading.Thread(target=approve_first_checkpoint, args=(client,), daemon=True).start()
    model = FakeModel(
        messages=iter(
            [
                step("kb_search", query="locked account"),
                step("reset_password", user="bob"),
                step("delete_account", user="bob"),
            ]
        )
    )
    agent = create_react_agent(model, [kb_search, reset_password, delete_account])
    handler = AgentOpsCallbackHandler(runtime=rt, workflow="password-reset", principal="bob")
    try:
        agent.invoke({"messages": [("user", "I am locked out")]}, {"callbacks": [handler]})
    except PolicyDenied as refused:
        print(f"refused: {refused}")
    [summary] = client.sessions()
    detail = client.session(summary.id)
    for span in detail.spans:
        decision = span.policy.decision if span.policy else ""
        print(f"{span.kind:5} {span.name:22} {span.outcome:7} {decision}")
    print(f"cost ${detail.cost_usd:.6f}, cached input tokens {detail.tokens_cache_read}")
    client.close()
    rt.stop()


if __name__ == "__main__":
    main()
