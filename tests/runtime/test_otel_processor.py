"""Zero-code path: the real OTel SDK with the runtime's SpanProcessor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode, Tracer

from agentops_console.runtime import PolicyDenied, Runtime, SessionKilled, ToolSpec

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(
        "helper",
        "2.0",
        tenant="acme",
        policy=POLICY,
        tools=[
            ToolSpec("reset_password", category="identity"),
            ToolSpec("export_data", category="export"),
        ],
    )
    yield runtime
    runtime.stop()


@pytest.fixture
def tracer(rt: Runtime) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    yield provider.get_tracer("agent-framework")
    provider.shutdown()


def agent_span(tracer: Tracer, conversation: str) -> object:
    return tracer.start_as_current_span(
        "invoke_agent helper",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.conversation.id": conversation,
            "gen_ai.agent.name": "helper",
        },
    )


def chat(tracer: Tracer, tokens_in: int, tokens_out: int) -> None:
    with tracer.start_as_current_span(
        "chat gpt-4o-mini",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
        },
    ) as span:
        span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
        span.set_attribute("gen_ai.usage.output_tokens", tokens_out)


def tool(tracer: Tracer, name: str, arguments: dict[str, object]) -> object:
    return tracer.start_as_current_span(
        f"execute_tool {name}",
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.arguments": json.dumps(arguments),
        },
    )


def test_instrumented_flow_becomes_a_session_without_double_counting(
    rt: Runtime, tracer: Tracer
) -> None:
    with agent_span(tracer, "conv-1") as root:  # type: ignore[attr-defined]
        chat(tracer, 1000, 100)
        with tool(tracer, "kb_search", {"query": "vpn"}):  # type: ignore[attr-defined]
            pass
        chat(tracer, 1500, 200)
        root.set_attribute("gen_ai.usage.input_tokens", 2500)  # the aggregate
        root.set_attribute("gen_ai.usage.output_tokens", 300)
    detail = rt.session_detail("conv-1")
    assert detail is not None and detail.source == "otel" and detail.workflow == "helper"
    assert detail.tokens_in == 2500 and detail.tokens_out == 300  # not 5000 / 600
    assert detail.loops == 2 and detail.tool_calls == 1
    assert detail.status == "completed"
    assert [s.kind for s in detail.spans] == ["llm", "tool", "llm"]
    assert detail.spans[1].arguments == {"query": "vpn"}
    assert detail.cost_usd > 0


def test_aggregate_only_usage_is_counted_once(rt: Runtime, tracer: Tracer) -> None:
    with agent_span(tracer, "conv-agg") as root:  # type: ignore[attr-defined]
        root.set_attribute("gen_ai.usage.input_tokens", 800)
        root.set_attribute("gen_ai.usage.output_tokens", 80)
    detail = rt.session_detail("conv-agg")
    assert detail is not None and detail.tokens_in == 800 and detail.loops == 1


def test_on_start_enforces_kill_policy_and_disable(rt: Runtime, tracer: Tracer) -> None:
    ran: list[str] = []
    with pytest.raises(PolicyDenied), agent_span(tracer, "conv-x"):
        with tool(tracer, "export_data", {"region": "eu-west-1", "tenant": "globex"}):
            ran.append("export")
    assert ran == []
    with pytest.raises(SessionKilled), agent_span(tracer, "conv-k"):
        rt.kill("conv-k", "oncall", "test")
        with tool(tracer, "kb_search", {"query": "x"}):
            ran.append("after kill")
    assert ran == []
    rt.disable_workflow("helper", "oncall", "misuse")
    with pytest.raises(SessionKilled), agent_span(tracer, "conv-d"):
        ran.append("new session")
    assert ran == []
    detail = rt.session_detail("conv-x")
    assert detail is not None and detail.unauthorized_attempts == 1


def test_tool_error_status_and_non_genai_spans(rt: Runtime, tracer: Tracer) -> None:
    with agent_span(tracer, "conv-e"):
        with tracer.start_as_current_span("GET /health"):  # not GenAI: ignored
            pass
        with tool(tracer, "kb_search", {"query": "x"}) as span:  # type: ignore[attr-defined]
            span.set_status(Status(StatusCode.ERROR, "backend down"))
    detail = rt.session_detail("conv-e")
    assert detail is not None and len(detail.spans) == 1
    assert detail.spans[0].outcome == "error" and "backend down" in (detail.spans[0].error or "")


def test_otlp_ingest_flags_what_it_cannot_stop(rt: Runtime) -> None:
    from agentops_console.runtime.genai_span import GenAISpan

    spans = [
        GenAISpan(
            "a" * 32,
            "2" * 16,
            "1" * 16,
            "execute_tool export_data",
            10,
            20,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "export_data",
                "gen_ai.conversation.id": "c",
                "gen_ai.tool.call.arguments": '{"region": "eu-west-1", "tenant": "globex"}',
            },
        ),
        GenAISpan(
            "a" * 32,
            "1" * 16,
            None,
            "invoke_agent",
            5,
            30,
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c"},
        ),
        GenAISpan("a" * 32, "3" * 16, None, "unrelated", 5, 30, {}),
    ]
    assert rt.ingest_spans(spans) == 2
    detail = rt.session_detail("c")
    assert detail is not None and detail.status == "completed"
    assert detail.spans[0].policy is not None and detail.spans[0].policy.decision == "deny"
    assert [f.kind for f in detail.flags] == ["policy_denied"]
    assert "ran without enforcement" in detail.flags[0].message


def test_each_sdk_span_is_converted_once_and_nothing_is_left_open(
    rt: Runtime, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span converted at its start (an agent run) is not converted again at its end: the
    processor keeps the converted span and adds its end, final attributes and status. A
    GenAI tool span is never converted: it is guarded straight from the SDK span, and its
    end finishes the call kept for it. A tool refused at its start (the SDK never ends it)
    leaves nothing behind."""
    from agentops_console.runtime import otel

    converted: list[str] = []
    real = otel._converted  # what the processor converts with

    def counting(span: Any, *args: Any, **kwargs: Any) -> Any:
        converted.append(span.name)
        return real(span, *args, **kwargs)

    monkeypatch.setattr(otel, "_converted", counting)
    with agent_span(tracer, "conv-once"):  # type: ignore[attr-defined]
        chat(tracer, 100, 10)
        with tool(tracer, "kb_search", {"query": "vpn"}) as span:  # type: ignore[attr-defined]
            span.set_attribute("gen_ai.tool.call.result", '"found"')  # set after the start
    assert sorted(converted) == ["chat gpt-4o-mini", "invoke_agent helper"]
    detail = rt.session_detail("conv-once")
    assert detail is not None and detail.status == "completed"
    assert [s.kind for s in detail.spans] == ["llm", "tool"]
    assert detail.spans[1].output == "found"
    with pytest.raises(PolicyDenied), agent_span(tracer, "conv-refused"):
        with tool(tracer, "export_data", {"region": "eu-west-1", "tenant": "globex"}):
            pass
    processor = next(
        p
        for p in tracer.span_processor._span_processors  # type: ignore[attr-defined]
        if isinstance(p, otel.GenAISpanProcessor)
    )
    assert len(processor._started) == 0
