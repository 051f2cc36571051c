"""Untrusted telemetry must not grow the runtime's memory without a cap: OTel sessions that
never see their root span, idle sessions when no further span comes, and model names that
key the price cache."""

from __future__ import annotations

import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentops_console.protocol.client import AgentClient
from agentops_console.runtime import Runtime, RuntimeConfig
from agentops_console.runtime.pricing import CACHE_SIZE, MAX_NAME

TOKEN = "memory-bounds-token"


def _runtime(**config: object) -> Runtime:
    return Runtime("helper", "1.0", token=TOKEN, config=RuntimeConfig(**config))  # type: ignore[arg-type]


@pytest.fixture
def served() -> Iterator[tuple[Runtime, AgentClient]]:
    rt = _runtime(otel_sessions_max=1_000)
    url = rt.start(host="127.0.0.1", port=0)
    with AgentClient(url, TOKEN) as client:
        yield rt, client
    rt.stop()


def _metric(text: str, name: str) -> float:
    [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_rootless_spans_through_the_span_processor_stay_under_the_cap(
    served: tuple[Runtime, AgentClient],
) -> None:
    rt, client = served
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    tracer = provider.get_tracer("agent-framework")
    most = 0
    for n in range(50_000):  # every span its own trace, none with an invoke_agent root
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
        ):
            pass
        if n % 500 == 0:
            most = max(most, rt.stats.sessions_active)
    provider.shutdown()
    assert most <= 1_000 and rt.stats.sessions_active == 1_000
    assert rt.stats.sessions_total == 50_000
    metrics = client.metrics()  # GET /metrics over HTTP
    assert _metric(metrics, "agentops_otel_sessions_evicted_total") == 49_000
    assert _metric(metrics, "agentops_sessions_active") == 1_000
    mapper = rt.otel_mapper()  # and the mapper's own tables stay bounded too
    assert len(mapper._live) == 1_000 and len(mapper._traces) <= 10_000


def test_the_least_recently_active_session_is_ended_first() -> None:
    rt = _runtime(otel_sessions_max=2)
    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    tracer = provider.get_tracer("agent-framework")

    def chat(conversation: str) -> None:
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": conversation}
        with tracer.start_as_current_span("chat m", attributes=attributes):
            pass

    chat("a")
    chat("b")
    chat("a")  # a is busy again: b is now the idlest
    chat("c")
    provider.shutdown()
    status = {s.id: s.status for s in rt.session_summaries()}
    assert status == {"a": "running", "c": "running", "b": "completed"}
    assert rt.stats.otel_sessions_evicted == 1


def test_otlp_ingest_over_http_is_capped_too() -> None:
    rt = _runtime(otel_sessions_max=50)
    url = rt.start(host="127.0.0.1", port=0)
    try:
        spans = [
            {
                "traceId": f"{n:032x}",
                "spanId": f"{n:016x}",
                "name": "chat m",
                "startTimeUnixNano": "1000",
                "endTimeUnixNano": "2000",
                "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
            }
            for n in range(1, 201)
        ]
        body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        response = httpx.post(
            url + "/v1/traces",
            content=json.dumps(body),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert rt.stats.sessions_active == 50
        assert rt.stats.otel_sessions_evicted == 150
    finally:
        rt.stop()


def test_idle_otel_sessions_end_on_a_timer_and_stop_leaves_no_thread() -> None:
    before = {t.name for t in threading.enumerate()}
    rt = _runtime(otel_idle_s=0.2)
    rt.start(host="127.0.0.1", port=0)
    try:
        provider = TracerProvider()
        provider.add_span_processor(rt.span_processor())
        tracer = provider.get_tracer("agent-framework")
        for conversation in ("quiet-1", "quiet-2"):
            attributes = {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": conversation}
            with tracer.start_as_current_span("chat m", attributes=attributes):
                pass
        provider.shutdown()
        assert rt.stats.sessions_active == 2
        deadline = time.monotonic() + 5  # no span arrives from here on
        while rt.stats.sessions_active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rt.stats.sessions_active == 0
        assert {s.status for s in rt.session_summaries()} == {"completed"}
    finally:
        rt.stop()
    assert {t.name for t in threading.enumerate()} - before == set()


def test_model_names_cannot_fill_the_price_cache() -> None:
    rt = _runtime()
    session = rt.session(workflow="w", principal="u")
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for n in range(2_000):  # 2,000 distinct 100 KB names: 200 MB if any were kept
            session.llm_call(model=f"{n:05d}" + "x" * 100_000, input_tokens=10, output_tokens=1)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 8 * 2**20, f"{grown / 2**20:.1f} MB kept"
    assert rt.pricer.cached() == 0
    span = session.spans[-1]
    assert span.unpriced and span.cost_usd == 0 and span.model is not None
    assert len(span.model) == MAX_NAME + 1  # shown cut, with an ellipsis
    [flag] = [f for f in session.flags if f.kind == "unpriced"]  # flagged once
    assert f"longer than {MAX_NAME} characters" in flag.message


def test_the_price_cache_is_a_bounded_lru() -> None:
    rt = _runtime()
    for n in range(CACHE_SIZE + 500):
        assert rt.pricer.cost(f"no-such-model-{n}", 10, 10) == (0.0, True)
    assert rt.pricer.cached() == CACHE_SIZE
    assert rt.pricer.cost("gpt-4o-mini", 1_000_000, 0, "openai")[1] is False  # still prices
