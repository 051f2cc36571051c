"""Explicit-API sessions exported as GenAI spans, with the real OTel SDK and its in-memory
exporter; no loops through the runtime's own SpanProcessor or its OTLP endpoint."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentops_console.protocol.client import AgentClient
from agentops_console.protocol.records import build_record
from agentops_console.runtime import PolicyDenied, Runtime, ToolSpec

TOKEN = "export-test-token"
POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
TOOLS = [
    ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb"),
    ToolSpec("crm_update", customer_facing=True),
]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp
    tp.shutdown()


def make_runtime(provider: TracerProvider | None) -> Runtime:
    rt = Runtime(
        "it-support",
        "1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=TOOLS,
        tracer_provider=provider,
    )
    rt.start(host="127.0.0.1", port=0)
    return rt


@pytest.fixture
def rt(provider: TracerProvider) -> Iterator[Runtime]:
    runtime = make_runtime(provider)
    yield runtime
    runtime.stop()


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def one_session(rt: Runtime) -> str:
    with rt.session("password-reset", "user-1042", session_id="s-exp") as s:
        s.input("locked out")
        s.llm_call("gpt-4o-mini", 1200, 300, provider="openai", latency_ms=50)
        with s.tool_call("kb_search", {"query": "locked account"}) as call:
            time.sleep(0.01)
            call.output = {"hits": 3}
        try:
            with s.tool_call("crm_update", {"ticket": 7}):
                pass
        except PolicyDenied:
            pass
        s.outcome("resolved", "link sent")
    return s.id


def test_a_session_becomes_genai_spans(rt: Runtime, exporter: InMemorySpanExporter) -> None:
    one_session(rt)
    spans = exporter.get_finished_spans()
    named = by_name(spans)
    assert set(named) == {
        "invoke_agent it-support",
        "chat gpt-4o-mini",
        "execute_tool kb_search",
        "execute_tool crm_update",
    }
    root = named["invoke_agent it-support"]
    assert root.parent is None and root.kind == SpanKind.INTERNAL
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert all(
        s.parent is not None and s.parent.span_id == root.context.span_id
        for s in spans
        if s is not root
    )
    r = attrs(root)
    assert r["gen_ai.operation.name"] == "invoke_agent" and r["gen_ai.agent.name"] == "it-support"
    assert r["gen_ai.conversation.id"] == "s-exp" and r["agentops.workflow"] == "password-reset"
    assert r["agentops.outcome"] == "resolved" and r["agentops.outcome.reason"] == "link sent"
    assert r["agentops.input"] == "locked out" and r["agentops.cost_usd"] > 0
    assert "policy_denied" in r["agentops.flags"]
    assert r["gen_ai.usage.input_tokens"] == 1200

    chat = attrs(named["chat gpt-4o-mini"])
    assert named["chat gpt-4o-mini"].kind == SpanKind.CLIENT
    assert (chat["gen_ai.operation.name"], chat["gen_ai.request.model"]) == ("chat", "gpt-4o-mini")
    assert chat["gen_ai.provider.name"] == "openai"
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (1200, 300)
    assert chat["agentops.cost_usd"] > 0 and chat["gen_ai.conversation.id"] == "s-exp"

    tool = attrs(named["execute_tool kb_search"])
    assert tool["gen_ai.tool.name"] == "kb_search"
    assert tool["gen_ai.tool.call.arguments"] == '{"query": "locked account"}'
    assert tool["gen_ai.tool.call.result"] == '{"hits": 3}'
    assert tool["agentops.policy.decision"] == "allow"

    denied = named["execute_tool crm_update"]
    assert attrs(denied)["agentops.policy.decision"] == "deny"
    assert denied.status.status_code == StatusCode.ERROR and attrs(denied)["error.type"] == "denied"


def test_spans_keep_the_real_times(rt: Runtime, exporter: InMemorySpanExporter) -> None:
    session_id = one_session(rt)
    session = rt.get(session_id)
    assert session is not None
    named = by_name(exporter.get_finished_spans())
    kept = {s.name: s for s in session.spans}
    tool = named["execute_tool kb_search"]
    ended = kept["kb_search"].ended
    assert ended is not None and session.ended is not None
    assert tool.start_time == int(kept["kb_search"].started * 1e9)
    assert tool.end_time == int(ended * 1e9)
    assert tool.end_time - tool.start_time >= 10_000_000
    chat = named["chat gpt-4o-mini"]
    assert chat.start_time is not None and chat.end_time is not None
    assert chat.end_time - chat.start_time == pytest.approx(50_000_000, abs=1_000)
    root = named["invoke_agent it-support"]
    assert root.start_time == int(session.started * 1e9)
    assert root.end_time == int(session.ended * 1e9)


def test_the_trace_id_reaches_the_detail_and_the_record(
    rt: Runtime, exporter: InMemorySpanExporter
) -> None:
    session_id = one_session(rt)
    root = by_name(exporter.get_finished_spans())["invoke_agent it-support"]
    assert rt.url is not None
    with AgentClient(rt.url, TOKEN) as client:
        detail = client.session(session_id)
        record = build_record(detail, client.agent())
    assert detail.trace_id == f"{root.context.trace_id:032x}" == record.trace_id


def test_export_off_emits_nothing_and_keeps_no_trace(exporter: InMemorySpanExporter) -> None:
    rt = make_runtime(None)
    try:
        session_id = one_session(rt)
        session = rt.get(session_id)
        assert session is not None and session.trace_id is None and rt.exporter is None
    finally:
        rt.stop()
    assert exporter.get_finished_spans() == ()


def test_a_provider_feeding_the_processor_does_not_loop(exporter: InMemorySpanExporter) -> None:
    """The export provider also carries rt.span_processor(): the runtime's own spans pass
    it without becoming sessions or guarded calls again."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rt = make_runtime(provider)
    provider.add_span_processor(rt.span_processor())
    try:
        one_session(rt)
        assert [s.id for s in rt.active_sessions()] == []
        assert [s.id for s in rt.session_summaries()] == ["s-exp"]
        assert rt.stats.tool_calls_total == 2 and rt.stats.otel_spans_total == 0
    finally:
        rt.stop()
        provider.shutdown()
    assert len(exporter.get_finished_spans()) == 4


