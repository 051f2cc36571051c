"""A pydantic-ai agent governed by agentops with no adapter, offline (FunctionModel).

    python examples/pydantic_ai_agent.py

pydantic-ai's OpenTelemetry instrumentation opens each `execute_tool` span before the tool
runs, so the runtime's span processor on the agent's TracerProvider is all it takes: here
the policy forbids `delete_account`, and `PolicyDenied` leaves `run_sync`.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent
from pydantic_ai.capabilities.instrumentation import Instrumentation
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.usage import RequestUsage

from agentops_console.runtime import PolicyDenied, Runtime

POLICY = """
permit (principal, action == Action::"call_tool", resource is Tool);
forbid (principal, action == Action::"call_tool", resource == Tool::"delete_account");
"""


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for a real model: search first, then try to delete the account."""
    usage = RequestUsage(input_tokens=1_200, output_tokens=60)
    tool = "kb_search" if len(messages) == 1 else "delete_account"
    args = {"query": "locked"} if tool == "kb_search" else {"user": "bob"}
    if len(messages) > 3:
        return ModelResponse(parts=[TextPart("done")], usage=usage, model_name="gpt-4o-mini")
    call = ToolCallPart(tool, args, tool_call_id=f"call-{tool}")
    return ModelResponse(parts=[call], usage=usage, model_name="gpt-4o-mini")


def main() -> None:
    rt = Runtime("helpdesk", "1.0", token="example-token", policy=POLICY)
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())  # the one line agentops needs
    settings = InstrumentationSettings(tracer_provider=provider)
    agent = Agent(
        FunctionModel(model, model_name="gpt-4o-mini"),
        name="password-reset",
        capabilities=[Instrumentation(settings=settings)],
    )

    @agent.tool_plain
    def kb_search(query: str) -> str:
        """Search the IT knowledge base."""
        return "Accounts unlock after a password reset."

    @agent.tool_plain
    def delete_account(user: str) -> str:
        """Delete a user's account."""
        raise AssertionError("never runs: the policy forbids it")

    try:
        agent.run_sync("I am locked out")
    except PolicyDenied as refused:
        print(f"refused: {refused}")
    provider.shutdown()
    [summary] = rt.session_summaries()
    detail = rt.session_detail(summary.id)
    assert detail is not None
    for span in detail.spans:
        print(f"{span.kind:5} {span.name:18} {span.outcome}")
    print(f"{detail.workflow}: {detail.status}, cost ${detail.cost_usd:.6f}")
    rt.stop()


if __name__ == "__main__":
    main()
