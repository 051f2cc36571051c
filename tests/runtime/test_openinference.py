"""OpenInference spans through the real OTel SDK and through OTLP: sessions, tokens, cost,
enforcement at a TOOL span's start, and no double counting.

Spans are built the way the instrumentors build them. `openinference-instrumentation-
langchain` (0.1.80) starts every span with no attributes (`tracer.start_span(run.name,
context=parent)`) and sets all of them, the span kind included, when the run ends; the
attribute values below are the ones it set for a LangGraph ReAct agent (captured with its
in-memory exporter). Instrumentors that know the kind at start (the `@tracer.tool` /
`@tracer.agent` decorators of `openinference-instrumentation`, and the frameworks built on
them) pass the kind, `tool.name` and `input.value` to `start_span`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Tracer

from agentops_console.runtime import PolicyDenied, Runtime, RuntimeConfig, SessionKilled, ToolSpec
from agentops_console.runtime.pricing import TokenUsage

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOKEN = "oi-test-token"
MODEL = "gpt-4o-mini"
PROMPT, COMPLETION, CACHED, REASONING = 1200, 80, 1000, 30
LLM_USAGE = {
    "llm.token_count.prompt": PROMPT,
    "llm.token_count.completion": COMPLETION,
    "llm.token_count.total": PROMPT + COMPLETION,
    "llm.token_count.prompt_details.cache_read": CACHED,
    "llm.token_count.completion_details.reasoning": REASONING,
}


def _runtime(**kwargs: Any) -> Runtime:
    return Runtime(
        "helper",
        "2.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=[ToolSpec("export_data", category="export")],
        **kwargs,
    )


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = _runtime()
    yield runtime
    runtime.stop()


@pytest.fixture
def tracer(rt: Runtime) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    yield provider.get_tracer("openinference.instrumentation.langchain")
    provider.shutdown()


@contextmanager
def lc_span(
    tracer: Tracer, name: str, parent: Span | None, attributes: dict[str, Any]
) -> Iterator[Span]:
    """A span as openinference-instrumentation-langchain makes it: attributes at the end."""
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(name, context=context)
    assert isinstance(span, Span)
    try:
        yield span
    finally:
        span.set_attributes(attributes)
        span.end()


def _metadata(node: str, step: int, extra: dict[str, Any]) -> str:
    return json.dumps(
        {"langgraph_step": step, "langgraph_node": node, "ls_integration": "langgraph", **extra}
    )


def langgraph_run(
    tracer: Tracer,
    tools: list[tuple[str, str]],
    *,
    parent: Span | None = None,
    extra: dict[str, Any] | None = None,
    aggregate: bool = True,
) -> None:
    """A LangGraph ReAct run: CHAIN "LangGraph" -> AGENT "agent" -> CHAIN "RunnableSequence"
    -> LLM "ChatOpenAI", then CHAIN "tools" -> TOOL, once per tool, then a final answer.
    `extra` is what every span carries from the run's config (session.id, user.id, ...);
    with `aggregate`, the chains report the summed usage of their LLM calls too."""
    common = dict(extra or {})
    meta = json.loads(common.pop("metadata", "{}"))
    rounds = [*tools, None]
    with lc_span(
        tracer,
        "LangGraph",
        parent,
        {
            "openinference.span.kind": "CHAIN",
            "input.value": json.dumps({"messages": [["user", "I am locked out"]]}),
            "input.mime_type": "application/json",
            "output.value": json.dumps({"messages": [{"type": "ai", "content": "done"}]}),
            "output.mime_type": "application/json",
            "metadata": json.dumps({"ls_integration": "langgraph", **meta}),
            **common,
            **(
                {k: v * len(rounds) for k, v in LLM_USAGE.items()} if aggregate else {}
            ),  # a framework that sums usage on the run: not counted again
        },
    ) as root:
        for step, call in enumerate(rounds):
            with lc_span(
                tracer,
                "agent",
                root,
                {
                    "openinference.span.kind": "AGENT",
                    "metadata": _metadata("agent", 2 * step + 1, meta),
                    **common,
                },
            ) as agent:
                with lc_span(
                    tracer,
                    "RunnableSequence",
                    agent,
                    {
                        "openinference.span.kind": "CHAIN",
                        **common,
                        **(LLM_USAGE if aggregate else {}),
                    },
                ) as sequence:
                    output: dict[str, Any] = {"role": "assistant"}
                    if call is not None:
                        output = {
                            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": (
                                call[0]
                            ),
                            "llm.output_messages.0.message.tool_calls.0.tool_call.function"
                            ".arguments": call[1],
                        }
                    with lc_span(
                        tracer,
                        "ChatOpenAI",
                        sequence,
                        {
                            "openinference.span.kind": "LLM",
                            "llm.model_name": MODEL,
                            "llm.provider": "openai",
                            "llm.system": "openai",
                            "llm.invocation_parameters": json.dumps({"model": MODEL}),
                            "metadata": _metadata(
                                "agent", 2 * step + 1, {"ls_model_name": MODEL, **meta}
                            ),
                            **LLM_USAGE,
                            **output,
                            **common,
                        },
                    ):
                        pass
            if call is None:
                break
            with lc_span(
                tracer,
                "tools",
                root,
                {"openinference.span.kind": "CHAIN", **common},
            ) as node:
                name, arguments = call
                with lc_span(
                    tracer,
                    name,
                    node,
                    {
                        "openinference.span.kind": "TOOL",
                        "tool.name": name,
                        "tool.description": f"{name} tool",
                        "input.value": arguments,
                        "input.mime_type": "application/json",
                        "output.value": json.dumps({"type": "tool", "content": "ok"}),
                        "output.mime_type": "application/json",
                        "metadata": _metadata("tools", 2 * step + 2, meta),
                        **common,
                    },
                ):
                    pass


def _cost(calls: int) -> float:
    from agentops_console.runtime.pricing import Pricer

    usage = TokenUsage(PROMPT, COMPLETION, CACHED, 0, REASONING)
    return Pricer().price(MODEL, usage, "openai").total * calls


@contextmanager
def oi_tool(tracer: Tracer, name: str, arguments: dict[str, Any]) -> Iterator[Span]:
    """A TOOL span whose kind is known at start (OITracer's `@tracer.tool`)."""
    with tracer.start_as_current_span(
        name,
        attributes={
            "openinference.span.kind": "TOOL",
            "tool.name": name,
            "tool.parameters": json.dumps({"type": "object", "title": name}),
            "input.value": json.dumps(arguments),
            "input.mime_type": "application/json",
        },
    ) as span:
        assert isinstance(span, Span)
        yield span


@contextmanager
def oi_agent(tracer: Tracer, name: str, session: str) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        attributes={
            "openinference.span.kind": "AGENT",
            "session.id": session,
            "user.id": "user-7",
        },
    ) as span:
        assert isinstance(span, Span)
        yield span