def test_the_endpoint_ignores_its_own_export_sent_back_over_otlp() -> None:
    """A collector that routes the export back to the agent's /v1/traces makes no session."""
    provider = TracerProvider()
    rt = make_runtime(provider)
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{rt.url}/v1/traces", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        )
    )
    try:
        one_session(rt)
        summaries = httpx.get(
            f"{rt.url}/v1/sessions", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
    finally:
        rt.stop()
        provider.shutdown()
    assert [s["id"] for s in summaries] == ["s-exp"]


def test_otel_sessions_are_not_emitted_again(rt: Runtime, exporter: InMemorySpanExporter) -> None:
    framework = TracerProvider()
    framework.add_span_processor(rt.span_processor())
    tracer = framework.get_tracer("framework")
    with (
        tracer.start_as_current_span(
            "invoke_agent helper",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c-1"},
        ),
        tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
        ),
    ):
        pass
    framework.shutdown()
    session = rt.get("c-1")
    assert session is not None and session.ended is not None and len(session.spans) == 1
    assert exporter.get_finished_spans() == ()


class Broken(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("collector down")


def test_a_broken_export_never_fails_the_agent() -> None:
    provider = TracerProvider()
    provider.add_span_processor(Broken())
    rt = make_runtime(provider)
    try:
        one_session(rt)
        metrics = httpx.get(f"{rt.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        session = rt.get("s-exp")
        assert session is not None and session.outcome_value == "resolved"
    finally:
        rt.stop()
    assert rt.exporter is not None and rt.exporter.failures == 4
    assert "agentops_otel_export_failures_total 4.0" in metrics.text


GLOBAL_PROVIDER_AGENT = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from agentops_console.runtime import Runtime, RuntimeConfig

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
config = RuntimeConfig.from_dict({"record": {"export_otel": True}})
rt = Runtime("it-support", "1.4.0", token="t" * 20, config=config)
with rt.session("w", "p") as s:
    s.llm_call("gpt-4o-mini", 1, 1)
print(sorted(span.name for span in exporter.get_finished_spans()))
"""


def test_export_otel_in_the_config_uses_the_global_provider() -> None:
    """In a child process: the global provider is set once per process."""
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_AGENT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "['chat gpt-4o-mini', 'invoke_agent it-support']"


def test_calls_nest_under_the_call_they_name_as_parent(
    rt: Runtime, exporter: InMemorySpanExporter
) -> None:
    """A recorded parent_id becomes the exported span's parent, whether the parent ended
    first (a tool call the LLM asked for) or last (an LLM call made inside a tool call)."""
    with rt.session("password-reset", "user-1042", session_id="s-nest") as s:
        asked = s.llm_call("gpt-4o-mini", 100, 10, provider="openai")
        with s.tool_call("kb_search", {"query": "vpn"}, parent_id=asked.id) as outer:
            inner = s.llm_call("gpt-4o", 50, 5, provider="openai", parent_id=outer.span.id)
            with s.tool_call("kb_search", {"query": "deeper"}, parent_id=inner.id) as deepest:
                deepest.output = {"hits": 0}
            outer.output = {"hits": 1}
        s.llm_call("gpt-4o-mini", 1, 1, provider="openai", parent_id="no-such-span")
    spans = exporter.get_finished_spans()
    assert len(spans) == 6  # nothing dropped, nothing twice
    root = by_name(spans)["invoke_agent it-support"]

    def of(model_or_tool: str, query: str | None = None) -> ReadableSpan:
        return next(
            sp
            for sp in spans
            if model_or_tool in sp.name
            and (query is None or query in str(attrs(sp).get("gen_ai.tool.call.arguments")))
        )

    first_chat = next(sp for sp in spans if attrs(sp).get("gen_ai.usage.input_tokens") == 100)
    outer_span = of("kb_search", "vpn")
    inner_chat = next(sp for sp in spans if attrs(sp).get("gen_ai.request.model") == "gpt-4o")
    deepest_span = of("kb_search", "deeper")
    orphan = next(sp for sp in spans if attrs(sp).get("gen_ai.usage.input_tokens") == 1)

    def parent_of(span: ReadableSpan) -> int | None:
        return span.parent.span_id if span.parent is not None else None

    assert parent_of(first_chat) == root.context.span_id
    assert parent_of(outer_span) == first_chat.context.span_id  # parent ended first
    assert parent_of(inner_chat) == outer_span.context.span_id  # parent ended last
    assert parent_of(deepest_span) == inner_chat.context.span_id  # two levels waiting
    assert parent_of(orphan) == root.context.span_id  # an unknown parent: the root
    assert {sp.context.trace_id for sp in spans} == {root.context.trace_id}
