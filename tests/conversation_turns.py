"""One run of an OTel conversation through a real SDK tracer (the runtime's span processor
on its provider): shared by the runtime's, the records' and the watcher's conversation tests,
and its GenAI span attributes by bench_runtime's OTel throughput row."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from opentelemetry.util.types import AttributeValue

from agentops_console.runtime import Runtime, SessionKilled

#: A GenAI chat span: gpt-4o-mini, 100 tokens in, 10 out.
CHAT_ATTRIBUTES: Mapping[str, AttributeValue] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 10,
}


def agent_attributes(conversation: str, agent: str) -> dict[str, AttributeValue]:
    """A GenAI agent span's: the run of `agent` in `conversation`."""
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.conversation.id": conversation,
        "gen_ai.agent.name": agent,
    }


def turn(
    tracer: Tracer,
    conversation: str,
    tool: str = "kb_search",
    args: Mapping[str, object] | None = None,
    *,
    agent: str = "helper",
    before_tool: Callable[[], object] | None = None,
) -> bool:
    """A new trace: the agent span around a chat (100 tokens in, 10 out) and a tool span
    (arguments `args`, else `{"query": tool}`); `before_tool` runs between the two (a kill,
    say). True when the tool ran, False when the guard refused it as killed."""
    with tracer.start_as_current_span(
        f"invoke_agent {agent}", attributes=agent_attributes(conversation, agent)
    ):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=CHAT_ATTRIBUTES):
            pass
        if before_tool is not None:
            before_tool()
        try:
            with tracer.start_as_current_span(
                f"execute_tool {tool}",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.arguments": json.dumps(args or {"query": tool}),
                },
            ):
                return True
        except SessionKilled:
            return False


@contextmanager
def traced(runtime: Runtime) -> Iterator[Tracer]:
    """A tracer whose provider feeds `runtime`'s span processor; on exit the provider is
    shut down and the runtime stopped."""
    provider = TracerProvider()
    provider.add_span_processor(runtime.span_processor())
    try:
        yield provider.get_tracer("agent-framework")
    finally:
        provider.shutdown()
        runtime.stop()
