"""Evaluation results as OpenTelemetry `gen_ai.evaluation.result` events under the
evaluated session's span: the real SDK with its own InMemorySpanExporter for the library,
and `agentops eval run --otel-export` sending real OTLP/HTTP to a loopback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentops_console.demo.targets import it_support_1_5_0, it_support_1_5_1
from agentops_console.evaluation.harness import ReleaseUnderTest, run_suite
from agentops_console.evaluation.replay import ReplaySet, run_replay
from agentops_console.evaluation.suite import load_suite
from agentops_console.governance.paths import PROJECT_ROOT
from agentops_console.governance.tomlfile import load_toml
from agentops_console.protocol.records import load_jsonl

from .conftest import POLICY, RELEASES, SUITE, TARGETS, live, ok, propose

RECORDED = PROJECT_ROOT / "fixtures" / "evals" / "recorded" / "it-support-1.4.0.jsonl"


def _release(version: str) -> ReleaseUnderTest:
    answers = load_toml(RELEASES / f"it-support-{version}.toml")
    return ReleaseUnderTest("it-support", version, POLICY.read_text(), answers["tools"], "acme")


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_each_case_result_is_an_event_under_its_session_span() -> None:
    suite = load_suite(SUITE)
    picked = [c for c in suite.cases if c.category == "account-lockout"][:3]
    picked += [c for c in suite.cases if c.category == "conflicting-identity"][:3]
    small = suite.model_copy(update={"cases": tuple(picked)})
    provider, exporter = _provider()
    run = run_suite(small, it_support_1_5_0, _release("1.5.0"), jobs=2, tracer_provider=provider)
    spans = exporter.get_finished_spans()
    roots = {
        _attrs(s)["gen_ai.conversation.id"]: s for s in _by_name(spans, "invoke_agent it-support")
    }
    events = _by_name(spans, "gen_ai.evaluation.result")
    assert len(events) == len(picked) == len(roots)
    for result in run.results:
        assert result.session_id is not None
        root = roots[result.session_id]
        (event,) = [e for e in events if _attrs(e)["gen_ai.conversation.id"] == result.session_id]
        assert event.parent is not None and event.parent.span_id == root.context.span_id
        assert event.context.trace_id == root.context.trace_id
        attributes = _attrs(event)
        assert attributes["gen_ai.evaluation.name"] == "task_success"
        assert attributes["gen_ai.evaluation.score.value"] == (1.0 if result.passed else 0.0)
        assert attributes["gen_ai.evaluation.score.label"] == ("pass" if result.passed else "fail")
        assert attributes["agentops.evaluation.case"] == result.case_id
        (span_event,) = event.events
        assert span_event.name == "gen_ai.evaluation.result"
        assert span_event.attributes == event.attributes
    failed = [_attrs(e) for e in events if _attrs(e)["gen_ai.evaluation.score.label"] == "fail"]
    assert len(failed) == 3  # 1.5.0's regression: the conflicting identity records
    assert all("outcome:escalated->refused" in f["gen_ai.evaluation.explanation"] for f in failed)


def test_a_crash_carries_error_type() -> None:
    suite = load_suite(SUITE)
    small = suite.model_copy(update={"cases": suite.cases[:1]})
    provider, exporter = _provider()

    def crashes(ctx: Any, session: Any) -> str:
        raise RuntimeError("boom")

    run_suite(small, crashes, _release("1.5.1"), tracer_provider=provider)
    (event,) = _by_name(exporter.get_finished_spans(), "gen_ai.evaluation.result")
    assert event.attributes is not None
    assert event.attributes["error.type"] == "crash"
    assert event.attributes["gen_ai.evaluation.score.label"] == "fail"


def test_a_replayed_session_is_scored_by_its_diff() -> None:
    records = list(load_jsonl(RECORDED))
    conflicts = [r for r in records if r.workflow == "conflicting-identity"][:2]
    lockouts = [r for r in records if r.workflow == "account-lockout"][:2]
    provider, exporter = _provider()
    replay = run_replay(
        ReplaySet(conflicts + lockouts, str(RECORDED)),
        it_support_1_5_0,
        _release("1.5.0"),
        tracer_provider=provider,
    )
    events = _by_name(exporter.get_finished_spans(), "gen_ai.evaluation.result")
    assert len(events) == 4
    labels: dict[str, str] = {
        _attrs(e)["agentops.evaluation.replay_of"]: _attrs(e)["gen_ai.evaluation.score.label"]
        for e in events
    }
    assert labels == {
        d.session_id: ("regression" if d.material else "identical") for d in replay.diffs
    }
    assert sorted(labels.values()) == ["identical", "identical", "regression", "regression"]
    assert {_attrs(e)["gen_ai.evaluation.name"] for e in events} == {"replay_regression"}


def test_without_a_provider_nothing_is_emitted() -> None:
    suite = load_suite(SUITE)
    _, exporter = _provider()
    small = suite.model_copy(update={"cases": suite.cases[:2]})
    run = run_suite(small, it_support_1_5_1, _release("1.5.1"))
    assert run.summary["passed"] == 2 and exporter.get_finished_spans() == ()


class _Receiver(BaseHTTPRequestHandler):
    requests: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP trace receiver on loopback port 0."""
    requests: list[ExportTraceServiceRequest] = []
    handler = type("Handler", (_Receiver,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", requests
    finally:
        server.shutdown()
        server.server_close()


def test_eval_run_otel_export_sends_the_events_over_otlp(
    project: Path,
    collector: tuple[str, list[ExportTraceServiceRequest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, requests = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    live("1.3.2")
    live("1.4.0")
    propose("1.5.1")
    suite = project / "fixtures" / "evals" / "small.toml"
    text = SUITE.read_text()
    suite.write_text(text[: text.index("[[cases]]", text.index("[[cases]]") + 1)])  # one case
    ok("eval", "run", suite, "--target", f"{TARGETS}:it_support_1_5_1",
       "--release", "it-support", "1.5.1", "--otel-export")  # fmt: skip
    spans = [
        span
        for request in requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = sorted(s.name for s in spans)
    assert "gen_ai.evaluation.result" in names and "invoke_agent it-support" in names
    (root,) = [s for s in spans if s.name == "invoke_agent it-support"]
    (event,) = [s for s in spans if s.name == "gen_ai.evaluation.result"]
    assert event.parent_span_id == root.span_id and event.trace_id == root.trace_id
    attributes = {a.key: a.value for a in event.attributes}
    assert attributes["gen_ai.evaluation.score.label"].string_value == "pass"
    assert attributes["gen_ai.evaluation.score.value"].double_value == 1.0
