"""Retention rules and the redaction hook, checked where values leave the process: the
session detail, the event stream and the approvals over real HTTP, and the OTel export."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentops_console.protocol.models import ApprovalDecision
from agentops_console.runtime import Runtime, RuntimeConfig, ToolSpec
from agentops_console.runtime.retention import REDACTION_FAILED, RedactContext, bounded

TOKEN = "retention-test-token"
POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()
SECRET = "hunter2-SECRET"
TOOLS = [
    ToolSpec("kb_search", read_only=True, category="retrieval", corpus="it-kb"),
    ToolSpec("export_data", category="export", args={"region": "str", "note": "str"}),
    ToolSpec("reset_password", category="identity"),
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def scrub(kind: str, value: Any, context: RedactContext) -> Any:
    """Replaces the secret wherever it appears, whatever the shape of the value."""
    return json.loads(json.dumps(value).replace(SECRET, "[secret]"))


def runtime(exporter: InMemorySpanExporter | None = None, **options: Any) -> Runtime:
    provider = None
    if exporter is not None:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    rt = Runtime(
        "it-support",
        "1.4.0",
        tenant="acme",
        token=TOKEN,
        policy=POLICY,
        tools=TOOLS,
        tracer_provider=provider,
        **options,
    )
    rt.start(host="127.0.0.1", port=0)
    return rt


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _stream_text(rt: Runtime) -> str:
    """Every event so far, as the SSE stream sends it."""
    last = rt.events.last_seq
    chunks: list[str] = []
    with httpx.stream(
        "GET", f"{rt.url}/v1/events", headers={**AUTH, "Last-Event-ID": "0"}, timeout=5
    ) as response:
        for line in response.iter_lines():
            chunks.append(line)
            if line == f"id: {last}":
                break
    return "\n".join(chunks)


def _approve_when_pending(rt: Runtime, seen: list[str]) -> threading.Thread:
    def operator() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            response = httpx.get(f"{rt.url}/v1/approvals", headers=AUTH)
            if response.json():
                seen.append(response.text)
                approval = response.json()[0]["id"]
                httpx.post(
                    f"{rt.url}/v1/approvals/{approval}",
                    headers=AUTH,
                    json=ApprovalDecision(decision="approve", operator="lead").model_dump(),
                )
                return
            time.sleep(0.01)

    thread = threading.Thread(target=operator)
    thread.start()
    return thread


def test_a_redacted_value_never_leaves_the_process(exporter: InMemorySpanExporter) -> None:
    rt = runtime(exporter, redact=scrub)
    try:
        approvals_seen: list[str] = []
        operator = _approve_when_pending(rt, approvals_seen)
        with rt.session("password-reset", "user-1042", session_id="s-red") as s:
            s.input(f"reset the password to {SECRET}")
            with s.tool_call("kb_search", {"query": SECRET}) as call:
                call.output = {"hits": [SECRET]}
            with s.tool_call("reset_password", {"user": "u1", "new": SECRET}) as call:
                call.output = f"set to {SECRET}"
            s.output(f"done: {SECRET}")
            s.outcome("resolved")
        operator.join(5)
        detail = httpx.get(f"{rt.url}/v1/sessions/s-red", headers=AUTH).text
        stream = _stream_text(rt)
        exported = json.dumps(
            [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
        )
    finally:
        rt.stop()
    assert approvals_seen and "[secret]" in approvals_seen[0]
    for where, text in [
        ("detail", detail),
        ("stream", stream),
        ("approvals", approvals_seen[0]),
        ("export", exported),
    ]:
        assert SECRET not in text, where
        assert "[secret]" in text, where  # the value is there, redacted
    # the guard decided on the raw call: the approval was needed and given, nothing refused
    assert json.loads(detail)["spans"][-1]["policy"]["decision"] == "approved"


def test_the_guard_sees_raw_arguments(exporter: InMemorySpanExporter) -> None:
    """Cedar and the schema check read what the agent passed, not the redacted copy: an
    export to an approved region is allowed although the hook hides the region."""

    def hide_all(kind: str, value: Any, context: RedactContext) -> Any:
        return "[hidden]"

    rt = runtime(exporter, redact=hide_all)
    try:
        with (
            rt.session("reports", "user-1", session_id="s-raw") as s,
            s.tool_call("export_data", {"region": "eu-west-1", "note": "q3"}) as call,
        ):
            call.output = {"rows": 10}
        detail = httpx.get(f"{rt.url}/v1/sessions/s-raw", headers=AUTH).json()
    finally:
        rt.stop()
    [span] = detail["spans"]
    assert span["policy"]["decision"] == "allow" and span["outcome"] == "ok"
    assert span["arguments"] == "[hidden]" and span["output"] == "[hidden]"
    assert not [f for f in detail["flags"] if f["kind"] == "policy_near_miss"]


def test_a_hook_that_raises_stores_a_marker_and_is_counted() -> None:
    calls: list[tuple[str, RedactContext]] = []

    def broken(kind: str, value: Any, context: RedactContext) -> Any:
        calls.append((kind, context))
        raise RuntimeError(f"cannot redact {value}")

    rt = runtime(redact=broken)
    try:
        with rt.session("password-reset", "user-9", session_id="s-broken") as s:
            s.input(SECRET)
            with s.tool_call("kb_search", {"query": SECRET}) as call:
                call.output = SECRET
        detail = httpx.get(f"{rt.url}/v1/sessions/s-broken", headers=AUTH)
        metrics = httpx.get(f"{rt.url}/metrics", headers=AUTH).text
    finally:
        rt.stop()
    assert SECRET not in detail.text
    body = detail.json()
    assert body["input"] == REDACTION_FAILED
    assert body["spans"][0]["arguments"] == REDACTION_FAILED
    assert body["spans"][0]["output"] == REDACTION_FAILED
    assert "agentops_redaction_failures_total 3.0" in metrics
    kinds = [kind for kind, _ in calls]
    assert kinds == ["input", "arguments", "output"]
    context = calls[1][1]
    assert (context.agent, context.session_id, context.workflow, context.tool) == (
        "it-support",
        "s-broken",
        "password-reset",
        "kb_search",
    )


def test_keep_rules_drop_values_everywhere(exporter: InMemorySpanExporter) -> None:
    config = RuntimeConfig.from_dict(
        {"record": {"keep_arguments": False, "keep_outputs": False, "keep_inputs": False}}
    )
    rt = runtime(exporter, config=config)
    try:
        approvals_seen: list[str] = []
        operator = _approve_when_pending(rt, approvals_seen)
        with rt.session("password-reset", "user-1", session_id="s-drop") as s:
            s.input(SECRET)
            with s.tool_call("reset_password", {"user": SECRET}) as call:
                call.output = SECRET
            s.output(SECRET)
        operator.join(5)
        detail = httpx.get(f"{rt.url}/v1/sessions/s-drop", headers=AUTH)
        stream = _stream_text(rt)
    finally:
        rt.stop()
    exported = [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
    for text in (detail.text, stream, approvals_seen[0], json.dumps(exported)):
        assert SECRET not in text
    body = detail.json()
    assert body.get("input") is None and body.get("output") is None
    assert body["spans"][0].get("arguments") is None and body["spans"][0].get("output") is None
    assert json.loads(approvals_seen[0])[0].get("arguments") is None
    tool = next(a for a in exported if a.get("gen_ai.operation.name") == "execute_tool")
    assert "gen_ai.tool.call.arguments" not in tool and "gen_ai.tool.call.result" not in tool


def test_long_values_are_cut_with_a_marker() -> None:
    config = RuntimeConfig.from_dict({"record": {"max_value_chars": 100}})
    rt = runtime(config=config)
    try:
        with rt.session("password-reset", "user-1", session_id="s-long") as s:
            s.input("x" * 1000)
            with s.tool_call("kb_search", {"query": "q" * 500}) as call:
                call.output = "o" * 99
        body = httpx.get(f"{rt.url}/v1/sessions/s-long", headers=AUTH).json()
    finally:
        rt.stop()
    assert body["input"] == "x" * 100 + "…[cut 900 chars]"
    args = body["spans"][0]["arguments"]
    assert isinstance(args, str) and args.startswith('{"query":"qqq') and "…[cut " in args
    assert body["spans"][0]["output"] == "o" * 99  # within the bound: kept as it is


def test_bounded_keeps_structure_when_it_fits() -> None:
    assert bounded({"a": [1, 2.5, None]}, 100) == {"a": [1, 2.5, None]}
    assert bounded("é" * 10, 5) == "é" * 5 + "…[cut 5 chars]"
    assert bounded(float("nan"), 5) == "nan"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"keep_arguments": "no"}, "record 'keep_arguments' must be true or false"),
        ({"max_value_chars": 10}, "record 'max_value_chars' must be 64 to 16777216"),
        ({"max_value_chars": True}, "record 'max_value_chars' must be 64 to 16777216"),
        ({"keep_everything": True}, "unknown record key 'keep_everything'"),
        ("yes", "[record] must be a table"),
    ],
)
def test_bad_record_section_is_one_line(section: Any, message: str) -> None:
    with pytest.raises(ValueError) as err:
        RuntimeConfig.from_dict({"record": section}, source="agentops.toml")
    assert str(err.value) == f"agentops.toml: {message}"


def test_redact_must_be_callable() -> None:
    with pytest.raises(TypeError, match="redact must be a callable"):
        Runtime("a", "1", token=TOKEN, redact="scrub")  # type: ignore[arg-type]