# -- mapping -----------------------------------------------------------------------------


def test_langgraph_trace_is_one_session_with_its_tools_tokens_and_cost(
    rt: Runtime, tracer: Tracer
) -> None:
    langgraph_run(
        tracer,
        [("kb_search", '{"query": "locked out"}'), ("reset_password", '{"user": "u-1"}')],
        extra={"user.id": "user-42"},
    )
    [summary] = rt.session_summaries()
    detail = rt.session_detail(summary.id)
    assert detail is not None
    assert detail.source == "otel" and detail.workflow == "LangGraph"
    assert detail.principal == "user-42" and detail.status == "completed"
    assert len(detail.id) == 32  # no session.id: the trace is the session
    tools = [s for s in detail.spans if s.kind == "tool"]
    assert [(s.tool, s.arguments) for s in tools] == [
        ("kb_search", {"query": "locked out"}),
        ("reset_password", {"user": "u-1"}),
    ]
    assert tools[0].output == {"type": "tool", "content": "ok"}
    metadata = tools[0].attributes["metadata"]
    assert isinstance(metadata, dict) and metadata["langgraph_node"] == "tools"
    assert detail.tool_calls == 2 and detail.loops == 3
    # three LLM calls, counted once each: not again from the chains' or the root's sums
    assert (detail.tokens_in, detail.tokens_out) == (3 * PROMPT, 3 * COMPLETION)
    assert detail.tokens_cache_read == 3 * CACHED and detail.tokens_reasoning == 3 * REASONING
    assert detail.cost_usd == pytest.approx(_cost(3), abs=1e-9) and detail.cost_usd > 0
    llm = next(s for s in detail.spans if s.kind == "llm")
    assert (llm.model, llm.provider, llm.name) == (MODEL, "openai", "ChatOpenAI")
    assert detail.input == json.dumps(
        {"messages": [["user", "I am locked out"]]}, separators=(",", ":")
    )
    assert detail.output is not None and "done" in detail.output


