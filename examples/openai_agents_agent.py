"""An OpenAI Agents SDK agent governed by agentops, offline (the SDK's ScriptedModel).

    python examples/openai_agents_agent.py

Each SDK trace becomes a session (AgentOpsTracing); the run hooks guard every function
tool before its body runs. Here an operator kills the session from the endpoint while the
model is answering: the next tool never runs and `SessionKilled` reaches the caller.
"""

from __future__ import annotations

import asyncio

from agents import Agent, Runner, function_tool, set_trace_processors
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentops_console.integrations.openai_agents import AgentOpsHooks, AgentOpsTracing
from agentops_console.protocol.client import AgentClient
from agentops_console.runtime import Runtime, SessionKilled

USAGE = Usage(
    requests=1,
    input_tokens=1_200,
    output_tokens=60,
    total_tokens=1_260,
    input_tokens_details=InputTokensDetails(cached_tokens=1_000, cache_write_tokens=0),
    output_tokens_details=OutputTokensDetails(reasoning_tokens=20),
)


@function_tool
def kb_search(query: str) -> str:
    """Search the IT knowledge base."""
    return "Accounts unlock after a password reset."


async def main() -> None:
    rt = Runtime("helpdesk", "1.0", token="example-token")
    client = AgentClient(rt.start(), "example-token")
    tracing = AgentOpsTracing(rt, workflow="password-reset", principal="bob")
    set_trace_processors([tracing])  # or agents.add_trace_processor(tracing) beside OpenAI's

    def operator_kills(call: ModelCall) -> ModelStep:
        [running] = client.sessions(status="active")
        client.kill(running.id, "ops", "runaway")
        again = function_call("kb_search", {"query": "again"}, call_id="c2")
        return ModelStep(output=[again], usage=USAGE)

    model = ScriptedModel(
        [
            ModelStep(
                output=[function_call("kb_search", {"query": "x"}, call_id="c1")], usage=USAGE
            ),
            ModelStep.respond(operator_kills),
            ModelStep(output=[assistant_message("done")], usage=USAGE),
        ]
    )
    agent = Agent(name="helpdesk", model=model, tools=[kb_search])
    try:
        await Runner.run(
            agent, "I am locked out", hooks=AgentOpsHooks(tracing, model="gpt-4o-mini")
        )
    except SessionKilled as killed:
        print(f"stopped: {killed}")
    [summary] = client.sessions()
    detail = client.session(summary.id)
    for span in detail.spans:
        print(f"{span.kind:5} {span.name:18} {span.outcome}")
    print(
        f"{detail.status}, cost ${detail.cost_usd:.6f}, reasoning tokens {detail.tokens_reasoning}"
    )
    client.close()
    rt.stop()


if __name__ == "__main__":
    asyncio.run(main())