def test_session_id_groups_two_traces_into_one_session(rt: Runtime, tracer: Tracer) -> None:
    thread = {"session.id": "thread-7", "metadata": json.dumps({"thread_id": "thread-7"})}
    langgraph_run(tracer, [("kb_search", '{"query": "vpn"}')], extra=thread)
    langgraph_run(tracer, [("kb_search", '{"query": "wifi"}')], extra=thread)
    assert [s.id for s in rt.session_summaries()] == ["thread-7"]
    detail = rt.session_detail("thread-7")
    assert detail is not None and detail.workflow == "LangGraph"
    assert [s.arguments for s in detail.spans if s.kind == "tool"] == [
        {"query": "vpn"},
        {"query": "wifi"},
    ]
    assert detail.tokens_in == 4 * PROMPT and detail.cost_usd == pytest.approx(_cost(4))


def test_an_http_root_around_the_run_ends_the_session_named_by_the_outermost_chain(
    rt: Runtime, tracer: Tracer
) -> None:
    with tracer.start_as_current_span("POST /chat") as http:
        assert isinstance(http, Span)
        langgraph_run(tracer, [("kb_search", '{"query": "x"}')], parent=http)
        [running] = rt.session_summaries()
        assert running.status == "running"  # the run is inside the request
    [summary] = rt.session_summaries()
    assert summary.status == "completed" and summary.workflow == "LangGraph"


def test_usage_on_an_llm_span_and_on_its_provider_child_is_counted_once(
    rt: Runtime, tracer: Tracer
) -> None:
    """LangChain's LLM span around the OpenAI SDK instrumentor's LLM span: one call."""
    with lc_span(tracer, "LangGraph", None, {"openinference.span.kind": "CHAIN"}) as root:
        with lc_span(
            tracer,
            "ChatOpenAI",
            root,
            {"openinference.span.kind": "LLM", "llm.model_name": MODEL, **LLM_USAGE},
        ) as wrapper:
            with lc_span(
                tracer,
                "ChatCompletion",
                wrapper,
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": MODEL,
                    "llm.provider": "openai",
                    **LLM_USAGE,
                },
            ):
                pass
    [summary] = rt.session_summaries()
    assert (summary.loops, summary.tokens_in, summary.tokens_out) == (1, PROMPT, COMPLETION)


def test_a_span_in_both_dialects_is_counted_once(rt: Runtime, tracer: Tracer) -> None:
    """OpenInference with OPENINFERENCE_ENABLE_GENAI_SEMCONV adds the GenAI names."""
    with tracer.start_as_current_span(
        "agent",
        attributes={
            "openinference.span.kind": "AGENT",
            "gen_ai.operation.name": "invoke_agent",
            "session.id": "mixed",
            "gen_ai.conversation.id": "mixed",
            "agent.name": "helper",
            "gen_ai.agent.name": "helper",
        },
    ):
        with tracer.start_as_current_span(
            "ChatOpenAI",
            attributes={
                "openinference.span.kind": "LLM",
                "gen_ai.operation.name": "chat",
                "llm.model_name": MODEL,
                "gen_ai.request.model": MODEL,
                "llm.provider": "openai",
                "gen_ai.provider.name": "openai",
                **LLM_USAGE,
                "gen_ai.usage.input_tokens": PROMPT,
                "gen_ai.usage.output_tokens": COMPLETION,
                "gen_ai.usage.cache_read.input_tokens": CACHED,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "kb_search",
            attributes={
                "openinference.span.kind": "TOOL",
                "gen_ai.operation.name": "execute_tool",
                "tool.name": "kb_search",
                "gen_ai.tool.name": "kb_search",
                "input.value": '{"query": "vpn"}',
                "input.mime_type": "application/json",
                "gen_ai.tool.call.arguments": '{"query": "vpn"}',
            },
        ):
            pass
    detail = rt.session_detail("mixed")
    assert detail is not None and detail.workflow == "helper" and detail.status == "completed"
    assert (detail.loops, detail.tool_calls) == (1, 1)
    assert (detail.tokens_in, detail.tokens_out, detail.tokens_cache_read) == (
        PROMPT,
        COMPLETION,
        CACHED,
    )
    assert [s.kind for s in detail.spans] == ["llm", "tool"]


def test_root_input_and_output_go_through_the_retention_rules_and_the_hook() -> None:
    def redact(kind: str, value: Any, context: Any) -> Any:
        return "[answer hidden]" if kind == "output" else value

    runtime = _runtime(config=RuntimeConfig(keep_inputs=False), redact=redact)
    provider = TracerProvider()
    provider.add_span_processor(runtime.span_processor())
    langgraph_run(provider.get_tracer("lc"), [])
    [summary] = runtime.session_summaries()
    detail = runtime.session_detail(summary.id)
    assert detail is not None and detail.input is None and detail.output == "[answer hidden]"
    provider.shutdown()
    runtime.stop()


def test_metadata_on_spans_is_bounded(rt: Runtime, tracer: Tracer) -> None:
    from agentops_console.runtime.otel import METADATA_KEYS, METADATA_VALUE_CHARS

    metadata = {f"k{i}": "x" * 500 for i in range(100)}  # 50 KB
    with lc_span(tracer, "LangGraph", None, {"openinference.span.kind": "CHAIN"}) as root:
        with lc_span(
            tracer,
            "ChatOpenAI",
            root,
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": MODEL,
                "metadata": json.dumps(metadata),
            },
        ):
            pass
    [summary] = rt.session_summaries()
    detail = rt.session_detail(summary.id)
    assert detail is not None
    kept = detail.spans[0].attributes["metadata"]
    assert isinstance(kept, dict) and len(kept) == METADATA_KEYS
    assert all(len(str(v)) < METADATA_VALUE_CHARS + 40 for v in kept.values())


# -- enforcement -------------------------------------------------------------------------


def test_a_kill_over_http_refuses_the_next_tool_span_at_its_start(
    rt: Runtime, tracer: Tracer
) -> None:
    url = rt.start(port=0)
    ran: list[str] = []
    with pytest.raises(SessionKilled), oi_agent(tracer, "support-agent", "s-kill"):
        with oi_tool(tracer, "kb_search", {"query": "vpn"}):
            ran.append("first")
        answer = httpx.post(
            f"{url}/v1/sessions/s-kill/kill",
            json={"operator": "oncall", "reason": "runaway"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 200, answer.text
        with oi_tool(tracer, "kb_search", {"query": "vpn again"}):
            ran.append("after the kill")
    assert ran == ["first"]
    detail = rt.session_detail("s-kill")
    assert detail is not None and detail.status == "killed"
    assert detail.workflow == "support-agent" and detail.principal == "user-7"
    assert [s.outcome for s in detail.spans] == ["ok", "killed"]


def test_a_cedar_deny_refuses_the_tool_span_at_its_start(rt: Runtime, tracer: Tracer) -> None:
    ran: list[str] = []
    with pytest.raises(PolicyDenied), oi_agent(tracer, "support-agent", "s-deny"):
        with oi_tool(tracer, "export_data", {"region": "eu-west-1", "tenant": "globex"}):
            ran.append("export")
    assert ran == []
    detail = rt.session_detail("s-deny")
    assert detail is not None and detail.unauthorized_attempts == 1
    assert detail.spans[0].policy is not None and detail.spans[0].policy.decision == "deny"


def test_a_langchain_tool_span_cannot_be_refused_at_its_start(rt: Runtime, tracer: Tracer) -> None:
    """The documented limit: its kind comes at its end (and LangChain would swallow the
    exception anyway): the call is recorded with the policy's verdict, not stopped."""
    langgraph_run(tracer, [("export_data", '{"region": "eu-west-1", "tenant": "globex"}')])
    [summary] = rt.session_summaries()
    detail = rt.session_detail(summary.id)
    assert detail is not None and detail.tool_calls == 1
    assert [f.kind for f in detail.flags] == ["policy_denied"]
    # it came through the in-process processor, not OTLP: the flag says why it was unguarded
    message = detail.flags[0].message
    assert "ran without enforcement" in message and "OTLP" not in message
    assert "attributes only when it ended" in message


# -- OTLP --------------------------------------------------------------------------------


def test_the_same_trace_over_otlp_is_recorded_and_flagged_not_enforced(rt: Runtime) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = rt.start(port=0)
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    provider = TracerProvider()  # the agent's own process: no runtime processor here
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("openinference.instrumentation.langchain")
    langgraph_run(
        tracer,
        [
            ("kb_search", '{"query": "locked out"}'),
            ("export_data", '{"region": "eu-west-1", "tenant": "globex"}'),
        ],
        extra={"session.id": "otlp-1", "user.id": "user-42"},
    )
    provider.shutdown()
    detail = rt.session_detail("otlp-1")
    assert detail is not None and detail.status == "completed"
    assert detail.workflow == "LangGraph" and detail.principal == "user-42"
    assert [s.tool for s in detail.spans if s.kind == "tool"] == ["kb_search", "export_data"]
    assert (detail.tokens_in, detail.tokens_out) == (3 * PROMPT, 3 * COMPLETION)
    assert detail.cost_usd == pytest.approx(_cost(3))
    denied = [f for f in detail.flags if f.kind == "policy_denied"]
    assert len(denied) == 1 and "ran without enforcement" in denied[0].message
    assert "reported over OTLP" in denied[0].message
    export = next(s for s in detail.spans if s.tool == "export_data")
    assert export.outcome == "ok" and export.policy is not None
    assert export.policy.decision == "deny"
